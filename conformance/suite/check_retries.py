"""RETRY-*: attempts = max_retries + 1, delays honoured, the run ID unchanged across attempts."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from orcakit import StepRetryConfig
from orcakit.conformance.harness import violation

TOLERANCE = 0.05  # seconds of clock granularity between two probe records on one machine


@st.composite
def retry_cases(draw):
    max_retries = draw(st.integers(0, 3))
    delay = draw(st.sampled_from([0.0, 0.2, 0.4]))
    backoff = draw(st.sampled_from([0.0, 1.0, 1.5, 2.0]))
    succeeds_on = draw(st.one_of(st.none(), st.integers(1, max_retries + 1)))  # None: always fails
    return StepRetryConfig(max_retries=max_retries, delay=delay, backoff=backoff), succeeds_on


@pytest.mark.requirement("RETRY-1", "RETRY-2", "RETRY-3", "STATUS-3")
@given(case=retry_cases())
@example(case=(StepRetryConfig(max_retries=2, delay=0.2, backoff=2.0), None))
@example(case=(StepRetryConfig(max_retries=2), 2))
def test_retries_follow_the_retry_config(fut, case):
    retry, succeeds_on = case
    fail = [-1] if succeeds_on is None else list(range(1, succeeds_on))
    dag = {"nodes": [{"name": "flaky", "upstream": [], "spec": {"fail_attempts": fail},
                      "retry": retry.model_dump()}]}
    obs = fut.run(fut.compile_dag(dag))
    expected = retry.total_attempts if succeeds_on is None else succeeds_on
    starts = obs.starts.get("flaky", [])
    attempts = [r["attempt"] for r in starts]
    if attempts != list(range(1, expected + 1)):
        raise violation("RETRY-1", f"expected attempts 1..{expected}, the step ran attempts {attempts}",
                        retry=retry.model_dump(), succeeds_on=succeeds_on)
    for k, wait in enumerate(retry.delays()[: expected - 1], start=1):
        gap = starts[k]["time"] - starts[k - 1]["time"]
        if gap + TOLERANCE < wait:
            raise violation("RETRY-2", f"retry {k} started {gap:.3f}s after attempt {k}, the config asks for at least {wait:.3f}s",
                            retry=retry.model_dump())
    run_ids = {r["run_id"] for r in starts}
    if len(run_ids) != 1:
        raise violation("RETRY-3", "the run ID changed between attempts", run_ids=[r["run_id"] for r in starts])
    final = obs.steps["flaky"].status.value
    wanted = "failed" if succeeds_on is None else "completed"
    if final != wanted or obs.run.status.value != wanted:
        raise violation("STATUS-3", f"after {expected} attempt(s) the step is {final} and the run {obs.run.status.value}, expected {wanted}")
