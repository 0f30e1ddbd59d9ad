"""Pipelines for tests/test_orphaned_runs.py: a step that runs long and leaves a trail."""

from __future__ import annotations

import json
import os
import subprocess
import time

from orcakit import ResourceSettings, pipeline, step


def _stubborn(seconds: float) -> float:
    # A grandchild that inherits the step's environment (and so the run ID), then the PIDs in a
    # file the test names, written atomically: the test waits for it to know the step runs.
    child = subprocess.Popen(["sleep", str(seconds)])
    path = os.environ["ORCAKIT_TEST_PIDS"]
    with open(path + ".tmp", "w") as handle:
        json.dump({"step": os.getpid(), "child": child.pid}, handle)
    os.replace(path + ".tmp", path)
    time.sleep(seconds)
    return seconds


@step
def after(value: float) -> float:
    return value


@step
def stubborn(seconds: float) -> float:
    return _stubborn(seconds)


# The same step in a cgroup of its own (cpu/memory limits), where cgroups are writable.
@step(settings={"resources": ResourceSettings(cpu_count=0.5, memory="256MiB")})
def stubborn_limited(seconds: float) -> float:
    return _stubborn(seconds)


@pipeline
def lingering(seconds: float = 120.0):
    after(stubborn(seconds))


@pipeline
def lingering_limited(seconds: float = 120.0):
    after(stubborn_limited(seconds))
