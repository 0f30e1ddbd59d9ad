"""Shared fixtures of orcakit's own tests.

- every test gets its own ``ORCAKIT_HOME`` (tests never touch ``~/.orcakit``);
- step processes import ``tests.pipelines.*`` by module name, whatever the working directory:
  the repository root is put on ``PYTHONPATH``, which the local flavor passes on to every step;
- ``stack`` / ``make_stack``: a local-flavor StackSpec with a temporary artifact folder and a
  temporary SQLite run store;
- ``execute``: run a pipeline and return ``(run, steps)`` as the run store recorded them;
- ``orcakit_wheel``: a wheel of this checkout, built once per session (no network needed);
- ``postgres_url``: the PostgreSQL URL of ``ORCAKIT_TEST_POSTGRES_URL``; tests that need it skip
  without it, but fail when ``ORCAKIT_REQUIRE_POSTGRES=1`` (CI must not pass by skipping);
- under pytest-xdist (``scripts/test`` runs ``-n 4 --dist loadgroup``): the xdist groups and the
  order in which they start (see ``pytest_collection_modifyitems`` below).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any, Callable

import pytest

from orcakit import ComponentSpec, Pipeline, PipelineSnapshot, StackSpec
from orcakit.reference import dematerialize, open_artifact_store, output_key
from orcakit.reference import run_snapshot
from orcakit.reference import RunRecord, RunStore, StepRecord

# Tests that press Ctrl-C on a run (SIGINT to an `orcakit run`, a driver, a local step) need the
# processes they start to act on it. A shell that starts this session in the background
# (`scripts/test &`) hands it SIGINT ignored, every child inherits that, and Python keeps an
# ignored SIGINT ignored: those tests would then fail for the way they were started.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

ROOT = Path(__file__).resolve().parents[1]
# The test process itself imports tests.pipelines.* by the same name the steps will use.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.fixture(autouse=True)
def orcakit_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "orcakit-home"
    monkeypatch.setenv("ORCAKIT_HOME", str(home))
    pythonpath = [str(ROOT), *[p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(dict.fromkeys(pythonpath)))
    return home


@pytest.fixture
def make_stack(tmp_path: Path) -> Callable[..., StackSpec]:
    """``make_stack(**local_config)``: a local-flavor stack on temporary stores."""

    def make(flavor: str = "local", run_store: str | None = None, **config: Any) -> StackSpec:
        return StackSpec(
            orchestrator=ComponentSpec(flavor=flavor, name=f"test-{flavor}", config=config),
            artifact_store=str(tmp_path / "artifacts"),
            run_store=run_store or f"sqlite:///{tmp_path / 'runs.db'}",
        )

    return make


@pytest.fixture
def stack(make_stack: Callable[..., StackSpec]) -> StackSpec:
    return make_stack()


class Executor:
    """Runs pipelines on a stack and reads back what the stores recorded."""

    def __call__(self, pipeline: Pipeline | PipelineSnapshot, *args: Any, stack: StackSpec, **kwargs: Any) -> tuple[RunRecord, dict[str, StepRecord]]:
        snapshot = pipeline if isinstance(pipeline, PipelineSnapshot) else pipeline.compile(stack, *args, **kwargs)
        run = run_snapshot(snapshot)
        return run, self.steps(snapshot.stack, run.id)

    @staticmethod
    def store(stack: StackSpec) -> RunStore:
        return RunStore(stack.run_store)

    def steps(self, stack: StackSpec, run_id: str) -> dict[str, StepRecord]:
        store = self.store(stack)
        try:
            return store.steps(run_id)
        finally:
            store.close()

    @staticmethod
    def output(stack: StackSpec, run: RunRecord, step_name: str) -> Any:
        """A step's output, read from the artifact store as a downstream step would."""
        artifacts = open_artifact_store(stack.artifact_store, stack.artifact_store_options)
        return dematerialize(artifacts.get(output_key(run.id, step_name)))


@pytest.fixture
def execute() -> Executor:
    """``run, steps = execute(pipeline, *args, stack=stack)``; ``execute.output(stack, run, step)``."""
    return Executor()


@pytest.fixture(scope="session")
def postgres_url() -> str:
    url = os.environ.get("ORCAKIT_TEST_POSTGRES_URL")
    if not url:
        message = "PostgreSQL tests need ORCAKIT_TEST_POSTGRES_URL (e.g. postgresql+psycopg://orcakit_tester:tq8Zr4vLw2pX@127.0.0.1:5432/orcakit_tests, printed by scripts/testenv/ensure-postgres.sh)"
        if os.environ.get("ORCAKIT_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"ORCAKIT_REQUIRE_POSTGRES=1 but: {message}", pytrace=False)
        pytest.skip(message)
    return url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A run-store URL, once per backend: a fresh SQLite file, or the test PostgreSQL server
    (shared between tests and reruns, so tests use unique snapshot IDs)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return request.getfixturevalue("postgres_url")


# -- a wheel of this checkout -------------------------------------------------------------------


def copy_source_tree(into: Path) -> Path:
    """What a build needs, without caches and build leftovers (an in-tree build would leave
    build/ and *.egg-info in the checkout)."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build", "dist")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, into / name)
    package_dirs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    for folder in set(package_dirs.values()):
        shutil.copytree(ROOT / folder, into / folder, ignore=ignore)
    return into


@pytest.fixture(scope="session")
def orcakit_wheel(tmp_path_factory) -> Path:
    """A regular (non-editable) wheel of this checkout: what `pip install orcakit` installs.
    Built once per run: xdist workers share it through their common temporary folder (the first
    builds it under a lock; the others wait and reuse it)."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        return _build_wheel(tmp_path_factory.mktemp("dist"), tmp_path_factory)
    shared = tmp_path_factory.getbasetemp().parent / "orcakit-wheel"
    shared.mkdir(exist_ok=True)
    with open(shared / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        built = list((shared / "dist").glob("orcakit-*.whl"))
        if built:
            return built[0]
        return _build_wheel(shared / "dist", tmp_path_factory)


def _build_wheel(out: Path, tmp_path_factory) -> Path:
    source = copy_source_tree(tmp_path_factory.mktemp("source"))
    out.mkdir(parents=True, exist_ok=True)
    # no build isolation: setuptools and wheel come from the dev extra, so no network is needed
    command = [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(source)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    # setuptools only warns (for now) about a folder it would leave out of the wheel
    assert "is absent from the `packages` configuration" not in result.stdout + result.stderr, result.stderr[-3000:]
    (built,) = out.glob("orcakit-*.whl")
    return built


# -- side by side (pytest-xdist) -----------------------------------------------------------------
# scripts/test runs `pytest -n 4 --dist loadgroup`: most of its time is spent waiting (sleeping
# probe steps, container and pod start-up, whole-suite subprocess runs), so four workers on two
# cores finish in about the time of the longest group. Every test's verdict must stay the same
# as in a sequential run: a module is one xdist group (one worker, in file order), because its
# tests share module fixtures (a Kubernetes API server, a Docker project) and some read what the
# module's earlier tests left (test_docker_flavor's test_zz_..., test_mutants' score); only the
# long, self-contained runs below get a group of their own. Without xdist nothing changes.

#: Self-contained runs split off their module (each starts a whole suite in a subprocess and
#: shares nothing with its neighbours), with the seconds they took in a sequential
#: scripts/test (README, "Figures"): they start first, longest first.
ALONE: dict[str, float] = {
    # measured in a 4-worker scripts/test at load 6-9 (2026-12-03)
    "tests/test_zenml_bridge.py::test_zenml_local_docker_runs_the_suite_to_the_end": 1505,
    "tests/test_template.py::test_a_baked_project_installs_in_a_fresh_venv_and_passes_its_tests_and_the_quick_suite[zenml]": 1236,
    "tests/test_kubernetes_flavor.py::test_the_conformance_suite_passes_against_the_test_environment[quick]": 1169,
    "tests/test_zenml_bridge.py::test_the_example_zenml_orchestrator_passes_every_check_it_declares": 788,
    "tests/test_template.py::test_a_baked_project_installs_in_a_fresh_venv_and_passes_its_tests_and_the_quick_suite[container]": 460,
    "tests/test_zenml_bridge.py::test_zenml_local_runs_the_suite_to_the_end": 238,
    "tests/test_template.py::test_a_baked_project_installs_in_a_fresh_venv_and_passes_its_tests_and_the_quick_suite[process]": 190,
    "tests/test_suite_concurrency.py::test_checks_side_by_side_give_the_report_of_a_sequential_run": 165,
    "tests/test_zenml_bridge.py::test_a_custom_zenml_orchestrator_with_a_run_id_per_step_is_caught_on_runid_1": 120,
    "tests/test_timing_under_load.py::test_timing_checks_give_the_unloaded_verdicts_beside_a_cpu_hog": 117,
    "tests/test_suite_concurrency.py::test_a_declared_run_limit_is_never_exceeded_by_checks_side_by_side": 60,
}
#: Families of self-contained suite runs (node-ID prefix -> seconds each): each test its own
#: group, so that they spread over the workers (one after another, the 18 ZenML mutant runs
#: alone took 40 min).
ALONE_FAMILIES: dict[str, float] = {
    "tests/test_zenml_bridge.py::test_each_zenml_mutant_is_caught_on_exactly_its_requirements[": 140,
}
#: Whole modules that take minutes (what is left of them once ALONE is split off), seconds as above.
LONG_MODULES: dict[str, float] = {
    "tests/test_mutants.py": 1631,
    "tests/test_docker_flavor.py": 700,
    "tests/test_flavor_install.py": 300,
    "tests/test_zenml_bridge.py": 120,
    "tests/test_kubernetes_flavor.py": 100,
    # one check of zenml:kubernetes (ZenML's orchestrator pod and step pods): 181 s at load 6-9,
    # 467 s at load 12-19 beside another zenml:kubernetes session (2026-12-03)
    "tests/test_zenml_kubernetes.py": 300,
}


def _alone(nodeid: str) -> float | None:
    """Seconds a test that runs on its own takes, or None when it runs with its module."""
    if nodeid in ALONE:
        return ALONE[nodeid]
    return next((seconds for prefix, seconds in ALONE_FAMILIES.items() if nodeid.startswith(prefix)), None)


def group_of(nodeid: str) -> str:
    """The xdist group of a test: its module, or the test itself when it runs ALONE."""
    return nodeid if _alone(nodeid) is not None else nodeid.split("::")[0]


def _under_xdist(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput") or config.getoption("dist", "no") != "no"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not _under_xdist(config):
        return
    estimate: dict[str, float] = {}
    for item in items:
        group = group_of(item.nodeid)
        alone = _alone(item.nodeid)
        guess = alone if alone is not None else LONG_MODULES.get(item.nodeid.split("::")[0], 0.0)
        estimate[group] = max(estimate.get(group, 0.0), guess)
    # The longest groups first: the scheduler hands groups out in this order, so the long ones
    # do not start last and set the wall time. The sort is stable: inside a group, and among the
    # short ones, the file order stays.
    items.sort(key=lambda item: -estimate[group_of(item.nodeid)])


def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """``--dist loadgroup`` by :func:`group_of`. xdist's own loadgroup reads ``xdist_group`` marks
    by renaming the test (``nodeid@group``), which pytest 9 no longer lets it do (the node ID is
    read-only there), so its groups silently fall apart; this scheduler groups by node ID."""
    if config.getoption("dist", "no") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ModuleScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return group_of(nodeid)

    config.option.loadscopereorder = False  # keep the order set above (longest first)
    return ModuleScheduling(config, log)
