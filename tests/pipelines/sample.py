"""Pipelines for tests/test_cli.py: defined at module level so step processes can import them."""

from __future__ import annotations

import os
import time

from orcakit import get_step_context, pipeline, step


@step
def make(n: int) -> list:
    return list(range(n))


@step
def total(xs: list) -> int:
    return sum(xs)


@step
def report(value: int, label: str) -> str:
    # The CLI test reads this file to check that parameters reached the step (JSON-typed).
    path = os.environ.get("ORCAKIT_TEST_REPORT")
    if path:
        with open(path, "w") as handle:
            handle.write(f"{label}={value!r}")
    return f"{label}={value}"


@pipeline
def pipe(n: int = 5, label: str = "total"):
    report(total(make(n)), label)


@step
def explode(xs: list) -> int:
    raise ValueError("deliberate failure in explode")


@step
def never(value: int) -> int:
    return value


@pipeline
def failing():
    never(explode(make(3)))


@step(retry={"max_retries": 1, "delay": 0})
def flaky() -> int:
    if get_step_context().attempt == 1:
        raise RuntimeError("first attempt fails on purpose")
    return 1


@pipeline
def retried():
    flaky()


@step
def sleepy(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@pipeline
def slow(seconds: float = 30.0):
    never(sleepy(seconds))


not_a_pipeline = make
