"""Reliability (issue 8): what orcakit does when the machine or the user gets in the way.

Real processes and real files, no mocks: concurrent ``orcakit orchestrator register`` processes;
a corrupt, read-only or unreadable run store, config or home folder; a nonexistent ``--python``;
a step that ends its process without reporting; parameters of the wrong type; an ambiguous run-ID
prefix. Each fault must give the usual what / why / fix error and a non-zero exit, never a
traceback, and the library must raise the same typed error the command prints.

Permission bits mean nothing to root, so when the tests run as root, commands that must meet a
read-only file run without the capabilities that bypass them (CAP_DAC_OVERRIDE and
CAP_DAC_READ_SEARCH, dropped from the bounding set before exec): root then meets ``chmod 0444``
like any file owner.
"""

from __future__ import annotations

import json
import os
import ctypes
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path
from typing import Iterator

import pytest

from orcakit import ComponentSpec, ConfigurationError, ExecutionStatus, ParameterError, PipelineSnapshot, StackSpec, StepSpec, StoreError
from orcakit.reference import ConfigStore, DagScheduler, RunStore

ROOT = Path(__file__).resolve().parents[1]
ORCAKIT = Path(sys.executable).with_name("orcakit")
FAULTS = "tests.pipelines.faults"
SAMPLE = "tests.pipelines.sample"
S = ExecutionStatus

pytestmark = pytest.mark.timeout(300)


def orcakit(*args: str, home: Path, confined: bool = False, timeout: float = 120, env: dict | None = None) -> subprocess.CompletedProcess:
    """The installed console script as a user runs it; ``confined``: bound by permission bits
    even when the tests run as root (see the module docstring)."""
    environment = {**os.environ, "ORCAKIT_HOME": str(home), **(env or {})}
    environment.pop("ORCAKIT_DEBUG", None)
    environment.pop("COLUMNS", None)
    return subprocess.run(
        [str(ORCAKIT), *args], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=timeout,
        preexec_fn=_drop_permission_override if confined and os.geteuid() == 0 else None,
    )


PR_CAPBSET_DROP, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH = 24, 1, 2


def _drop_permission_override() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
        if libc.prctl(PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


def refused(result: subprocess.CompletedProcess, *fragments: str, code: int | None = None) -> str:
    """The error text of a command that must have failed cleanly: non-zero exit (``code`` when
    given), no traceback, an ``Error:`` with a ``fix:``, and each of ``fragments``."""
    output = result.stdout + result.stderr
    assert result.returncode != 0, f"the command succeeded:\n{output}"
    if code is not None:
        assert result.returncode == code, f"exit {result.returncode} != {code}\n{output}"
    assert "Traceback" not in output, output
    assert "Error:" in output and "fix:" in output, output
    for fragment in fragments:
        assert fragment in " ".join(output.split()), f"{fragment!r} not in:\n{output}"
    return output


# -- homes with permission faults ---------------------------------------------------------------


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    """An orcakit home with its config and run store; every permission is restored afterwards
    (so that the temporary folder can be removed)."""
    home = tmp_path / "home"
    for command in (["orchestrator", "register", "first", "--flavor=local"], ["runs", "list"]):
        result = orcakit(*command, home=home, confined=True)
        assert result.returncode == 0, result.stderr
    assert (home / "config.json").exists() and (home / "runs.db").exists()
    yield home
    for path in [home, *home.rglob("*")]:
        path.chmod(0o700 if path.is_dir() else 0o600)


# == concurrent registrations ====================================================================


def test_16_concurrent_registrations_are_all_saved(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {**os.environ, "ORCAKIT_HOME": str(home)}
    processes = [
        subprocess.Popen([str(ORCAKIT), "orchestrator", "register", f"o{i}", "--flavor=local", f"--max_parallelism={i + 1}"],
                         cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(16)
    ]
    outcomes = [(p.wait(timeout=180), p.stderr.read()) for p in processes]
    for p in processes:
        p.stdout.close()
        p.stderr.close()
    assert all(code == 0 for code, _ in outcomes), outcomes
    saved = json.loads((home / "config.json").read_text())["orchestrators"]
    assert {f"o{i}" for i in range(16)} <= set(saved), f"lost: {sorted({f'o{i}' for i in range(16)} - set(saved))}"
    assert all(saved[f"o{i}"]["config"]["max_parallelism"] == i + 1 for i in range(16))
    assert "default" in saved  # the defaults survive the first concurrent save too


# == the run store ===============================================================================


def test_a_corrupt_run_store_is_a_store_error_naming_the_file_and_the_fix(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "runs.db").write_bytes(os.urandom(8192))
    for command in (["runs", "list"], ["run", f"{SAMPLE}:pipe"]):
        refused(orcakit(*command, home=home), "run store", str(home / "runs.db"), "is not a usable SQLite database", "mv ")
    # The library user gets the same typed error.
    with pytest.raises(StoreError, match="not a usable SQLite database") as raised:
        RunStore(f"sqlite:///{home / 'runs.db'}")
    assert raised.value.fix and "mv " in raised.value.fix


def test_a_read_only_run_store_file_is_refused_before_the_run_starts(home: Path) -> None:
    (home / "runs.db").chmod(0o444)
    assert orcakit("runs", "list", home=home, confined=True).returncode == 0  # reading still works
    output = refused(orcakit("run", f"{SAMPLE}:pipe", home=home, confined=True), "run store", "is read-only", "may not write the file", "chmod u+w")
    assert "running" not in output.split("Error:")[1]  # nothing ran after the refusal


def test_a_read_only_home_folder_gives_clear_errors(home: Path) -> None:
    home.chmod(0o555)
    refused(orcakit("orchestrator", "register", "second", "--flavor=local", home=home, confined=True),
            "cannot", str(home), "ORCAKIT_HOME", code=2)
    refused(orcakit("run", f"{SAMPLE}:pipe", home=home, confined=True), "run store", "read-only", f"its folder {home}")
    assert orcakit("orchestrator", "list", home=home, confined=True).returncode == 0  # reading the config needs no write


def test_an_unwritable_config_is_not_overwritten(home: Path) -> None:
    config = home / "config.json"
    before = config.read_text()
    config.chmod(0o444)
    refused(orcakit("orchestrator", "register", "second", "--flavor=local", home=home, confined=True),
            "cannot write the orcakit config", str(config), "read-only", code=2)
    refused(orcakit("stack", "register", "other", "-o", "first", home=home, confined=True), "cannot write the orcakit config", code=2)
    assert config.read_text() == before


def test_an_unreadable_config_is_named(home: Path) -> None:
    (home / "config.json").chmod(0o000)
    for command in (["runs", "list"], ["orchestrator", "list"], ["run", f"{SAMPLE}:pipe"]):
        refused(orcakit(*command, home=home, confined=True), "cannot read the orcakit config", str(home / "config.json"), code=2)


def test_a_home_that_is_a_file_is_named(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.write_text("not a folder")
    refused(orcakit("orchestrator", "register", "x", "--flavor=local", home=home), str(home), "must be a folder", code=2)
    refused(orcakit("runs", "list", home=home), str(home), "must be a folder", code=2)
    with pytest.raises(ConfigurationError, match="must be a folder"):
        ConfigStore(home).register_orchestrator("x", "local", {})


def test_a_corrupt_config_is_named(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.json").write_bytes(b"\xff\xfe{ not json")
    refused(orcakit("stack", "list", home=home), f"{home / 'config.json'} is not a valid orcakit config", code=2)


# == the step interpreter =========================================================================


def test_a_nonexistent_python_is_refused_before_anything_runs(tmp_path: Path) -> None:
    home = tmp_path / "home"
    missing = str(tmp_path / "no-such-python")
    for launcher in ("fork", "exec"):
        assert orcakit("orchestrator", "register", launcher, "--flavor=local", f"--python={missing}", f"--launcher={launcher}", home=home).returncode == 0
        assert orcakit("stack", "register", launcher, "-o", launcher, "--set", home=home).returncode == 0
        refused(orcakit("run", f"{SAMPLE}:pipe", home=home), f"python={missing!r}", "does not exist", "--python=", code=2)
    store = RunStore(f"sqlite:///{home / 'runs.db'}")
    try:
        runs = store.list_runs()
        assert runs and all(not store.steps(run.id) for run in runs), "a step was launched"
    finally:
        store.close()


# == a step that ends without reporting ============================================================


def test_a_step_that_exits_3_without_reporting_is_not_an_attach_failure(tmp_path: Path, execute, make_stack) -> None:
    from tests.pipelines.faults import exits_without_reporting

    for launcher in ("fork", "exec"):
        stack = make_stack(launcher=launcher, run_store=f"sqlite:///{tmp_path / f'{launcher}.db'}")
        run, steps = execute(exits_without_reporting, stack=stack)
        step = steps["exit_three"]
        assert run.status is S.FAILED and step.status is S.FAILED, (launcher, run, step)
        assert "exited with code 3" in step.reason and "without reporting" in step.reason, (launcher, step.reason)
        assert "attach" not in step.reason, (launcher, step.reason)


class _Process:
    """A StepHandle over a real child process."""

    def __init__(self, code: str) -> None:
        self.process = subprocess.Popen([sys.executable, "-c", code])

    def wait(self) -> int:
        return self.process.wait()

    def kill(self) -> None:
        self.process.kill()

    def describe_exit(self, code: int) -> str:
        return f"the step process exited with code {code}"

    def cleanup(self) -> None:
        pass


def test_exit_3_means_could_not_attach_only_when_no_attempt_was_recorded(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    store = RunStore(url)
    stack = StackSpec(orchestrator=ComponentSpec(flavor="local"), artifact_store=str(tmp_path), run_store=url)
    steps = {name: StepSpec(name=name, source="tests.pipelines.faults:exit_three") for name in ("attached", "unattached")}
    snapshot = PipelineSnapshot(pipeline_name="exit3", steps=steps, stack=stack)
    run = store.get_or_create_run(snapshot.snapshot_id, uuid.uuid4().hex, "exit3", "test")
    record_then_exit = (
        "import os, sys; from orcakit.reference import RunStore; "
        f"RunStore({url!r}, create_tables=False).start_attempt({run.id!r}, 'attached'); os._exit(3)"
    )

    def launch(name: str, attempt: int) -> _Process:
        return _Process(record_then_exit if name == "attached" else "import os; os._exit(3)")

    final = DagScheduler(snapshot, store, run.id, launch, max_parallelism=2).run()
    recorded = store.steps(run.id)
    store.close()
    assert final.status is S.FAILED
    assert "could not attach" in recorded["unattached"].reason
    assert "could not attach" not in recorded["attached"].reason
    assert "exited with code 3 without reporting" in recorded["attached"].reason


# == parameters ===================================================================================


@pytest.mark.parametrize(
    "params, fragments",
    [
        (["n=abc"], ["parameter 'n'", "must be int", "'abc'"]),
        (["n=1.5"], ["parameter 'n'", "must be int", "'1.5'"]),
        (["n=3", "flag=yes"], ["parameter 'flag'", "must be bool"]),
        (["n=3", "xs=[1, \"a\"]"], ["parameter 'xs'", "list[int]"]),
        (["n=3", "tuning={\"lr\": \"fast\"}"], ["parameter 'tuning'", "Tuning"]),
        (["n=3", "bogus=1"], ["no parameter 'bogus'", "n: int"]),
        (["x=0.1"], ["missing required parameter(s) 'n'", "--param n=VALUE"]),
    ],
)
def test_bad_parameters_are_refused_before_anything_runs(tmp_path: Path, params: list[str], fragments: list[str]) -> None:
    home = tmp_path / "home"
    args = [arg for param in params for arg in ("--param", param)]
    refused(orcakit("run", f"{FAULTS}:typed", *args, home=home), *fragments, code=2)
    assert not (home / "runs.db").exists() or not RunStore(f"sqlite:///{home / 'runs.db'}").list_runs()


def test_good_parameters_reach_the_step_as_their_declared_types(tmp_path: Path) -> None:
    home, report = tmp_path / "home", tmp_path / "report.json"
    params = ["n=3", "x=2", "flag=true", "label=42", "xs=[1, 2]", "maybe=null"]
    args = [arg for param in params for arg in ("--param", param)]
    result = orcakit("run", f"{FAULTS}:typed", *args, home=home, env={"ORCAKIT_TEST_REPORT": str(report)})
    assert result.returncode == 0, result.stdout + result.stderr
    values = json.loads(report.read_text())
    assert values == {"n": 3, "x": 2.0, "flag": True, "label": "42", "xs": [1, 2], "maybe": None}
    assert isinstance(values["x"], float) and isinstance(values["label"], str)


def test_the_python_api_checks_parameters_the_same_way(stack: StackSpec) -> None:
    from tests.pipelines.faults import Tuning, typed

    for bad in ({"n": 1.5}, {"n": "3"}, {"n": True}, {"n": 3, "xs": ["a"]}, {"n": 3, "bogus": 1}, {}):
        with pytest.raises(ParameterError) as raised:
            typed.compile(stack, **bad)
        assert raised.value.fix, bad
    assert typed.compile(stack, n=3, x=1).steps["record"].parameters["x"] == 1  # an int is a fine float
    typed.compile(stack, 3, tuning=Tuning(lr=0.1))
    typed.compile(stack, n=3, tuning={"lr": 0.1}, xs=(1, 2))  # the JSON forms of a model and a list
    # Text is read by the declared type: "3" is an int for n, a string for label.
    assert typed.parameters_from_text({"n": "3", "label": "3", "maybe": "null"}) == {"n": 3, "label": "3", "maybe": None}


# == run-ID prefixes ==============================================================================


def test_an_ambiguous_run_id_prefix_lists_the_candidates(orcakit_home: Path) -> None:
    store = RunStore(ConfigStore(orcakit_home).stack_spec().run_store)
    ids = [store.create_placeholder_run(uuid.uuid4().hex, "ambiguous", "local").id for _ in range(17)]
    # 17 run IDs, 16 hex digits: at least two share their first character.
    first = Counter(run_id[0] for run_id in ids).most_common(1)[0][0]
    candidates = [run_id for run_id in ids if run_id.startswith(first)]
    output = refused(orcakit("runs", "show", first, home=orcakit_home), f"run ID prefix {first!r} is ambiguous", "more characters")
    assert all(run_id in output for run_id in candidates[:10])
    with pytest.raises(StoreError, match="ambiguous"):
        store.get_run(first)
    # A prefix only one run has still finds it; '_' is a character, not a wildcard.
    target = candidates[0]
    unique = next(target[:n] for n in range(2, 33) if sum(run_id.startswith(target[:n]) for run_id in ids) == 1)
    assert store.get_run(unique).id == target
    assert orcakit("runs", "show", unique, home=orcakit_home).returncode == 0
    with pytest.raises(StoreError, match="no run"):
        store.get_run("_")
    store.close()
