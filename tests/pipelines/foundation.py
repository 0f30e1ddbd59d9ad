"""Pipelines of the foundation tests (issue 2): the local flavor end to end.

Steps and pipelines live at module level here because every step process re-imports its
function by ``module:qualname``; a step defined inside a test function could not be imported.
Each step returns what it observed *inside its own process* (run ID, environment, cgroup
limits), so the tests compare the step's view with the run store's.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from orcakit import ResourceSettings, StepRetryConfig, get_step_context, pipeline, step

RUN_ID_ENV = "ORCAKIT_LOCAL_RUN_ID"

# -- a DAG whose outputs flow: numbers -> (square, cube) -> combine; who_* report identities --


@step
def numbers(n: int) -> list:
    return list(range(n))


@step
def square(xs: list) -> list:
    return [x * x for x in xs]


@step
def cube(xs: list) -> list:
    return [x**3 for x in xs]


@step
def combine(a: list, b: list) -> dict:
    return {"sum_squares": sum(a), "sum_cubes": sum(b)}


@step
def whoami() -> dict:
    """What this step process sees: its run ID (variable and context), run, pid, attempt."""
    context = get_step_context()
    return {
        "env_run_id": os.environ.get(RUN_ID_ENV),
        "context_run_id": context.orchestrator_run_id,
        "run_uuid": context.run_uuid,
        "pid": os.getpid(),
        "attempt": context.attempt,
        "step": context.step_name,
        "mark": os.environ.get("DYNAMIC_MARK"),
    }


@pipeline
def solo():
    whoami()


@pipeline
def flow(n: int = 5):
    xs = numbers(n)
    total = combine(square(xs), cube(xs))
    whoami(id="who_first")
    whoami(id="who_last", after=total)


# -- environment delivered byte for byte ------------------------------------------------------

#: Values that break naive shell quoting, env files or ``KEY=VALUE`` splitting.
HOSTILE_PIPELINE_ENV = {
    "HOSTILE_QUOTES": "it's \"double\" and 'single' and `back`",
    "HOSTILE_DOLLAR": "$HOME ${PATH} $(echo injected) %PATH% $$",
    "HOSTILE_NEWLINES": "line1\nline2\r\nline3\n\n",
    "HOSTILE_SPACES": "  leading, inner  and trailing  ",
    "HOSTILE_EQUALS": "a=b==c=",
    "HOSTILE_UNICODE": "h\u00e9llo w\u00f6rld \u2603 \u65e5\u672c\u8a9e \U0001f389",
    "HOSTILE_EMPTY": "",
    "HOSTILE_BACKSLASH": "C:\\new\\table\\\\ \\n",
    "HOSTILE_SHELL": "; rm -rf / # && | > /dev/null",
    "HOSTILE_SHARED": "from the pipeline",
}
#: A step's own environment: overrides HOSTILE_SHARED, adds one more key.
HOSTILE_STEP_ENV = {"HOSTILE_SHARED": "from the step \u2713", "HOSTILE_STEP_ONLY": "tab\there = yes"}


def _hostile_view() -> dict:
    return {key: value for key, value in os.environ.items() if key.startswith("HOSTILE_")}


@step(environment=HOSTILE_STEP_ENV)
def env_with_step_env() -> dict:
    return _hostile_view()


@step
def env_pipeline_only() -> dict:
    return _hostile_view()


@pipeline(environment=HOSTILE_PIPELINE_ENV)
def hostile_env():
    env_with_step_env()
    env_pipeline_only()


# -- resources observed from inside the step ----------------------------------------------------


def cgroup_view() -> dict:
    """The cpu quota and memory limit of the cgroups this process is in (cgroup v1 or v2)."""
    paths: dict[str, str] = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [""]:
            paths[controller] = path
    root = Path("/sys/fs/cgroup")
    view: dict = {"paths": paths}
    if (root / "cgroup.controllers").is_file():  # v2
        leaf = root / paths[""].lstrip("/")
        quota, period = (leaf / "cpu.max").read_text().split()
        view["cpu_quota"] = None if quota == "max" else int(quota)
        view["cpu_period"] = int(period)
        limit = (leaf / "memory.max").read_text().strip()
        view["memory_limit"] = None if limit == "max" else int(limit)
    else:  # v1
        cpu = root / "cpu" / paths["cpu"].lstrip("/")
        view["cpu_quota"] = int((cpu / "cpu.cfs_quota_us").read_text())
        view["cpu_period"] = int((cpu / "cpu.cfs_period_us").read_text())
        memory = root / "memory" / paths["memory"].lstrip("/")
        view["memory_limit"] = int((memory / "memory.limit_in_bytes").read_text())
    return view


@step(settings={"resources": ResourceSettings(cpu_count=0.5, memory="256MiB")})
def limited_binary() -> dict:
    return cgroup_view()


@step(settings={"resources": ResourceSettings(cpu_count=1.5, memory="300MB")})
def limited_decimal() -> dict:
    return cgroup_view()


@step
def unlimited() -> dict:
    return cgroup_view()


@pipeline
def resources():
    limited_binary()
    limited_decimal()
    unlimited()


@step(settings={"resources": ResourceSettings(memory="64MiB")})
def hog() -> int:
    # b"x" * n writes every byte, so the pages are really charged (a bytearray(n) may not be).
    blob = b"x" * (200 * 10**6)
    return len(blob)


@pipeline
def oom():
    hog()


@step(
    settings={"resources": ResourceSettings(cpu_count=0.5, memory="128MiB")},
    retry=StepRetryConfig(max_retries=1),
)
def limited_and_killed() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


@step(settings={"resources": ResourceSettings(cpu_count=0.25)})
def limited_and_raising() -> None:
    raise RuntimeError("raised inside a cgroup")


@pipeline
def limited_failures():
    limited_and_killed()
    limited_and_raising()
    limited_binary()


@step(settings={"resources": ResourceSettings(gpu_count=1)})
def wants_gpu() -> str:
    return os.environ.get("CUDA_VISIBLE_DEVICES", "")


@pipeline
def gpu():
    numbers(2)
    wants_gpu()


# -- failures ---------------------------------------------------------------------------------


@step
def explode(xs: list) -> list:
    raise ValueError(f"kaboom {len(xs)}: the step raised on purpose")


@step
def die(xs: list) -> list:
    os.kill(os.getpid(), signal.SIGKILL)
    return xs  # never reached


@pipeline
def raises():
    xs = numbers(4)
    bad = explode(xs)
    square(bad)  # downstream of the failure: SKIPPED
    cube(xs)  # independent: still runs (CONTINUE_ON_FAILURE)


@pipeline
def killed():
    xs = numbers(4)
    square(die(xs))


@step(retry=StepRetryConfig(max_retries=2, delay=0.3))
def flaky() -> int:
    attempt = get_step_context().attempt
    if attempt == 1:
        raise RuntimeError(f"attempt {attempt} fails on purpose")
    return attempt


@pipeline
def retried():
    flaky()


# -- parallelism ------------------------------------------------------------------------------


@step
def sleeper(i: int, seconds: float, rendezvous: str = "", width: int = 0, patience: float = 60) -> dict:
    """Sleep ``seconds``; with ``rendezvous``, first wait until ``width`` sleepers are alive at
    once (each leaves a file there), so that slow interpreter start-ups cannot blur the overlap."""
    if rendezvous:
        Path(rendezvous, str(i)).touch()
        deadline = time.time() + patience
        while (alive := len(os.listdir(rendezvous))) < width:
            if time.time() > deadline:
                raise TimeoutError(f"only {alive} of {width} independent steps were running at once")
            time.sleep(0.01)
    start = time.time()
    time.sleep(seconds)
    return {"i": i, "start": start, "end": time.time()}


@pipeline
def fan_out(width: int = 8, seconds: float = 0.5, rendezvous: str = "", patience: float = 60):
    for i in range(width):
        sleeper(i, seconds, rendezvous, width, patience)


# -- dynamic ----------------------------------------------------------------------------------


@pipeline(dynamic=True, environment={"DYNAMIC_MARK": "dyn $x\n"})
def dynamic_flow(n: int = 4):
    xs = numbers(n)
    if len(xs) > 1:  # a live decision: the DAG depends on a value computed at run time
        whoami()
        whoami()
