"""The docker orchestrator: a ``ContainerizedOrchestrator`` on the Docker Engine API.

Every step attempt is a container of the step image (see :mod:`.image`) running the step
entrypoint, labelled with the pipeline, snapshot, run, step and attempt; the shared
:class:`~orcakit.reference.DagScheduler` decides when each starts. Built only on
orcakit's public contract and the shared reference runtime.
"""

from __future__ import annotations

import fnmatch
import hashlib
import ipaddress
import logging
import os
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlparse

from orcakit import (
    ContainerizedOrchestrator,
    ExecutionStatus,
    PipelineSnapshot,
    RunIdError,
    SubmissionError,
    SubmissionResult,
)

from ..._runtime.artifact_store import LocalArtifactStore, log_key, open_artifact_store
from ..._runtime.run_store import RunStore
from ..._runtime.scheduler import DagScheduler
from . import RUN_ID_ENV
from .containers import StepContainer, step_logger
from .engine import connect, engine_address, is_local, local_gpu_count
from .image import ImageBuilder, StepImage
from .mounts import MountPlan, grant_access, plan_mounts

logger = logging.getLogger("orcakit.docker")

LABEL_MANAGED = "orcakit.managed"
LABEL_ROLE = "orcakit.role"
LABEL_PIPELINE = "orcakit.pipeline"
LABEL_SNAPSHOT = "orcakit.snapshot"
LABEL_RUN = "orcakit.run"
LABEL_STEP = "orcakit.step"
LABEL_ATTEMPT = "orcakit.attempt"
#: The engine refuses CFS quotas under 1 ms per period and memory limits under 6 MiB.
CPU_PERIOD_US = 100_000
MIN_CPU_QUOTA_US = 1_000
MIN_MEMORY_BYTES = 6 * 2**20
#: How often the process that drives a run looks for a stop request left by another process.
STOP_POLL_SECONDS = 0.5
#: How long ``stop_run`` from another process waits for the driving process to take its request.
STOP_HANDOVER_SECONDS = 10.0
#: Set in a dynamic pipeline's orchestration container: what its step containers are made of.
IMAGE_ENV = "ORCAKIT_DOCKER_IMAGE"
PYTHON_ENV = "ORCAKIT_DOCKER_PYTHON"
NETWORK_ENV = "ORCAKIT_DOCKER_NETWORK"
WORKDIR_ENV = "ORCAKIT_DOCKER_WORKDIR"
GPUS_ENV = "ORCAKIT_DOCKER_GPUS"


class _ActiveRun:
    """A run this process drives: how to stop it, and whether a stop was asked for."""

    def __init__(self, stop: Callable[[], None]) -> None:
        self._stop = stop
        self.stop_requested = False

    def stop(self) -> None:
        self.stop_requested = True
        self._stop()


class DockerOrchestrator(ContainerizedOrchestrator):
    #: Runs this process is driving, by orchestrator run ID (for stop_run and Ctrl-C).
    _active: dict[str, _ActiveRun] = {}
    #: The scheduler that drives a static run.
    scheduler_class = DagScheduler

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._client: Any = None
        self._images: dict[str, StepImage] = {}

    # -- contract ----------------------------------------------------------------------------

    def get_orchestrator_run_id(self) -> str:
        try:
            return os.environ[RUN_ID_ENV]
        except KeyError:
            raise RunIdError(
                f"{RUN_ID_ENV} is not set, so this code is not running inside a step container the docker orchestrator started",
                fix="call get_orchestrator_run_id() from inside a running step",
            ) from None

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
                builder = ImageBuilder(self.engine(), self.config, engine_address(self.config.docker_host))
                self._images[snapshot.snapshot_id] = builder.ensure(snapshot)
        return self._images[snapshot.snapshot_id]

    def submit_pipeline(self, snapshot, base_environment, step_environments, placeholder_run=None) -> SubmissionResult:
        self.check_resources(snapshot)
        if self.config.stream_logs:
            echo_step_output()
        client = self.engine()
        self.check_gpus(snapshot)
        image = self.step_image(snapshot)
        mounts = self.mount_plan(snapshot)
        network_mode = self.network_mode(snapshot)
        working_dir = os.getcwd() if self._relative_stores(snapshot) else None
        run_id = self.new_run_id(snapshot)
        store = RunStore(snapshot.stack.run_store)
        # The steps take over this submission's placeholder (its ID travels in the base
        # environment), so the scheduler's records and the steps' land in the same run.
        run_uuid = placeholder_run.id if placeholder_run is not None else store.get_or_create_run(
            snapshot.snapshot_id, run_id, snapshot.pipeline_name, self.flavor.name
        ).id
        logs = self._log_dir(snapshot)
        forwarded = self.forwarded_environment(snapshot)
        artifacts = open_artifact_store(snapshot.stack.artifact_store, snapshot.stack.artifact_store_options)
        upload_logs = not isinstance(artifacts, LocalArtifactStore)
        active: _ActiveRun | None = None

        def after_exit(handle: StepContainer) -> None:
            if upload_logs and handle.log_path.exists():
                artifacts.put(log_key(snapshot.snapshot_id, handle.step), handle.log_path.read_bytes())
            # A stop request from another process: make the scheduler stop the run before it
            # sees this (killed) attempt, so the attempt counts as STOPPED, not FAILED.
            if handle.code not in (0, 1) and active is not None and not active.stop_requested and self._stop_requested(client, run_id):
                active.stop()

        def launch(step_name: str, attempt: int) -> StepContainer:
            spec = snapshot.steps[step_name]
            create = self.step_container_spec(
                snapshot, step_name, attempt, run_id, {**forwarded, **step_environments[step_name]},
                image.tag, image.python, network_mode, mounts, working_dir,
            )
            return StepContainer(
                client, create, step=step_name, attempt=attempt, log_path=logs / f"{step_name}.log",
                memory=spec.resources.memory, after_exit=after_exit,
            )

        scheduler = self.scheduler_class(snapshot, store, run_uuid, launch, max_parallelism=self.config.max_parallelism)
        active = _ActiveRun(scheduler.stop)

        def watch_for_stop_requests() -> None:
            while not scheduler.finished.wait(STOP_POLL_SECONDS):
                if not active.stop_requested and self._stop_requested(client, run_id):
                    active.stop()

        def on_finish() -> None:
            self._remove_run_containers(client, run_id)
            self._active.pop(run_id, None)

        self._active[run_id] = active
        wait_for_completion = scheduler.start(name=f"orcakit-docker-{run_id[:8]}", on_finish=on_finish)
        threading.Thread(target=watch_for_stop_requests, name=f"orcakit-docker-stop-{run_id[:8]}", daemon=True).start()

        return SubmissionResult(
            wait_for_completion=wait_for_completion,
            metadata={
                "orchestrator_run_id": run_id,
                "image": image.tag,
                "image_built": image.built,
                "image_seconds": round(image.seconds, 3),
                "network_mode": network_mode or "default",
                "logs": str(logs),
            },
        )

    def stop_run(self, run_id: str, graceful: bool = False) -> None:
        """Stop a run: running step containers are killed (their steps end STOPPED) and no
        pending step starts. Works from the process that drives the run (Ctrl-C) and from any
        other (``orcakit runs stop``): that one leaves a stop request on the engine (a container
        labelled with the run and the role ``stop-request``) which the driving process takes."""
        active = self._active.get(run_id)
        if active is not None:
            active.stop()
            return
        from docker.errors import APIError

        client = self.engine()
        containers = client.containers.list(all=True, ignore_removed=True, filters={"label": f"{LABEL_RUN}={run_id}"})
        steps = [c for c in containers if c.labels.get(LABEL_ROLE) in ("step", "orchestration")]
        labels = {LABEL_MANAGED: "true", LABEL_RUN: run_id, LABEL_ROLE: "stop-request"}
        if steps:
            labels[LABEL_SNAPSHOT] = steps[0].labels.get(LABEL_SNAPSHOT, "")
        try:
            client.containers.create(
                steps[0].attrs.get("Image") if steps else self.config.parent_image, command=["true"],
                name=f"orcakit-stop-{run_id}"[:200], labels=labels, network_disabled=True,
            )
        except APIError as exc:
            if exc.status_code != 409:  # 409: a stop request is already there
                raise SubmissionError(f"could not leave a stop request for run {run_id} on the engine: {exc.explanation or exc}") from None
        for container in containers:
            if container.labels.get(LABEL_ROLE) in ("step", "orchestration") and container.status == "running":
                try:
                    container.kill()
                except APIError:
                    pass  # it ended meanwhile
        deadline = time.monotonic() + STOP_HANDOVER_SECONDS
        while time.monotonic() < deadline:
            if not self._stop_requested(client, run_id):
                return  # the driving process took the request (and cleaned up)
            time.sleep(0.25)
        logger.warning(
            "no process took the stop request of run %s within %.0fs (its driver may have exited); removing its containers",
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

    # -- dynamic pipelines -------------------------------------------------------------------

    def submit_dynamic_pipeline(self, snapshot, environment, placeholder_run=None) -> SubmissionResult:
        """One orchestration container runs the pipeline function live; it starts every step
        as a sibling container on the same engine (the engine's socket is mounted into it, and
        its user gets the socket's group), so it needs nothing but the step image."""
        if self.config.stream_logs:
            echo_step_output()
        client = self.engine()
        image = self.step_image(snapshot)
        mounts = self.mount_plan(snapshot)
        network_mode = self.network_mode(snapshot)
        working_dir = os.getcwd() if self._relative_stores(snapshot) else None
        run_id = self.new_run_id(snapshot)
        logs = self._log_dir(snapshot)
        engine_volumes, engine_env, groups = self._engine_access()
        env = {
            **self.forwarded_environment(snapshot),
            **environment,
            **engine_env,
            IMAGE_ENV: image.tag,
            PYTHON_ENV: image.python,
            NETWORK_ENV: network_mode or "",
            WORKDIR_ENV: working_dir or "",
            GPUS_ENV: str(self.engine_gpu_count()),
            RUN_ID_ENV: run_id,
        }
        labels = {**self.labels(snapshot, run_id, "_orchestration", 1), LABEL_ROLE: "orchestration"}
        create = dict(
            image=image.tag, command=self.orchestration_command(snapshot, python=image.python),
            name=f"orcakit-{run_id[:12]}-orchestration", environment=env, labels=labels, user=self.config.user,
            group_add=groups, network_mode=network_mode, volumes={**mounts.volumes(), **engine_volumes},
            working_dir=working_dir, init=True, detach=True,
        )
        done = threading.Event()
        handle = StepContainer(client, create, step="_orchestration", attempt=1, log_path=logs / "_orchestration.log", memory=None)

        def stop() -> None:
            handle.kill()  # first, so that it starts no further step
            for container in self._run_containers(client, run_id):
                if container.labels.get(LABEL_ROLE) == "step":
                    try:
                        container.kill()
                    except Exception:  # noqa: BLE001 - it ended meanwhile
                        pass

        active = _ActiveRun(stop)

        def watch_for_stop_requests() -> None:
            while not done.wait(STOP_POLL_SECONDS):
                if not active.stop_requested and self._stop_requested(client, run_id):
                    active.stop()

        def drive() -> None:
            try:
                code = handle.wait()
                self._settle_dynamic_run(snapshot, run_id, handle, code, active.stop_requested)
            finally:
                self._remove_run_containers(client, run_id)
                self._active.pop(run_id, None)
                done.set()

        self._active[run_id] = active
        threading.Thread(target=watch_for_stop_requests, name=f"orcakit-docker-stop-{run_id[:8]}", daemon=True).start()
        threading.Thread(target=drive, name=f"orcakit-docker-{run_id[:8]}", daemon=True).start()
        return SubmissionResult(
            wait_for_completion=done.wait,
            metadata={"orchestrator_run_id": run_id, "image": image.tag, "image_built": image.built, "logs": str(logs)},
        )

    def run_isolated_step(self, snapshot: PipelineSnapshot, step_name: str, environment: dict[str, str]) -> None:
        """Inside the orchestration container: one step in its own container, to its end."""
        spec = snapshot.steps[step_name]
        self.check_resources(snapshot)
        gpus = int(os.environ.get(GPUS_ENV) or 0)
        if (spec.resources.gpu_count or 0) > gpus:
            raise SubmissionError(f"step {step_name!r} requests gpu_count={spec.resources.gpu_count}, but the Docker engine has {gpus} GPU(s)")
        run_id = self.get_orchestrator_run_id()
        client = self.engine()
        mounts = self.mount_plan(snapshot, grant=False)  # granted by the client; new folders inherit it
        create = self.step_container_spec(
            snapshot, step_name, 1, run_id, {**self.forwarded_environment(snapshot), **environment},
            os.environ[IMAGE_ENV], os.environ.get(PYTHON_ENV) or "python3", os.environ.get(NETWORK_ENV) or None,
            mounts, os.environ.get(WORKDIR_ENV) or None,
        )
        handle = StepContainer(client, create, step=step_name, attempt=1, log_path=self._log_dir(snapshot) / f"{step_name}.log",
                               memory=spec.resources.memory)
        code = handle.wait()
        if code == 0:
            return
        store = RunStore(snapshot.stack.run_store, create_tables=False)
        try:
            run = store.find_run(snapshot.snapshot_id, run_id)
            record = store.step(run.id, step_name) if run is not None else None
            if run is not None and (record is None or not record.status.is_finished):
                # The step could not record its own end (killed, OOM-killed, never started).
                store.finish_attempt(run.id, step_name, max(1, record.attempts if record else 1), succeeded=False,
                                     total_attempts=1, reason=handle.describe_exit(code))
        finally:
            store.close()

    def _settle_dynamic_run(self, snapshot: PipelineSnapshot, run_id: str, handle: StepContainer, code: int, stopped: bool) -> None:
        """After the orchestration container ended: a run it could not finalize (killed,
        stopped, crashed) still ends in a terminal status, and so do its unfinished steps."""
        store = RunStore(snapshot.stack.run_store, create_tables=False)
        try:
            run = store.find_run(snapshot.snapshot_id, run_id)
            if run is None or run.status.is_finished:
                return
            status = ExecutionStatus.STOPPED if stopped else ExecutionStatus.FAILED
            reason = "stopped" if stopped else f"the orchestration environment ended: {handle.describe_exit(code)}"
            unfinished = [name for name, step in store.steps(run.id).items() if not step.status.is_finished]
            if unfinished:
                store.mark_steps(run.id, unfinished, status, reason)
            store.set_run_status(run.id, status, reason=reason)
        finally:
            store.close()

    def _engine_access(self) -> tuple[dict[str, dict[str, str]], dict[str, str], list[int]]:
        """``(volumes, environment, groups)`` that let a container use this engine."""
        address = engine_address(self.config.docker_host)
        if address.startswith("unix://"):
            path = address[len("unix://"):]
            return {path: {"bind": path, "mode": "rw"}}, {}, [os.stat(path).st_gid]
        return {}, {"DOCKER_HOST": address}, []

    # -- the pieces a run is made of ---------------------------------------------------------

    def step_container_spec(
        self, snapshot: PipelineSnapshot, step_name: str, attempt: int, run_id: str, environment: dict[str, str],
        image: str, python: str, network_mode: str | None, mounts: MountPlan, working_dir: str | None,
    ) -> dict[str, Any]:
        """The ``containers.create`` arguments of one step attempt."""
        spec = snapshot.steps[step_name]
        return dict(
            image=image,
            command=self.step_command(snapshot, step_name, python=python),
            name=container_name(run_id, step_name, attempt),
            # the step's environment exactly (no shell in between), then what the flavor enforces
            environment={**environment, **self._gpu_environment(spec), RUN_ID_ENV: run_id},
            labels=self.labels(snapshot, run_id, step_name, attempt),
            user=self.config.user,
            network_mode=network_mode,
            volumes=mounts.volumes(),
            working_dir=working_dir,
            # An init process as PID 1: signals (a step's own SIGKILL, Ctrl-C) behave as for a
            # process anywhere else, and zombies are reaped.
            init=True,
            detach=True,
            **self.container_resources(spec.resources),
        )

    def new_run_id(self, snapshot: PipelineSnapshot) -> str:
        """A fresh run ID per submission: a Docker engine has no job object to take one from."""
        return uuid.uuid4().hex

    def labels(self, snapshot: PipelineSnapshot, run_id: str, step_name: str, attempt: int) -> dict[str, str]:
        return {
            LABEL_MANAGED: "true",
            LABEL_ROLE: "step",
            LABEL_PIPELINE: snapshot.pipeline_name,
            LABEL_SNAPSHOT: snapshot.snapshot_id,
            LABEL_RUN: run_id,
            LABEL_STEP: step_name,
            LABEL_ATTEMPT: str(attempt),
        }

    def container_resources(self, resources) -> dict[str, Any]:
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

    def check_gpus(self, snapshot: PipelineSnapshot) -> None:
        available = self.engine_gpu_count()
        for spec in snapshot.steps.values():
            if (spec.resources.gpu_count or 0) > available:
                raise SubmissionError(
                    f"step {spec.name!r} requests gpu_count={spec.resources.gpu_count}, but the Docker engine at "
                    f"{engine_address(self.config.docker_host)} has {available} GPU(s)",
                    why="the docker flavor enforces GPUs with device requests, and the engine can only hand out the GPUs it has",
                    fix="lower gpu_count, or run on an engine with enough GPUs (set the orchestrator's gpus= if it has them but they are not local)",
                )

    def mount_plan(self, snapshot: PipelineSnapshot, grant: bool = True) -> MountPlan:
        """Bind mounts for the local stores, made writable for the container's user."""
        artifact_root = None
        if not snapshot.stack.artifact_store.startswith("s3://"):
            artifact_root = open_artifact_store(snapshot.stack.artifact_store).root
        sqlite_file = None
        if snapshot.stack.run_store.startswith("sqlite"):
            from sqlalchemy.engine import make_url

            database = make_url(snapshot.stack.run_store).database
            if database and database != ":memory:":
                sqlite_file = Path(database).expanduser().resolve()
            else:
                raise SubmissionError(
                    f"run store {snapshot.stack.run_store!r} is an in-memory database, which step containers cannot share",
                    fix="use a SQLite file (sqlite:///path/runs.db) or PostgreSQL",
                )
        plan = plan_mounts(artifact_root, sqlite_file)
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

    def network_mode(self, snapshot: PipelineSnapshot) -> str | None:
        """The configured network, else 'host' when a store listens on this machine's loopback
        (from a bridge network, 127.0.0.1 is the container itself), else the engine's default."""
        if self.config.network_mode:
            return self.config.network_mode
        hosts = []
        if not snapshot.stack.run_store.startswith("sqlite"):
            from sqlalchemy.engine import make_url

            hosts.append(make_url(snapshot.stack.run_store).host)
        if snapshot.stack.artifact_store.startswith("s3://"):
            endpoint = snapshot.stack.artifact_store_options.get("endpoint_url") or os.environ.get("AWS_ENDPOINT_URL")
            if endpoint:
                hosts.append(urlparse(endpoint).hostname)
        return "host" if any(_is_loopback(host) for host in hosts) else None

    def forwarded_environment(self, snapshot: PipelineSnapshot) -> dict[str, str]:
        """Client variables the config forwards (S3 credentials...), and the S3 endpoint and
        credentials of the artifact store's options (the entrypoint reads them from the environment)."""
        forwarded = {
            key: value for key, value in os.environ.items()
            if any(fnmatch.fnmatchcase(key, pattern) for pattern in self.config.forward_environment)
        }
        if snapshot.stack.artifact_store.startswith("s3://"):
            options = snapshot.stack.artifact_store_options
            for option, variable in (("endpoint_url", "AWS_ENDPOINT_URL"), ("region_name", "AWS_DEFAULT_REGION"),
                                     ("aws_access_key_id", "AWS_ACCESS_KEY_ID"), ("aws_secret_access_key", "AWS_SECRET_ACCESS_KEY")):
                if options.get(option) and variable not in forwarded:
                    forwarded[variable] = str(options[option])
        return forwarded

    # -- helpers -----------------------------------------------------------------------------

    def _gpu_environment(self, spec) -> dict[str, str]:
        # With no device request no GPU is mapped; 'void' also tells the NVIDIA runtime (and a
        # CUDA image whose ENV says 'all') to expose none.
        return {"NVIDIA_VISIBLE_DEVICES": "void"} if spec.resources.gpu_count == 0 else {}

    def _numeric_user(self) -> tuple[int, int] | None:
        user = self.config.user
        if user is None:
            return None
        uid, _, gid = user.partition(":")
        if not uid.isdigit() or (gid and not gid.isdigit()):
            return None
        return int(uid), int(gid or uid)

    def _relative_stores(self, snapshot: PipelineSnapshot) -> bool:
        stack = snapshot.stack
        paths = []
        if not stack.artifact_store.startswith("s3://"):
            paths.append(stack.artifact_store.removeprefix("file://"))
        if stack.run_store.startswith("sqlite"):
            from sqlalchemy.engine import make_url

            paths.append(make_url(stack.run_store).database or "")
        return any(path and not os.path.isabs(os.path.expanduser(path)) for path in paths)

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

    def _stop_requested(self, client: Any, run_id: str) -> bool:
        try:
            # sparse: existence is all that matters, and it saves an inspect per container
            return bool(client.containers.list(
                all=True, sparse=True, filters={"label": [f"{LABEL_RUN}={run_id}", f"{LABEL_ROLE}=stop-request"]}
            ))
        except Exception:  # noqa: BLE001 - the engine may be restarting; ask again later
            return False

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

    def _log_dir(self, snapshot: PipelineSnapshot) -> Path:
        store = open_artifact_store(snapshot.stack.artifact_store, snapshot.stack.artifact_store_options)
        if isinstance(store, LocalArtifactStore):
            path = store.root / Path(log_key(snapshot.snapshot_id, "x")).parent
        else:
            path = Path(os.environ.get("ORCAKIT_HOME", Path.home() / ".orcakit")) / "logs" / snapshot.snapshot_id
        path.mkdir(parents=True, exist_ok=True)
        return path


def echo_step_output() -> None:
    """Make step output reach the terminal: when nothing handles the step logger's records (no
    logging configured), give it a plain stderr handler of its own."""
    if not step_logger.hasHandlers():
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        step_logger.addHandler(handler)
    if step_logger.getEffectiveLevel() > logging.INFO:
        step_logger.setLevel(logging.INFO)


def container_name(run_id: str, step_name: str, attempt: int) -> str:
    """``orcakit-<run>-<step>-<attempt>``: unique per attempt, readable in `docker ps`."""
    if len(step_name) > 120:  # keep names short; the hash keeps long look-alike names apart
        step_name = f"{step_name[:100]}-{hashlib.sha256(step_name.encode()).hexdigest()[:12]}"
    return f"orcakit-{run_id[:12]}-{step_name}-{attempt}"


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
