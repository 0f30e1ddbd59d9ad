"""The local orchestrator: every step attempt an OS process on this machine.

Built only on orcakit's public contract and the public runtime (:mod:`orcakit.reference`), exactly
what a third-party flavor can use: :class:`~orcakit.reference.RuntimeOrchestrator` does the run's
bookkeeping; this module says how a step attempt becomes a process (forked from a fork server,
or exec-ed) in its own cgroup.
"""

from __future__ import annotations

import glob
import os
import sys
import uuid
from dataclasses import dataclass
from typing import Any

from orcakit import Capabilities, PipelineSnapshot, ResourceSupport, StepSpec, SubmissionError, UnsupportedFeatureError
from orcakit.reference import RunContext, RuntimeOrchestrator, StackStores, StepHandle

from . import RUN_ID_ENV, cgroups, leftovers
from .interpreter import check_interpreter
from .launchers import ForkServer, exec_step


def host_gpu_count() -> int:
    return len(glob.glob("/dev/nvidia[0-9]*"))


@dataclass(frozen=True)
class _LocalRun:
    """What every launch of one run shares."""

    client_env: dict[str, str]
    cwd: str
    python: str
    server: ForkServer | None


class LocalOrchestrator(RuntimeOrchestrator):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._cgroups: cgroups.CgroupHost | None | bool = False  # False: not probed yet
        self._cgroup_reason = ""

    @property
    def capabilities(self) -> Capabilities:
        """What this user gets on this host: without a writable cgroup file system (not root,
        no delegated subtree) cpu and memory are REJECTED, whatever the flavor declares."""
        declared = self.flavor.capabilities
        if self.cgroup_host() is None:
            return declared.model_copy(update={"cpu": ResourceSupport.REJECTED, "memory": ResourceSupport.REJECTED})
        return declared

    def capability_notes(self) -> dict[str, str]:
        """Why a capability is narrowed from the declaration on this host (for `orcakit flavor
        list --verbose`, `describe` and the certification report)."""
        if self.cgroup_host() is not None:
            return {}
        note = f"not enforced here: {self._cgroup_reason}; to enforce: {cgroups.DELEGATION_FIX}"
        return {"cpu": note, "memory": note}

    def cgroup_host(self) -> cgroups.CgroupHost | None:
        if self._cgroups is False:
            self._cgroups, self._cgroup_reason = cgroups.probe_with_reason(self.config.cgroup_root)
        return self._cgroups

    def validate_snapshot(self, snapshot: PipelineSnapshot) -> None:
        """The contract's checks; a cpu/memory refusal says why this host cannot enforce them
        (no writable cgroup) and how a user gets one."""
        try:
            super().validate_snapshot(snapshot)
        except UnsupportedFeatureError as exc:
            if exc.feature not in ("resources.cpu", "resources.memory") or self.cgroup_host() is not None:
                raise
            raise UnsupportedFeatureError(
                f"{exc.what}: {self._cgroup_reason}",
                feature=exc.feature,
                why="the local flavor enforces cpu and memory with cgroups, and this process cannot create cgroups",
                fix=f"{cgroups.DELEGATION_FIX}; or remove the request from the step's ResourceSettings",
            ) from None

    # -- the runtime's hooks -----------------------------------------------------------------

    def check_snapshot(self, snapshot: PipelineSnapshot, stores: StackStores) -> None:
        """Refuse, before anything runs, what this machine cannot enforce exactly."""
        check_interpreter(self.config.python or sys.executable, self.name)
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

    def submit_pipeline(self, snapshot, base_environment, step_environments, placeholder_run=None):
        if self.config.launcher == "fork" and self.config.fork_server == "client":
            # Before the runtime starts this run's threads (its lease heartbeat): a fork server
            # forked from the client needs a client with no other thread (see ForkServer).
            self._fork_server(StackStores.of(snapshot.stack).log_dir(snapshot.snapshot_id))
        return super().submit_pipeline(snapshot, base_environment, step_environments, placeholder_run)

    def _fork_server(self, log_dir) -> ForkServer:
        return ForkServer.shared(
            self.config.python or sys.executable, dict(os.environ), os.getcwd(), log_dir / "_fork_server.log",
            from_client=self.config.fork_server == "client",
        )

    def prepare_run(self, run: RunContext) -> _LocalRun:
        client_env = dict(os.environ)
        cwd = os.getcwd()
        python = self.config.python or sys.executable
        # Isolated steps of a dynamic run start from its orchestration process: exec, so that
        # no fork server lingers there.
        server = None
        if self.config.launcher == "fork" and not run.isolated:
            server = self._fork_server(run.log_dir)
        return _LocalRun(client_env, cwd, python, server)

    def launch_step(self, run: RunContext, step_name: str, attempt: int) -> StepHandle:
        local: _LocalRun = run.backend
        snapshot = run.snapshot
        spec = snapshot.steps[step_name]
        env = {**local.client_env, **self.step_environment(snapshot, step_name, run.step_environments[step_name], run.run_id, attempt)}
        ledger = leftovers.open_ledger(run.run_id)
        group = self.step_cgroup(snapshot, step_name, attempt)
        if group is not None:
            leftovers.record_cgroup(ledger, group.dirs())
        log = str(run.log_path(step_name))
        if local.server is not None:
            request = {
                "artifact_store": snapshot.stack.artifact_store,
                "snapshot": snapshot.snapshot_id,
                "step": step_name,
                "env": env,
                "cwd": local.cwd,
                "log": log,
                "cgroups": group.procs_files() if group else [],
                "ledger": ledger,
            }
            return local.server.launch(request, group, spec.resources.memory)
        # An exec-ed step needs no ledger line: its environment names the run in /proc.
        return exec_step(self.step_command(snapshot, step_name, local.python), env, local.cwd, log, group, spec.resources.memory)

    def launch_orchestration(self, run: RunContext, environment: dict[str, str]) -> StepHandle:
        local: _LocalRun = run.backend
        command = self.orchestration_command(run.snapshot, local.python)
        return exec_step(command, {**local.client_env, **environment}, local.cwd, str(run.log_path("_orchestration")), None, None)

    def enforcement_environment(self, spec: StepSpec) -> dict[str, str]:
        """GPUs: exactly the requested devices are visible."""
        count = spec.resources.gpu_count
        if count is None:
            return {}
        return {"CUDA_VISIBLE_DEVICES": ",".join(str(i) for i in range(count))}

    def run_metadata(self, run: RunContext) -> dict[str, Any]:
        return {"launcher": self.config.launcher}

    def finish_run(self, run: RunContext) -> None:
        """Every attempt settled and released its cgroup: the run's ledger has served."""
        leftovers.remove_ledger(run.run_id)

    def kill_run(self, run_id: str) -> None:
        """Kill, from any process on this host, what the run still has here: its step processes
        (and whatever they started) and its cgroups, found through the run's ledger, the run-ID
        variable and the cgroups' members (see :mod:`.leftovers`). The driver, if alive, records
        its killed attempts as stopped; a dead driver's run is ended by whoever reaps it."""
        leftovers.kill(run_id, RUN_ID_ENV)

    def leftover_resources(self, snapshot: PipelineSnapshot, run_id: str) -> list[str]:
        found = []
        host = self.cgroup_host()
        if host is not None:
            prefix = snapshot.snapshot_id[:12]
            for controller in ("cpu", "memory"):
                parent = host.controller_dir(controller) / "orcakit"
                if parent.is_dir():
                    found += [f"cgroup {path}" for path in parent.iterdir() if path.is_dir() and path.name.startswith(prefix)]
        return found + [f"process {pid}" for pid in leftovers.marked_processes(run_id, RUN_ID_ENV)]

    # -- cgroups ----------------------------------------------------------------------------

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
