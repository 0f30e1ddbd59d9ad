"""CAP-2's "never hang", judged by progress (``orcakit.conformance.harness.supervise``): a run
that is slow at every step on a loaded machine is not hung; one that stops changing status is,
at any load; one that changes status forever without ending is stopped too."""

from __future__ import annotations

import threading
import time

from orcakit.conformance.harness import RUNAWAY_FACTOR, FlavorViolation, supervise


class Watch:
    """What supervise() reads of a StatusWatch, moved by the test's own 'run'."""

    def __init__(self) -> None:
        self.last_progress = 0.0
        self.history: dict[str, list[str]] = {"run": ["running"]}
        self.stopped = False

    def progress(self, status: str) -> None:
        self.history["run"].append(status)
        self.last_progress = time.monotonic()

    def stop(self) -> None:
        self.stopped = True


def judge(run, watch: Watch, timeout: float) -> tuple[FlavorViolation | None, list[str], float]:
    hung: list[str] = []
    started = time.monotonic()
    try:
        supervise(lambda: run(watch), watch=watch, during=None, started=started, timeout=timeout, requirement="CAP-2",
                  pipeline_name="p", on_hang=lambda: hung.append("cleaned up"))
    except FlavorViolation as violation:
        return violation, hung, time.monotonic() - started
    return None, hung, time.monotonic() - started


def test_a_run_slower_than_the_timeout_that_keeps_progressing_is_not_hung() -> None:
    def slow_run(watch: Watch) -> None:
        for step in range(25):  # 5 s in all, 2.5 timeouts, a status change every 0.2 s
            time.sleep(0.2)
            watch.progress(f"step {step} completed")

    violation, hung, took = judge(slow_run, Watch(), timeout=2.0)
    assert violation is None and hung == []
    assert took >= 5.0  # it waited for the run to end


def test_a_run_that_stops_changing_status_is_hung_and_cleaned_up() -> None:
    forever = threading.Event()

    def stalls(watch: Watch) -> None:
        watch.progress("step a completed")
        forever.wait(60)

    watch = Watch()
    try:
        violation, hung, took = judge(stalls, watch, timeout=1.0)
    finally:
        forever.set()
    assert violation is not None and violation.requirement == "CAP-2"
    assert "made no progress for 1s" in str(violation) and "step a completed" in str(violation)
    assert hung == ["cleaned up"] and watch.stopped
    assert took < RUNAWAY_FACTOR * 1.0


def test_a_run_that_progresses_forever_is_stopped_after_the_runaway_limit() -> None:
    done = threading.Event()

    def churns(watch: Watch) -> None:
        while not done.wait(0.05):
            watch.progress(f"retry {time.monotonic()}")

    try:
        violation, hung, took = judge(churns, Watch(), timeout=0.5)
    finally:
        done.set()
    assert violation is not None and "kept changing status" in str(violation)
    assert hung == ["cleaned up"]
    assert took >= RUNAWAY_FACTOR * 0.5


def test_a_run_that_never_starts_is_hung_after_the_timeout() -> None:
    timeout = 0.5
    forever = threading.Event()
    try:
        violation, _, took = judge(lambda watch: forever.wait(60), Watch(), timeout=timeout)
    finally:
        forever.set()
    assert violation is not None and "made no progress" in str(violation)
    assert timeout <= took < RUNAWAY_FACTOR * timeout
