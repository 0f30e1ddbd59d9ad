"""The local flavor end to end: real step processes, a real SQLite run store, real cgroups.

Every test that depends on how a step process is started runs with both launchers: ``fork``
(children of a per-run fork server) and ``exec`` (a fresh interpreter per step).
"""

from __future__ import annotations

import glob
import os
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from orcakit import ExecutionStatus, FlavorNotFoundError, StackSpec, SubmissionError
from orcakit.reference.flavors.local import cgroups
from orcakit.reference import run_snapshot
from orcakit.reference.flavors.local import RUN_ID_ENV
from orcakit.reference import RunStore
from tests.pipelines import foundation as fp

# A hung run is a failure too, not a stuck CI job (pytest-timeout, from the dev extra).
pytestmark = pytest.mark.timeout(180)
S = ExecutionStatus
CGROUP_HOST = cgroups.probe()
needs_cgroups = pytest.mark.skipif(CGROUP_HOST is None, reason="needs a writable cgroup file system (root)")


@pytest.fixture(params=["fork", "exec"])
def launcher(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def local_stack(make_stack, launcher: str) -> StackSpec:
    return make_stack(launcher=launcher, max_parallelism=8)


def leftover_cgroups(snapshot_id: str) -> list[str]:
    """Cgroup directories this snapshot's steps left behind (SPEC CLEAN-1). Other test runs on
    the machine may own groups at the same moment, so only this snapshot's prefix counts."""
    if CGROUP_HOST is None:
        return []
    prefix = snapshot_id[:12]
    found = []
    for controller in ("cpu", "memory"):
        parent = CGROUP_HOST.controller_dir(controller) / "orcakit"
        found += [str(p) for p in parent.glob(f"{prefix}*") if p.is_dir()]
    return sorted(set(found))


def test_dag_runs_outputs_flow_and_every_step_sees_one_run_id(local_stack, execute):
    snapshot = fp.flow.compile(local_stack, 5)
    run, steps = execute(snapshot, stack=local_stack)

    assert run.status is S.COMPLETED, run.reason
    assert {name: s.status for name, s in steps.items()} == {name: S.COMPLETED for name in snapshot.steps}
    assert all(s.attempts == 1 for s in steps.values())
    assert execute.output(local_stack, run, "numbers") == [0, 1, 2, 3, 4]
    assert execute.output(local_stack, run, "square") == [0, 1, 4, 9, 16]
    assert execute.output(local_stack, run, "combine") == {"sum_squares": 30, "sum_cubes": 100}

    seen = [execute.output(local_stack, run, name) for name in ("who_first", "who_last")]
    assert fp.RUN_ID_ENV == RUN_ID_ENV
    for who in seen:
        # the variable, the context and the run store agree, in every step
        assert who["env_run_id"] == who["context_run_id"] == run.orchestrator_run_id
        assert who["run_uuid"] == run.id
        assert who["pid"] != os.getpid()
    assert seen[0]["pid"] != seen[1]["pid"], "each step must run in its own OS process"
    assert run.metadata["orchestrator_run_id"] == run.orchestrator_run_id
    assert 0 < len(run.orchestrator_run_id) <= 250


def test_environment_is_delivered_exactly(local_stack, execute):
    run, steps = execute(fp.hostile_env, stack=local_stack)
    assert run.status is S.COMPLETED, run.reason

    with_step = execute.output(local_stack, run, "env_with_step_env")
    pipeline_only = execute.output(local_stack, run, "env_pipeline_only")
    # exactly: every value byte for byte, no key lost, none added; the step's own env wins
    assert with_step == {**fp.HOSTILE_PIPELINE_ENV, **fp.HOSTILE_STEP_ENV}
    assert pipeline_only == fp.HOSTILE_PIPELINE_ENV
    assert with_step["HOSTILE_SHARED"] == "from the step \u2713"


@needs_cgroups
def test_cpu_and_memory_limits_are_observable_in_the_step(local_stack, execute):
    snapshot = fp.resources.compile(local_stack)
    run, steps = execute(snapshot, stack=local_stack)
    assert run.status is S.COMPLETED, run.reason

    page = os.sysconf("SC_PAGE_SIZE")
    binary = execute.output(local_stack, run, "limited_binary")
    assert binary["cpu_quota"] / binary["cpu_period"] == pytest.approx(0.5)
    assert binary["memory_limit"] == 256 * 2**20
    decimal = execute.output(local_stack, run, "limited_decimal")
    assert decimal["cpu_quota"] / decimal["cpu_period"] == pytest.approx(1.5)
    # decimal megabytes (300 * 10**6), not 300 MiB; the kernel keeps whole pages
    assert 300 * 10**6 - page < decimal["memory_limit"] <= 300 * 10**6
    # each step has groups of its own; a step without limits gets none
    key = "cpu" if CGROUP_HOST.version == 1 else ""
    assert binary["paths"][key] != decimal["paths"][key]
    assert "/orcakit/" in binary["paths"][key] and "/orcakit/" in decimal["paths"][key]
    assert "/orcakit/" not in execute.output(local_stack, run, "unlimited")["paths"][key]
    assert leftover_cgroups(snapshot.snapshot_id) == []


def test_step_that_raises_fails_skips_downstream_and_keeps_upstream_outputs(local_stack, execute):
    run, steps = execute(fp.raises, stack=local_stack)

    assert run.status is S.FAILED
    assert "explode" in run.reason
    assert steps["explode"].status is S.FAILED
    assert "ValueError: kaboom 4: the step raised on purpose" in steps["explode"].reason
    assert steps["square"].status is S.SKIPPED and steps["square"].attempts == 0
    assert steps["numbers"].status is S.COMPLETED
    assert steps["cube"].status is S.COMPLETED  # not downstream: CONTINUE_ON_FAILURE runs it
    assert all(s.status.is_finished for s in steps.values())
    # completed outputs survive the failure
    assert execute.output(local_stack, run, "numbers") == [0, 1, 2, 3]
    assert execute.output(local_stack, run, "cube") == [0, 1, 8, 27]


def test_step_killed_by_sigkill_is_failed_with_the_signal_named(local_stack, execute):
    run, steps = execute(fp.killed, stack=local_stack)

    assert run.status is S.FAILED and run.status.is_finished and run.ended_at is not None
    assert steps["die"].status is S.FAILED
    assert "SIGKILL" in steps["die"].reason
    assert steps["square"].status is S.SKIPPED
    assert execute.output(local_stack, run, "numbers") == [0, 1, 2, 3]
    attempts = list(RunStore(local_stack.run_store).attempts(run.id))
    assert [(a.step_name, a.status) for a in attempts if a.step_name == "die"] == [("die", S.FAILED)]


@needs_cgroups
def test_step_over_its_memory_limit_is_oom_killed(local_stack, execute):
    snapshot = fp.oom.compile(local_stack)
    run, steps = execute(snapshot, stack=local_stack)

    assert run.status is S.FAILED
    assert steps["hog"].status is S.FAILED
    assert "OOM" in steps["hog"].reason and "64MiB" in steps["hog"].reason
    assert leftover_cgroups(snapshot.snapshot_id) == []


def test_failed_attempt_is_retried_after_its_delay(local_stack, execute):
    run, steps = execute(fp.retried, stack=local_stack)

    assert run.status is S.COMPLETED, run.reason
    assert steps["flaky"].status is S.COMPLETED and steps["flaky"].attempts == 2
    assert execute.output(local_stack, run, "flaky") == 2  # get_step_context().attempt
    first, second = list(RunStore(local_stack.run_store).attempts(run.id))
    assert (first.attempt, first.status) == (1, S.FAILED)
    assert "attempt 1 fails on purpose" in first.reason
    assert (second.attempt, second.status) == (2, S.COMPLETED)
    assert (second.started_at - first.ended_at).total_seconds() >= 0.3  # StepRetryConfig.delay


def test_independent_steps_run_in_parallel(local_stack, execute, tmp_path):
    width, seconds = 8, 0.5
    rendezvous = tmp_path / "rendezvous"
    rendezvous.mkdir()
    started = time.monotonic()
    run, steps = execute(fp.fan_out, width, seconds, str(rendezvous), stack=local_stack)
    wall = time.monotonic() - started
    # every sleeper waited until all 8 were alive at once: with less parallelism they time out
    assert run.status is S.COMPLETED, [s.reason for s in steps.values() if s.reason]
    assert len(steps) == width

    spans = [execute.output(local_stack, run, name) for name in steps]
    first_start, last_end = min(s["start"] for s in spans), max(s["end"] for s in spans)
    # one after the other the sleeps take width * seconds; in parallel they overlap
    assert last_end - first_start < width * seconds
    assert max(s["start"] for s in spans) < min(s["end"] for s in spans), "not all sleeps overlapped"
    print(f"fan-out of {width} x {seconds}s: whole run {wall:.2f}s, sleeps {last_end - first_start:.2f}s")


def test_fan_out_without_enough_parallelism_is_caught(make_stack, execute, tmp_path):
    """The rendezvous above can fail: with max_parallelism=2, two sleepers wait for a third
    that cannot start while they run (a short patience keeps this quick)."""
    stack = make_stack(launcher="fork", max_parallelism=2)
    rendezvous = tmp_path / "rendezvous"
    rendezvous.mkdir()
    run, steps = execute(fp.fan_out, 3, 0.1, str(rendezvous), 1.0, stack=stack)
    assert run.status is S.FAILED
    assert "only 2 of 3 independent steps were running at once" in steps["sleeper"].reason
def test_concurrent_runs_get_distinct_run_ids(local_stack, execute):
    snapshots = [fp.solo.compile(local_stack) for _ in range(5)]
    with ThreadPoolExecutor(5) as pool:
        runs = list(pool.map(run_snapshot, snapshots))
    assert all(run.status is S.COMPLETED for run in runs), [(r.status, r.reason) for r in runs]
    assert len({run.orchestrator_run_id for run in runs}) == 5
    assert len({run.id for run in runs}) == 5
    for run in runs:
        who = execute.output(local_stack, run, "whoami")
        assert who["env_run_id"] == who["context_run_id"] == run.orchestrator_run_id
        assert who["run_uuid"] == run.id


def test_one_snapshot_submitted_concurrently_makes_separate_runs(make_stack, execute):
    """The same snapshot run five times at once (a schedule, a retry of a whole run): each
    submission must get its own run, and no run may adopt another one's steps."""
    stack = make_stack(launcher="fork")
    snapshot = fp.flow.compile(stack, 3)
    with ThreadPoolExecutor(5) as pool:
        runs = list(pool.map(run_snapshot, [snapshot] * 5))
    assert len({run.id for run in runs}) == 5
    assert len({run.orchestrator_run_id for run in runs}) == 5
    for run in runs:
        assert run.status is S.COMPLETED, run.reason
        steps = execute.steps(stack, run.id)
        assert {name: s.status for name, s in steps.items()} == {name: S.COMPLETED for name in snapshot.steps}
        who = execute.output(stack, run, "who_last")
        assert who["env_run_id"] == run.orchestrator_run_id and who["run_uuid"] == run.id
    assert len(RunStore(stack.run_store).list_runs(snapshot_id=snapshot.snapshot_id)) == 5


@pytest.mark.skipif(glob.glob("/dev/nvidia[0-9]*") != [], reason="this machine has GPUs")
def test_gpu_request_on_a_gpu_less_machine_is_refused_before_anything_runs(stack):
    snapshot = fp.gpu.compile(stack)
    with pytest.raises(SubmissionError) as refused:
        run_snapshot(snapshot)
    assert "gpu_count=1" in str(refused.value) and "wants_gpu" in str(refused.value)
    assert refused.value.fix  # says what to do
    (run,) = RunStore(stack.run_store).list_runs(snapshot_id=snapshot.snapshot_id)
    assert run.status is S.FAILED and "gpu" in run.reason
    assert RunStore(stack.run_store).steps(run.id) == {}  # nothing ran


def test_unknown_flavor_is_refused_naming_the_registered_ones(make_stack):
    stack = make_stack(flavor="no-such-flavor")
    with pytest.raises(FlavorNotFoundError) as refused:
        run_snapshot(fp.flow.compile(stack))
    assert "no-such-flavor" in str(refused.value) and "local" in str(refused.value)


def test_dynamic_pipeline_steps_see_the_orchestration_environments_run_id(stack, execute):
    run, steps = execute(fp.dynamic_flow, 3, stack=stack)

    assert run.status is S.COMPLETED, run.reason
    assert set(steps) == {"numbers", "whoami", "whoami_2"}
    assert all(s.status is S.COMPLETED for s in steps.values())
    seen = [execute.output(stack, run, name) for name in ("whoami", "whoami_2")]
    for who in seen:
        assert who["env_run_id"] == who["context_run_id"] == run.orchestrator_run_id
        assert who["run_uuid"] == run.id
        assert who["mark"] == "dyn $x\n"
    assert seen[0]["pid"] != seen[1]["pid"]


@needs_cgroups
def test_no_cgroups_are_left_behind_whatever_the_outcome(local_stack, execute):
    """SPEC CLEAN-1: every attempt's groups go, whether it completed, raised or was SIGKILLed
    (twice: the killed step is retried once)."""
    snapshot = fp.limited_failures.compile(local_stack)
    run, steps = execute(snapshot, stack=local_stack)
    assert run.status is S.FAILED
    assert (steps["limited_and_killed"].status, steps["limited_and_killed"].attempts) == (S.FAILED, 2)
    assert "SIGKILL" in steps["limited_and_killed"].reason
    assert steps["limited_and_raising"].status is S.FAILED
    assert steps["limited_binary"].status is S.COMPLETED
    assert leftover_cgroups(snapshot.snapshot_id) == []
