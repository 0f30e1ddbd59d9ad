"""The ``orcakit`` command line: click's CliRunner for most commands, the installed script in a
real subprocess for start-up weight, exit codes, Ctrl-C and ``--no-wait``.

Every test has its own ``ORCAKIT_HOME`` (conftest). Pipelines run on the local flavor from
``tests/pipelines/sample.py`` with the repository root as the working directory, as a user
would run ``orcakit run tests.pipelines.sample:pipe`` from there.
"""

from __future__ import annotations

import re
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from orcakit import ExecutionStatus
from orcakit.reference.cli import cli
from orcakit.reference.cli.run import parse_params
from orcakit.reference.cli.stacks import parse_config_options
from orcakit.reference import ConfigStore
from orcakit.reference._runtime.config_store import REDACTED, redact_config
from orcakit.reference import RunStore

ROOT = Path(__file__).resolve().parents[1]
ORCAKIT = Path(sys.executable).with_name("orcakit")
SAMPLE = "tests.pipelines.sample"
SECRETIVE = "tests.pipelines.cli_flavors:SecretiveFlavor"


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.chdir(ROOT)
    monkeypatch.delenv("ORCAKIT_DEBUG", raising=False)
    monkeypatch.delenv("COLUMNS", raising=False)  # plain output is then 200 columns wide: no wrapping
    return CliRunner()


def invoke(runner: CliRunner, *args: str, code: int | None = 0):
    result = runner.invoke(cli, list(args), catch_exceptions=False)
    if code is not None:
        assert result.exit_code == code, f"exit {result.exit_code} != {code}\n{result.output}"
    return result


def stored_config(home: Path) -> dict:
    return json.loads((home / "config.json").read_text())


def orcakit(*args: str, home: Path, timeout: float = 120, **kwargs) -> subprocess.CompletedProcess:
    """The installed console script, as a user runs it."""
    env = {**os.environ, "ORCAKIT_HOME": str(home)}
    env.pop("ORCAKIT_DEBUG", None)
    env.pop("COLUMNS", None)
    return subprocess.run([str(ORCAKIT), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, **kwargs)


# -- start-up ------------------------------------------------------------------------------------


def test_the_console_script_is_installed() -> None:
    assert ORCAKIT.exists(), f"{ORCAKIT} missing: install the project (pip install -e .)"


@pytest.mark.parametrize("args", [["--help"], ["flavor", "list"], ["run", "--help"]])
def test_startup_imports_no_store_and_no_flavor_implementation(args: list[str], orcakit_home: Path) -> None:
    probe = (
        "import sys\n"
        "from orcakit.reference.cli import cli\n"
        f"try:\n    cli.main(args={args!r}, prog_name='orcakit')\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        "heavy = [m for m in sys.modules if m.split('.')[0] == 'sqlalchemy'\n"
        "         or m == 'orcakit.reference.flavors.local.orchestrator' or m == 'orcakit.reference._runtime.run_store']\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env={**os.environ, "ORCAKIT_HOME": str(orcakit_home)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "HEAVY []"


# -- flavors -------------------------------------------------------------------------------------


def test_flavor_list_names_the_installed_flavors(runner: CliRunner) -> None:
    result = invoke(runner, "flavor", "list")
    assert "local" in result.output and "orcakit.reference.flavors.local:LocalFlavor" in result.output
    verbose = invoke(runner, "flavor", "list", "--verbose")
    assert "ORCAKIT_LOCAL_RUN_ID" in verbose.output
    assert "stop_run: yes" in verbose.output and "schedules: none" in verbose.output


def test_flavor_describe_shows_fields_capabilities_and_run_id_variable(runner: CliRunner) -> None:
    out = invoke(runner, "flavor", "describe", "local").output
    for text in ("max_parallelism", "int", "how many steps may run at once", "launcher", "Literal['fork', 'exec']",
                 "cgroup_root", "/sys/fs/cgroup", "ORCAKIT_LOCAL_RUN_ID", "dynamic_pipelines", "check:"):
        assert text in out, text
    # A flavor given as module:Class works too, with its own fields.
    out = invoke(runner, "flavor", "describe", SECRETIVE).output
    assert "api_token" in out and "secretive" in out


def test_flavor_describe_unknown_flavor_is_a_usage_error(runner: CliRunner) -> None:
    result = invoke(runner, "flavor", "describe", "kubeflowish", code=2)
    assert "kubeflowish" in result.output and re.search(r"registered: [^)]*\blocal\b", result.output)
    assert "Traceback" not in result.output


# -- orchestrators ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        ["--max_parallelism=3", "--launcher=exec"],
        ["--max-parallelism", "3", "--launcher", "exec"],  # `--key value` and `-` in keys
    ],
)
def test_register_coerces_values_through_the_flavor_config(runner: CliRunner, orcakit_home: Path, options: list[str]) -> None:
    result = invoke(runner, "orchestrator", "register", "fast", "--flavor=local", *options)
    assert "fast" in result.output
    entry = stored_config(orcakit_home)["orchestrators"]["fast"]
    assert entry == {"flavor": "local", "config": {"max_parallelism": 3, "launcher": "exec"}}
    assert type(entry["config"]["max_parallelism"]) is int


def test_register_reads_at_file_values(runner: CliRunner, orcakit_home: Path, tmp_path: Path) -> None:
    (tmp_path / "launcher.txt").write_text("exec\n")
    invoke(runner, "orchestrator", "register", "fromfile", "--flavor", "local", f"--launcher=@{tmp_path / 'launcher.txt'}")
    assert stored_config(orcakit_home)["orchestrators"]["fromfile"]["config"] == {"launcher": "exec"}
    missing = invoke(runner, "orchestrator", "register", "nofile", "--flavor=local", f"--launcher=@{tmp_path / 'nope'}", code=2)
    assert "launcher" in missing.output and "nope" in missing.output


def test_register_refuses_an_unknown_key_naming_it(runner: CliRunner, orcakit_home: Path) -> None:
    result = invoke(runner, "orchestrator", "register", "x", "--flavor=local", "--max_parallelism=2", "--colour=blue", code=2)
    assert "'colour'" in result.output and "known fields: max_parallelism" in result.output
    assert "Traceback" not in result.output
    assert not (orcakit_home / "config.json").exists()  # nothing half-registered


@pytest.mark.parametrize("value", ["zero", "0", "2.5"])
def test_register_refuses_a_bad_value_naming_the_field(runner: CliRunner, value: str) -> None:
    result = invoke(runner, "orchestrator", "register", "x", "--flavor=local", f"--max_parallelism={value}", code=2)
    assert "max_parallelism" in result.output and repr(value) in result.output


def test_register_refuses_an_unknown_flavor_listing_the_registered_ones(runner: CliRunner) -> None:
    result = invoke(runner, "orchestrator", "register", "x", "--flavor=kubeflowish", code=2)
    assert "'kubeflowish'" in result.output and re.search(r"registered: [^)]*\blocal\b", result.output)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["stray"], "unexpected argument 'stray'"),
        (["--launcher"], "--launcher has no value"),
        (["--launcher=exec", "--launcher=fork"], "given twice"),
        (["--9lives=1"], "not a valid config key"),
    ],
)
def test_register_malformed_options_are_usage_errors(runner: CliRunner, extra: list[str], message: str) -> None:
    result = invoke(runner, "orchestrator", "register", "x", "--flavor=local", *extra, code=2)
    assert message in result.output


def test_orchestrator_list_describe_delete(runner: CliRunner, orcakit_home: Path) -> None:
    invoke(runner, "orchestrator", "register", "fast", "--flavor=local", "--max_parallelism=3")
    listing = invoke(runner, "orchestrator", "list").output
    assert "default" in listing and "fast" in listing and "max_parallelism=3" in listing
    described = invoke(runner, "orchestrator", "describe", "fast").output
    assert "flavor: local" in described and "max_parallelism = 3" in described
    again = invoke(runner, "orchestrator", "register", "fast", "--flavor=local", code=2)
    assert "already registered" in again.output
    # In use by a stack: refused; once the stack is gone: deleted.
    invoke(runner, "stack", "register", "s", "-o", "fast")
    assert "used by stack" in invoke(runner, "orchestrator", "delete", "fast", code=2).output
    invoke(runner, "stack", "delete", "s")
    invoke(runner, "orchestrator", "delete", "fast")
    assert "fast" not in stored_config(orcakit_home)["orchestrators"]
    assert "no orchestrator named 'fast'" in invoke(runner, "orchestrator", "describe", "fast", code=2).output


def test_secret_looking_values_are_redacted(runner: CliRunner, orcakit_home: Path) -> None:
    invoke(
        runner, "orchestrator", "register", "sec", f"--flavor={SECRETIVE}",
        "--api-token=tok-123456", "--endpoint=https://bob:hunter2@api.example.com/v1", '--labels={"team": "ml"}',
    )
    stored = stored_config(orcakit_home)["orchestrators"]["sec"]["config"]
    assert stored["api_token"] == "tok-123456" and stored["labels"] == {"team": "ml"}  # JSON for a dict field
    for args in (["orchestrator", "describe", "sec"], ["orchestrator", "list"]):
        out = invoke(runner, *args).output
        assert "tok-123456" not in out and "hunter2" not in out, out
        assert REDACTED in out and "bob:" in out and "team" in out


def test_redact_config() -> None:
    config = {"password": "p", "nested": {"aws_secret_access_key": "k", "region": "eu"}, "url": "postgresql://u:pw@h/db", "token": None}
    assert redact_config(config) == {
        "password": REDACTED,
        "nested": {"aws_secret_access_key": REDACTED, "region": "eu"},
        "url": f"postgresql://u:{REDACTED}@h/db",
        "token": None,
    }


# -- stacks ------------------------------------------------------------------------------------------


def test_stack_register_set_list_describe(runner: CliRunner, orcakit_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    invoke(runner, "orchestrator", "register", "fast", "--flavor=local", "--max_parallelism=2")
    monkeypatch.chdir(tmp_path)  # relative paths are made absolute against this folder
    invoke(runner, "stack", "register", "dev", "-o", "fast", "--artifact-store", "arts", "--run-store", "sqlite:///runs/dev.db")
    invoke(runner, "stack", "register", "prod", "-o", "fast", "--run-store", "postgresql+psycopg://orca:hunter2@db.example/orcakit")
    entry = stored_config(orcakit_home)["stacks"]["dev"]
    assert entry["artifact_store"] == str(tmp_path / "arts")
    assert entry["run_store"] == f"sqlite:///{tmp_path / 'runs' / 'dev.db'}"

    listing = invoke(runner, "stack", "list").output
    assert "default (active)" in listing and "dev" in listing and "hunter2" not in listing
    invoke(runner, "stack", "set", "dev")
    listing = invoke(runner, "stack", "list").output
    assert "dev (active)" in listing and "default (active)" not in listing
    assert ConfigStore().stack_spec().orchestrator.config == {"max_parallelism": 2}

    described = invoke(runner, "stack", "describe").output  # the active one
    assert "stack dev (active)" in described and str(tmp_path / "arts") in described and "max_parallelism = 2" in described
    prod = invoke(runner, "stack", "describe", "prod").output
    assert "hunter2" not in prod and "orca:***@db.example" in prod

    assert "no stack named 'qa'" in invoke(runner, "stack", "set", "qa", code=2).output
    assert "no orchestrator named 'ghost'" in invoke(runner, "stack", "register", "x", "-o", "ghost", code=2).output
    assert "active stack" in invoke(runner, "stack", "delete", "dev", code=2).output
    assert "unknown scheme" in invoke(runner, "stack", "register", "y", "-o", "fast", "--artifact-store", "gs://b/p", code=2).output


# -- run -----------------------------------------------------------------------------------------------


def test_run_end_to_end_on_the_local_flavor(runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    report = tmp_path / "report.txt"
    monkeypatch.setenv("ORCAKIT_TEST_REPORT", str(report))
    result = invoke(runner, "run", f"{SAMPLE}:pipe", "--param", "n=4", "-p", "label=sum")
    out = result.output
    for name in ("make", "total", "report"):
        assert f"step {name} completed (" in out, out
    assert "status:   COMPLETED" in out and "duration:" in out
    # n=4 was parsed as JSON (an int: sum(range(4)) = 6); label stayed a string.
    assert report.read_text() == "sum=6"
    run_id = next(line.split()[-1] for line in out.splitlines() if line.startswith("run ID:"))

    listing = invoke(runner, "runs", "list").output
    assert run_id in listing and "pipe" in listing and "completed" in listing
    shown = invoke(runner, "runs", "show", run_id[:10]).output  # a prefix is enough
    assert f"run {run_id}" in shown and "COMPLETED" in shown
    for name in ("make", "total", "report"):
        assert name in shown
    assert "attempts" in shown and shown.count("completed") >= 6  # 3 steps + 3 attempts


def test_run_of_a_failing_pipeline_exits_1_and_names_the_step(runner: CliRunner) -> None:
    result = invoke(runner, "run", f"{SAMPLE}:failing", code=1)
    out = result.output
    assert "step make completed" in out
    assert "step explode failed: ValueError: deliberate failure in explode" in out
    assert "step never skipped" in out
    assert "status:   FAILED" in out and "failed step explode" in out
    run_id = next(line.split()[-1] for line in out.splitlines() if line.startswith("run ID:"))
    shown = invoke(runner, "runs", "show", run_id).output
    assert "FAILED" in shown and "explode" in shown and "deliberate failure in explode" in shown and "skipped" in shown


def test_run_shows_retries(runner: CliRunner) -> None:
    out = invoke(runner, "run", f"{SAMPLE}:retried").output
    assert "step flaky completed" in out and "(attempt 2)" in out
    run_id = next(line.split()[-1] for line in out.splitlines() if line.startswith("run ID:"))
    shown = invoke(runner, "runs", "show", run_id).output
    assert "first attempt fails on purpose" in shown  # attempt 1's reason, in the attempts table


@pytest.mark.parametrize(
    "target, params, message",
    [
        ("no_such_module_xyz:pipe", [], "cannot import module 'no_such_module_xyz'"),
        (f"{SAMPLE}:nope", [], "pipelines in tests.pipelines.sample: failing, pipe, retried, slow"),
        (f"{SAMPLE}:not_a_pipeline", [], "not an orcakit pipeline"),
        (SAMPLE, [], "MODULE:PIPELINE"),
        (f"{SAMPLE}:pipe", ["-p", "n"], "KEY=VALUE"),
        (f"{SAMPLE}:pipe", ["-p", "bogus=1"], "called with the wrong arguments"),
    ],
)
def test_run_refuses_bad_targets_and_parameters(runner: CliRunner, target: str, params: list[str], message: str) -> None:
    result = invoke(runner, "run", target, *params, code=2)
    assert message in result.output
    assert "Traceback" not in result.output


def test_run_on_an_unknown_stack(runner: CliRunner) -> None:
    assert "no stack named 'nope'" in invoke(runner, "run", f"{SAMPLE}:pipe", "--stack", "nope", code=2).output


def test_debug_shows_tracebacks(runner: CliRunner) -> None:
    plain = invoke(runner, "orchestrator", "describe", "ghost", code=2).output
    assert "Traceback" not in plain and "no orchestrator named 'ghost'" in plain
    debug = invoke(runner, "--debug", "orchestrator", "describe", "ghost", code=2).output
    assert "Traceback" in debug and "ConfigurationError" in debug


def test_parse_params_json_else_string() -> None:
    assert parse_params(("a=3", "b=[1, 2]", "c=hello", "d=true", "e=", 'f="3"', "g=x=y")) == {
        "a": 3, "b": [1, 2], "c": "hello", "d": True, "e": "", "f": "3", "g": "x=y",
    }


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.from_regex(r"[a-z_][a-z0-9_]{0,12}", fullmatch=True),
        st.text(st.characters(blacklist_categories=("Cs",)), max_size=20).filter(lambda v: not v.startswith(("@", "--"))),
        max_size=6,
    ),
    st.booleans(),
)
def test_config_options_round_trip(values: dict[str, str], spaced: bool) -> None:
    args: list[str] = []
    for key, value in values.items():
        args += [f"--{key}", value] if spaced else [f"--{key}={value}"]
    assert parse_config_options(args) == values


# -- runs ------------------------------------------------------------------------------------------------


def test_runs_list_on_a_fresh_home(runner: CliRunner) -> None:
    assert "no runs yet" in invoke(runner, "runs", "list").output
    assert "no run 'abc'" in invoke(runner, "runs", "show", "abc", code=1).output


def test_runs_stop_refuses_without_the_capability(runner: CliRunner) -> None:
    invoke(runner, "orchestrator", "register", "sec", f"--flavor={SECRETIVE}")
    invoke(runner, "stack", "register", "sec", "-o", "sec", "--set")
    store = RunStore(ConfigStore().stack_spec().run_store)
    run = store.create_placeholder_run("snap-not-stored", "pipe", "secretive")
    store.get_or_create_run("snap-not-stored", "backend-1", "pipe", "secretive", placeholder_id=run.id)
    result = invoke(runner, "runs", "stop", run.id, code=1)
    assert "cannot stop runs" in result.output and "stop_run" in result.output
    assert store.get_run(run.id).status is ExecutionStatus.RUNNING  # untouched


def test_runs_stop_of_a_finished_run_says_so(runner: CliRunner) -> None:
    out = invoke(runner, "run", f"{SAMPLE}:pipe").output
    run_id = next(line.split()[-1] for line in out.splitlines() if line.startswith("run ID:"))
    assert "already ended COMPLETED" in invoke(runner, "runs", "stop", run_id).output


# -- progress rendering, driven through a real run store ---------------------------------------------------


def _store_with_steps(tmp_path: Path) -> tuple[RunStore, str]:
    store = RunStore(f"sqlite:///{tmp_path / 'progress.db'}")
    store.create_placeholder_run("snap", "p", "local")
    run = store.get_or_create_run("snap", "backend", "p", "local")
    return store, run.id


def test_plain_progress_prints_one_line_per_status_change(tmp_path: Path) -> None:
    from rich.console import Console

    from orcakit.reference.cli.progress import ProgressMonitor

    store, run_id = _store_with_steps(tmp_path)
    buffer = io.StringIO()
    monitor = ProgressMonitor(Console(file=buffer, width=200), store, run_id, ["a", "b", "c"], live=False)
    monitor.poll()
    assert buffer.getvalue() == ""  # nothing started: nothing to say
    store.start_attempt(run_id, "a")
    monitor.poll()
    monitor.poll()  # no change: no repeated line
    store.finish_attempt(run_id, "a", 1, succeeded=True, total_attempts=1)
    store.start_attempt(run_id, "b")
    store.finish_attempt(run_id, "b", 1, succeeded=False, total_attempts=2, reason="Traceback (most recent call last):\n  ...\nOSError: flaky disk")
    monitor.poll()
    store.start_attempt(run_id, "b")
    store.finish_attempt(run_id, "b", 2, succeeded=False, total_attempts=2, reason="Traceback:\nValueError: x")
    store.mark_steps(run_id, ["c"], ExecutionStatus.SKIPPED, "upstream failed")
    monitor.stop()
    lines = buffer.getvalue().splitlines()
    assert lines[0] == "step a running"
    assert lines[1].startswith("step a completed (") and lines[1].endswith("s)")
    assert lines[2] == "step b retrying: attempt 1 failed: OSError: flaky disk"
    assert lines[3:] == ["step b failed (attempt 2): ValueError: x", "step c skipped: upstream failed"]


def test_live_progress_table_counts_steps(tmp_path: Path) -> None:
    from rich.console import Console

    from orcakit.reference.cli.progress import ProgressMonitor

    store, run_id = _store_with_steps(tmp_path)
    store.start_attempt(run_id, "a")
    store.finish_attempt(run_id, "a", 1, succeeded=True, total_attempts=1)
    store.start_attempt(run_id, "b")
    buffer = io.StringIO()
    console = Console(file=buffer, width=120, force_terminal=True, color_system=None)
    monitor = ProgressMonitor(console, store, run_id, ["a", "b", "c"], interval=0.05)
    assert monitor.live  # a terminal: the live table
    monitor.start()
    time.sleep(0.3)
    store.finish_attempt(run_id, "b", 1, succeeded=False, total_attempts=1, reason="ValueError: nope")
    monitor.stop()
    assert monitor.counts() == {"pending": 1, "running": 0, "retrying": 0, "done": 1, "failed": 1, "skipped": 0, "stopped": 0}
    text = buffer.getvalue()
    assert "1 running" in text  # seen while b ran
    final = text[text.rindex("step"):]  # the last frame
    for fragment in ("a", "done", "b", "failed", "ValueError: nope", "c", "pending", "1 done", "1 failed", "1 pending"):
        assert fragment in final, fragment


# -- the installed script, in real processes -----------------------------------------------------------------


def test_installed_script_registers_runs_and_lists(tmp_path: Path) -> None:
    home = tmp_path / "home"
    register = orcakit("orchestrator", "register", "exec", "--flavor=local", "--launcher=exec", "--max_parallelism=2", home=home)
    assert register.returncode == 0, register.stderr
    assert orcakit("stack", "register", "exec", "-o", "exec", "--set", home=home).returncode == 0

    ok = orcakit("run", f"{SAMPLE}:pipe", "-p", "n=3", home=home)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "step make completed" in ok.stdout and "step report completed" in ok.stdout and "COMPLETED" in ok.stdout
    assert "\x1b[" not in ok.stdout  # not a terminal: plain lines, no live table

    failed = orcakit("run", f"{SAMPLE}:failing", home=home)
    assert failed.returncode == 1
    assert "step explode failed" in failed.stdout and "failed step explode" in failed.stdout

    bad = orcakit("orchestrator", "register", "x", "--flavor=local", "--max_parallelism=zero", home=home)
    assert bad.returncode == 2 and "max_parallelism" in bad.stderr and "Traceback" not in bad.stderr

    runs = orcakit("runs", "list", "--limit", "5", home=home)
    assert runs.returncode == 0 and "pipe" in runs.stdout and "failing" in runs.stdout


def test_ctrl_c_stops_the_run_and_exits_130(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {**os.environ, "ORCAKIT_HOME": str(home)}
    proc = subprocess.Popen(
        [str(ORCAKIT), "run", f"{SAMPLE}:slow", "-p", "seconds=60"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("step sleepy running"):
                proc.send_signal(signal.SIGINT)
                break
        rest, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    output = "".join(lines) + rest
    assert proc.returncode == 130, output
    assert "interrupted" in output and "STOPPED" in output
    store = RunStore(ConfigStore(home).stack_spec().run_store)
    (run,) = store.list_runs()
    assert run.status is ExecutionStatus.STOPPED
    assert {name: step.status for name, step in store.steps(run.id).items()} == {
        "sleepy": ExecutionStatus.STOPPED, "never": ExecutionStatus.SKIPPED,
    }


def test_no_wait_returns_and_the_run_completes_in_the_background(tmp_path: Path) -> None:
    home = tmp_path / "home"
    started = time.monotonic()
    result = orcakit("run", f"{SAMPLE}:slow", "-p", "seconds=2", "--no-wait", home=home)
    assert result.returncode == 0, result.stdout + result.stderr
    assert time.monotonic() - started < 30
    run_id = next(line.split()[2].rstrip(";") for line in result.stdout.splitlines() if line.startswith("submitted run"))
    store = RunStore(ConfigStore(home).stack_spec().run_store)
    assert not store.get_run(run_id).status.is_finished  # returned before the 2 s step ended
    deadline = time.monotonic() + 60
    while not store.get_run(run_id).status.is_finished and time.monotonic() < deadline:
        time.sleep(0.2)
    assert store.get_run(run_id).status is ExecutionStatus.COMPLETED
    shown = orcakit("runs", "show", run_id[:8], home=home)
    assert "COMPLETED" in shown.stdout and "sleepy" in shown.stdout
