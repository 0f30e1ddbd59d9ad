"""RUNID-*: one run ID per run, shared by every step, unique across runs, bounded in length."""

from __future__ import annotations

import threading

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from orcakit import MAX_RUN_ID_LENGTH
from orcakit.conformance.harness import Findings, chain, violation
from orcakit.conformance.plugin import unsupported
from orcakit.conformance.strategies import dags


def run_id_seen(obs) -> str:
    """The run ID a run's steps saw (what RUNID-2 compares across runs; whether every step saw
    the same one is RUNID-1's business, checked elsewhere). A step may have seen None (a flavor
    is free to be broken that way): shown as such, never sorted against strings."""
    return ",".join(sorted(run_id if isinstance(run_id, str) else repr(run_id) for run_id in obs.run_ids()))


def assert_one_run_id(obs, requirement: str = "RUNID-1") -> str:
    seen = {step: [r["run_id"] for r in records] for step, records in obs.starts.items()}
    ids = {run_id for values in seen.values() for run_id in values}
    if len(ids) != 1:
        raise violation(requirement, "steps of one run saw different run IDs from get_orchestrator_run_id()",
                        per_step=seen, dag=obs.snapshot.topological_order())
    (run_id,) = ids
    for step, records in obs.starts.items():
        for record in records:
            if obs.run_id_env_var is not None and record["env_run_id"] != run_id:
                raise violation("ENV-1", f"step {step!r}: the flavor's run-ID variable does not carry the run ID",
                                variable=obs.run_id_env_var, seen=record["env_run_id"], run_id=run_id)
    if obs.run.orchestrator_run_id != run_id:
        raise violation(requirement, "the run record's orchestrator_run_id differs from what steps saw",
                        record=obs.run.orchestrator_run_id, steps=run_id)
    return run_id


def assert_one_run(obs) -> None:
    if len(obs.runs_for_snapshot) != 1:
        raise violation("STORE-1", f"one submission produced {len(obs.runs_for_snapshot)} run records",
                        run_ids=[r.orchestrator_run_id for r in obs.runs_for_snapshot])


@pytest.mark.requirement("RUNID-1", "ENV-1", "STORE-1")
@given(dag=dags(max_nodes=6))
def test_every_step_of_a_run_sees_the_same_run_id(fut, dag):
    obs = fut.run(fut.compile_dag(dag))
    missing = [node["name"] for node in dag["nodes"] if not obs.executed(node["name"])]
    if missing:
        raise violation("RUNID-1", f"steps {missing} never ran", statuses={k: v.status.value for k, v in obs.steps.items()})
    found = Findings()
    found.check(assert_one_run, obs, verifies=("STORE-1",))
    found.check(assert_one_run_id, obs, verifies=("RUNID-1", "ENV-1") if obs.run_id_env_var else ("RUNID-1",))
    found.raise_any()


@pytest.mark.requirement("RUNID-1", "STORE-1", "ENV-1")
def test_parallel_first_steps_converge_on_one_run(fut):
    """Six independent roots race to create the run; all must land in the same one."""
    dag = {"nodes": [{"name": f"root{i}", "upstream": [], "spec": {}} for i in range(6)]}
    obs = fut.run(fut.compile_dag(dag))
    found = Findings()
    found.check(assert_one_run, obs, verifies=("STORE-1",))
    found.check(assert_one_run_id, obs, verifies=("RUNID-1", "ENV-1") if obs.run_id_env_var else ("RUNID-1",))
    found.raise_any()


@pytest.mark.requirement("RUNID-2")
@given(runs=st.integers(min_value=2, max_value=4))
def test_concurrent_runs_get_different_run_ids(fut, runs):
    """Several pipelines submitted at once: every run its own ID."""
    results = submit_at_once(fut, [fut.compile_dag(chain(2)) for _ in range(runs)])
    ids = [run_id_seen(obs) for obs in results]
    if len(set(ids)) != runs:
        raise violation("RUNID-2", f"{runs} concurrent runs did not get {runs} distinct run IDs", run_ids=ids)


def submit_at_once(fut, snapshots: list, only_this_run: bool = False) -> list:
    """Run ``snapshots`` from as many threads, released together; returns the observations."""
    results: list = [None] * len(snapshots)
    errors: list = []
    barrier = threading.Barrier(len(snapshots))

    def submit(index: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[index] = fut.run(snapshots[index], only_this_run=only_this_run)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(len(snapshots))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results


@pytest.mark.requirement("RUNID-2", "STORE-1")
def test_concurrent_submissions_of_one_snapshot_get_distinct_runs(fut):
    """What a schedule does when runs overlap: the same snapshot submitted several times at
    once. Each submission is its own run, with its own run ID and record."""
    snapshot = fut.compile_dag(chain(1))
    submissions = 3
    observations = submit_at_once(fut, [snapshot] * submissions, only_this_run=True)
    records = fut.runs_of(snapshot.snapshot_id)
    # A record whose steps attached elsewhere may never get an orchestrator run ID: None.
    ids = sorted((r.orchestrator_run_id for r in records), key=lambda run_id: (run_id is None, str(run_id)))
    if len({run_id for run_id in ids if run_id is not None}) != submissions or len({obs.run.id for obs in observations}) != submissions:
        raise violation("RUNID-2", f"{submissions} concurrent submissions of one snapshot did not get {submissions} distinct runs",
                        run_ids=ids, runs=[obs.run.id for obs in observations])
    for obs in observations:
        steps = obs.starts.get("s0", [])
        if len(steps) != 1 or steps[0]["run_id"] != obs.run.orchestrator_run_id:
            raise violation("STORE-1", "a submission's step did not attach to its own run",
                            run=obs.run.orchestrator_run_id, seen=[r["run_id"] for r in steps])


@pytest.mark.requirement("RUNID-2")
def test_runs_of_one_snapshot_in_quick_succession_get_different_run_ids(fut):
    """One snapshot run again and again (what a schedule does): each run its own ID and record."""
    snapshot = fut.compile_dag(chain(1))
    runs = 3
    ids = [run_id_seen(fut.run(snapshot, only_this_run=True)) for _ in range(runs)]
    if len(set(ids)) != runs:
        raise violation("RUNID-2", "runs started one right after another reused a run ID", run_ids=ids)
    records = fut.runs_of(snapshot.snapshot_id)
    if len(records) != runs:
        raise violation("RUNID-2", f"{runs} runs of one snapshot left {len(records)} run records (runs collided)",
                        run_ids=[r.orchestrator_run_id for r in records])


@pytest.mark.requirement("RUNID-3")
@given(pipeline_length=st.integers(min_value=1, max_value=240), step_length=st.integers(min_value=1, max_value=190))
@example(pipeline_length=240, step_length=190)
def test_run_id_fits_the_limit_whatever_the_names(fut, pipeline_length, step_length):
    pipeline_length, step_length = fut.longest_names(pipeline_length, step_length)
    step_name = ("s" * step_length)
    dag = {"nodes": [{"name": step_name, "upstream": [], "spec": {}}]}
    obs = fut.run(fut.compile_dag(dag, name="p" * pipeline_length))
    run_ids = obs.run_ids()
    if not run_ids:
        raise violation("RUNID-3", "the step did not run", status=obs.run.status.value, reason=obs.run.reason)
    for run_id in run_ids:
        if not isinstance(run_id, str) or not run_id or len(run_id) > MAX_RUN_ID_LENGTH:
            raise violation("RUNID-3", f"run ID {type(run_id).__name__} of {len(run_id) if isinstance(run_id, str) else 0} "
                            f"characters (a non-empty str of at most {MAX_RUN_ID_LENGTH})",
                            pipeline_name_length=pipeline_length, step_name_length=step_length, run_id=run_id)
    if obs.run.status.value != "completed":
        raise violation("RUNID-3", "a run with long names did not complete", reason=obs.run.reason,
                        steps={k: (v.status.value, v.reason) for k, v in obs.steps.items()})


@pytest.mark.requirement("RUNID-2")
def test_runs_submitted_from_separate_client_processes_get_different_run_ids(fut):
    """One pipeline run from several client processes at once (users on several machines, a
    scheduler with several workers): an ID unique only within one client process (a counter, a
    per-process sequence) repeats here."""
    submit = getattr(fut, "submit_from_other_processes", None)
    if submit is None:
        unsupported(f"the {fut.kind} driver submits from this process only")
    snapshot = fut.compile_dag(chain(1))
    clients = 3
    answers = submit(snapshot, clients)
    records = fut.runs_of(snapshot.snapshot_id)
    ids = sorted((r.orchestrator_run_id for r in records), key=lambda run_id: (run_id is None, str(run_id)))
    distinct = {run_id for run_id in ids if run_id is not None}
    if len(distinct) != clients or len(records) != clients:
        raise violation("RUNID-2", f"{clients} client processes each ran the pipeline once and got {len(distinct)} distinct "
                        f"run ID(s) in {len(records)} run record(s)", run_ids=ids,
                        clients=[a.get("answer", {}).get("orchestrator_run_id") if "answer" in a else a.get("error") for a in answers])
