"""The runtime's orchestrator base: one run's bookkeeping, written once for every flavor.

A flavor built on :class:`RuntimeOrchestrator` says how to start one attempt of one step on its
backend (:meth:`~RuntimeOrchestrator.launch_step`) and, for dynamic pipelines, the
orchestration environment (:meth:`~RuntimeOrchestrator.launch_orchestration`). Everything
around that is here: the run ID and the run it keys, the step environments, the shared
:class:`~.scheduler.DagScheduler` in a background driver, stop requests through the run store
(the one stop channel), isolated steps of dynamic pipelines, the failures a step could not
record itself, and where step logs go.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from abc import abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar

from orcakit import (
    BaseOrchestrator,
    ExecutionStatus,
    PipelineSnapshot,
    RunIdError,
    StepSpec,
    SubmissionResult,
)
from orcakit.orchestrator import unimplemented

from .leases import Heartbeat
from .scheduler import DagScheduler, StepHandle
from .stores import StackStores

logger = logging.getLogger("orcakit.runtime")

#: How often a dynamic run's driver looks for a stop request in the run store.
STOP_POLL_SECONDS = 0.5


class _ActiveRun:
    """A run this process drives: how to stop it, and whether a stop was asked for."""

    def __init__(self, stop: Callable[[], None]) -> None:
        self._stop = stop
        self.stop_requested = False

    def stop(self) -> None:
        if not self.stop_requested:
            self.stop_requested = True
            self._stop()


#: Runs this process drives, by orchestrator run ID (Ctrl-C and in-process ``stop_run``).
_ACTIVE: dict[str, _ActiveRun] = {}


@dataclass
class RunContext:
    """One run as the flavor's hooks see it (or, with ``isolated``, one step of a dynamic run
    launched from inside its orchestration environment).

    Invariants: ``run_id`` is the orchestrator run ID every step of the run reads back;
    ``step_environments`` are exactly what the contract built (the flavor adds to them, never
    drops from them); ``backend`` is whatever the flavor's :meth:`RuntimeOrchestrator.prepare_run`
    returned, for its own launch hooks.
    """

    snapshot: PipelineSnapshot
    run_id: str
    stores: StackStores
    log_dir: Path
    step_environments: dict[str, dict[str, str]] = field(default_factory=dict)
    #: The run-store ID of the run, where known on this side (None inside an isolated step's
    #: launcher until the step attached).
    run_uuid: str | None = None
    isolated: bool = False
    backend: Any = None

    def log_path(self, step_name: str) -> Path:
        return self.log_dir / f"{step_name}.log"


class RuntimeOrchestrator(BaseOrchestrator):
    """A flavor whose runs are driven from the submitting process by the shared scheduler.

    Override points, each documented below: :meth:`launch_step` (required),
    :meth:`check_snapshot`, :meth:`prepare_run`, :meth:`step_environment`,
    :meth:`enforcement_environment`, :meth:`finish_run`, :meth:`run_metadata`,
    :meth:`new_run_id`, :meth:`kill_steps`, :meth:`kill_run` and, for dynamic pipelines,
    :meth:`launch_orchestration`.
    """

    #: The scheduler that drives a static run (the conformance mutants swap it).
    scheduler_class: ClassVar[type[DagScheduler]] = DagScheduler
    #: False for backends whose steps run where this machine's disk is not visible (pods, a
    #: remote engine): stacks with local stores are then refused before anything starts.
    steps_see_local_disk: ClassVar[bool] = True

    # -- the run ID ------------------------------------------------------------------------

    def get_orchestrator_run_id(self) -> str:
        """The flavor's run-ID variable, which :meth:`step_environment` sets in every step."""
        try:
            return os.environ[self.run_id_env_var]
        except KeyError:
            raise RunIdError(
                f"{self.run_id_env_var} is not set, so this code is not running inside a step that orchestrator flavor "
                f"{self.flavor.name!r} launched",
                fix="call get_orchestrator_run_id() from inside a running step",
            ) from None

    def new_run_id(self, snapshot: PipelineSnapshot) -> str:
        """A fresh run ID per submission. Override with the backend's own job/execution ID
        where it has one (a Kubernetes Job UID, a cloud execution ARN)."""
        return uuid.uuid4().hex

    @property
    def max_parallelism(self) -> int:
        return int(getattr(self.config, "max_parallelism", 1) or 1)

    # -- hooks a flavor implements ---------------------------------------------------------

    def check_snapshot(self, snapshot: PipelineSnapshot, stores: StackStores) -> None:
        """Refuse, before anything runs, what the backend would refuse at a step's start (a
        CPU quota below its minimum, more GPUs than it has). Raise SubmissionError."""

    def prepare_run(self, run: RunContext) -> Any:
        """Per-run set-up before the first launch (build an image, start a fork server...).
        The return value is kept as ``run.backend`` for the launch hooks."""
        return None

    @abstractmethod
    def launch_step(self, run: RunContext, step_name: str, attempt: int) -> StepHandle:
        """Start attempt ``attempt`` (from 1) of ``step_name`` on the backend, running
        ``self.step_command(run.snapshot, step_name)`` with
        ``self.step_environment(run.snapshot, step_name, run.step_environments[step_name], run.run_id, attempt)``,
        and return a handle to wait on. May raise: the attempt then counts as failed to launch.
        Abstract, so that ``Flavor.check`` refuses an implementation without it at registration."""

    @unimplemented("dynamic_pipelines")
    def launch_orchestration(self, run: RunContext, environment: dict[str, str]) -> StepHandle:
        """Start a dynamic pipeline's orchestration environment running
        ``self.orchestration_command(run.snapshot)`` with ``environment`` (which carries the
        run-ID variable). Needed for ``Capabilities(dynamic_pipelines=True)``."""
        raise NotImplementedError

    def step_environment(
        self, snapshot: PipelineSnapshot, step_name: str, environment: dict[str, str], run_id: str, attempt: int
    ) -> dict[str, str]:
        """What one attempt of a step gets: the environment the contract built, what the flavor
        enforces through variables (:meth:`enforcement_environment`), and the run-ID variable,
        which wins. Values pass exactly as given: no shell ever sees them."""
        spec = snapshot.steps.get(step_name)
        enforced = self.enforcement_environment(spec) if spec is not None else {}
        return {**environment, **enforced, self.run_id_env_var: run_id}

    def enforcement_environment(self, spec: StepSpec) -> dict[str, str]:
        """Variables that enforce a step's settings (e.g. GPU visibility)."""
        return {}

    def finish_run(self, run: RunContext) -> None:
        """After a run ended (every attempt settled): release the run's backend objects."""

    def run_metadata(self, run: RunContext) -> dict[str, Any]:
        """More metadata for the SubmissionResult (e.g. the image)."""
        return {}

    def kill_steps(self, run_id: str) -> None:
        """End, on the backend, every running step attempt of ``run_id`` (a dynamic run's
        stop; the static scheduler kills its own handles)."""

    def kill_run(self, run_id: str) -> None:
        """End what the backend still runs for a run that *another* process drives (or drove,
        if it died). That process also sees the stop request in the run store; this is for
        the backend's side. Also what reaping an orphaned run calls (see ``_runtime/orphans``),
        from a process that never saw the run's handles: find what to kill from ``run_id``
        alone (labels, a ledger, the run-ID variable). Default: nothing."""

    # -- what the runtime does with them ---------------------------------------------------

    def run_context(
        self, snapshot: PipelineSnapshot, run_id: str, step_environments: dict[str, dict[str, str]] | None = None,
        *, run_uuid: str | None = None, isolated: bool = False,
    ) -> RunContext:
        stores = StackStores.of(snapshot.stack)
        self.check_stores(stores)
        self.check_snapshot(snapshot, stores)
        run = RunContext(
            snapshot=snapshot, run_id=run_id, stores=stores, log_dir=stores.log_dir(snapshot.snapshot_id),
            step_environments=dict(step_environments or {}), run_uuid=run_uuid, isolated=isolated,
        )
        run.backend = self.prepare_run(run)
        return run

    def check_stores(self, stores: StackStores) -> None:
        stores.require_shareable(self.flavor.name)
        if not self.steps_see_local_disk:
            stores.require_remote(self.flavor.name)

    def submit_pipeline(self, snapshot, base_environment, step_environments, placeholder_run=None) -> SubmissionResult:
        run_id = self.new_run_id(snapshot)
        store = StackStores.of(snapshot.stack).open_run_store()
        # This process drives the run: its lease (see .leases) goes in before anything can be
        # started on the backend, so a run whose client dies at any later point is found and
        # finished by the next client. A placeholder-less submission leases once the run exists.
        lease = None if placeholder_run is None else Heartbeat(store, placeholder_run.id, run_id)
        try:
            run = self.run_context(snapshot, run_id, step_environments)
            # The steps take over this submission's placeholder (its ID travels in the base
            # environment), so the scheduler's records and the steps' land in the same run.
            run.run_uuid = placeholder_run.id if placeholder_run is not None else store.get_or_create_run(
                snapshot.snapshot_id, run_id, snapshot.pipeline_name, self.flavor.name
            ).id
            lease = lease or Heartbeat(store, run.run_uuid, run_id)
        except BaseException:
            if lease is not None:
                lease.stop()
            raise
        scheduler = self.scheduler_class(
            snapshot, store, run.run_uuid, lambda step, attempt: self.launch_step(run, step, attempt),
            max_parallelism=self.max_parallelism,
        )
        # Another process declared this driver dead and ended the run: stop what runs here.
        lease.on_lost = scheduler.stop

        def on_finish() -> None:
            try:
                self.finish_run(run)
            finally:
                lease.stop()
                _ACTIVE.pop(run_id, None)

        _ACTIVE[run_id] = _ActiveRun(scheduler.stop)
        wait_for_completion = scheduler.start(name=f"orcakit-{self.flavor.name}-{run_id[:8]}", on_finish=on_finish)
        return SubmissionResult(
            wait_for_completion=wait_for_completion,
            metadata={"orchestrator_run_id": run_id, **self.run_metadata(run), "logs": str(run.log_dir)},
        )

    def stop_run(self, run_id: str, graceful: bool = False) -> None:
        """Stop a run: running attempts end STOPPED, pending steps never start. In the process
        that drives the run this stops its scheduler at once; from any other process the stop
        travels through the run store (the caller left it there with ``RunStore.request_stop``,
        as ``orcakit runs stop`` does) and :meth:`kill_run` ends what the backend runs."""
        active = _ACTIVE.get(run_id)
        if active is not None:
            active.stop()
        else:
            self.kill_run(run_id)

    def run_isolated_step(self, snapshot: PipelineSnapshot, step_name: str, environment: dict[str, str]) -> None:
        """Inside a dynamic run's orchestration environment: one step on the backend, to its
        end. A step that could not record its own end (killed, OOM-killed, never started) is
        recorded here."""
        run_id = self.get_orchestrator_run_id()
        run = self.run_context(snapshot, run_id, {step_name: environment}, isolated=True)
        handle = self.launch_step(run, step_name, 1)
        try:
            code = handle.wait()
        finally:
            handle.cleanup()
        if code != 0:
            record_unrecorded_failure(run.stores, snapshot, run_id, step_name, handle.describe_exit(code))

    def submit_dynamic_pipeline(self, snapshot, environment, placeholder_run=None) -> SubmissionResult:
        """One orchestration environment runs the pipeline function live and launches each
        step through :meth:`run_isolated_step`; a run it could not finalize (killed, stopped,
        crashed) still ends in a terminal status here."""
        run_id = self.new_run_id(snapshot)
        run = self.run_context(snapshot, run_id, run_uuid=getattr(placeholder_run, "id", None))
        handle = self.launch_orchestration(run, {**environment, self.run_id_env_var: run_id})
        done = threading.Event()
        active = _ActiveRun(lambda: (handle.kill(), self.kill_steps(run_id)))

        def watch_for_stop_requests() -> None:
            store = run.stores.open_run_store(create_tables=False)
            try:
                while not done.wait(STOP_POLL_SECONDS):
                    if active.stop_requested:
                        continue
                    uuid_ = run.run_uuid or getattr(store.find_run(snapshot.snapshot_id, run_id), "id", None)
                    if uuid_ is not None and store.stop_requested(uuid_):
                        active.stop()
            except Exception:  # noqa: BLE001 - the store went away; the run still ends below
                logger.exception("stop watcher of run %s ended", run_id)
            finally:
                store.close()

        def drive() -> None:
            try:
                code = handle.wait()
                settle_dynamic_run(run.stores, snapshot, run_id, handle.describe_exit(code), active.stop_requested)
            finally:
                try:
                    handle.cleanup()
                    self.finish_run(run)
                finally:
                    _ACTIVE.pop(run_id, None)
                    done.set()

        _ACTIVE[run_id] = active
        threading.Thread(target=watch_for_stop_requests, name=f"orcakit-stop-{run_id[:8]}", daemon=True).start()
        threading.Thread(target=drive, name=f"orcakit-{self.flavor.name}-{run_id[:8]}", daemon=True).start()
        return SubmissionResult(
            wait_for_completion=done.wait,
            metadata={"orchestrator_run_id": run_id, **self.run_metadata(run), "logs": str(run.log_dir)},
        )


def record_unrecorded_failure(stores: StackStores, snapshot: PipelineSnapshot, run_id: str, step_name: str, reason: str) -> None:
    """Record the end of an isolated step that could not record it itself."""
    store = stores.open_run_store(create_tables=False)
    try:
        run = store.find_run(snapshot.snapshot_id, run_id)
        record = store.step(run.id, step_name) if run is not None else None
        if run is not None and (record is None or not record.status.is_finished):
            store.finish_attempt(run.id, step_name, max(1, record.attempts if record else 1), succeeded=False,
                                 total_attempts=1, reason=reason)
    finally:
        store.close()


def settle_dynamic_run(stores: StackStores, snapshot: PipelineSnapshot, run_id: str, exit_reason: str, stopped: bool) -> None:
    """After a dynamic run's orchestration environment ended: a run it did not finalize ends
    STOPPED (when stopped) or FAILED, and so do its unfinished steps (SPEC STATUS-2)."""
    store = stores.open_run_store(create_tables=False)
    try:
        run = store.find_run(snapshot.snapshot_id, run_id)
        if run is None or run.status.is_finished:
            return
        status = ExecutionStatus.STOPPED if stopped else ExecutionStatus.FAILED
        reason = "stopped" if stopped else f"the orchestration environment ended: {exit_reason}"
        unfinished = [name for name, step in store.steps(run.id).items() if not step.status.is_finished]
        if unfinished:
            store.mark_steps(run.id, unfinished, status, reason)
        store.set_run_status(run.id, status, reason=reason)
    finally:
        store.close()
