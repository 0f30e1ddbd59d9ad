"""The DAG scheduler against a real SQLite run store, with a fake in-process backend.

The fake backend's "steps" are threads that sleep briefly and record their start and end times.
Like the real step entrypoint they record their own attempts in the run store (``start_attempt``
/ ``finish_attempt``); some are told to die instead — after ``start_attempt``, or before
recording anything at all — so that the scheduler must record the failure itself.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orcakit import ComponentSpec, ExecutionMode, ExecutionStatus, PipelineSnapshot, StackSpec, StepRetryConfig, StepSpec
from orcakit.reference import RunStore
from orcakit.reference import DagScheduler

# A scheduler that never returns is a failure, not a stuck CI job (pytest-timeout).
pytestmark = pytest.mark.timeout(120)
S = ExecutionStatus
STACK = StackSpec(orchestrator=ComponentSpec(flavor="local"), artifact_store="/tmp/unused", run_store="sqlite:///unused.db")
EXAMPLES = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
#: How a fake attempt ends: completes; raises (recorded by the step); dies after recording its
#: start (e.g. OOM-killed); dies before recording anything (e.g. cannot even start Python).
OK, FAIL, DIE, VANISH = "ok", "fail", "die", "vanish"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    store = RunStore(f"sqlite:///{tmp_path_factory.mktemp('scheduler') / 'runs.db'}")
    yield store
    store.close()


@dataclass
class Attempt:
    step: str
    attempt: int
    start: float
    end: float | None = None
    outcome: str | None = None
    recorded_attempt: int | None = None
    cleanups: int = 0


@dataclass
class FakeBackend:
    """Launches fake step attempts; ``plan[(step, attempt)]`` says how each one ends."""

    store: RunStore
    run_id: str
    snapshot: PipelineSnapshot
    duration: dict[str, float] = field(default_factory=dict)
    plan: dict[tuple[str, int], str] = field(default_factory=dict)
    attempts: list[Attempt] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    running: int = 0
    max_running: int = 0
    refuse_launch: set[tuple[str, int]] = field(default_factory=set)
    #: ``(time, step, status)`` as the scheduler reported progress.
    progress: list[tuple[float, str, ExecutionStatus]] = field(default_factory=list)

    def on_progress(self, name: str, status: ExecutionStatus) -> None:
        self.progress.append((time.monotonic(), name, status))

    def learned(self, name: str, status: ExecutionStatus) -> float:
        """When the scheduler reported ``name`` as ``status``."""
        return next(when for when, step, reported in self.progress if (step, reported) == (name, status))

    def launch(self, name: str, attempt: int) -> "FakeHandle":
        if (name, attempt) in self.refuse_launch:
            raise RuntimeError(f"backend refused {name} attempt {attempt}")
        record = Attempt(name, attempt, time.monotonic())
        with self.lock:
            self.attempts.append(record)
            self.running += 1
            self.max_running = max(self.max_running, self.running)
        return FakeHandle(self, record, self.plan.get((name, attempt), OK))

    def of(self, name: str) -> list[Attempt]:
        return [a for a in self.attempts if a.step == name]

    def launched(self) -> set[str]:
        return {a.step for a in self.attempts}


class FakeHandle:
    def __init__(self, backend: FakeBackend, record: Attempt, outcome: str) -> None:
        self.backend, self.record, self.outcome = backend, record, outcome
        self.killed = threading.Event()
        self.done = threading.Event()
        self.code: int | None = None
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        backend, record = self.backend, self.record
        total = backend.snapshot.steps[record.step].total_attempts
        code, outcome = -9, "killed"
        if self.outcome != VANISH:
            record.recorded_attempt = backend.store.start_attempt(backend.run_id, record.step)
        if not self.killed.wait(backend.duration.get(record.step, 0.01)):
            if self.outcome == OK:
                backend.store.finish_attempt(backend.run_id, record.step, record.attempt, succeeded=True, total_attempts=total, outputs={"output": "x"})
                code, outcome = 0, OK
            elif self.outcome == FAIL:
                backend.store.finish_attempt(backend.run_id, record.step, record.attempt, succeeded=False, total_attempts=total, reason=f"ValueError: {record.step} failed")
                code, outcome = 1, FAIL
            else:
                outcome = self.outcome  # died: nothing more recorded
        with backend.lock:
            record.end, record.outcome = time.monotonic(), outcome
            backend.running -= 1
        self.code = code
        self.done.set()

    def wait(self) -> int:
        self.done.wait()
        return self.code

    def kill(self) -> None:
        self.killed.set()

    def describe_exit(self, code: int) -> str:
        return f"fake process killed (exit {code})"

    def cleanup(self) -> None:
        assert self.done.is_set(), "cleanup() before the attempt ended"
        self.record.cleanups += 1


def make_run(store: RunStore, upstream: dict[str, list[str]], *, mode=ExecutionMode.CONTINUE_ON_FAILURE, retry: dict[str, StepRetryConfig] | None = None):
    steps = {
        name: StepSpec(name=name, source="tests.pipelines.foundation:numbers", upstream=tuple(ups), retry=(retry or {}).get(name))
        for name, ups in upstream.items()
    }
    snapshot = PipelineSnapshot(pipeline_name="fake", steps=steps, stack=STACK, execution_mode=mode)
    run = store.get_or_create_run(snapshot.snapshot_id, uuid.uuid4().hex, "fake", "fake")
    backend = FakeBackend(store, run.id, snapshot)
    return snapshot, run, backend


def schedule(store, snapshot, run, backend, max_parallelism=8):
    scheduler = DagScheduler(snapshot, store, run.id, backend.launch, max_parallelism=max_parallelism, on_progress=backend.on_progress)
    return scheduler, scheduler.run()


@st.composite
def dags(draw, min_size=1, max_size=8):
    size = draw(st.integers(min_size, max_size))
    names = [f"s{i}" for i in range(size)]
    order = draw(st.permutations(names))
    upstream = {name: [] for name in names}
    for j, later in enumerate(order):
        for earlier in order[:j]:
            if draw(st.integers(0, 3)) == 0:  # sparse: leaves room for parallelism
                upstream[later].append(earlier)
    return upstream


def descendants(upstream: dict[str, list[str]], name: str) -> set[str]:
    children = {n: [c for c, ups in upstream.items() if n in ups] for n in upstream}
    seen, frontier = set(), list(children[name])
    while frontier:
        current = frontier.pop()
        if current not in seen:
            seen.add(current)
            frontier.extend(children[current])
    return seen


# == ordering and parallelism ===================================================================


@EXAMPLES
@given(dags(), st.integers(1, 4), st.data())
def test_steps_start_after_their_upstream_and_parallelism_is_capped(store, upstream, max_parallelism, data):
    snapshot, run, backend = make_run(store, upstream)
    backend.duration = {name: data.draw(st.sampled_from([0.0, 0.005, 0.02])) for name in upstream}
    _, final = schedule(store, snapshot, run, backend, max_parallelism)

    assert final.status is S.COMPLETED
    assert sorted(a.step for a in backend.attempts) == sorted(upstream)  # each exactly once
    ends = {a.step: a.end for a in backend.attempts}
    for attempt in backend.attempts:
        for up in upstream[attempt.step]:
            assert attempt.start >= ends[up], f"{attempt.step} started before its upstream {up} ended"
        assert attempt.recorded_attempt == attempt.attempt == 1
        assert attempt.cleanups == 1, f"{attempt.step}: cleanup() called {attempt.cleanups} times, not once"
    assert backend.max_running <= max_parallelism
    steps = store.steps(run.id)
    assert {name: s.status for name, s in steps.items()} == {name: S.COMPLETED for name in upstream}


@pytest.mark.parametrize("width, max_parallelism", [(6, 1), (6, 3), (5, 8)])
def test_independent_steps_fill_the_parallelism(store, width, max_parallelism):
    snapshot, run, backend = make_run(store, {f"s{i}": [] for i in range(width)})
    backend.duration = {name: 0.15 for name in snapshot.steps}
    started = time.monotonic()
    _, final = schedule(store, snapshot, run, backend, max_parallelism)
    elapsed = time.monotonic() - started

    assert final.status is S.COMPLETED
    assert backend.max_running == min(width, max_parallelism)
    waves = -(-width // max_parallelism)
    assert elapsed >= waves * 0.15
    assert elapsed < waves * 0.15 + 3.0


# == failures and execution modes ===============================================================


@EXAMPLES
@given(dags(min_size=2), st.sampled_from(list(ExecutionMode)), st.sampled_from([FAIL, DIE, VANISH]), st.data())
def test_failure_skips_downstream_and_the_mode_decides_the_rest(store, upstream, mode, how, data):
    failing = data.draw(st.sampled_from(sorted(upstream)), label="failing step")
    snapshot, run, backend = make_run(store, upstream, mode=mode)
    backend.duration = {name: data.draw(st.sampled_from([0.005, 0.03])) for name in upstream}
    backend.plan = {(failing, 1): how}
    _, final = schedule(store, snapshot, run, backend, max_parallelism=3)

    steps = store.steps(run.id)
    downstream = descendants(upstream, failing)
    assert final.status is S.FAILED and final.ended_at is not None
    assert failing in final.reason
    assert set(steps) == set(upstream), "every step has a record"
    assert all(step.status.is_finished for step in steps.values())
    assert steps[failing].status is S.FAILED
    if how == FAIL:
        assert steps[failing].reason == f"ValueError: {failing} failed"
    else:  # the process died: the scheduler recorded why
        assert steps[failing].reason == "fake process killed (exit -9)"
    for name in downstream:
        assert steps[name].status is S.SKIPPED and steps[name].attempts == 0
        assert name not in backend.launched()

    failed_at = backend.learned(failing, S.FAILED)
    others = set(upstream) - downstream - {failing}
    if mode is ExecutionMode.CONTINUE_ON_FAILURE:
        assert all(steps[name].status is S.COMPLETED for name in others)
    else:
        # nothing starts once the scheduler knows of the failure
        assert all(a.start <= failed_at for a in backend.attempts), "a step was launched after the failure"
        for name in others:
            if name not in backend.launched():
                assert steps[name].status is S.SKIPPED
            elif mode is ExecutionMode.STOP_ON_FAILURE:
                assert steps[name].status is S.COMPLETED  # running steps finish
            else:
                assert steps[name].status in (S.COMPLETED, S.STOPPED)  # FAIL_FAST kills them
                if steps[name].status is S.STOPPED:
                    assert backend.of(name)[0].outcome == "killed"


def test_fail_fast_stops_running_steps_at_once(store):
    snapshot, run, backend = make_run(store, {"quick": [], "slow": [], "after": ["slow"]}, mode=ExecutionMode.FAIL_FAST)
    backend.duration = {"quick": 0.02, "slow": 5.0}
    backend.plan = {("quick", 1): FAIL}
    started = time.monotonic()
    _, final = schedule(store, snapshot, run, backend)
    assert time.monotonic() - started < 2.0, "the slow step was not stopped"
    steps = store.steps(run.id)
    assert final.status is S.FAILED
    assert (steps["quick"].status, steps["slow"].status, steps["after"].status) == (S.FAILED, S.STOPPED, S.SKIPPED)


def test_stop_on_failure_lets_running_steps_finish(store):
    snapshot, run, backend = make_run(store, {"quick": [], "slow": [], "after": ["slow"]}, mode=ExecutionMode.STOP_ON_FAILURE)
    backend.duration = {"quick": 0.02, "slow": 0.3}
    backend.plan = {("quick", 1): FAIL}
    _, final = schedule(store, snapshot, run, backend)
    steps = store.steps(run.id)
    assert final.status is S.FAILED
    assert (steps["quick"].status, steps["slow"].status, steps["after"].status) == (S.FAILED, S.COMPLETED, S.SKIPPED)
    assert "after" not in backend.launched()


def test_a_refused_launch_is_a_failed_attempt(store):
    snapshot, run, backend = make_run(store, {"a": [], "b": ["a"]}, retry={"a": StepRetryConfig(max_retries=1)})
    backend.refuse_launch = {("a", 1), ("a", 2)}
    _, final = schedule(store, snapshot, run, backend)
    steps = store.steps(run.id)
    assert final.status is S.FAILED
    assert (steps["a"].status, steps["a"].attempts) == (S.FAILED, 2)
    assert "launch failed" in steps["a"].reason and "backend refused a attempt 2" in steps["a"].reason
    assert steps["b"].status is S.SKIPPED


# == retries ====================================================================================


@EXAMPLES
@given(
    st.integers(0, 3),
    st.sampled_from([0.0, 0.02, 0.05]),
    st.sampled_from([0.0, 1.0, 2.0]),
    st.integers(1, 5),
    st.sampled_from([FAIL, DIE, VANISH]),
)
def test_retries_follow_the_config(store, max_retries, delay, backoff, succeeds_on, how):
    config = StepRetryConfig(max_retries=max_retries, delay=delay, backoff=backoff)
    snapshot, run, backend = make_run(store, {"flaky": [], "next": ["flaky"]}, retry={"flaky": config})
    backend.plan = {("flaky", attempt): how for attempt in range(1, succeeds_on)}
    _, final = schedule(store, snapshot, run, backend)

    tries = backend.of("flaky")
    expected_attempts = min(succeeds_on, config.total_attempts)
    assert [a.attempt for a in tries] == list(range(1, expected_attempts + 1))
    step = store.step(run.id, "flaky")
    assert step.attempts == expected_attempts
    recorded = [a for a in store.attempts(run.id) if a.step_name == "flaky"]
    assert [a.attempt for a in recorded] == list(range(1, expected_attempts + 1))
    for previous, current, wait in zip(tries, tries[1:], config.delays()):
        assert current.start - previous.end >= wait - 1e-3, f"retry came {current.start - previous.end:.3f}s after, delay {wait}"
    if succeeds_on <= config.total_attempts:
        assert step.status is S.COMPLETED and final.status is S.COMPLETED
        assert [a.status for a in recorded] == [S.FAILED] * (expected_attempts - 1) + [S.COMPLETED]
        assert "next" in backend.launched()
    else:
        assert step.status is S.FAILED and final.status is S.FAILED
        assert all(a.status is S.FAILED for a in recorded)
        assert "next" not in backend.launched()
        assert store.step(run.id, "next").status is S.SKIPPED


def test_retry_delay_with_backoff_is_honoured(store):
    config = StepRetryConfig(max_retries=3, delay=0.1, backoff=2)
    snapshot, run, backend = make_run(store, {"flaky": []}, retry={"flaky": config})
    backend.plan = {("flaky", attempt): FAIL for attempt in (1, 2, 3)}
    _, final = schedule(store, snapshot, run, backend)
    tries = backend.of("flaky")
    gaps = [b.start - a.end for a, b in zip(tries, tries[1:])]
    assert final.status is S.COMPLETED and len(tries) == 4
    for gap, wait in zip(gaps, [0.1, 0.2, 0.4]):
        assert wait - 1e-3 <= gap < wait + 2.0


# == stop() =====================================================================================


@pytest.mark.parametrize("mode", list(ExecutionMode))
def test_stop_ends_the_run_stopped_with_no_new_launches(store, mode):
    upstream = {"a": [], "b": [], "c": ["a"], "d": ["c"], "e": []}
    snapshot, run, backend = make_run(store, upstream, mode=mode)
    backend.duration = {name: 2.0 for name in upstream}
    scheduler = DagScheduler(snapshot, store, run.id, backend.launch, max_parallelism=2)
    result = {}
    thread = threading.Thread(target=lambda: result.setdefault("run", scheduler.run()))
    thread.start()
    while len(backend.attempts) < 2:
        time.sleep(0.01)
    stopped_at = time.monotonic()
    scheduler.stop()
    thread.join(timeout=10)
    assert not thread.is_alive(), "stop() did not end the run"

    assert result["run"].status is S.STOPPED and result["run"].ended_at is not None
    assert all(a.start <= stopped_at for a in backend.attempts), "a step was launched after stop()"
    assert all(a.end - stopped_at < 1.0 for a in backend.attempts), "running steps were not killed"
    steps = store.steps(run.id)
    launched = backend.launched()
    assert len(launched) == 2
    for name in upstream:
        expected = S.STOPPED if name in launched else S.SKIPPED
        assert steps[name].status is expected, (name, steps[name])


def test_stop_during_a_retry_wait_does_not_skip_a_step_that_ran(store):
    config = StepRetryConfig(max_retries=2, delay=5.0)
    snapshot, run, backend = make_run(store, {"flaky": []}, retry={"flaky": config})
    backend.plan = {("flaky", 1): FAIL}
    scheduler = DagScheduler(snapshot, store, run.id, backend.launch, max_parallelism=2)
    result = {}
    thread = threading.Thread(target=lambda: result.setdefault("run", scheduler.run()))
    thread.start()
    while store.step(run.id, "flaky") is None or store.step(run.id, "flaky").status is not S.RETRYING:
        time.sleep(0.01)
    scheduler.stop()
    thread.join(timeout=10)
    assert not thread.is_alive()
    step = store.step(run.id, "flaky")
    assert result["run"].status is S.STOPPED
    assert step.status is S.STOPPED and step.attempts == 1
    assert len(backend.of("flaky")) == 1


@pytest.mark.parametrize(
    "mode, expected_status, expected_attempts",
    [
        (ExecutionMode.FAIL_FAST, S.STOPPED, 1),  # FAIL-2: a step between attempts ends STOPPED
        (ExecutionMode.STOP_ON_FAILURE, S.COMPLETED, 2),  # FAIL-3: its remaining attempts run
        (ExecutionMode.CONTINUE_ON_FAILURE, S.COMPLETED, 2),
    ],
)
def test_a_step_between_attempts_when_another_step_fails(store, mode, expected_status, expected_attempts):
    config = StepRetryConfig(max_retries=2, delay=0.3)
    snapshot, run, backend = make_run(store, {"flaky": [], "bad": []}, mode=mode, retry={"flaky": config})
    backend.duration = {"flaky": 0.0, "bad": 0.05}
    backend.plan = {("flaky", 1): FAIL, ("bad", 1): FAIL}
    _, final = schedule(store, snapshot, run, backend)

    flaky = store.step(run.id, "flaky")
    assert final.status is S.FAILED
    assert (flaky.status, flaky.attempts) == (expected_status, expected_attempts)
    assert len(backend.of("flaky")) == expected_attempts
    assert store.step(run.id, "bad").status is S.FAILED
