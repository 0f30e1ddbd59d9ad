"""Daily use of the runtime and the CLI (issue 20): secrets kept out of what failing steps say,
results one can see (``runs show`` with outputs, ``runs logs``, ``--output json|yaml``,
``RunRecord.outputs``), runs that do not seem to vanish, and the smaller faults a user meets.

Every test has its own ``ORCAKIT_HOME`` (conftest); pipelines come from ``tests/pipelines/daily.py``.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from orcakit.reference.cli import cli
from tests.pipelines.daily import PARAM_SECRET, SECRET

ROOT = Path(__file__).resolve().parents[1]
DAILY = "tests.pipelines.daily"


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.chdir(ROOT)
    monkeypatch.delenv("ORCAKIT_DEBUG", raising=False)
    monkeypatch.delenv("COLUMNS", raising=False)
    return CliRunner()


def invoke(runner: CliRunner, *args: str, code: int | None = 0):
    result = runner.invoke(cli, list(args), catch_exceptions=False)
    if code is not None:
        assert result.exit_code == code, f"exit {result.exit_code} != {code}\n{result.output}"
    return result


def run_id_of(output: str) -> str:
    return next(line.split()[-1] for line in output.splitlines() if line.startswith("run ID:"))


def files_holding(folder: Path, *needles: str) -> list[str]:
    """Every file under ``folder`` whose bytes contain one of ``needles`` (as UTF-8)."""
    found = []
    for path in folder.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            found += [f"{path}: {needle!r}" for needle in needles if needle.encode() in data]
    return found


# -- secrets through error messages (SPEC SEC-1) -------------------------------------------------


@pytest.mark.parametrize("launcher", ["fork", "exec"])
def test_a_sealed_secret_raised_by_a_step_is_in_no_store_log_or_output(
    runner: CliRunner, orcakit_home: Path, launcher: str
) -> None:
    invoke(runner, "orchestrator", "register", "box", "--flavor=local", f"--launcher={launcher}")
    invoke(runner, "stack", "register", "box", "-o", "box", "--set")
    ran = invoke(runner, "run", f"{DAILY}:leaky", "--param", f"api_token={PARAM_SECRET}", code=1)
    run_id = run_id_of(ran.output)
    # The failure is still told: the exception's type and its non-secret words.
    assert "ConnectionError: cannot reach postgresql://app:********@db:5432/app" in ran.output, ran.output
    outputs = [ran.output]
    outputs.append(invoke(runner, "runs", "show", run_id).output)
    outputs.append(invoke(runner, "runs", "show", run_id, "--output", "json").output)
    outputs.append(invoke(runner, "runs", "list", "--output", "json").output)
    logs = invoke(runner, "runs", "logs", run_id, "connect").output
    assert "connecting with ******** to ********" in logs and "Traceback" in logs and "ConnectionError" in logs, logs
    outputs.append(logs)
    for text in outputs:
        assert SECRET not in text and PARAM_SECRET not in text, text
    # Nothing on disk: run store (and its -wal), artifacts (snapshot, outputs), step logs.
    assert files_holding(orcakit_home, SECRET, PARAM_SECRET) == []
    store = orcakit_home / "runs.db"
    assert stat.S_IMODE(store.stat().st_mode) == 0o600
    for side in (Path(f"{store}-wal"), Path(f"{store}-shm")):
        if side.exists():
            assert stat.S_IMODE(side.stat().st_mode) & 0o077 == 0, side


def test_the_run_store_file_is_made_owner_only_and_an_old_one_is_tightened(tmp_path: Path) -> None:
    from orcakit.reference import RunStore

    fresh = tmp_path / "fresh" / "runs.db"
    RunStore(f"sqlite:///{fresh}").close()
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o600
    old = tmp_path / "old.db"
    old.touch(mode=0o644)
    old.chmod(0o644)
    RunStore(f"sqlite:///{old}").close()
    assert stat.S_IMODE(old.stat().st_mode) == 0o600


def test_secret_looking_parameters_are_sealed_in_the_stored_snapshot(make_stack) -> None:
    from orcakit import seal, unseal
    from tests.pipelines.daily import leaky

    snapshot = leaky.compile(make_stack(), api_token=PARAM_SECRET)
    sealed = seal(snapshot)
    text = sealed.snapshot.model_dump_json()
    assert PARAM_SECRET not in text
    # The step that receives it under another name ('url') has it sealed too, and gets it back.
    assert sealed.snapshot.steps["connect"].parameters["url"] == "********"
    back = unseal(sealed.snapshot, sealed.secrets, step="connect")
    assert back.steps["connect"].parameters["url"] == PARAM_SECRET
    assert back.pipeline_parameters["api_token"] == PARAM_SECRET
