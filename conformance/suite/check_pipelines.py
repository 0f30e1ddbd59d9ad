"""SCHED-* and DYN-*: schedules and dynamic pipelines, declared or cleanly refused."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orcakit import Schedule, UnsupportedFeatureError
from orcakit.conformance.harness import Findings, chain, violation
from orcakit.conformance.plugin import unsupported

SCHEDULES = {
    "cron": lambda: Schedule(cron_expression="0 3 * * *"),
    "interval": lambda: Schedule(start_time=datetime.now(timezone.utc) + timedelta(days=1), interval_second=timedelta(hours=1)),
    "run_once": lambda: Schedule(run_once_start_time=datetime.now(timezone.utc) + timedelta(days=1)),
}


def _shown(value):
    if value is None or len(value) <= 120:
        return repr(value)
    return f"{len(value)} characters: {value[:24]!r} ... {value[-24:]!r}"


def assert_nothing_ran(fut, snapshot, requirement: str) -> None:
    if fut.probes_of(snapshot.snapshot_id):
        raise violation(requirement, "a step ran although the submission was refused")


@pytest.mark.requirement("SCHED-2", "CAP-2")
@pytest.mark.parametrize("kind", sorted(SCHEDULES))
def test_undeclared_schedule_kind_is_refused(fut, capabilities, kind):
    if kind in capabilities.schedules:
        unsupported(f"{kind} schedules are declared (see SCHED-1)")
    snapshot = fut.compile_dag(chain(1)).model_copy(update={"schedule": SCHEDULES[kind]()})
    try:
        fut.run(snapshot, requirement="SCHED-2")
    except UnsupportedFeatureError as exc:
        if exc.feature != "schedule":
            raise violation("SCHED-2", f"refused with feature {exc.feature!r}, expected 'schedule'")
        assert_nothing_ran(fut, snapshot, "SCHED-2")
        return
    raise violation("SCHED-2", f"a {kind} schedule was accepted although the flavor does not declare it")


@pytest.mark.requirement("SCHED-1", "CAP-2")
@pytest.mark.parametrize("kind", sorted(SCHEDULES))
def test_declared_schedules_are_created_listed_updated_and_deleted(fut, capabilities, kind):
    if kind not in capabilities.schedules:
        unsupported(f"{kind} schedules are not declared")
    orchestrator = fut.orchestrator()
    snapshot = fut.compile_dag(chain(1)).model_copy(update={"schedule": SCHEDULES[kind]()})
    obs_run = orchestrator.run(snapshot)
    schedule_id = (obs_run.metadata if obs_run else {}).get("schedule_id")
    if not schedule_id:
        raise violation("SCHED-1", "submitting a scheduled pipeline returned no schedule_id in SubmissionResult.metadata")
    # Listed by the backend: asked from a fresh process (a new client), not the creating object.
    try:
        if schedule_id not in fut.ask_fresh_process("list_schedules"):
            raise violation("SCHED-1", f"schedule {schedule_id!r} is not listed by a new client after creation",
                            hint="a schedule must live on the backend, not in the orchestrator object that created it")
        orchestrator.update_schedule(schedule_id, snapshot)
        if schedule_id not in fut.ask_fresh_process("list_schedules"):
            raise violation("SCHED-1", f"schedule {schedule_id!r} is not listed by a new client after an update")
    finally:
        fut.orchestrator().delete_schedule(schedule_id)  # deleted through another object than the creator
    if schedule_id in fut.ask_fresh_process("list_schedules"):
        raise violation("SCHED-1", f"schedule {schedule_id!r} is still listed by a new client after deletion")


@pytest.mark.requirement("SCHED-3")
@pytest.mark.parametrize(
    "values",
    [{}, {"cron_expression": "not cron"}, {"cron_expression": "0 3 * * *", "run_once_start_time": datetime(2030, 1, 1)},
     {"interval_second": timedelta(hours=1)}, {"start_time": datetime(2030, 1, 1), "interval_second": timedelta(0)}],
    ids=["nothing", "bad-cron", "two-kinds", "interval-without-start", "zero-interval"],
)
def test_invalid_schedules_are_refused(values):
    try:
        Schedule(**values)
    except ValueError:
        return
    raise violation("SCHED-3", f"Schedule({values}) was accepted")


@pytest.mark.requirement("SCHED-3")
def test_naive_schedule_times_are_read_as_utc():
    schedule = Schedule(run_once_start_time=datetime(2030, 1, 1, 12, 0))
    if schedule.run_once_start_time.utcoffset() != timedelta(0):
        raise violation("SCHED-3", "a naive run_once_start_time was not read as UTC", value=str(schedule.run_once_start_time))


#: Environment for the dynamic check: what static steps get (ENV-2, ENV-3), now for steps added
#: at run time: a pipeline-level value past a 4 KiB cut, one the children override, their own.
DYNAMIC_PIPELINE_ENV = {"CK_DYN_PIPE": "pipeline value\n", "CK_DYN_LONG": "d" * 4096 + "!", "CK_DYN_OVERRIDDEN": "from the pipeline"}
DYNAMIC_CHILD_ENV = {"CK_DYN_CHILD": "  child value ", "CK_DYN_OVERRIDDEN": "from the step"}


@pytest.mark.requirement("DYN-1", "RUNID-5", "RUNID-1", "ENV-1", "ENV-2", "ENV-3")
@given(width=st.integers(1, 3))
def test_dynamic_pipeline_runs_its_runtime_dag_under_one_run_id(fut, capabilities, width):
    """Steps a dynamic pipeline adds at run time get what static ones get: one run ID (that of
    the run and its orchestration environment), the run-ID variable, and the pipeline- and
    step-level environment exactly."""
    if not capabilities.dynamic_pipelines:
        unsupported("dynamic_pipelines is not declared")
    keys = sorted({*DYNAMIC_PIPELINE_ENV, *DYNAMIC_CHILD_ENV})
    if hasattr(fut, "compile_dynamic_with_environment"):
        snapshot = fut.compile_dynamic_with_environment(width, keys, DYNAMIC_PIPELINE_ENV, DYNAMIC_CHILD_ENV)
        pipeline_env, child_env = DYNAMIC_PIPELINE_ENV, DYNAMIC_CHILD_ENV
    else:  # a driver that compiles dynamic pipelines without environment
        snapshot, pipeline_env, child_env = fut.compile_dynamic(width, env_keys=[]), {}, {}
    obs = fut.run(snapshot)
    found = Findings()
    # Run IDs first, of whatever ran: a step that attached to another run breaks the rest.
    ids = obs.run_ids()
    if len(ids) > 1:
        found.add(violation("RUNID-1", "steps of one dynamic run saw different run IDs", run_ids=sorted(ids, key=str)))
    elif ids and obs.run.orchestrator_run_id not in ids:
        # The orchestration environment attached the run with its own get_orchestrator_run_id():
        # it is part of the run, so the steps' different ID breaks RUNID-1 (RUNID-5 is about
        # restarts of that environment, which this check does not cause).
        found.add(violation("RUNID-1", "the orchestration environment's run ID differs from the steps'",
                            orchestration=obs.run.orchestrator_run_id, steps=sorted(ids, key=str)))
    else:
        found.verify("RUNID-1")
    expected = ["root", *(f"child_{i}" for i in range(width)), "join"]
    missing = [name for name in expected if not obs.executed(name)]
    if missing:
        found.add(violation("DYN-1", f"dynamic steps {missing} did not run", run=obs.run.status.value, reason=obs.run.reason,
                            steps={k: (v.status.value, v.reason) for k, v in obs.steps.items()}))
    for name in expected:
        if not obs.executed(name):
            continue
        record = obs.starts[name][0]
        if obs.run_id_env_var is not None:
            if record["env_run_id"] != record["run_id"]:
                found.add(violation("ENV-1", f"dynamic step {name!r}: the run-ID variable does not carry the run ID",
                                    variable=obs.run_id_env_var, seen=record["env_run_id"], run_id=record["run_id"]))
            else:
                found.verify("ENV-1")
        mine = child_env if name.startswith("child_") else {}
        for key in keys if pipeline_env else []:
            want = mine.get(key, pipeline_env.get(key))
            seen = record["env"].get(key)
            requirement = "ENV-3" if key in mine or (key in child_env and key not in pipeline_env) else "ENV-2"
            found.verify(requirement)
            if seen != want:
                found.add(violation(requirement, f"dynamic step {name!r}: variable {key} arrived wrong",
                                    expected=_shown(want), seen=_shown(seen)))
    found.raise_any()
    join = obs.starts["join"][0]
    for i in range(width):
        if join["inputs"].get(f"in_child_{i}") != obs.ends[f"child_{i}"][0]["token"]:
            raise violation("DYN-1", f"the join step did not receive child_{i}'s output")
    if obs.run.status.value != "completed":
        raise violation("DYN-1", f"the dynamic run ended {obs.run.status.value}", reason=obs.run.reason)


@pytest.mark.requirement("DYN-2", "CAP-2")
def test_undeclared_dynamic_pipelines_are_refused(fut, capabilities):
    if capabilities.dynamic_pipelines:
        unsupported("dynamic_pipelines is declared (see DYN-1)")
    snapshot = fut.compile_dynamic(1, env_keys=[])
    try:
        fut.run(snapshot, requirement="DYN-2")
    except UnsupportedFeatureError as exc:
        if exc.feature != "dynamic_pipelines":
            raise violation("DYN-2", f"refused with feature {exc.feature!r}, expected 'dynamic_pipelines'")
        assert_nothing_ran(fut, snapshot, "DYN-2")
        return
    raise violation("DYN-2", "a dynamic pipeline was accepted although the flavor does not declare dynamic_pipelines")
