"""RETRY-*: attempts = max_retries + 1, waits as the formula says, the run ID unchanged across
attempts, and only the failed step retried."""

from __future__ import annotations

import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from orcakit import StepRetryConfig
from orcakit.conformance import timing
from orcakit.conformance.harness import Findings, violation


@st.composite
def retry_cases(draw):
    max_retries = draw(st.integers(0, 3))
    delay = draw(st.sampled_from([0.0, 0.2, 0.4, 1.0]))
    backoff = draw(st.sampled_from([0.0, 1.0, 1.5, 2.0]))
    succeeds_on = draw(st.one_of(st.none(), st.integers(1, max_retries + 1)))  # None: always fails
    return StepRetryConfig(max_retries=max_retries, delay=delay, backoff=backoff), succeeds_on


def retry_dag(retry: StepRetryConfig, succeeds_on: int | None) -> dict:
    """``upstream`` -> ``flaky`` (the config under test), next to ``baseline``, which fails once
    and retries at once: its gap is this backend's latency in starting an attempt, measured in
    the same run and under the same load."""
    fail = [-1] if succeeds_on is None else list(range(1, succeeds_on))
    return {"nodes": [
        {"name": "upstream", "upstream": [], "spec": {}},
        {"name": "flaky", "upstream": ["upstream"], "spec": {"fail_attempts": fail}, "retry": retry.model_dump()},
        {"name": "baseline", "upstream": [], "spec": {"fail_attempts": [1]}, "retry": {"max_retries": 1}},
    ]}


@pytest.mark.requirement("RETRY-1", "RETRY-2", "RETRY-3", "STATUS-3", "ORDER-2", "RUNID-1")
@given(case=retry_cases())
# Each wait formula every run: backoff 0 (only the first retry waits), 1 (constant), 2 (doubling).
@example(case=(StepRetryConfig(max_retries=3, delay=1.0, backoff=0.0), None))
@example(case=(StepRetryConfig(max_retries=2, delay=1.0, backoff=1.0), None))
@example(case=(StepRetryConfig(max_retries=2, delay=1.0, backoff=2.0), 3))
@example(case=(StepRetryConfig(max_retries=2), 2))
def test_retries_follow_the_retry_config(fut, case):
    retry, succeeds_on = case
    assume(fut.expresses_retry(retry))
    found = Findings()
    late = judge_retries(fut.run(fut.compile_dag(retry_dag(retry, succeeds_on))), retry, succeeds_on, found)
    if late:
        # The one judgement here that load can break on a correct backend is the upper bound: a
        # burst on the machine can hold one start past the limit calibrated in the same run. A
        # backend that waits too long does so in every run; a burst does not come back at the
        # same retry. So a late retry is a verdict once a second run of the case is late too
        # (every other judgement of that run holds on its own).
        again = judge_retries(fut.run(fut.compile_dag(retry_dag(retry, succeeds_on))), retry, succeeds_on, found)
        confirmed = sorted(set(late) & set(again))
        if confirmed:
            found.add(violation("RETRY-2", "; ".join(late[k] for k in confirmed),
                                second_run="; ".join(again[k] for k in confirmed),
                                retry=retry.model_dump(), formula="delays()[k-1] = delay * backoff**(k-1)"))
    found.raise_any()


def judge_retries(obs, retry: StepRetryConfig, succeeds_on: int | None, found: Findings) -> dict[int, str]:
    """Add what one run of the case broke to ``found``, except late retries: those are returned
    ({retry k: what was seen}) for the caller to confirm."""
    expected = retry.total_attempts if succeeds_on is None else succeeds_on
    starts = obs.starts.get("flaky", [])
    attempts = [r["attempt"] for r in starts]
    # A retry under another run ID attaches to a run of its own (where its inputs are missing,
    # so it may never get as far as the probe): the attempt numbers and waits below would only
    # be consequences of that one bug.
    run_ids = {r["run_id"] for r in starts}
    if len(run_ids) > 1 or len(obs.runs_for_snapshot) > 1:
        evidence = {"run_ids": sorted(run_ids, key=str), "runs": [r.orchestrator_run_id for r in obs.runs_for_snapshot]}
        # The retried attempt is a step of this run seeing another run ID: RUNID-1 too.
        raise ExceptionGroup("RETRY-3, RUNID-1 broken", [
            violation("RETRY-3", "the run ID changed between attempts: a retry attached to another run", **evidence),
            violation("RUNID-1", "attempts of one step of one run saw different run IDs", **evidence)])
    if attempts != list(range(1, expected + 1)):
        raise violation("RETRY-1", f"expected attempts 1..{expected}, the step ran attempts {attempts}",
                        retry=retry.model_dump(), succeeds_on=succeeds_on)
    upstream_starts = len(obs.starts.get("upstream", []))
    if upstream_starts != 1:
        found.add(violation("ORDER-2", f"completed upstream step 'upstream' executed {upstream_starts} times "
                            "while 'flaky' was retried: a retry must relaunch only the failed step"))
    baseline = obs.starts.get("baseline", [])
    if len(baseline) != 2:
        raise violation("RETRY-1", f"step 'baseline' (max_retries=1, fails once) ran {len(baseline)} attempt(s), expected 2")
    latency = timing.retry_latency(baseline, obs)
    late = {}
    for k, wait in enumerate(retry.delays()[: expected - 1], start=1):
        gap = starts[k]["time"] - starts[k - 1]["time"]
        if timing.retry_too_early(gap, wait):
            found.add(violation("RETRY-2", f"retry {k} started {gap:.3f}s after attempt {k}; the config asks for {wait:.3f}s",
                                retry=retry.model_dump()))
        elif timing.retry_too_late(gap, wait, latency):
            late[k] = (f"retry {k} started {gap:.3f}s after attempt {k}; the config asks for {wait:.3f}s "
                       f"and this backend starts a retry with no wait in {latency:.3f}s")
    final = obs.steps["flaky"].status.value
    wanted = "failed" if succeeds_on is None else "completed"
    if final != wanted or obs.run.status.value != wanted:
        found.add(violation("STATUS-3", f"after {expected} attempt(s) the step is {final} and the run "
                            f"{obs.run.status.value}, expected {wanted}"))
    return late


@pytest.mark.requirement("RETRY-1")
def test_a_step_without_a_retry_config_is_attempted_once(fut):
    """Retries nobody asked for (a backend's default retry policy, a re-delivered task): a
    failing step without a retry config, and one with max_retries=0, run exactly one attempt.
    (The harness counts every step's attempts in every run; this check makes sure a run with
    such steps is always among them.)"""
    dag = {"nodes": [
        {"name": "ok", "upstream": [], "spec": {}},
        {"name": "no_config", "upstream": ["ok"], "spec": {"fail_attempts": [-1]}},
        {"name": "zero_retries", "upstream": [], "spec": {"fail_attempts": [-1]}, "retry": {"max_retries": 0}},
    ]}
    obs = fut.run(fut.compile_dag(dag))
    for name in ("ok", "no_config", "zero_retries"):
        attempts = [record["attempt"] for record in obs.starts.get(name, [])]
        if len(attempts) > 1:
            raise violation("RETRY-1", f"step {name!r} has no retries configured and was attempted {len(attempts)} times",
                            attempts=attempts)
