"""Secrets never in plain text (SPEC SEC-1): sealed snapshots.

Unit properties of ``orcakit.seal``/``unseal`` (Hypothesis), then real runs on the local flavor
(SQLite and PostgreSQL, static and dynamic, fork and exec launchers): every file the run leaves
in the artifact store (snapshots, step specs, outputs, logs) and the run-store database are
searched for the secret values, which must not be there, while the steps saw exactly those
values and the files are readable by their owner only.
"""

from __future__ import annotations

import json
import stat
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orcakit import (
    SNAPSHOT_SECRETS_ENV,
    ComponentSpec,
    ConfigurationError,
    ExecutionStatus,
    PipelineSnapshot,
    StackSpec,
    StepSpec,
    seal,
    seal_step,
    snapshot_secrets,
    unseal,
    unseal_step,
)
from orcakit.redaction import REDACTED, redact
from orcakit.reference import StepRunner, load_snapshot, open_artifact_store, save_snapshot

from tests.pipelines import sealed as sp

# -- strategies -------------------------------------------------------------------------------

SECRET_KEYS = ["API_KEY", "CK_TOKEN", "DB_PASSWORD", "my_secret", "Credential_X", "aws_secret_access_key"]
env_keys = st.one_of(
    st.sampled_from(SECRET_KEYS + ["PLAIN", "MODE", "HOME_DIR"]),
    st.from_regex(r"\A[A-Za-z_][A-Za-z0-9_]{0,20}\Z").filter(lambda key: not key.upper().startswith("ORCAKIT_")),
)
env_values = st.one_of(
    # what sealing itself writes, and URLs with passwords, must survive too
    st.sampled_from(["", REDACTED, "x://u:********@h/d", "postgresql://me:pw@db/x", "$HOME 'q' \"d\"\n\t"]),
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40),
)
environments = st.dictionaries(env_keys, env_values, max_size=5)
config_keys = st.one_of(st.sampled_from(SECRET_KEYS + ["nested", "items", "host", "token_ttl"]), st.text(max_size=8))
json_leaves = st.one_of(st.none(), st.booleans(), st.integers(), env_values)
configs = st.dictionaries(
    config_keys,
    st.recursive(json_leaves, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(config_keys, inner, max_size=3), max_leaves=8),
    max_size=4,
)
passwords = st.text(st.characters(blacklist_characters="@/:\x00", blacklist_categories=("Cs", "Zs", "Cc")), min_size=1, max_size=12)
run_stores = st.one_of(
    st.just("sqlite:////tmp/runs.db"),
    passwords.map(lambda password: f"postgresql+psycopg://user:{password}@db.example:5432/orcakit"),
)


@st.composite
def snapshots(draw) -> PipelineSnapshot:
    names = draw(st.lists(st.sampled_from(["a", "b", "c.d", "api_key"]), unique=True, max_size=3))
    return PipelineSnapshot(
        pipeline_name="p",
        environment=draw(environments),
        steps={name: StepSpec(name=name, source="m:f", environment=draw(environments)) for name in names},
        stack=StackSpec(
            orchestrator=ComponentSpec(flavor="local", config=draw(configs)),
            artifact_store="/tmp/artifacts",
            run_store=draw(run_stores),
            artifact_store_options=draw(configs),
        ),
    )


def _stored_parts(snapshot: PipelineSnapshot) -> dict[str, Any]:
    """The parts of a snapshot that may hold secrets, as JSON."""
    data = snapshot.model_dump(mode="json")
    return {
        "environment": data["environment"],
        "steps": {name: spec["environment"] for name, spec in data["steps"].items()},
        "run_store": data["stack"]["run_store"],
        "config": data["stack"]["orchestrator"]["config"],
        "options": data["stack"]["artifact_store_options"],
    }


# -- seal / unseal ----------------------------------------------------------------------------


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(snapshots())
def test_what_is_stored_is_what_redaction_shows(snapshot: PipelineSnapshot) -> None:
    """One definition of secret: the sealed snapshot holds exactly the redacted values."""
    parts = _stored_parts(snapshot)
    expected = {
        "environment": redact(parts["environment"]),
        "steps": {name: redact(env) for name, env in parts["steps"].items()},
        "run_store": redact(parts["run_store"]),
        "config": redact(parts["config"]),
        "options": redact(parts["options"]),
    }
    assert _stored_parts(seal(snapshot).snapshot) == expected


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(snapshots())
def test_each_process_unseals_exactly_what_it_needs(snapshot: PipelineSnapshot) -> None:
    sealed = seal(snapshot)
    stored = PipelineSnapshot.model_validate_json(sealed.snapshot.model_dump_json())  # as a step loads it
    shared = unseal(stored, snapshot_secrets(sealed.environment()))
    assert shared.stack == snapshot.stack and shared.environment == snapshot.environment
    for name in snapshot.steps:
        environment = sealed.environment(name)
        assert set(environment) <= {SNAPSHOT_SECRETS_ENV}
        carried = snapshot_secrets(environment)
        others = [path for path in carried if path.startswith("/steps/") and not path.startswith(f"/steps/{name}/")]
        assert not others, "a step must not receive another step's secrets"
        unsealed = unseal(stored, carried, step=name)
        assert unsealed.steps[name] == snapshot.steps[name]
        assert unsealed.stack == snapshot.stack and unsealed.environment == snapshot.environment
    assert unseal(stored, sealed.secrets, step=None).model_dump() == shared.model_dump()


@settings(max_examples=200, deadline=None)
@given(environments)
def test_dynamic_steps_round_trip(environment: dict[str, str]) -> None:
    spec = StepSpec(name="late", source="m:f", environment=environment)
    stored, secrets = seal_step(spec)
    assert stored.environment == redact(environment)
    assert all(path.startswith("/steps/late/environment/") for path in secrets)
    assert unseal_step(StepSpec.model_validate_json(stored.model_dump_json()), secrets) == spec


def test_a_sealed_snapshot_without_its_secrets_is_a_clear_error() -> None:
    secret = "never-print-me-5e1f"
    snapshot = PipelineSnapshot(
        pipeline_name="p", environment={"API_KEY": secret},
        stack=StackSpec(orchestrator=ComponentSpec(flavor="local"), artifact_store="/a",
                        run_store=f"postgresql+psycopg://u:{secret}@h/db"),
    )
    stored = seal(snapshot).snapshot
    with pytest.raises(ConfigurationError) as caught:
        unseal(stored, {})
    message = str(caught.value)
    assert SNAPSHOT_SECRETS_ENV in message and "/environment/API_KEY" in message and "/stack/run_store" in message
    assert "is not set" in message and "fix:" in message
    assert secret not in message
    with pytest.raises(ConfigurationError, match="not a JSON object") as bad:
        snapshot_secrets({SNAPSHOT_SECRETS_ENV: f"not json {secret}"})
    assert secret not in str(bad.value)


def test_a_snapshot_without_secrets_is_stored_as_it_is(stack: StackSpec) -> None:
    snapshot = PipelineSnapshot(pipeline_name="p", environment={"MODE": "fast"}, stack=stack)
    sealed = seal(snapshot)
    assert sealed.snapshot == snapshot and sealed.secrets == {} and sealed.environment("x") == {}


def test_the_step_runner_refuses_a_sealed_snapshot_without_the_variable(stack: StackSpec, monkeypatch) -> None:
    snapshot = PipelineSnapshot(pipeline_name="p", environment={"CK_TOKEN": "runner-secret-0d4e"}, stack=stack)
    save_snapshot(open_artifact_store(stack.artifact_store), snapshot)
    monkeypatch.delenv(SNAPSHOT_SECRETS_ENV, raising=False)
    with pytest.raises(ConfigurationError, match=SNAPSHOT_SECRETS_ENV):
        StepRunner(stack.artifact_store, snapshot.snapshot_id)
    runner = StepRunner(stack.artifact_store, snapshot.snapshot_id, environ=seal(snapshot).environment())
    assert runner.snapshot.environment == {"CK_TOKEN": "runner-secret-0d4e"}
    assert load_snapshot(runner.artifacts, snapshot.snapshot_id).environment == {"CK_TOKEN": REDACTED}


# -- real runs --------------------------------------------------------------------------------

OPTION_SECRET = "sealed-option-secret-a77d01"


def _secret_values(stack: StackSpec) -> list[str]:
    values = [*sp.PIPELINE_SECRETS.values(), *sp.STEP_SECRETS.values(), *sp.DYNAMIC_STEP_SECRETS.values(), OPTION_SECRET]
    password = _url_password(stack.run_store)
    if password:
        # the password alone may be a common word (the test server's is 'orcakit'): look for
        # it where a URL carries it, and for the whole URL
        values += [f":{password}@", stack.run_store]
    return values


def _url_password(url: str) -> str | None:
    from sqlalchemy.engine import make_url

    return make_url(url).password


def _assert_nothing_secret(artifact_root: Path, database_dump: bytes, secrets: list[str]) -> list[Path]:
    files = [path for path in artifact_root.rglob("*") if path.is_file()]
    assert any(path.parts[-2] == "snapshots" or "snapshots" in path.parts for path in files)
    for path in files:
        data = path.read_bytes()
        for secret in secrets:
            assert secret.encode() not in data, f"a secret value is stored in plain text in {path}"
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == 0o600, f"{path} has mode {mode:o}, not 600 (readable by others)"
    for secret in secrets:
        assert secret.encode() not in database_dump, "a secret value is stored in plain text in the run store"
    return files


def _sqlite_dump(url: str) -> bytes:
    from sqlalchemy.engine import make_url

    database = Path(make_url(url).database)
    return b"".join(Path(f"{database}{suffix}").read_bytes() for suffix in ("", "-wal") if Path(f"{database}{suffix}").exists())


def _database_dump(url: str) -> bytes:
    """Every row of every table, as text (for a SQLite file: the file's bytes, too)."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        metadata = sa.MetaData()
        metadata.reflect(engine)
        with engine.connect() as connection:
            rows = [repr(row) for table in metadata.sorted_tables for row in connection.execute(sa.select(table))]
    finally:
        engine.dispose()
    raw = _sqlite_dump(url) if url.startswith("sqlite") else b""
    return "\n".join(rows).encode() + raw


def _expected(keys_to_values: dict[str, str]) -> dict[str, str | None]:
    return {key: sp.digest(keys_to_values.get(key)) for key in sp.KEYS}


def _secret_stack(stack: StackSpec, run_store: str | None = None) -> StackSpec:
    update: dict[str, Any] = {"artifact_store_options": {"aws_secret_access_key": OPTION_SECRET, "region_name": "eu-x-1"}}
    if run_store:
        update["run_store"] = run_store
    return stack.model_copy(update=update)


def _run(pipeline, stack: StackSpec, execute, *step_names: str) -> tuple[PipelineSnapshot, list[dict]]:
    """Run to completion; the snapshot and what the named steps observed."""
    snapshot = pipeline.compile(stack)
    run, steps = execute(snapshot, stack=stack)
    assert run.status is ExecutionStatus.COMPLETED, {name: step.reason for name, step in steps.items()}
    return snapshot, [execute.output(stack, run, name) for name in step_names]


def _run_static_and_check(stack: StackSpec, execute) -> None:
    snapshot, (first, second) = _run(sp.sealed_static, stack, execute, "with_step_secrets", "pipeline_secrets_only")
    pipeline_env = {**sp.PIPELINE_SECRETS, **sp.PLAIN}
    assert first["env"] == _expected({**pipeline_env, **sp.STEP_SECRETS})
    assert second["env"] == _expected(pipeline_env)
    for seen in (first, second):
        assert seen["run_store"] == sp.digest(stack.run_store), "the step's snapshot must hold the real run-store URL"
        assert seen["pipeline_env"] == {key: sp.digest(value) for key, value in pipeline_env.items()}
    root = Path(stack.artifact_store)
    stored = json.loads((root / "snapshots" / f"{snapshot.snapshot_id}.json").read_text())
    assert stored["environment"]["API_KEY"] == REDACTED and stored["environment"]["PLAIN_SETTING"] == sp.PLAIN["PLAIN_SETTING"]
    assert stored["steps"]["with_step_secrets"]["environment"]["STEP_SECRET"] == REDACTED
    assert stored["stack"]["artifact_store_options"] == {"aws_secret_access_key": REDACTED, "region_name": "eu-x-1"}
    assert stored["stack"]["run_store"] == redact(stack.run_store)
    files = _assert_nothing_secret(root, _database_dump(stack.run_store), _secret_values(stack))
    assert any(path.suffix == ".log" for path in files)


@pytest.mark.parametrize("launcher", ["fork", "exec"])
def test_static_run_stores_no_secret_on_sqlite(make_stack, execute, launcher: str) -> None:
    _run_static_and_check(_secret_stack(make_stack(launcher=launcher)), execute)


def test_dynamic_run_children_get_their_secrets_and_store_none(stack: StackSpec, execute) -> None:
    stack = _secret_stack(stack)
    snapshot, (child, plain_child) = _run(sp.sealed_dynamic, stack, execute, "dynamic_child", "dynamic_plain_child")
    pipeline_env = {**sp.PIPELINE_SECRETS, **sp.PLAIN}
    assert child["env"] == _expected({**pipeline_env, **sp.DYNAMIC_STEP_SECRETS})
    assert plain_child["env"] == _expected(pipeline_env)
    assert child["run_store"] == plain_child["run_store"] == sp.digest(stack.run_store)
    root = Path(stack.artifact_store)
    step_spec = json.loads((root / "snapshots" / snapshot.snapshot_id / "steps" / "dynamic_child.json").read_text())
    assert step_spec["environment"] == {"DYN_ACCESS_TOKEN": REDACTED}
    files = _assert_nothing_secret(root, _database_dump(stack.run_store), _secret_values(stack))
    assert any(path.name == "_orchestration.log" for path in files)


@pytest.fixture
def fresh_postgres(postgres_url: str):
    """A database of its own on the test server, so that its dump holds this test's run only."""
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    name = f"orcakit_sealed_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.mark.postgres
def test_static_run_stores_no_secret_on_postgres(make_stack, execute, fresh_postgres: str) -> None:
    assert _url_password(fresh_postgres), "the test server's URL carries a password"
    _run_static_and_check(_secret_stack(make_stack(), run_store=fresh_postgres), execute)
