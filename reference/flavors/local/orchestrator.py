"""The local orchestrator: a ``BaseOrchestrator`` built only on orcakit's public contract and the
shared reference runtime — exactly what a third-party flavor can use."""

from __future__ import annotations

import glob
import os
import sys
import uuid
from pathlib import Path
from typing import Any

from orcakit import (
    BaseOrchestrator,
    Capabilities,
    PipelineSnapshot,
    ResourceSupport,
    RunIdError,
    SubmissionError,
    SubmissionResult,
)

from . import cgroups
from ..._runtime.artifact_store import LocalArtifactStore, log_key, open_artifact_store
from ..._runtime.run_store import RunStore
from ..._runtime.scheduler import DagScheduler
from . import RUN_ID_ENV
from .launchers import ForkServer, exec_step


def host_gpu_count() -> int:
    return len(glob.glob("/dev/nvidia[0-9]*"))


class LocalOrchestrator(BaseOrchestrator):
    #: Runs this process is scheduling, by orchestrator run ID (for stop_run and Ctrl-C).
    _active: dict[str, DagScheduler] = {}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._cgroups: cgroups.CgroupHost | None | bool = False  # False: not probed yet

    # -- contract ----------------------------------------------------------------------------

    def get_orchestrator_run_id(self) -> str:
        try:
            return os.environ[RUN_ID_ENV]
        except KeyError:
            raise RunIdError(
                f"{RUN_ID_ENV} is not set, so this code is not running inside a step the local orchestrator launched",
                fix="call get_orchestrator_run_id() from inside a running step",
            ) from None

    @property
    def capabilities(self) -> Capabilities:
        declared = self.flavor.capabilities
        if self.cgroup_host() is None:
            return declared.model_copy(update={"cpu": ResourceSupport.REJECTED, "memory": ResourceSupport.REJECTED})
        return declared

    def cgroup_host(self) -> cgroups.CgroupHost | None:
        if self._cgroups is False:
            self._cgroups = cgroups.probe(self.config.cgroup_root)
        return self._cgroups

    def submit_pipeline(self, snapshot, base_environment, step_environments, placeholder_run=None) -> SubmissionResult:
        self._check_requests(snapshot)
        run_id = self.new_run_id(snapshot)
        store = RunStore(snapshot.stack.run_store)
        # The steps take over this submission's placeholder (its ID travels in the base
        # environment), so the scheduler's records and the steps' land in the same run.
        run_uuid = placeholder_run.id if placeholder_run is not None else store.get_or_create_run(
            snapshot.snapshot_id, run_id, snapshot.pipeline_name, self.flavor.name
        ).id
        logs = self._log_dir(snapshot)
        client_env = dict(os.environ)
        cwd = os.getcwd()
        python = self.config.python or sys.executable
        server = ForkServer.shared(python, client_env, cwd, logs / "_fork_server.log") if self.config.launcher == "fork" else None

        def launch(step_name: str, attempt: int):
            spec = snapshot.steps[step_name]
            env = {**client_env, **self.step_environment(snapshot, step_name, step_environments[step_name], run_id, attempt)}
            group = self.step_cgroup(snapshot, step_name, attempt)
            log = str(logs / f"{step_name}.log")
            if server is not None:
                request = {
                    "artifact_store": snapshot.stack.artifact_store,
                    "snapshot": snapshot.snapshot_id,
                    "step": step_name,
                    "env": env,
                    "cwd": cwd,
                    "log": log,
                    "cgroups": group.procs_files() if group else [],
                }
                return server.launch(request, group, spec.resources.memory)
            return exec_step(self.step_command(snapshot, step_name, python), env, cwd, log, group, spec.resources.memory)

        scheduler = self.scheduler_class(snapshot, store, run_uuid, launch, max_parallelism=self.config.max_parallelism)
        self._active[run_id] = scheduler
        wait_for_completion = scheduler.start(
            name=f"orcakit-local-{run_id[:8]}", on_finish=lambda: self._active.pop(run_id, None)
        )

        return SubmissionResult(
            wait_for_completion=wait_for_completion,
            metadata={"orchestrator_run_id": run_id, "launcher": self.config.launcher, "logs": str(logs)},
        )

    # -- the pieces a run is made of (each one overridable, e.g. by the conformance mutants) --

    #: The scheduler that drives a static run.
    scheduler_class = DagScheduler

    def new_run_id(self, snapshot: PipelineSnapshot) -> str:
        """A fresh run ID per submission: the local "backend" has no job ID of its own."""
        return uuid.uuid4().hex

    def step_environment(self, snapshot: PipelineSnapshot, step_name: str, environment: dict[str, str], run_id: str, attempt: int) -> dict[str, str]:
        """What one attempt of a step gets on top of the client's environment: the environment
        the base class built, the GPU visibility and the run-ID variable (which wins)."""
        return {**environment, **self._gpu_env(snapshot.steps[step_name]), RUN_ID_ENV: run_id}

    def stop_run(self, run_id: str, graceful: bool = False) -> None:
        scheduler = self._active.get(run_id)
        if scheduler is not None:
            scheduler.stop()

    def leftover_resources(self, snapshot: PipelineSnapshot, run_id: str) -> list[str]:
        leftovers = []
        host = self.cgroup_host()
        if host is not None:
            prefix = snapshot.snapshot_id[:12]
            for controller in ("cpu", "memory"):
                parent = host.controller_dir(controller) / "orcakit"
                if parent.is_dir():
                    leftovers += [f"cgroup {path}" for path in parent.iterdir() if path.is_dir() and path.name.startswith(prefix)]
        marker = f"{RUN_ID_ENV}={run_id}".encode()
        for proc in Path("/proc").iterdir():
            if proc.name.isdigit() and int(proc.name) != os.getpid():
                try:
                    if marker in (proc / "environ").read_bytes().split(b"\0"):
                        leftovers.append(f"process {proc.name}")
                except OSError:
                    continue
        return leftovers

    # -- dynamic pipelines -------------------------------------------------------------------

    def submit_dynamic_pipeline(self, snapshot, environment, placeholder_run=None) -> SubmissionResult:
        run_id = uuid.uuid4().hex
        logs = self._log_dir(snapshot)
        env = {**os.environ, **environment, RUN_ID_ENV: run_id}
        python = self.config.python or sys.executable
        handle = exec_step(self.orchestration_command(snapshot, python), env, os.getcwd(), str(logs / "_orchestration.log"), None, None)

        def wait_for_completion() -> None:
            handle.wait()

        return SubmissionResult(wait_for_completion=wait_for_completion, metadata={"orchestrator_run_id": run_id})

    def run_isolated_step(self, snapshot: PipelineSnapshot, step_name: str, environment: dict[str, str]) -> None:
        # Runs inside the orchestration environment, which carries the run-ID variable.
        spec = snapshot.steps[step_name]
        self._check_requests(snapshot)
        env = {**os.environ, **environment, **self._gpu_env(spec), RUN_ID_ENV: self.get_orchestrator_run_id()}
        group = self.step_cgroup(snapshot, step_name, 1)
        log = str(self._log_dir(snapshot) / f"{step_name}.log")
        python = self.config.python or sys.executable
        handle = exec_step(self.step_command(snapshot, step_name, python), env, os.getcwd(), log, group, spec.resources.memory)
        code = handle.wait()
        handle.cleanup()
        if code != 0:
            store = RunStore(snapshot.stack.run_store, create_tables=False)
            run = store.find_run(snapshot.snapshot_id, self.get_orchestrator_run_id())
            if run is not None:
                store.finish_attempt(run.id, step_name, 1, succeeded=False, total_attempts=1, reason=handle.describe_exit(code))

    # -- helpers -----------------------------------------------------------------------------

    def _log_dir(self, snapshot: PipelineSnapshot) -> Path:
        store = open_artifact_store(snapshot.stack.artifact_store, snapshot.stack.artifact_store_options)
        if isinstance(store, LocalArtifactStore):
            path = store.root / Path(log_key(snapshot.snapshot_id, "x")).parent
        else:
            path = Path(os.environ.get("ORCAKIT_HOME", Path.home() / ".orcakit")) / "logs" / snapshot.snapshot_id
        path.mkdir(parents=True, exist_ok=True)
        return path

    def step_cgroup(self, snapshot: PipelineSnapshot, step_name: str, attempt: int) -> cgroups.StepCgroup | None:
        resources = snapshot.steps[step_name].resources
        if resources.cpu_count is None and resources.memory is None:
            return None
        host = self.cgroup_host()
        if host is None:  # validate_snapshot refused this already; keep the promise anyway
            raise SubmissionError(f"step {step_name!r} requests cpu/memory limits but this host has no writable cgroup file system")
        name = f"{snapshot.snapshot_id[:12]}-{uuid.uuid4().hex[:8]}-{step_name}-{attempt}"
        return cgroups.create(host, name, *self.resource_limits(resources))

    def resource_limits(self, resources) -> tuple[float | None, int | None]:
        """``(CPUs, memory bytes)`` to enforce for a step's ResourceSettings."""
        return resources.cpu_count, resources.memory_bytes

    def _gpu_env(self, spec) -> dict[str, str]:
        count = spec.resources.gpu_count
        if count is None:
            return {}
        return {"CUDA_VISIBLE_DEVICES": ",".join(str(i) for i in range(count))}

    def _check_requests(self, snapshot: PipelineSnapshot) -> None:
        """Refuse, before anything runs, what this machine cannot enforce exactly."""
        available = host_gpu_count()
        for spec in snapshot.steps.values():
            if spec.resources.cpu_count is not None and spec.resources.cpu_count < cgroups.MIN_CPU:
                raise SubmissionError(
                    f"step {spec.name!r} requests cpu_count={spec.resources.cpu_count}, below {cgroups.MIN_CPU}, the finest CPU share the kernel enforces",
                    fix=f"request at least {cgroups.MIN_CPU} CPU",
                )
            if (spec.resources.gpu_count or 0) > available:
                raise SubmissionError(
                    f"step {spec.name!r} requests gpu_count={spec.resources.gpu_count}, but this machine has {available} GPU(s)",
                    why="the local flavor enforces GPUs by making exactly the requested devices visible",
                    fix="lower gpu_count or run on a machine (or flavor) with enough GPUs",
                )
