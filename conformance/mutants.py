"""Deliberately broken flavors ("mutants") that prove the suite's sensitivity.

Each mutant is the reference ``local`` flavor with one classic orchestrator bug, and declares
the requirement IDs that bug violates. The project's tests run the suite against every mutant
(``pytest --flavor=orcakit.conformance.mutants:FixedRunId``) and assert it fails on exactly
those requirements — a suite that lets a mutant pass has lost its teeth.
"""

from __future__ import annotations

import math
import shlex
import threading
import time
import uuid
from typing import ClassVar

from orcakit import MEMORY_UNITS, ExecutionStatus, PipelineSnapshot, SubmissionResult
from orcakit.reference.flavors.local.cgroups import StepCgroup
from orcakit.reference.flavors.local import LocalFlavor
from orcakit.reference.flavors.local.orchestrator import LocalOrchestrator
from orcakit.reference import DagScheduler


class Mutant(LocalFlavor):
    """Base of the mutants: the local flavor under another name and implementation."""

    #: The requirement IDs the suite must report failed for this mutant.
    violates: ClassVar[frozenset[str]] = frozenset()
    #: One line: the bug.
    bug: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.name = "mutant-" + "".join(f"-{c.lower()}" if c.isupper() else c for c in cls.__name__).lstrip("-")
        cls.implementation_source = f"{__name__}:{cls.__name__}Orchestrator"
        cls.description = cls.bug


# -- run ID ------------------------------------------------------------------------------------


class FixedRunIdOrchestrator(LocalOrchestrator):
    def get_orchestrator_run_id(self) -> str:
        return "run"


class FixedRunId(Mutant):
    bug = "get_orchestrator_run_id() returns a constant"
    violates = frozenset({"RUNID-2"})


class RunIdPerStepOrchestrator(LocalOrchestrator):
    def get_orchestrator_run_id(self) -> str:
        return uuid.uuid4().hex


class RunIdPerStep(Mutant):
    bug = "a new run ID every time it is asked (so per step, each attaching to a run of its own)"
    # Asked in the step, the ID differs from the variable (ENV-1); steps land in runs of their
    # own (STORE-1); a dynamic run's orchestration never finds its steps (DYN-1) and its steps
    # see other IDs than the orchestration environment (RUNID-1: no restart is involved); a
    # retried attempt sees another ID than the first (RETRY-3).
    violates = frozenset({"RUNID-1", "STORE-1", "ENV-1", "DYN-1", "RETRY-3"})


class TimestampRunIdOrchestrator(LocalOrchestrator):
    def new_run_id(self, snapshot) -> str:
        return str(int(time.time()))


class TimestampRunId(Mutant):
    bug = "run ID from a timestamp in whole seconds"
    violates = frozenset({"RUNID-2"})


class PerProcessCounterRunIdOrchestrator(LocalOrchestrator):
    _counter: ClassVar = None

    def new_run_id(self, snapshot) -> str:
        import itertools

        if PerProcessCounterRunIdOrchestrator._counter is None:
            PerProcessCounterRunIdOrchestrator._counter = itertools.count(1)
        # unique within this client process, the same in the next process
        return f"{snapshot.pipeline_name[:40]}-{next(self._counter)}"


class PerProcessCounterRunId(Mutant):
    bug = "run ID from a counter of the client process (unique within one client, repeated across clients)"
    violates = frozenset({"RUNID-2"})


class NameBasedRunIdOrchestrator(LocalOrchestrator):
    def new_run_id(self, snapshot) -> str:
        return f"{snapshot.pipeline_name}-{uuid.uuid4().hex}"


class NameBasedRunId(Mutant):
    bug = "run ID built from the pipeline name, so it grows past 250 characters"
    violates = frozenset({"RUNID-3"})


class RunIdChangesOnRetryOrchestrator(LocalOrchestrator):
    def step_environment(self, snapshot, step_name, environment, run_id, attempt):
        env = super().step_environment(snapshot, step_name, environment, run_id, attempt)
        if attempt > 1:
            env[self.run_id_env_var] = f"{run_id}-retry{attempt}"
        return env


class RunIdChangesOnRetry(Mutant):
    bug = "a retried attempt gets a new run ID"
    # the retried attempt is a step of the run with another ID: RUNID-1 as well
    violates = frozenset({"RETRY-3", "RUNID-1"})


# -- environment -------------------------------------------------------------------------------


class DropsStepEnvironmentOrchestrator(LocalOrchestrator):
    def step_environment(self, snapshot, step_name, environment, run_id, attempt):
        if snapshot.steps[step_name].environment and step_name == max(snapshot.steps):
            # the step-level variables of one step are lost on the way
            environment = {k: v for k, v in environment.items() if k not in snapshot.steps[step_name].environment}
        return super().step_environment(snapshot, step_name, environment, run_id, attempt)


class DropsStepEnvironment(Mutant):
    bug = "one step's step-level environment is dropped"
    violates = frozenset({"ENV-3"})


def _shell_mangle(value: str) -> str:
    try:
        return " ".join(shlex.split(value))  # what `export K=$V` without quoting does to a value
    except ValueError:
        return value


class ShellQuotingOrchestrator(LocalOrchestrator):
    def step_environment(self, snapshot, step_name, environment, run_id, attempt):
        mangled = {k: v if k.startswith("ORCAKIT_") else _shell_mangle(v) for k, v in environment.items()}
        return super().step_environment(snapshot, step_name, mangled, run_id, attempt)


class ShellQuoting(Mutant):
    bug = "environment values pass through shell word splitting"
    violates = frozenset({"ENV-2", "ENV-3"})


class DynamicStepsLoseEnvironmentOrchestrator(LocalOrchestrator):
    def run_isolated_step(self, snapshot, step_name, environment):
        # steps a dynamic pipeline adds at run time get only orcakit's own variables
        kept = {k: v for k, v in environment.items() if k.startswith("ORCAKIT_")}
        return super().run_isolated_step(snapshot, step_name, kept)


class DynamicStepsLoseEnvironment(Mutant):
    bug = "steps a dynamic pipeline launches at run time lose their step-level environment"
    violates = frozenset({"ENV-3"})


# -- resources ---------------------------------------------------------------------------------


class IgnoresResourcesOrchestrator(LocalOrchestrator):
    def step_cgroup(self, snapshot, step_name, attempt):
        return None  # declared ENFORCED, applied never


class IgnoresResources(Mutant):
    bug = "resource settings silently ignored"
    violates = frozenset({"RES-2", "RES-3"})


class MemoryUnitConfusionOrchestrator(LocalOrchestrator):
    def resource_limits(self, resources):
        cpu, memory = super().resource_limits(resources)
        if resources.memory is not None:
            unit = resources.memory.lstrip("0123456789")
            binary = unit if unit.endswith("iB") else unit[0] + "iB"
            memory = int(resources.memory[: -len(unit)]) * MEMORY_UNITS[binary]  # GB read as GiB
        return cpu, memory


class MemoryUnitConfusion(Mutant):
    bug = "decimal memory units treated as binary (GB as GiB)"
    violates = frozenset({"RES-3"})


class SoftMemoryLimitOrchestrator(LocalOrchestrator):
    def resource_limits(self, resources):
        cpu, _ = super().resource_limits(resources)
        return cpu, None  # the request kept as a "reservation" the kernel never enforces


class SoftMemoryLimit(Mutant):
    bug = "memory applied as a soft limit (a reservation): a step over it is never killed"
    # RES-3 only: nothing was killed, so FAIL-6 (how a killed step ends) is not at stake
    violates = frozenset({"RES-3"})


class RoundsCpuOrchestrator(LocalOrchestrator):
    def resource_limits(self, resources):
        cpu, memory = super().resource_limits(resources)
        return (None if cpu is None else float(max(1, math.ceil(cpu)))), memory


class RoundsCpu(Mutant):
    bug = "fractional cpu_count rounded up to whole CPUs"
    violates = frozenset({"RES-2"})


# -- ordering and failure ----------------------------------------------------------------------


class _EagerScheduler(DagScheduler):
    def is_ready(self, name, status):
        # starts a step as soon as ANY upstream step ended
        ups = self.snapshot.steps[name].upstream
        return not ups or any(up in status for up in ups)


class _DoubleLaunchScheduler(DagScheduler):
    """Launches a join once per parent that ended "at the same time" (within 0.5 s): the
    readiness check runs for each parent's completion event and both see every parent done."""

    def __init__(self, snapshot, store, run_uuid, launch, **kwargs):
        self.completed_at: dict[str, float] = {}

        def launch_once_per_close_parent(name, attempt):
            handle = launch(name, attempt)
            upstream = snapshot.steps[name].upstream
            times = [self.completed_at.get(up) for up in upstream]
            if attempt == 1 and len(upstream) >= 2 and None not in times and max(times) - min(times) < 0.5:
                extra = launch(name, attempt)  # the duplicate: nobody waits for it but a thread
                threading.Thread(target=lambda: (extra.wait(), extra.cleanup()), daemon=True).start()
            return handle

        super().__init__(snapshot, store, run_uuid, launch_once_per_close_parent, **kwargs)

    def settle(self, name, attempt, code, handle, stopping):
        status = super().settle(name, attempt, code, handle, stopping)
        if status is ExecutionStatus.COMPLETED:
            self.completed_at[name] = time.monotonic()
        return status


class DoubleLaunchesJoinsOrchestrator(LocalOrchestrator):
    scheduler_class = _DoubleLaunchScheduler


class DoubleLaunchesJoins(Mutant):
    bug = "a join whose parents finish within milliseconds of each other is executed twice"
    violates = frozenset({"ORDER-2"})


class StartsEarlyOrchestrator(LocalOrchestrator):
    scheduler_class = _EagerScheduler


class StartsEarly(Mutant):
    bug = "a step starts when any (not all) of its upstream steps ended"
    violates = frozenset({"ORDER-1"})


class _RunsAfterFailureScheduler(DagScheduler):
    def skip_downstream(self, name, status):
        pass  # a failure does not reach the steps after it

    def is_ready(self, name, status):
        # upstream "done" includes failed
        return all(up in status for up in self.snapshot.steps[name].upstream)


class RunsAfterFailureOrchestrator(LocalOrchestrator):
    scheduler_class = _RunsAfterFailureScheduler


class RunsAfterFailure(Mutant):
    bug = "downstream steps still run after their upstream failed"
    violates = frozenset({"FAIL-1"})


class _SwallowingScheduler(DagScheduler):
    def settle(self, name, attempt, code, handle, stopping):
        if code not in (0, 1) and not stopping:
            return ExecutionStatus.COMPLETED  # a dead step process counts as success, unrecorded
        return super().settle(name, attempt, code, handle, stopping)


class SwallowsFailureOrchestrator(LocalOrchestrator):
    scheduler_class = _SwallowingScheduler


class SwallowsFailure(Mutant):
    bug = "a step process that dies is treated as a success"
    violates = frozenset({"FAIL-6"})


def _mode_read_as(mode: str, instead: str) -> type[DagScheduler]:
    """A scheduler that runs pipelines of execution mode ``mode`` as if they were ``instead``."""
    from orcakit import ExecutionMode

    class _Scheduler(DagScheduler):
        def __init__(self, snapshot, *args, **kwargs):
            if snapshot.execution_mode is ExecutionMode[mode]:
                snapshot = snapshot.model_copy(update={"execution_mode": ExecutionMode[instead]})
            super().__init__(snapshot, *args, **kwargs)

    return _Scheduler


class IgnoresFailFastOrchestrator(LocalOrchestrator):
    scheduler_class = _mode_read_as("FAIL_FAST", "STOP_ON_FAILURE")


class IgnoresFailFast(Mutant):
    bug = "FAIL_FAST lets running steps finish"
    violates = frozenset({"FAIL-2"})


class ContinueIsStopOrchestrator(LocalOrchestrator):
    scheduler_class = _mode_read_as("CONTINUE_ON_FAILURE", "STOP_ON_FAILURE")


class ContinueIsStop(Mutant):
    bug = "CONTINUE_ON_FAILURE starts nothing new after a failure (it behaves as STOP_ON_FAILURE)"
    violates = frozenset({"FAIL-4"})


class _OffByOneRetryScheduler(DagScheduler):
    def settle(self, name, attempt, code, handle, stopping):
        status = super().settle(name, attempt, code, handle, stopping)
        if status is ExecutionStatus.RETRYING and attempt >= self.snapshot.steps[name].total_attempts - 1:
            self.store.mark_steps(self.run_uuid, [name], ExecutionStatus.FAILED, "retries exhausted")
            return ExecutionStatus.FAILED  # max_retries counted as total attempts
        return status


class WrongRetryCountOrchestrator(LocalOrchestrator):
    scheduler_class = _OffByOneRetryScheduler


class WrongRetryCount(Mutant):
    bug = "one retry too few (max_retries read as total attempts)"
    violates = frozenset({"RETRY-1"})


class RetriesByDefaultOrchestrator(LocalOrchestrator):
    def submit_pipeline(self, snapshot, base_environment, step_environments, placeholder_run=None):
        from orcakit import StepRetryConfig
        from orcakit.reference import open_artifact_store, save_snapshot

        # The backend's default retry policy (a Kubernetes Job's backoffLimit, a queue that
        # re-delivers) applied to every step that has no retry config of its own.
        steps = {name: spec if spec.retry is not None else spec.model_copy(update={"retry": StepRetryConfig(max_retries=1)})
                 for name, spec in snapshot.steps.items()}
        snapshot = snapshot.model_copy(update={"steps": steps})
        save_snapshot(open_artifact_store(snapshot.stack.artifact_store, snapshot.stack.artifact_store_options), snapshot)
        return super().submit_pipeline(snapshot, base_environment, step_environments, placeholder_run)


class RetriesByDefault(Mutant):
    bug = "a step without a retry config is retried once (a backend's default retry policy)"
    violates = frozenset({"RETRY-1"})


# -- clean-up ----------------------------------------------------------------------------------


class _StickyCgroup(StepCgroup):
    def remove(self) -> None:
        pass  # never cleaned up


class LeavesCgroupsOrchestrator(LocalOrchestrator):
    def step_cgroup(self, snapshot, step_name, attempt):
        group = super().step_cgroup(snapshot, step_name, attempt)
        return None if group is None else _StickyCgroup(group.host, group.name)


class LeavesCgroups(Mutant):
    bug = "per-step cgroups are never removed"
    violates = frozenset({"CLEAN-1"})


# -- hostile values: caught by the fixed examples every run, not by chance ----------------------


class _ValueMangling(LocalOrchestrator):
    """Passes every user variable's value through :meth:`mangle` on its way into the step."""

    def mangle(self, value: str) -> str:
        return value

    def step_environment(self, snapshot, step_name, environment, run_id, attempt):
        mangled = {k: v if k.startswith("ORCAKIT_") else self.mangle(v) for k, v in environment.items()}
        return super().step_environment(snapshot, step_name, {k: v for k, v in mangled.items() if v is not None},
                                        run_id, attempt)


class StripsTrailingNewlineOrchestrator(_ValueMangling):
    def mangle(self, value):
        return value.rstrip("\n")  # what `VALUE=$(...)` does


class StripsTrailingNewline(Mutant):
    bug = "trailing newlines of environment values are lost (command substitution)"
    violates = frozenset({"ENV-2", "ENV-3"})


class DropsEmptyValuesOrchestrator(_ValueMangling):
    def mangle(self, value):
        return value or None  # `if value:` filters


class DropsEmptyValues(Mutant):
    bug = "environment variables with an empty value are dropped"
    violates = frozenset({"ENV-2", "ENV-3"})


class CutsLongValuesOrchestrator(_ValueMangling):
    def mangle(self, value):
        return value[:4096]  # a 4 KiB buffer on the way (an env file line, a field limit)


class CutsLongValues(Mutant):
    bug = "environment values longer than 4 KiB are cut at 4 KiB"
    violates = frozenset({"ENV-2", "ENV-3"})


class KilobyteIsKibibyteOrchestrator(LocalOrchestrator):
    def resource_limits(self, resources):
        cpu, memory = super().resource_limits(resources)
        if resources.memory is not None and resources.memory.endswith("KB"):
            memory = int(resources.memory[:-2]) * 1024  # the old habit: a kilobyte of 1024 bytes
        return cpu, memory


class KilobyteIsKibibyte(Mutant):
    bug = "KB read as 1024 bytes (the other units right)"
    violates = frozenset({"RES-3"})


class CpuCappedAtOneOrchestrator(LocalOrchestrator):
    def resource_limits(self, resources):
        cpu, memory = super().resource_limits(resources)
        return (None if cpu is None else min(cpu, 1.0)), memory


class CpuCappedAtOne(Mutant):
    bug = "cpu_count above one capped at one CPU"
    violates = frozenset({"RES-2"})


# -- resources on every step -------------------------------------------------------------------


class ResourcesOfFirstStepOnlyOrchestrator(LocalOrchestrator):
    def step_cgroup(self, snapshot, step_name, attempt):
        if step_name != snapshot.topological_order()[0]:
            return None  # tested with one-step pipelines only
        return super().step_cgroup(snapshot, step_name, attempt)


class ResourcesOfFirstStepOnly(Mutant):
    bug = "only the first step's resources are enforced"
    violates = frozenset({"RES-2", "RES-3"})


class IgnoresGpuRequestOrchestrator(LocalOrchestrator):
    def check_snapshot(self, snapshot, stores):
        pass  # accepts gpu_count=1 on a machine without GPUs...

    def enforcement_environment(self, spec):
        return {"CUDA_VISIBLE_DEVICES": ""} if spec.resources.gpu_count == 0 else {}  # ...and requests nothing


class IgnoresGpuRequest(Mutant):
    bug = "gpu_count >= 1 accepted and silently not requested"
    violates = frozenset({"RES-4"})


# -- ordering under width ----------------------------------------------------------------------


class IgnoresMaxParallelismOrchestrator(LocalOrchestrator):
    @property
    def max_parallelism(self) -> int:
        return 64  # the config field exists, nothing reads it


class IgnoresMaxParallelism(Mutant):
    bug = "max_parallelism is not applied"
    violates = frozenset({"ORDER-5"})


class _DeepestFirst(PipelineSnapshot):
    """The snapshot, with steps considered deepest first (a critical-path priority)."""

    def topological_order(self) -> list[str]:
        depth: dict[str, int] = {}
        for name in super().topological_order():
            depth[name] = 1 + max((depth[up] for up in self.steps[name].upstream), default=0)
        return sorted(depth, key=lambda name: -depth[name])


class _LaunchedParentsScheduler(DagScheduler):
    def __init__(self, snapshot, store, run_uuid, launch, **kwargs):
        self.launched: set[str] = set()

        def launch_and_note(name, attempt):
            self.launched.add(name)
            return launch(name, attempt)

        super().__init__(_DeepestFirst.model_validate(snapshot.model_dump()), store, run_uuid, launch_and_note, **kwargs)

    def is_ready(self, name, status):
        # Waits for the parents it has launched; parents held back by max_parallelism are forgotten.
        upstream = self.snapshot.steps[name].upstream
        launched = [up for up in upstream if up in self.launched]
        return not upstream or (bool(launched) and all(status.get(up) is ExecutionStatus.COMPLETED for up in launched))


class JoinForgetsHeldBackParentsOrchestrator(LocalOrchestrator):
    scheduler_class = _LaunchedParentsScheduler


class JoinForgetsHeldBackParents(Mutant):
    bug = "a join waits only for the parents already launched (those held back by max_parallelism are forgotten)"
    violates = frozenset({"ORDER-1"})


# -- retry timing ------------------------------------------------------------------------------


class _BackoffZeroIsConstantScheduler(DagScheduler):
    def retry_delay(self, name, attempt):
        retry = self.snapshot.steps[name].retry
        if retry is not None and retry.backoff == 0:
            return retry.delay  # "backoff 0" read as "no backoff": every retry waits delay
        return super().retry_delay(name, attempt)


class BackoffZeroIsConstantOrchestrator(LocalOrchestrator):
    scheduler_class = _BackoffZeroIsConstantScheduler


class BackoffZeroIsConstant(Mutant):
    bug = "backoff=0 treated as constant delay (the formula says only the first retry waits)"
    violates = frozenset({"RETRY-2"})


class _BackoffExponentOffByOneScheduler(DagScheduler):
    def retry_delay(self, name, attempt):
        retry = self.snapshot.steps[name].retry
        if retry is None:
            return 0.0
        return retry.delay * retry.backoff**attempt  # the exponent starts at 1, not 0


class BackoffExponentOffByOneOrchestrator(LocalOrchestrator):
    scheduler_class = _BackoffExponentOffByOneScheduler


class BackoffExponentOffByOne(Mutant):
    bug = "retry k waits delay * backoff**k (one factor of backoff too many)"
    violates = frozenset({"RETRY-2"})


# -- concurrent submissions of one snapshot ----------------------------------------------------


class SnapshotTimestampRunIdOrchestrator(LocalOrchestrator):
    def new_run_id(self, snapshot) -> str:
        return f"{snapshot.snapshot_id[:12]}-{int(time.time())}"


class SnapshotTimestampRunId(Mutant):
    bug = "run ID from the snapshot and the second it was submitted (overlapping schedule runs collide)"
    violates = frozenset({"RUNID-2"})


# -- stop and FAIL_FAST by what still runs -----------------------------------------------------


class _AbandoningHandle:
    """A handle whose kill() lets go of the attempt instead of ending it: the scheduler records
    the step STOPPED, the process runs on."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.abandoned = threading.Event()
        self.ended = threading.Event()
        self.code: int | None = None
        threading.Thread(target=self._follow, daemon=True).start()

    def _follow(self) -> None:
        self.code = self.inner.wait()
        self.ended.set()

    def wait(self) -> int:
        while not self.ended.wait(0.05):
            if self.abandoned.is_set():
                return -9
        return self.code

    def kill(self) -> None:
        self.abandoned.set()

    def describe_exit(self, code: int) -> str:
        return self.inner.describe_exit(code)

    def cleanup(self) -> None:
        if self.ended.is_set():
            self.inner.cleanup()


class AbandonsStoppedStepsOrchestrator(LocalOrchestrator):
    def launch_step(self, run, step_name, attempt):
        return _AbandoningHandle(super().launch_step(run, step_name, attempt))


class AbandonsStoppedSteps(Mutant):
    bug = "stopping a step records it STOPPED without ending its process"
    # what runs on after the run ended is a leftover too (CLEAN-1)
    violates = frozenset({"FAIL-2", "CLEAN-2", "CLEAN-1"})


class _DeafToTheRunStoreScheduler(DagScheduler):
    def _poll_stop_request(self, force=False):
        pass  # never asks the run store whether someone else asked for a stop


class StopsOnlyFromTheDrivingClientOrchestrator(LocalOrchestrator):
    scheduler_class = _DeafToTheRunStoreScheduler
    _driven_here: ClassVar[set[str]] = set()  # this process's memory, not the backend

    def new_run_id(self, snapshot) -> str:
        run_id = super().new_run_id(snapshot)
        self._driven_here.add(run_id)
        return run_id

    def stop_run(self, run_id, graceful=False):
        if run_id in self._driven_here:
            super().stop_run(run_id, graceful)
        # otherwise: "not one of ours", nothing happens


class StopsOnlyFromTheDrivingClient(Mutant):
    bug = "stop_run works only in the process that submitted the run (another client's stop is ignored)"
    violates = frozenset({"CLEAN-2"})


# -- schedules ---------------------------------------------------------------------------------


class InMemorySchedulesOrchestrator(LocalOrchestrator):
    _schedules: ClassVar[dict[str, object]] = {}  # this process's memory, not the backend

    def submit_pipeline(self, snapshot, base_environment, step_environments, placeholder_run=None):
        if snapshot.schedule is None:
            return super().submit_pipeline(snapshot, base_environment, step_environments, placeholder_run)
        schedule_id = f"schedule-{uuid.uuid4().hex[:12]}"
        self._schedules[schedule_id] = snapshot.schedule
        return SubmissionResult(metadata={"schedule_id": schedule_id})

    def update_schedule(self, schedule_id, snapshot):
        self._schedules[schedule_id] = snapshot.schedule

    def delete_schedule(self, schedule_id):
        self._schedules.pop(schedule_id, None)

    def list_schedules(self):
        return sorted(self._schedules)


class InMemorySchedules(Mutant):
    bug = "schedules kept in the client's memory instead of on the backend"
    violates = frozenset({"SCHED-1"})
    capabilities = LocalFlavor.capabilities.model_copy(update={"schedules": frozenset({"cron"})})


# -- secrets -----------------------------------------------------------------------------------


class LogsStepEnvironmentOrchestrator(LocalOrchestrator):
    def launch_step(self, run, step_name, attempt):
        env = run.step_environments[step_name]
        with open(run.log_path(step_name), "a") as log:  # "debug output" in the step log
            log.write(f"launching {step_name} with environment {env}\n")
        return super().launch_step(run, step_name, attempt)


class LogsStepEnvironment(Mutant):
    bug = "the step's environment, secrets included, written to its log"
    violates = frozenset({"SEC-1"})


class DebugSnapshotCopyOrchestrator(LocalOrchestrator):
    def prepare_run(self, run):
        store = run.stores.open_artifact_store()
        store.put(f"debug/{run.snapshot.snapshot_id}.json", run.snapshot.model_dump_json().encode())
        return super().prepare_run(run)


class DebugSnapshotCopy(Mutant):
    bug = "a plain copy of the snapshot (environment included) kept in the artifact store for debugging"
    violates = frozenset({"SEC-1"})


ALL: tuple[type[Mutant], ...] = (
    FixedRunId, RunIdPerStep, TimestampRunId, NameBasedRunId, RunIdChangesOnRetry,
    DropsStepEnvironment, ShellQuoting, IgnoresResources, MemoryUnitConfusion, RoundsCpu,
    StartsEarly, RunsAfterFailure, SwallowsFailure, IgnoresFailFast, WrongRetryCount, LeavesCgroups,
    StripsTrailingNewline, DropsEmptyValues, KilobyteIsKibibyte, CpuCappedAtOne, ResourcesOfFirstStepOnly,
    IgnoresGpuRequest, IgnoresMaxParallelism, JoinForgetsHeldBackParents, BackoffZeroIsConstant, BackoffExponentOffByOne,
    SnapshotTimestampRunId, AbandonsStoppedSteps, InMemorySchedules, LogsStepEnvironment, DebugSnapshotCopy,
    # issue 19: the bug classes the suite used to pass
    CutsLongValues, ContinueIsStop, RetriesByDefault, StopsOnlyFromTheDrivingClient, DynamicStepsLoseEnvironment,
    SoftMemoryLimit, PerProcessCounterRunId, DoubleLaunchesJoins,
)
