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


def test_a_secret_parameter_of_a_dynamic_pipeline_is_sealed_in_the_steps_it_reaches(
    runner: CliRunner, orcakit_home: Path
) -> None:
    ran = invoke(runner, "run", f"{DAILY}:leaky_dynamic", "--param", f"api_token={PARAM_SECRET}", code=1)
    assert "ConnectionError" in ran.output and "(********)" in ran.output, ran.output
    assert PARAM_SECRET not in ran.output and SECRET not in ran.output
    assert files_holding(orcakit_home, SECRET, PARAM_SECRET) == []


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


# -- seeing results ---------------------------------------------------------------------------------


def test_runs_show_logs_and_json_output_of_a_run(runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import yaml

    ran = invoke(runner, "run", f"{DAILY}:results", "-p", "n=4").output
    run_id = run_id_of(ran)
    shown = invoke(runner, "runs", "show", run_id[:8]).output
    # the duration `orcakit run` printed is the one `runs list` and `runs show` print
    printed = next(line.split()[1] for line in ran.splitlines() if line.startswith("duration:"))
    row = next(line for line in invoke(runner, "runs", "list").output.splitlines() if run_id in line)
    assert printed == [cell.strip() for cell in row.split("│") if cell.strip()][-1]
    assert f"duration:        {printed}" in shown
    # outputs, summarised: the type, its size and the start of its repr
    assert "dict[2]: {'rows': [0, 1, 2, 3], 'n': 4}" in shown and "str[6]: '4 rows'" in shown, shown
    data = json.loads(invoke(runner, "runs", "show", run_id, "--output", "json").output)
    assert data["id"] == run_id and data["status"] == "completed"
    assert data["steps"]["summarise"]["output"] == "str[6]: '4 rows'"
    assert [a["step_name"] for a in data["attempts"]] == ["produce", "summarise"]
    assert yaml.safe_load(invoke(runner, "runs", "show", run_id, "--output", "yaml").output)["id"] == run_id
    from orcakit.reference.cli import runs as runs_module

    with monkeypatch.context() as patch:
        patch.setattr(runs_module, "_LARGEST_SHOWN", 10)  # every output is "large" now: not read
        assert "MiB, not read:" in invoke(runner, "runs", "show", run_id).output
    listed = json.loads(invoke(runner, "runs", "list", "--output", "json").output)
    assert [run["id"] for run in listed] == [run_id]
    # one duration, the same everywhere
    assert listed[0]["duration_seconds"] == data["duration_seconds"]

    assert invoke(runner, "runs", "logs", run_id, "summarise").output == "summary line 1\nsummary line 2\n"
    both = invoke(runner, "runs", "logs", run_id).output
    assert both == "==> produce <==\nproducing 4 rows\n==> summarise <==\nsummary line 1\nsummary line 2\n"
    # --follow of a finished run prints everything once and returns
    assert invoke(runner, "runs", "logs", run_id, "produce", "--follow").output == "producing 4 rows\n"
    bad = invoke(runner, "runs", "logs", run_id, "nope", code=2).output
    assert "no step 'nope'" in bad and "produce, summarise" in bad


def test_run_with_logs_prints_the_step_output_prefixed_before_the_outcome(runner: CliRunner) -> None:
    out = invoke(runner, "run", f"{DAILY}:results", "-p", "n=2", "--logs").output
    lines = out.splitlines()
    for line in ("[produce] producing 2 rows", "[summarise] summary line 1", "[summarise] summary line 2"):
        assert line in lines, out
    assert lines.index("[summarise] summary line 2") < next(i for i, l in enumerate(lines) if l.startswith("run ID:"))
    assert "[produce]" not in invoke(runner, "run", f"{DAILY}:results").output  # only when asked


def test_list_and_describe_commands_speak_json(runner: CliRunner) -> None:
    flavors = json.loads(invoke(runner, "flavor", "list", "--output", "json").output)
    assert any(f["name"] == "local" for f in flavors)
    described = json.loads(invoke(runner, "flavor", "describe", "local", "--output", "json").output)
    assert described["name"] == "local" and "cpu" in described["capabilities"]["declared"]
    invoke(runner, "orchestrator", "register", "fast", "--flavor=local", "--max_parallelism=3")
    orchestrators = json.loads(invoke(runner, "orchestrator", "list", "--output", "json").output)
    assert {"name": "fast", "flavor": "local"}.items() <= next(o for o in orchestrators if o["name"] == "fast").items()
    assert json.loads(invoke(runner, "orchestrator", "describe", "fast", "--output", "json").output)["config"]["max_parallelism"] == 3
    invoke(runner, "stack", "register", "dev", "-o", "fast")
    stacks = json.loads(invoke(runner, "stack", "list", "--output", "json").output)
    assert {s["name"] for s in stacks} >= {"default", "dev"}
    assert json.loads(invoke(runner, "stack", "describe", "dev", "--output", "json").output)["orchestrator"] == "fast"


def test_run_record_outputs_are_loaded_lazily(make_stack) -> None:
    from orcakit.reference import run_pipeline
    from tests.pipelines.daily import results

    run = run_pipeline(results, 5, stack=make_stack())
    outputs = run.outputs
    assert "not loaded" in repr(outputs)  # nothing read yet
    assert set(outputs) == {"produce", "summarise"}
    assert outputs["summarise"] == "5 rows" and outputs["produce"]["rows"] == [0, 1, 2, 3, 4]
    with pytest.raises(KeyError):
        outputs["nope"]


# -- runs that seem to vanish -----------------------------------------------------------------------


def test_runs_show_names_the_store_searched_and_the_stack_that_has_the_run(runner: CliRunner, tmp_path: Path) -> None:
    run_id = run_id_of(invoke(runner, "run", f"{DAILY}:results").output)
    invoke(runner, "stack", "register", "dev", "-o", "default", "--run-store", f"sqlite:///{tmp_path / 'dev.db'}", "--set")
    missing = invoke(runner, "runs", "show", run_id[:6], code=1).output
    assert f"no run '{run_id[:6]}' in the run store of stack 'dev'" in missing and str(tmp_path / "dev.db") in missing
    assert "stack 'default' has it" in missing and f"orcakit runs show {run_id[:6]} --stack default" in missing
    assert run_id in invoke(runner, "runs", "show", run_id[:6], "--stack", "default").output


def test_runs_list_keeps_id_and_status_whole_at_80_columns(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    run_id = run_id_of(invoke(runner, "run", f"{DAILY}:results").output)
    monkeypatch.setenv("COLUMNS", "80")
    listing = invoke(runner, "runs", "list").output
    assert all(len(line) <= 80 for line in listing.splitlines()), listing
    line = next(line for line in listing.splitlines() if run_id in line)
    assert "completed" in line and "…" not in listing


# -- the smaller faults a user meets --------------------------------------------------------------


@pytest.mark.parametrize(
    "url, message",
    [
        ("mysql://x", "the 'mysql' driver is not installed here"),
        ("nope://x", "SQLAlchemy has no dialect 'nope'"),
        ("notaurl", "is not a SQLAlchemy URL: it has no 'dialect://' scheme"),
    ],
)
def test_stack_register_checks_the_run_store_url_and_driver(runner: CliRunner, url: str, message: str) -> None:
    out = invoke(runner, "stack", "register", "bad", "-o", "default", "--run-store", url, code=2).output
    assert message in out and "<unparseable URL>" not in out, out
    assert "bad" not in {stack["name"] for stack in json.loads(invoke(runner, "stack", "list", "--output", "json").output)}


def test_a_full_disk_under_the_run_store_says_no_space_left(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from orcakit.reference._runtime import faults

    path = tmp_path / "runs.db"
    full = faults.sqlite_fault(path, "database or disk is full")
    assert full is not None and "no space left on the disk" in full.what and "df -h" in full.fix
    # SQLite reports an ENOSPC on its -shm/-wal as a disk I/O error: the disk is asked.
    monkeypatch.setattr(faults, "_disk_full", lambda _path: True)
    assert "no space left" in faults.sqlite_fault(path, "disk i/o error").what
    monkeypatch.setattr(faults, "_disk_full", lambda _path: False)
    assert "disk I/O error" in faults.sqlite_fault(path, "disk i/o error").what


def test_run_takes_a_file_path(runner: CliRunner, tmp_path: Path) -> None:
    folder = tmp_path / "my project"
    folder.mkdir()
    (folder / "my_pipes.py").write_text(
        "from orcakit import pipeline, step\n\n@step\ndef one() -> int:\n    return 1\n\n@pipeline\ndef pipe():\n    one()\n"
    )
    out = invoke(runner, "run", f"{folder / 'my_pipes.py'}:pipe").output
    assert "status:   COMPLETED" in out, out
    assert "no such file" in invoke(runner, "run", f"{folder / 'nope.py'}:pipe", code=2).output
    (folder / "2bad.py").write_text("")
    assert "not a Python identifier" in invoke(runner, "run", f"{folder / '2bad.py'}:pipe", code=2).output


def test_shell_completion_is_clicks_and_completes_run_ids(runner: CliRunner, orcakit_home: Path) -> None:
    import subprocess
    import sys

    run_id = run_id_of(invoke(runner, "run", f"{DAILY}:results").output)
    orcakit = str(Path(sys.executable).with_name("orcakit"))
    env = {**os.environ, "ORCAKIT_HOME": str(orcakit_home)}

    def complete(words: str, index: int) -> list[str]:
        done = subprocess.run([orcakit], env={**env, "_ORCAKIT_COMPLETE": "bash_complete", "COMP_WORDS": words,
                                              "COMP_CWORD": str(index)}, capture_output=True, text=True, timeout=120)
        return done.stdout.split()

    script = subprocess.run([orcakit], env={**env, "_ORCAKIT_COMPLETE": "bash_source"}, capture_output=True, text=True, timeout=120)
    assert "_orcakit_completion()" in script.stdout  # what the README puts in ~/.bashrc
    assert "plain,logs" in complete("orcakit runs lo", 2)
    assert {"plain,json", "plain,yaml"} <= set(complete("orcakit runs list --output ", 4))
    assert f"plain,{run_id}" in complete(f"orcakit runs show {run_id[:4]}", 3)


@pytest.mark.parametrize("launcher", ["exec", "fork"])
def test_a_step_whose_client_died_ends_its_run_itself(tmp_path: Path, launcher: str) -> None:
    """No later command opens the run store: the step sees its driver's lease lapse and reaps."""
    from orcakit import ExecutionStatus
    from tests.test_orphaned_runs import Client, alive, sigkill, wait_until

    client = Client(tmp_path, launcher)
    client.env["ORCAKIT_DRIVER_WATCH_SECONDS"] = "0.5"  # the steps inherit the client's environment
    proc = client.start("lingering")
    pids = client.step_pids()
    sigkill(proc)
    assert wait_until(lambda: not alive(pids["step"]) and not alive(pids["child"]), timeout=60)
    run = client.the_run()
    assert run.status is ExecutionStatus.FAILED and "died without finishing it" in run.reason, run


# -- the scrubber, as a property ----------------------------------------------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=200, deadline=None)
@given(
    secrets=st.lists(st.text(min_size=4, max_size=12), min_size=1, max_size=3),
    pieces=st.lists(st.text(max_size=8), min_size=1, max_size=4),
)
def test_no_sealed_value_survives_scrubbing(secrets: list[str], pieces: list[str]) -> None:
    from orcakit.reference._runtime.scrub import Scrubber, secret_strings

    scrub = Scrubber({f"/environment/K{i}": value for i, value in enumerate(secrets)})
    text = "".join(piece + secrets[i % len(secrets)] for i, piece in enumerate(pieces))
    out = scrub(text)
    for value in secret_strings(secrets):
        assert value not in out


def test_scrubbing_finds_the_forms_a_secret_takes_in_messages() -> None:
    from orcakit.reference._runtime.scrub import Scrubber

    scrub = Scrubber({"/stack/run_store": "postgresql://app:p%40ss-w0rd@db/x", "/environment/TOKEN": "it's \\secret"})
    assert scrub("url postgresql://app:p%40ss-w0rd@db/x") == "url ********"
    assert scrub("password p@ss-w0rd and p%40ss-w0rd") == "password ******** and ********"  # decoded and not
    assert scrub(repr("it's \\secret")) == '"********"' and scrub('{"t": "it\'s \\\\secret"}') == '{"t": "********"}'
    assert scrub("abc 1 2") == "abc 1 2"  # nothing else touched
