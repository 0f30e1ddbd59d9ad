"""A step's two write transactions (issue 17), raced from separate processes, on SQLite and
PostgreSQL.

``attach_step`` gets-or-creates the run and starts the step's attempt in one transaction;
``finish_attempt(finalize=...)`` ends the attempt and derives the run's status in another.
Concurrent first steps must still converge on one run (SPEC STORE-1), and when the last steps
of a run finish at the same moment, exactly the run's final status must come out of it (each
finisher sees the others' committed steps under the run row's lock).
"""

from __future__ import annotations

import multiprocessing
import uuid

import pytest

from orcakit import ExecutionStatus
from orcakit.reference import RunStore

S = ExecutionStatus
STEPS = [f"s{i}" for i in range(16)]


def _step(url: str, snapshot_id: str, placeholder_id: str, name: str, fail: bool, barriers, results) -> None:
    store = RunStore(url, create_tables=False)  # its own engine and connections, as a step process
    try:
        barriers[0].wait(timeout=120)
        run, attempt = store.attach_step(snapshot_id, "orch-1", "race", "test", placeholder_id, name)
        barriers[1].wait(timeout=120)  # every step started before any finishes: all finish together
        status = store.finish_attempt(
            run.id, name, attempt, succeeded=not fail, total_attempts=1, reason="boom" if fail else None,
            outputs=None if fail else {"output": name}, finalize=STEPS,
        )
        results.put((name, "ok", run.id, attempt, status.value))
    except BaseException as exc:  # noqa: BLE001 - reported to the test
        results.put((name, "error", repr(exc), None, None))
    finally:
        store.close()


def race_steps(url: str, snapshot_id: str, placeholder_id: str, failing: set[str]) -> list[tuple]:
    context = multiprocessing.get_context("fork")
    barriers = (context.Barrier(len(STEPS)), context.Barrier(len(STEPS)))
    results = context.Queue()
    processes = [
        context.Process(target=_step, args=(url, snapshot_id, placeholder_id, name, name in failing, barriers, results))
        for name in STEPS
    ]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=180) for _ in processes]
    for process in processes:
        process.join(timeout=60)
    errors = [outcome for outcome in outcomes if outcome[1] != "ok"]
    assert not errors, errors[:3]
    return outcomes


@pytest.mark.parametrize("failing", [set(), {"s3"}], ids=["all-succeed", "one-fails"])
def test_concurrent_steps_attach_to_one_run_and_the_last_finisher_ends_it(store_url: str, failing: set[str]) -> None:
    store = RunStore(store_url)
    snapshot_id = f"test-{uuid.uuid4().hex}"
    placeholder = store.create_placeholder_run(snapshot_id, "race", "test")
    store.close()  # no open connection crosses the fork

    outcomes = race_steps(store_url, snapshot_id, placeholder.id, failing)

    assert {run_id for _, _, run_id, _, _ in outcomes} == {placeholder.id}  # the placeholder, taken over once
    assert all(attempt == 1 for _, _, _, attempt, _ in outcomes)
    run = store.get_run(placeholder.id)
    assert run.orchestrator_run_id == "orch-1"
    if failing:
        assert run.status is S.FAILED and run.reason == "step(s) failed: s3"
    else:
        assert run.status is S.COMPLETED
    steps = store.steps(placeholder.id)
    assert sorted(steps) == sorted(STEPS)
    for name, record in steps.items():
        assert record.status is (S.FAILED if name in failing else S.COMPLETED)
        assert record.attempts == 1 and record.ended_at is not None
    attempts = list(store.attempts(placeholder.id))
    assert len(attempts) == len(STEPS) and all(a.ended_at is not None and a.host for a in attempts)
    store.close()


def test_a_finished_step_cannot_start_again_but_its_attach_still_takes_the_run(store_url: str) -> None:
    """The error comes after the transaction committed: the run was taken over all the same."""
    store = RunStore(store_url)
    snapshot_id = f"test-{uuid.uuid4().hex}"
    run, attempt = store.attach_step(snapshot_id, "orch-1", "p", "test", None, "a")
    store.finish_attempt(run.id, "a", attempt, succeeded=True, total_attempts=1, finalize=["a"])
    assert store.get_run(run.id).status is S.COMPLETED
    with pytest.raises(Exception, match="cannot start again"):
        store.attach_step(snapshot_id, "orch-1", "p", "test", None, "a")
    assert store.find_run(snapshot_id, "orch-1").id == run.id
    store.close()
