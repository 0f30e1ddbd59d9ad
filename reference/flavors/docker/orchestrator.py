"""The docker orchestrator: a container runtime backend on the Docker Engine API.

Every step attempt is a container of the step image (see :mod:`.image`) running the step
entrypoint, labelled with the pipeline, snapshot, run, step and attempt. The run's bookkeeping
(scheduler, retries, stop requests through the run store, dynamic runs) is the public runtime's
:class:`~orcakit.reference.ContainerRuntimeOrchestrator`; this module says how the engine runs,
limits, finds, kills and removes containers. Built only on orcakit's public contract and the
public runtime.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import dataclass
from typing import Any

from orcakit import PipelineSnapshot, ResourceSettings, StepSpec, SubmissionError
from orcakit.reference import (
    LABEL_ROLE,
    LABEL_RUN,
    ArtifactStore,
    ContainerRuntimeOrchestrator,
    ContainerSpec,
    RunContext,
    StackStores,
    StepHandle,
    StepImage,
    log_key,
)

from .containers import StepContainer, step_logger
from .engine import connect, engine_address, is_local, local_gpu_count
from .mounts import MountPlan, grant_access, plan_mounts

logger = logging.getLogger("orcakit.docker")

#: The engine refuses CFS quotas under 1 ms per period and memory limits under 6 MiB.
CPU_PERIOD_US = 100_000
MIN_CPU_QUOTA_US = 1_000
MIN_MEMORY_BYTES = 6 * 2**20
#: How long ``stop_run`` from another process waits for the driving process to clean up.
STOP_HANDOVER_SECONDS = 10.0
#: Set in a dynamic pipeline's orchestration container: what its step containers are made of.
IMAGE_ENV = "ORCAKIT_DOCKER_IMAGE"
PYTHON_ENV = "ORCAKIT_DOCKER_PYTHON"
NETWORK_ENV = "ORCAKIT_DOCKER_NETWORK"
WORKDIR_ENV = "ORCAKIT_DOCKER_WORKDIR"
GPUS_ENV = "ORCAKIT_DOCKER_GPUS"


@dataclass(frozen=True)
class _DockerRun:
    """What every container of one run shares."""

    client: Any
    image: StepImage
    mounts: MountPlan
    network_mode: str | None
    working_dir: str | None
    #: Where step logs are copied when the artifact store is not this machine's folder (where
    #: ``log_key`` puts them already); opened once per run.
    log_uploads: ArtifactStore | None


class DockerOrchestrator(ContainerRuntimeOrchestrator):
    #: Docker accepts long names; this keeps `docker ps` readable.
    max_name_length = 136

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._client: Any = None
        self._images: dict[str, StepImage] = {}

    def engine(self) -> Any:
        """The Docker client (connected and pinged once per orchestrator)."""
        if self._client is None:
            pool = 2 * self.config.max_parallelism + 8  # each running step streams logs and waits
            self._client = connect(self.config.docker_host, self.config.engine_timeout, pool)
        return self._client

    def get_image(self, snapshot: PipelineSnapshot, step_name: str | None = None) -> str:
        return self.step_image(snapshot).tag

    def step_image(self, snapshot: PipelineSnapshot) -> StepImage:
        """The snapshot's step image, built if no image with its content hash exists yet."""
        if snapshot.snapshot_id not in self._images:
            if self.config.image:
                self._images[snapshot.snapshot_id] = self._given_image(self.config.image)
            else:
                from .image import ImageBuilder  # not in step containers: they only read the run ID

                builder = ImageBuilder(self.engine(), self.config, engine_address(self.config.docker_host))
                self._images[snapshot.snapshot_id] = builder.ensure(snapshot)
        return self._images[snapshot.snapshot_id]

    # -- the runtime's hooks -----------------------------------------------------------------

    def check_snapshot(self, snapshot: PipelineSnapshot, stores: StackStores) -> None:
        self.check_resources(snapshot)
        # Inside a dynamic run's orchestration container, the client told it the engine's GPUs.
        available = int(os.environ.get(GPUS_ENV) or 0) if os.environ.get(IMAGE_ENV) else None
        self.check_gpus(snapshot, available)

    def prepare_run(self, run: RunContext) -> _DockerRun:
        if self.config.stream_logs:
            echo_step_output()
        client = self.engine()
        stores = run.stores
        if run.isolated:  # in the orchestration container: what the client prepared
            image = StepImage(os.environ[IMAGE_ENV], os.environ.get(PYTHON_ENV) or "python3", False, 0.0)
            network_mode = os.environ.get(NETWORK_ENV) or None
            working_dir = os.environ.get(WORKDIR_ENV) or None
            mounts = self.mount_plan(stores, grant=False)  # granted by the client; new folders inherit it
        else:
            image = self.step_image(run.snapshot)
            network_mode = self.network_mode(stores)
            working_dir = os.getcwd() if stores.relative_paths else None
            mounts = self.mount_plan(stores)
        log_uploads = stores.open_artifact_store() if stores.artifact_root is None and not run.isolated else None
        return _DockerRun(client, image, mounts, network_mode, working_dir, log_uploads)

    def launch_step(self, run: RunContext, step_name: str, attempt: int) -> StepHandle:
        docker: _DockerRun = run.backend
        spec = self.container_spec(run, step_name, attempt, image=docker.image.tag, python=docker.image.python,
                                   working_dir=docker.working_dir)
        def after_exit(handle: StepContainer) -> None:
            if docker.log_uploads is not None and handle.log_path.exists():
                docker.log_uploads.put(log_key(run.snapshot.snapshot_id, handle.step), handle.log_path.read_bytes())

        return StepContainer(
            docker.client, self.create_arguments(spec, docker), step=step_name, attempt=attempt,
            log_path=run.log_path(step_name), memory=spec.resources.memory, after_exit=after_exit,
        )

    def launch_orchestration(self, run: RunContext, environment: dict[str, str]) -> StepHandle:
        """One orchestration container runs the pipeline function live; it starts every step
        as a sibling container on the same engine (the engine's socket is mounted into it, and
        its user gets the socket's group), so it needs nothing but the step image."""
        docker: _DockerRun = run.backend
        engine_volumes, engine_env, groups = self._engine_access()
        env = {
            **self.forwarded_environment(run.stores),
            **environment,
            **engine_env,
            IMAGE_ENV: docker.image.tag,
            PYTHON_ENV: docker.image.python,
            NETWORK_ENV: docker.network_mode or "",
            WORKDIR_ENV: docker.working_dir or "",
            GPUS_ENV: str(self.engine_gpu_count()),
        }
        create = dict(
            image=docker.image.tag, command=self.orchestration_command(run.snapshot, python=docker.image.python),
            name=self.object_name(run.run_id, "orchestration", "0"), environment=env,
            labels=self.labels(run.snapshot, run.run_id, "_orchestration", 1, role="orchestration"), user=self.config.user,
            group_add=groups, network_mode=docker.network_mode, volumes={**docker.mounts.volumes(), **engine_volumes},
            working_dir=docker.working_dir, init=True, detach=True,
        )
        return StepContainer(docker.client, create, step="_orchestration", attempt=1,
                             log_path=run.log_path("_orchestration"), memory=None)

    def enforcement_environment(self, spec: StepSpec) -> dict[str, str]:
        # With no device request no GPU is mapped; 'void' also tells the NVIDIA runtime (and a
        # CUDA image whose ENV says 'all') to expose none.
        return {"NVIDIA_VISIBLE_DEVICES": "void"} if spec.resources.gpu_count == 0 else {}

    def finish_run(self, run: RunContext) -> None:
        self._remove_run_containers(run.backend.client, run.run_id)

    def run_metadata(self, run: RunContext) -> dict[str, Any]:
        docker: _DockerRun = run.backend
        return {
            "image": docker.image.tag,
            "image_built": docker.image.built,
            "image_seconds": round(docker.image.seconds, 3),
            "network_mode": docker.network_mode or "default",
        }

    def kill_steps(self, run_id: str) -> None:
        for container in self._run_containers(self.engine(), run_id):
            if container.labels.get(LABEL_ROLE) == "step":
                try:
                    container.kill()
                except Exception:  # noqa: BLE001 - it ended meanwhile
                    pass

    def kill_run(self, run_id: str) -> None:
        """Another process drives the run (it also sees the stop request in the run store):
        kill the run's containers, give that process time to record and clean up, and remove
        what is still there if it does not (its driver may have died)."""
        client = self.engine()
        for container in self._run_containers(client, run_id):
            if container.labels.get(LABEL_ROLE) in ("step", "orchestration") and container.status == "running":
                try:
                    container.kill()
                except Exception:  # noqa: BLE001 - it ended meanwhile
                    pass
        deadline = time.monotonic() + STOP_HANDOVER_SECONDS
        while self._run_containers(client, run_id) and time.monotonic() < deadline:
            time.sleep(0.25)
        if self._run_containers(client, run_id):
            logger.warning(
                "the containers of run %s are still there %.0fs after the stop (their driver may have exited); removing them",
                run_id, STOP_HANDOVER_SECONDS,
            )
            self._remove_run_containers(client, run_id)

    def leftover_resources(self, snapshot: PipelineSnapshot, run_id: str) -> list[str] | None:
        """Containers, networks and volumes still labelled with the run."""
        try:
            client = self.engine()
        except SubmissionError:
            return None
        label = {"label": f"{LABEL_RUN}={run_id}"}
        leftovers = [f"container {c.name} ({c.status})" for c in client.containers.list(all=True, ignore_removed=True, filters=label)]
        leftovers += [f"network {n.name}" for n in client.networks.list(filters=label)]
        leftovers += [f"volume {v.name}" for v in client.volumes.list(filters=label)]
        return leftovers

    # -- the container of a step attempt -----------------------------------------------------

    def create_arguments(self, spec: ContainerSpec, docker: _DockerRun) -> dict[str, Any]:
        """The ``containers.create`` arguments of a :class:`~orcakit.reference.ContainerSpec`."""
        return dict(
            image=spec.image,
            command=spec.command,
            name=spec.name,
            # the step's environment exactly (no shell in between)
            environment=spec.environment,
            labels=spec.labels,
            user=self.config.user,
            network_mode=docker.network_mode,
            volumes=docker.mounts.volumes(),
            working_dir=spec.working_dir,
            # An init process as PID 1: signals (a step's own SIGKILL, Ctrl-C) behave as for a
            # process anywhere else, and zombies are reaped.
            init=True,
            detach=True,
            **self.translate_resources(spec.resources),
        )

    def translate_resources(self, resources: ResourceSettings) -> dict[str, Any]:
        """Engine-enforced limits for a step's ResourceSettings."""
        limits: dict[str, Any] = {}
        if resources.cpu_count is not None:
            limits["cpu_period"] = CPU_PERIOD_US
            limits["cpu_quota"] = max(MIN_CPU_QUOTA_US, round(resources.cpu_count * CPU_PERIOD_US))
        if resources.memory_bytes is not None:
            # Swap equal to the limit means no swap at all: the limit is the step's memory.
            limits["mem_limit"] = resources.memory_bytes
            limits["memswap_limit"] = resources.memory_bytes
        if resources.gpu_count:
            from docker.types import DeviceRequest

            limits["device_requests"] = [DeviceRequest(count=resources.gpu_count, capabilities=[["gpu"]])]
        return limits

    def check_resources(self, snapshot: PipelineSnapshot) -> None:
        """Refuse, before anything runs, what the engine would refuse at a step's start."""
        for spec in snapshot.steps.values():
            resources = spec.resources
            if resources.cpu_count is not None and round(resources.cpu_count * CPU_PERIOD_US) < MIN_CPU_QUOTA_US:
                raise SubmissionError(
                    f"step {spec.name!r} requests cpu_count={resources.cpu_count}; the Docker engine's smallest CPU quota is 0.01 CPU",
                    fix="request cpu_count >= 0.01",
                )
            if resources.memory_bytes is not None and resources.memory_bytes < MIN_MEMORY_BYTES:
                raise SubmissionError(
                    f"step {spec.name!r} requests memory={resources.memory}; the Docker engine's smallest memory limit is 6MiB",
                    fix="request at least 6MiB (a Python step needs far more: 128MiB is a sensible minimum)",
                )

    def engine_gpu_count(self) -> int:
        if self.config.gpus is not None:
            return self.config.gpus
        return local_gpu_count() if is_local(self.config.docker_host) else 0

    def check_gpus(self, snapshot: PipelineSnapshot, available: int | None = None) -> None:
        available = self.engine_gpu_count() if available is None else available
        for spec in snapshot.steps.values():
            if (spec.resources.gpu_count or 0) > available:
                raise SubmissionError(
                    f"step {spec.name!r} requests gpu_count={spec.resources.gpu_count}, but the Docker engine at "
                    f"{engine_address(self.config.docker_host)} has {available} GPU(s)",
                    why="the docker flavor enforces GPUs with device requests, and the engine can only hand out the GPUs it has",
                    fix="lower gpu_count, or run on an engine with enough GPUs (set the orchestrator's gpus= if it has them but they are not local)",
                )

    def mount_plan(self, stores: StackStores, grant: bool = True) -> MountPlan:
        """Bind mounts for the stores on this machine's disk, made writable for the container's user."""
        plan = plan_mounts(stores.artifact_root, stores.sqlite_file)
        uid_gid = self._numeric_user()
        if not grant:
            return plan
        if uid_gid is not None:
            grant_access(plan, *uid_gid)
        elif self.config.user is not None and plan.folders:
            logger.warning(
                "step containers run as %r (not numeric): make sure it may write %s",
                self.config.user, ", ".join(map(str, plan.folders)),
            )
        return plan

    def network_mode(self, stores: StackStores) -> str | None:
        """The configured network, else 'host' when a store listens on this machine's loopback
        (from a bridge network, 127.0.0.1 is the container itself), else the engine's default."""
        if self.config.network_mode:
            return self.config.network_mode
        return "host" if stores.on_loopback() else None

    # -- helpers -----------------------------------------------------------------------------

    def _engine_access(self) -> tuple[dict[str, dict[str, str]], dict[str, str], list[int]]:
        """``(volumes, environment, groups)`` that let a container use this engine."""
        address = engine_address(self.config.docker_host)
        if address.startswith("unix://"):
            path = address[len("unix://"):]
            return {path: {"bind": path, "mode": "rw"}}, {}, [os.stat(path).st_gid]
        return {}, {"DOCKER_HOST": address}, []

    def _numeric_user(self) -> tuple[int, int] | None:
        user = self.config.user
        if user is None:
            return None
        uid, _, gid = user.partition(":")
        if not uid.isdigit() or (gid and not gid.isdigit()):
            return None
        return int(uid), int(gid or uid)

    def _given_image(self, tag: str) -> StepImage:
        from docker.errors import ImageNotFound

        try:
            self.engine().images.get(tag)
        except ImageNotFound:
            raise SubmissionError(
                f"the step image {tag!r} (orchestrator config image) is not present on the Docker engine at "
                f"{engine_address(self.config.docker_host)}",
                fix="build or load it there, or unset `image` so that the flavor builds one from parent_image",
            ) from None
        return StepImage(tag, "python3", False, 0.0)

    def _run_containers(self, client: Any, run_id: str) -> list:
        try:
            return client.containers.list(all=True, ignore_removed=True, filters={"label": f"{LABEL_RUN}={run_id}"})
        except Exception:  # noqa: BLE001 - the engine may be restarting
            return []

    def _remove_run_containers(self, client: Any, run_id: str, timeout: float = 15.0) -> None:
        """Remove whatever is still labelled with the run (a container whose removal is still
        under way, a stop request) and wait until it is gone, so nothing is left behind (CLEAN-1)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                containers = client.containers.list(all=True, ignore_removed=True, filters={"label": f"{LABEL_RUN}={run_id}"})
            except Exception as exc:  # noqa: BLE001
                logger.warning("could not list the containers of run %s to remove them: %s", run_id, exc)
                return
            if not containers:
                return
            if time.monotonic() > deadline:
                logger.warning("containers of run %s are still there after %.0fs: %s", run_id, timeout,
                               ", ".join(c.name for c in containers))
                return
            for container in containers:
                try:
                    container.remove(force=True)
                except Exception:  # noqa: BLE001 - already gone, or its removal is under way
                    pass
            time.sleep(0.1)


def echo_step_output() -> None:
    """Make step output reach the terminal: when nothing handles the step logger's records (no
    logging configured), give it a plain stderr handler of its own."""
    if not step_logger.hasHandlers():
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        step_logger.addHandler(handler)
    if step_logger.getEffectiveLevel() > logging.INFO:
        step_logger.setLevel(logging.INFO)
