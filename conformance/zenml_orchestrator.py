"""A small, honest ZenML orchestrator that certifies: the worked example a ZenML orchestrator
author copies (``orcakit certify --flavor zenml:orcakit.conformance.zenml_orchestrator:ProcessOrchestratorFlavor``).

It does what ZenML's custom-orchestrator guide asks, on the smallest backend there is, local
processes:

- each step runs as a process of its own (``python -m zenml.entrypoints.entrypoint`` with
  ``StepEntrypointConfiguration``'s arguments), in a session of its own so that stopping it
  stops everything it started;
- the run ID comes from the backend (here the supervisor that owns the run's processes mints
  it when it accepts the run: a real backend returns its job ID) and is exported to every step
  as :data:`ENV_RUN_ID`; ``get_orchestrator_run_id()`` reads it there and nowhere else, so every
  step of a run shares it and no two runs do;
- ``ResourceSettings`` are refused, loudly, before anything runs: plain processes cannot be
  held to a CPU quota or a memory limit, and an orchestrator that cannot enforce a request
  must not silently ignore it (the guide's last pitfall);
- steps run in parallel wherever the DAG allows (``max_parallel_steps`` at once), each started
  only after all its upstream steps completed;
- the three execution modes: FAIL_FAST stops the steps under way, STOP_ON_FAILURE lets them
  finish and starts nothing new, CONTINUE_ON_FAILURE skips only what is downstream of a failure;
- a step process that dies without telling ZenML (SIGKILL, out of memory) is recorded FAILED
  with the reason, and the run FAILED;
- ``stop_run`` (from any process): the run's processes are ended, their steps recorded STOPPED,
  pending steps never start, the run ends STOPPED;
- cleanup: nothing of a run outlives it (processes, its folder).

``TODO(backend)`` marks where a real backend's calls go. ZenML is imported here, so only the
ZenML driver's side reaches this module (see the import contracts in pyproject.toml).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Dict, List, Optional, Type

from pydantic import PositiveInt
from zenml.entrypoints.step_entrypoint_configuration import StepEntrypointConfiguration
from zenml.enums import ExecutionMode, ExecutionStatus
from zenml.orchestrators import BaseOrchestrator, BaseOrchestratorConfig, BaseOrchestratorFlavor
from zenml.orchestrators.base_orchestrator import SubmissionResult

if TYPE_CHECKING:
    from zenml.models import PipelineRunResponse, PipelineSnapshotResponse
    from zenml.stack import Stack

#: The variable that carries the run ID into every step (the guide: set it when launching steps).
ENV_RUN_ID = "ZENML_PROCESS_ORCHESTRATOR_RUN_ID"
#: Where the backend keeps each run's control folder (the stop request, the process IDs).
RUNS_FOLDER = Path(tempfile.gettempdir()) / "zenml-process-orchestrator"
#: How long a stopped step gets to end after SIGTERM before SIGKILL.
STOP_GRACE = 5.0
#: The folder of a step's launch batch (see ProcessOrchestrator.prepare_step_run), and the
#: longest a step waits there for the others of its batch.
ENV_GANG = "ZENML_PROCESS_ORCHESTRATOR_GANG"
GANG_WAIT = 60.0
#: How often the run's status is read while steps run under FAIL_FAST / STOP_ON_FAILURE.
WATCH_INTERVAL = 0.25


class ProcessOrchestratorConfig(BaseOrchestratorConfig):
    """Step 1 of the guide: the configuration. ``submit_pipeline`` returns at once and hands
    ZenML a ``wait_for_completion`` (the guide: submit, do not block)."""

    #: How many step processes may run at once (steps the DAG allows in parallel).
    max_parallel_steps: PositiveInt = 4

    @property
    def is_local(self) -> bool:
        return True  # TODO(backend): False for a remote backend

    @property
    def is_synchronous(self) -> bool:
        return True


class ProcessOrchestrator(BaseOrchestrator):
    """Step 2 of the guide: the orchestrator."""

    #: For orcakit's ZenML driver (ZenML has no resource declaration): what this orchestrator
    #: does with ResourceSettings. It refuses them; an orchestrator on a backend with quotas
    #: translates them and says "enforced".
    orcakit_resource_support: ClassVar[Dict[str, str]] = {"cpu": "rejected", "memory": "rejected", "gpu": "rejected"}
    #: Read by orcakit's ZenML driver for ENV-1 (the variable every step carries).
    run_id_env_var: ClassVar[str] = ENV_RUN_ID

    @property
    def config(self) -> ProcessOrchestratorConfig:
        return self._config  # type: ignore[return-value]

    @property
    def supported_execution_modes(self) -> List[ExecutionMode]:
        return [ExecutionMode.FAIL_FAST, ExecutionMode.STOP_ON_FAILURE, ExecutionMode.CONTINUE_ON_FAILURE]

    def get_orchestrator_run_id(self) -> str:
        """The backend's run ID, as the step's environment carries it (the same in every step of
        a run, different for every run). Outside a step of this orchestrator there is none."""
        try:
            return os.environ[ENV_RUN_ID]
        except KeyError:
            raise RuntimeError(f"{ENV_RUN_ID} is not set: get_orchestrator_run_id() is only meaningful inside a step "
                               "this orchestrator launched") from None

    # -- submitting ------------------------------------------------------------------------------

    def submit_pipeline(self, snapshot: "PipelineSnapshotResponse", stack: "Stack", base_environment: Dict[str, str],
                        step_environments: Dict[str, Dict[str, str]],
                        placeholder_run: Optional["PipelineRunResponse"] = None) -> Optional[SubmissionResult]:
        self.refuse_resources(snapshot)
        # TODO(backend): submit the run to the backend and take ITS job ID as the run ID.
        run_id = self.new_run_id()
        steps = {name: [*step.spec.upstream_steps] for name, step in snapshot.step_configurations.items()}
        environments = {name: {**os.environ, **environment, **self.run_id_environment(run_id)}
                        for name, environment in step_environments.items()}
        run = _Run(run_id, snapshot, steps, environments, self.config.max_parallel_steps,
                   placeholder_run.id if placeholder_run else None)
        run.start()
        return SubmissionResult(wait_for_completion=run.wait, metadata={"process_orchestrator_run_id": run_id})

    def new_run_id(self) -> str:
        """A run ID no other run of this backend has (TODO(backend): the backend's job ID)."""
        return f"proc-{uuid.uuid4().hex}"

    def run_id_environment(self, run_id: str) -> Dict[str, str]:
        """What each step's environment gets besides ZenML's: the run ID."""
        return {ENV_RUN_ID: run_id}

    def refuse_resources(self, snapshot: "PipelineSnapshotResponse") -> None:
        """Refuse ResourceSettings this backend cannot enforce, naming the step and the kinds
        (TODO(backend): translate them into the backend's quotas instead)."""
        for name, step in snapshot.step_configurations.items():
            resources = step.config.resource_settings
            asked = {kind: value for kind, value in (("cpu", resources.cpu_count), ("memory", resources.memory),
                                                      ("gpu", resources.gpu_count)) if value}
            if asked:
                raise RuntimeError(
                    f"{type(self).__name__} cannot enforce resource settings: step {name!r} asks for "
                    + ", ".join(f"{kind} {value}" for kind, value in asked.items())
                    + " (ResourceSettings); drop them or run the pipeline on an orchestrator that enforces them")

    def prepare_step_run(self, info) -> None:
        """Called by ZenML inside each step's process, after it created the step run and before
        the step's code: wait until every step launched together with this one got that far too
        (``ENV_GANG``). ZenML's store refuses to create a step run once the run FAILED under
        FAIL_FAST or STOP_ON_FAILURE, so a sibling launched at the same moment as a step that
        fails at once, but slower to start (``import zenml`` takes seconds on a busy machine),
        would be refused although it was launched before the failure."""
        super().prepare_step_run(info)
        gang = os.environ.get(ENV_GANG)
        if not gang:
            return
        folder = Path(gang)
        (folder / f"ready-{os.getpid()}").touch()
        deadline = time.monotonic() + GANG_WAIT
        while not (folder / "go").exists() and time.monotonic() < deadline:
            time.sleep(0.02)

    # -- stopping --------------------------------------------------------------------------------

    def _stop_run(self, run: "PipelineRunResponse", graceful: bool = False) -> None:
        """Ask the backend to stop the run (from any process): it ends the run's step processes,
        records them STOPPED, starts nothing more and ends the run STOPPED."""
        folder = RUNS_FOLDER / str(run.orchestrator_run_id)
        if not folder.is_dir():
            return  # the run already ended (its folder is removed when it does)
        (folder / "stop").write_text("graceful" if graceful else "now")


class _Run:
    """One run on the process backend: launches each step when its upstream steps completed,
    at most ``parallel`` at a time, and follows them to the end (TODO(backend): a real backend
    does this itself; the orchestrator then only submits and watches)."""

    def __init__(self, run_id: str, snapshot: "PipelineSnapshotResponse", steps: Dict[str, List[str]],
                 environments: Dict[str, Dict[str, str]], parallel: int, pipeline_run_id: Optional[uuid.UUID]) -> None:
        self.run_id = run_id
        self.snapshot = snapshot
        self.steps = steps
        self.environments = environments
        self.parallel = parallel
        self.pipeline_run_id = pipeline_run_id
        self.mode = snapshot.pipeline_configuration.execution_mode
        self.folder = RUNS_FOLDER / run_id
        self.processes: Dict[str, subprocess.Popen] = {}
        self.completed: set[str] = set()
        self.failed: Dict[str, str] = {}
        self.skipped: set[str] = set()
        self.stopped = False
        self.batches = 0
        self.gangs: List[tuple] = []
        self.gang_of: Dict[str, Path] = {}
        self.ended: set[str] = set()
        self.ended_by_us: Dict[str, str] = {}  # step -> why the orchestrator ended it
        self.thread = threading.Thread(target=self._supervise, name=f"run {run_id}", daemon=True)
        self.error: Optional[BaseException] = None

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.thread.start()

    def wait(self) -> None:
        self.thread.join()
        if self.error is not None:
            raise self.error
        if self.failed:
            raise RuntimeError("pipeline run failed in step(s): "
                               + "; ".join(f"{name} ({reason})" for name, reason in sorted(self.failed.items())))

    def _command(self, step: str) -> List[str]:
        command = StepEntrypointConfiguration.get_entrypoint_command()
        if command and command[0] == "python":
            command = [sys.executable, *command[1:]]  # the interpreter ZenML runs in, not whatever PATH finds
        return [*command, *StepEntrypointConfiguration.get_entrypoint_arguments(step_name=step, snapshot_id=str(self.snapshot.id))]

    def _launch_together(self, steps: List[str]) -> None:
        """Launch ``steps`` (ready at the same time) so that they start together: each waits in
        its batch folder until all have their step run (prepare_step_run), then all go."""
        if len(steps) == 1:
            self._launch(steps[0])
            return
        self.batches += 1
        gang = self.folder / f"batch-{self.batches}"
        gang.mkdir()
        for step in steps:
            self._launch(step, gang)
        self.gangs.append((gang, len(steps), time.monotonic()))

    def _release_gangs(self) -> None:
        for gang, size, since in list(self.gangs):
            ready = len(list(gang.glob("ready-*")))
            # everyone there, or one of them ended before the wait (it crashed on start), or late
            if ready >= size or time.monotonic() - since > GANG_WAIT or self._gang_member_ended(gang):
                (gang / "go").touch()
                self.gangs.remove((gang, size, since))

    def _gang_member_ended(self, gang: Path) -> bool:
        return any(self.gang_of.get(step) == gang for step in self.ended)

    def _launch(self, step: str, gang: Optional[Path] = None) -> None:
        # A session of its own: stopping the step ends every process it started. Output goes to
        # the orchestrator's stderr (ZenML also keeps each step's log in the artifact store).
        # The step imports the pipeline's code by ZenML source paths, which are relative to the
        # source root: on one machine, the step starts there (ZenML puts its working directory
        # on sys.path). TODO(backend): a remote backend ships the code (image or code archive).
        from zenml.utils import source_utils

        environment = dict(self.environments[step])
        if gang is not None:
            environment[ENV_GANG] = str(gang)
            self.gang_of[step] = gang
        self.processes[step] = subprocess.Popen(self._command(step), env=environment, stdout=sys.stderr,
                                                stderr=sys.stderr, start_new_session=True,
                                                cwd=source_utils.get_source_root())

    def _blocked(self, step: str) -> bool:
        return any(up in self.failed or up in self.skipped for up in self.steps[step])

    def _supervise(self) -> None:
        try:
            self._loop()
        except BaseException as exc:  # noqa: BLE001 - handed to wait_for_completion
            self.error = exc
            self._end_all(signal.SIGKILL)
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)

    def _loop(self) -> None:
        pending = list(self.steps)
        halted = False  # after a failure under FAIL_FAST/STOP_ON_FAILURE, or a stop: start nothing new
        watched = 0.0
        while pending or self.processes:
            if (self.folder / "stop").exists() and not self.stopped:
                self.stopped = halted = True
                self._end_all(signal.SIGTERM)
            if (self.mode in (ExecutionMode.FAIL_FAST, ExecutionMode.STOP_ON_FAILURE) and not halted and self.processes
                    and time.monotonic() - watched > WATCH_INTERVAL):
                # A step records its own failure well before its process has exited (ZenML tears
                # down for seconds on a busy machine): follow the run's status, as one would
                # follow a backend's job status (TODO(backend): your backend's job status).
                watched = time.monotonic()
                if self._run_failed():
                    halted = True
                    if self.mode == ExecutionMode.FAIL_FAST:
                        self._end_all(signal.SIGTERM, failed_run=True)
            for step, process in list(self.processes.items()):
                code = process.poll()
                if code is None:
                    continue
                del self.processes[step]
                self.ended.add(step)
                if step in self.ended_by_us:
                    self._record(step, ExecutionStatus.STOPPED, self.ended_by_us[step])
                elif code == 0:
                    self.completed.add(step)
                else:
                    reason = f"the step process exited with {code}" if code > 0 else \
                        f"the step process was killed by signal {signal.Signals(-code).name}"
                    self.failed[step] = reason
                    self._record(step, ExecutionStatus.FAILED, reason)
                    if self.mode in (ExecutionMode.FAIL_FAST, ExecutionMode.STOP_ON_FAILURE):
                        halted = True
                    if self.mode == ExecutionMode.FAIL_FAST:
                        self._end_all(signal.SIGTERM, failed_run=True)
            ready = []
            for step in list(pending):
                if halted or self._blocked(step):
                    pending.remove(step)
                    self.skipped.add(step)  # never launched: ZenML has no step run for it
                elif len(self.processes) + len(ready) < self.parallel and all(up in self.completed for up in self.steps[step]):
                    pending.remove(step)
                    ready.append(step)
            if ready:
                self._launch_together(ready)
            self._release_gangs()
            time.sleep(0.05)
        self._finish_run()

    def _run_failed(self) -> bool:
        from zenml.client import Client

        run_id = self._pipeline_run_id()
        try:
            return run_id is not None and Client().get_pipeline_run(run_id, hydrate=False).status == ExecutionStatus.FAILED
        except Exception:  # noqa: BLE001 - a status we cannot read now is read next time
            return False

    def _end_all(self, how: signal.Signals, failed_run: bool = False) -> None:
        reason = "stopped: another step failed (FAIL_FAST)" if failed_run else "stopped by stop_run"
        for step in self.processes:
            self.ended_by_us.setdefault(step, reason)
        processes = list(self.processes.values())
        for process in processes:
            try:
                os.killpg(process.pid, how)
            except OSError:
                pass
        deadline = time.monotonic() + STOP_GRACE
        for process in processes:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except OSError:
                    pass
                process.wait()

    # -- what ZenML records --------------------------------------------------------------------

    def _pipeline_run_id(self) -> Optional[uuid.UUID]:
        if self.pipeline_run_id is not None:
            return self.pipeline_run_id
        from zenml.client import Client

        runs = Client().list_pipeline_runs(orchestrator_run_id=self.run_id, snapshot_id=self.snapshot.id).items
        return runs[0].id if runs else None

    def _record(self, step: str, status: ExecutionStatus, reason: str) -> None:
        """A step process that ended without recording its end (killed, stopped): record it."""
        from zenml.client import Client
        from zenml.models import ExceptionInfo
        from zenml.orchestrators.publish_utils import publish_step_run_status_update
        from zenml.utils.time_utils import utc_now

        run_id = self._pipeline_run_id()
        if run_id is None:
            return
        step_runs = Client().list_run_steps(pipeline_run_id=run_id, name=step, size=50).items
        if not step_runs:
            return
        latest = max(step_runs, key=lambda s: s.version)
        if latest.status.is_finished:
            return
        publish_step_run_status_update(step_run_id=latest.id, status=status, end_time=utc_now(),
                                       exception_info=ExceptionInfo(traceback=reason, message=reason))

    def _finish_run(self) -> None:
        """The run's status follows its steps: STOPPED after stop_run, FAILED after a failure."""
        from zenml.client import Client
        from zenml.orchestrators.publish_utils import publish_pipeline_run_status_update

        if not (self.stopped or self.failed):
            return
        run_id = self._pipeline_run_id()
        if run_id is None:
            return
        run = Client().get_pipeline_run(run_id)
        if self.stopped:
            publish_pipeline_run_status_update(pipeline_run_id=run_id, status=ExecutionStatus.STOPPED,
                                               status_reason="stopped by stop_run")
        elif not run.status.is_finished or run.status != ExecutionStatus.FAILED:
            publish_pipeline_run_status_update(pipeline_run_id=run_id, status=ExecutionStatus.FAILED,
                                               status_reason="; ".join(f"{n}: {r}" for n, r in sorted(self.failed.items())))


class ProcessOrchestratorFlavor(BaseOrchestratorFlavor):
    """Step 3 of the guide: the flavor (register it with
    ``zenml orchestrator flavor register orcakit.conformance.zenml_orchestrator.ProcessOrchestratorFlavor``)."""

    @property
    def name(self) -> str:
        return "orcakit_process"

    @property
    def config_class(self) -> Type[ProcessOrchestratorConfig]:
        return ProcessOrchestratorConfig

    @property
    def implementation_class(self) -> Type[ProcessOrchestrator]:
        return ProcessOrchestrator
