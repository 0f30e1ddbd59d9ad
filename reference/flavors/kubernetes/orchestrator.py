"""The kubernetes orchestrator: a container runtime backend on the Kubernetes API.

Static pipelines: the client creates one Secret (every secret-looking value the run needs) and
an orchestrator **Job**; the Job's UID is the run ID. Its pod (:mod:`.driver`) drives the DAG
with the runtime's scheduler, one pod per step attempt (``launch_step``), at most
``max_parallelism`` at once. Step pods have deterministic names (run, step, attempt), so an
orchestrator pod that the Job restarts after a crash finds the same run ID, adopts the pods of
the attempts its predecessor started instead of starting them again, and carries on.
Dynamic pipelines: an orchestration Job runs the pipeline function and starts step pods the
same way. Cron schedules are CronJobs whose Jobs are orchestrator Jobs.
Built only on orcakit's public contract and the public runtime.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from orcakit import (
    PLACEHOLDER_RUN_ENV,
    SNAPSHOT_ID_ENV,
    PipelineSnapshot,
    ResourceSettings,
    StepSpec,
    SubmissionError,
    SubmissionResult,
    UnsupportedFeatureError,
    seal,
)
from orcakit.reference import (
    LABEL_ROLE,
    LABEL_RUN,
    ContainerRuntimeOrchestrator,
    RunContext,
    StackStores,
    StepHandle,
    StepImage,
    log_key,
    open_artifact_store,
    save_snapshot,
)

from . import manifests as m
from .api import PodWatcher, body, connect, ignore_missing, job_finished, status_of, wait_for_job

logger = logging.getLogger("orcakit.kubernetes")

#: Set in orchestrator pods: the step image, its python, the step environments (a Secret).
IMAGE_ENV = "ORCAKIT_KUBERNETES_IMAGE"
PYTHON_ENV = "ORCAKIT_KUBERNETES_PYTHON"
STEP_SECRETS_ENV = "ORCAKIT_KUBERNETES_STEP_SECRETS"  # secret-looking: always through the Secret
#: One environment string may hold at most 128 KiB (Linux's MAX_ARG_STRLEN: beyond it exec fails
#: with E2BIG, "argument list too long", before the orchestrator pod runs a line). Every step's
#: environment together easily exceeds that (ENV-2 allows 32 KiB per value), so the JSON travels
#: in numbered parts: STEP_SECRETS_ENV_0, _1, ... (ASCII JSON: characters are bytes).
STEP_SECRETS_PART = 96 * 1024


def split_step_secrets(sealed: str) -> dict[str, str]:
    """The steps' environments (JSON) as numbered variables, each under the kernel's limit."""
    parts = [sealed[start:start + STEP_SECRETS_PART] for start in range(0, len(sealed), STEP_SECRETS_PART)] or [""]
    return {f"{STEP_SECRETS_ENV}_{index}": part for index, part in enumerate(parts)}


def join_step_secrets(environ: Mapping[str, str]) -> str:
    """:func:`split_step_secrets` undone (in the orchestrator pod)."""
    parts, index = [], 0
    while f"{STEP_SECRETS_ENV}_{index}" in environ:
        parts.append(environ[f"{STEP_SECRETS_ENV}_{index}"])
        index += 1
    if not parts:
        raise KeyError(f"{STEP_SECRETS_ENV}_0: the orchestrator pod was started without its steps' environments")
    return "".join(parts)
#: Set by the downward API in orchestrator pods (see manifests.downward_env).
POD_ENV, NAMESPACE_ENV = m.POD_ENV, m.NAMESPACE_ENV
DRIVER_MODULE = "orcakit.reference.flavors.kubernetes.driver"
LABEL_SCHEDULE = "orcakit.schedule"
#: How long ``kill_run`` waits for the orchestrator pod to record the stop before deleting its Job.
STOP_HANDOVER_SECONDS = 10.0
CLEANUP_SECONDS = 30.0


@dataclass
class _KubeRun:
    """What every pod of one run shares."""

    image: StepImage
    watcher: PodWatcher
    owners: list[dict[str, Any]] = field(default_factory=list)
    owns_watcher: bool = True


class KubernetesOrchestrator(ContainerRuntimeOrchestrator):
    #: DNS-1123 label: pod, job and secret names.
    max_name_length = m.MAX_NAME
    steps_see_local_disk = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._api: Any = None
        self._images: dict[str, StepImage] = {}

    # -- the API ----------------------------------------------------------------------------

    def api(self) -> Any:
        if self._api is None:
            self._api = connect(self.config)
        return self._api

    def core(self) -> Any:
        from kubernetes import client

        return client.CoreV1Api(self.api())

    def batch(self) -> Any:
        from kubernetes import client

        return client.BatchV1Api(self.api())

    @property
    def namespace(self) -> str:
        return self.config.kubernetes_namespace

    def sanitize_name(self, name: str) -> str:
        return m.sanitize_dns1123(name)

    # -- the image ------------------------------------------------------------------------

    def get_image(self, snapshot: PipelineSnapshot, step_name: str | None = None) -> str:
        return self.step_image(snapshot).tag

    def step_image(self, snapshot: PipelineSnapshot) -> StepImage:
        if os.environ.get(IMAGE_ENV):  # inside an orchestrator pod: what the client decided
            return StepImage(os.environ[IMAGE_ENV], os.environ.get(PYTHON_ENV) or "python3", False, 0.0)
        if snapshot.snapshot_id not in self._images:
            if self.config.image:
                self._images[snapshot.snapshot_id] = StepImage(self.config.image, "python3", False, 0.0)
            else:
                self._images[snapshot.snapshot_id] = self.build_image(snapshot)
        return self._images[snapshot.snapshot_id]

    def build_image(self, snapshot: PipelineSnapshot) -> StepImage:
        """The image-building hook: the step image of ``snapshot``, where the cluster's nodes can
        run it. Default: built with the runtime's ImageRecipe on this machine's Docker engine
        (content-hashed tag; nodes that share the engine, as in the test environment, run it
        with imagePullPolicy IfNotPresent). On a real cluster set ``image=`` to a pushed image,
        or override this to build and push to a registry."""
        from .image import build_with_docker

        return build_with_docker(self.config, snapshot)

    # -- checks before anything is created --------------------------------------------------

    def check_snapshot(self, snapshot: PipelineSnapshot, stores: StackStores) -> None:
        for spec in snapshot.steps.values():
            try:
                m.container_resources(spec.resources)
            except ValueError as exc:
                raise SubmissionError(f"step {spec.name!r}: {exc}", fix="request CPUs in whole millicores (e.g. 0.25, 0.333)") from None
        wanted = max((spec.resources.gpu_count or 0 for spec in snapshot.steps.values()), default=0)
        if wanted and not os.environ.get(IMAGE_ENV):
            available = self.gpu_capacity()
            if wanted > available:
                raise SubmissionError(
                    f"a step requests gpu_count={wanted}, but no node of the cluster offers more than {available} "
                    f"{m.GPU_RESOURCE}: the pod could never be scheduled",
                    fix="lower gpu_count, add GPU nodes (NVIDIA device plugin), or set the orchestrator's gpus= if the nodes cannot be listed",
                )

    def gpu_capacity(self) -> int:
        if self.config.gpus is not None:
            return self.config.gpus
        try:
            nodes = body(self.core().list_node(_preload_content=False)).get("items", [])
        except Exception as exc:  # noqa: BLE001 - no permission to list nodes, or no nodes API
            logger.warning("cannot list the cluster's nodes to count GPUs (%s); assuming none", exc)
            return 0
        counts = [int((node.get("status") or {}).get("allocatable", {}).get(m.GPU_RESOURCE, 0) or 0) for node in nodes]
        return max(counts, default=0)

    def translate_resources(self, resources: ResourceSettings) -> dict[str, Any]:
        return m.container_resources(resources)

    def enforcement_environment(self, spec: StepSpec) -> dict[str, str]:
        # no GPU requested: the NVIDIA runtime (and CUDA images whose ENV says 'all') show none
        return {"NVIDIA_VISIBLE_DEVICES": "void"} if not spec.resources.gpu_count else {}

    # -- static pipelines: the orchestrator Job -----------------------------------------------

    def submit_pipeline(self, snapshot, base_environment, step_environments, placeholder_run=None) -> SubmissionResult:
        stores = StackStores.of(snapshot.stack)
        self.check_stores(stores)  # local stores are refused here, before anything is created
        self.check_snapshot(snapshot, stores)
        if snapshot.schedule is not None:
            return self._create_schedule(snapshot, base_environment, step_environments, stores)
        image = self.step_image(snapshot)
        job = self._create_orchestrator(snapshot, image, base_environment, step_environments, stores)
        run_id = job["metadata"]["uid"]
        self._record_run_id(job, run_id)
        name = job["metadata"]["name"]

        def wait_for_completion() -> None:
            try:
                finished = wait_for_job(self.batch(), self.namespace, name)
                if finished is not None and job_finished(finished) == "Failed":
                    logger.warning("orchestrator job %s failed: %s", name, (finished.get("status") or {}).get("conditions"))
            finally:
                self.remove_run(run_id, job_name=name)

        return SubmissionResult(
            wait_for_completion=wait_for_completion,
            metadata={"orchestrator_run_id": run_id, "job": name, "namespace": self.namespace, "image": image.tag,
                      "image_built": image.built, "image_seconds": round(image.seconds, 3)},
        )

    def _orchestrator_environment(self, snapshot: PipelineSnapshot, image: StepImage, base_environment: dict[str, str],
                                  step_environments: dict[str, dict[str, str]], stores: StackStores) -> dict[str, str]:
        forwarded = self.forwarded_environment(stores)
        sealed = json.dumps({step: {**forwarded, **e} for step, e in step_environments.items()})
        return {**forwarded, **base_environment, IMAGE_ENV: image.tag, PYTHON_ENV: image.python,
                **split_step_secrets(sealed)}

    def _template(self, snapshot: PipelineSnapshot, image: StepImage, command: list[str], env: list[dict[str, Any]]) -> dict[str, Any]:
        return dict(image=image.tag, command=command, env=env, settings=self.config.pod_settings(),
                    backoff_limit=self.config.orchestrator_backoff_limit, ttl_seconds=self.config.ttl_seconds_after_finished,
                    image_pull_policy=self.config.image_pull_policy)

    def _base_labels(self, snapshot: PipelineSnapshot, role: str) -> dict[str, str]:
        labels = self.labels(snapshot, "", "_orchestrator", 1, role=role)
        for key in (LABEL_RUN,):
            labels.pop(key)
        return {k: v for k, v in labels.items() if v}

    def _create_orchestrator(self, snapshot, image, base_environment, step_environments, stores, *, command=None,
                             run_id: str | None = None, role: str = "orchestrator") -> dict[str, Any]:
        name = m.dns1123_name("orcakit", snapshot.pipeline_name[:24], uuid.uuid4().hex[:10])
        env = self._orchestrator_environment(snapshot, image, base_environment, step_environments, stores)
        env_list, data = m.split_environment(env, name)
        labels = self._base_labels(snapshot, role)
        if run_id:
            labels[LABEL_RUN] = run_id
        core, batch = self.core(), self.batch()
        core.create_namespaced_secret(self.namespace, m.secret_manifest(name, self.namespace, data, labels), _preload_content=False)
        try:
            command = command or [image.python, "-m", DRIVER_MODULE, *self._entrypoint_args(snapshot)]
            manifest = m.job_manifest(name=name, namespace=self.namespace, labels=labels,
                                      annotations={m.ANNOTATION_PIPELINE: snapshot.pipeline_name},
                                      **self._template(snapshot, image, command, env_list))
            job = body(batch.create_namespaced_job(self.namespace, manifest, _preload_content=False))
        except BaseException:
            ignore_missing(lambda: core.delete_namespaced_secret(name, self.namespace))
            raise
        job.setdefault("apiVersion", "batch/v1")
        job.setdefault("kind", "Job")
        # the Secret goes with the Job (its TTL, a delete): garbage collection by ownerReference
        core.patch_namespaced_secret(name, self.namespace, {"metadata": {"ownerReferences": [m.owner_reference(job)]}},
                                     _preload_content=False)
        return job

    def _record_run_id(self, job: dict[str, Any], run_id: str) -> None:
        """The run ID on the Job itself (label and annotation): any client finds the run's Job."""
        patch = {"metadata": {"labels": {LABEL_RUN: m.label_value(run_id)}, "annotations": {m.ANNOTATION_RUN_ID: run_id}}}
        try:
            self.batch().patch_namespaced_job(job["metadata"]["name"], self.namespace, patch, _preload_content=False)
            # the Job's Secret (same name) too: leftovers and clean-up find it by the run label,
            # not only through garbage collection
            self.core().patch_namespaced_secret(job["metadata"]["name"], self.namespace, patch, _preload_content=False)
        except Exception as exc:  # noqa: BLE001 - the orchestrator pod records it too
            logger.warning("could not label job %s with its run ID: %s", job["metadata"]["name"], exc)

    # -- the runtime's hooks (in orchestrator pods, and for dynamic runs) --------------------

    def prepare_run(self, run: RunContext) -> _KubeRun:
        image = self.step_image(run.snapshot)
        watcher = PodWatcher(self.core(), self.namespace, m.selector({LABEL_RUN: run.run_id, LABEL_ROLE: "step"}))
        return _KubeRun(image=image, watcher=watcher, owners=self.own_job_owners())

    def own_job_owners(self) -> list[dict[str, Any]]:
        """In an orchestrator pod: an ownerReference to its Job (step pods go with it)."""
        job = self.own_job()
        return [m.owner_reference(job)] if job else []

    def own_job(self) -> dict[str, Any] | None:
        pod_name = os.environ.get(POD_ENV)
        if not pod_name:
            return None
        namespace = os.environ.get(NAMESPACE_ENV) or self.namespace
        pod = body(self.core().read_namespaced_pod(pod_name, namespace, _preload_content=False))
        for owner in pod["metadata"].get("ownerReferences") or []:
            if owner.get("kind") == "Job":
                job = body(self.batch().read_namespaced_job(owner["name"], namespace, _preload_content=False))
                job.setdefault("apiVersion", "batch/v1")
                job.setdefault("kind", "Job")
                return job
        labels = pod["metadata"].get("labels") or {}
        name = labels.get("batch.kubernetes.io/job-name") or labels.get("job-name")
        if name:
            job = body(self.batch().read_namespaced_job(name, namespace, _preload_content=False))
            job.setdefault("apiVersion", "batch/v1")
            job.setdefault("kind", "Job")
            return job
        return None

    def launch_step(self, run: RunContext, step_name: str, attempt: int) -> StepHandle:
        kube: _KubeRun = run.backend
        spec = self.container_spec(run, step_name, attempt, image=kube.image.tag, python=kube.image.python)
        pod, data = m.step_pod_manifest(
            name=spec.name, namespace=self.namespace, image=spec.image, command=spec.command, environment=spec.environment,
            labels=spec.labels, resources=spec.resources, settings=self.config.pod_settings(step_name), secret_name=spec.name,
            image_pull_policy=self.config.image_pull_policy, owners=kube.owners,
            annotations={m.ANNOTATION_STEP: step_name, m.ANNOTATION_PIPELINE: run.snapshot.pipeline_name,
                         m.ANNOTATION_RUN_ID: run.run_id},
        )
        core = self.core()
        secret = m.secret_manifest(spec.name, self.namespace, data, spec.labels, kube.owners)
        try:
            core.create_namespaced_secret(self.namespace, secret, _preload_content=False)
        except Exception as exc:  # noqa: BLE001
            if status_of(exc) != 409:
                raise
            core.replace_namespaced_secret(spec.name, self.namespace, secret, _preload_content=False)
        try:
            created = body(core.create_namespaced_pod(self.namespace, pod, _preload_content=False))
        except Exception as exc:  # noqa: BLE001
            if status_of(exc) != 409:
                raise
            # a restarted orchestrator pod: the attempt was started before the crash; adopt it
            created = body(core.read_namespaced_pod(spec.name, self.namespace, _preload_content=False))
            logger.info("adopting pod %s (started before this orchestrator pod)", spec.name)
        kube.watcher.saw(created)
        return StepPod(self, run, step_name, attempt, spec.name, kube)

    def launch_orchestration(self, run: RunContext, environment: dict[str, str]) -> StepHandle:
        """A dynamic pipeline's orchestration pod, as a Job (restarted on a crash; the run ID it
        carries, recorded on the Job, stays the same)."""
        kube: _KubeRun = run.backend
        image = kube.image
        job = self._create_orchestrator(
            run.snapshot, image, environment, {}, run.stores, run_id=run.run_id, role="orchestration",
            command=self.orchestration_command(run.snapshot, python=image.python),
        )
        self._record_run_id(job, run.run_id)
        return OrchestrationJob(self, job["metadata"]["name"])

    def run_metadata(self, run: RunContext) -> dict[str, Any]:
        image = run.backend.image
        return {"image": image.tag, "image_built": image.built, "image_seconds": round(image.seconds, 3), "namespace": self.namespace}

    def finish_run(self, run: RunContext) -> None:
        kube: _KubeRun | None = run.backend
        if kube is not None and kube.owns_watcher:
            kube.watcher.close()
        if run.isolated:
            return
        if os.environ.get(POD_ENV):  # the orchestrator pod: its step pods are done with
            self._delete_labelled(run.run_id, roles=("step",))
        else:  # the client of a dynamic run: everything
            self.remove_run(run.run_id)

    def kill_steps(self, run_id: str) -> None:
        self._delete_labelled(run_id, roles=("step",), secrets=False)

    def kill_run(self, run_id: str) -> None:
        """Ask the run's orchestrator pod to stop (an annotation on its Job, which it watches:
        it kills the step pods and records STOPPED); if the Job has not ended after a grace
        period (its pod may be gone), delete the Job and everything of the run."""
        patch = {"metadata": {"annotations": {m.ANNOTATION_STOP: m.now_rfc3339()}}}
        for job in self._list("job", run_id):
            ignore_missing(lambda: self.batch().patch_namespaced_job(job["metadata"]["name"], self.namespace, patch,
                                                                     _preload_content=False))
        deadline = time.monotonic() + STOP_HANDOVER_SECONDS
        while time.monotonic() < deadline:
            jobs = self._list("job", run_id)
            if not jobs or all(job_finished(job) for job in jobs):
                break
            time.sleep(0.25)
        self.remove_run(run_id)

    def leftover_resources(self, snapshot: PipelineSnapshot, run_id: str) -> list[str] | None:
        """Pods, Jobs and Secrets still labelled with the run."""
        try:
            return [f"{kind} {obj['metadata']['name']}" for kind in ("pod", "job", "secret") for obj in self._list(kind, run_id)]
        except SubmissionError:
            return None

    def remove_run(self, run_id: str, job_name: str | None = None, timeout: float = CLEANUP_SECONDS) -> None:
        """Delete every object of the run and wait until it is gone (CLEAN-1)."""
        batch = self.batch()
        if job_name:
            ignore_missing(lambda: batch.delete_namespaced_job(job_name, self.namespace, propagation_policy="Background",
                                                               _preload_content=False))
            ignore_missing(lambda: self.core().delete_namespaced_secret(job_name, self.namespace, _preload_content=False))
        deadline = time.monotonic() + timeout
        while True:
            left = self._delete_labelled(run_id, roles=None)
            if job_name:
                left += [f"secret {job_name}"] if self._exists_secret(job_name) else []
            if not left or time.monotonic() > deadline:
                if left:
                    logger.warning("objects of run %s are still there after %.0fs: %s", run_id, timeout, ", ".join(left))
                return
            time.sleep(0.2)

    # -- schedules: CronJobs ------------------------------------------------------------------

    def _create_schedule(self, snapshot, base_environment, step_environments, stores) -> SubmissionResult:
        if snapshot.schedule.cron_expression is None:  # validate_snapshot refused other kinds already
            raise UnsupportedFeatureError("only cron schedules become CronJobs", feature="schedule")
        image = self.step_image(snapshot)
        name = m.dns1123_name("orcakit", snapshot.pipeline_name[:16], uuid.uuid4().hex[:10], max_length=m.MAX_CRONJOB_NAME)
        self._apply_cronjob(name, snapshot, image, base_environment, step_environments, stores, create=True)
        return SubmissionResult(metadata={"schedule_id": name, "namespace": self.namespace, "image": image.tag})

    def _apply_cronjob(self, name, snapshot, image, base_environment, step_environments, stores, create: bool) -> None:
        # every firing is a new run: none takes over this submission's placeholder
        base_environment = {k: v for k, v in base_environment.items() if k != PLACEHOLDER_RUN_ENV}
        step_environments = {s: {k: v for k, v in e.items() if k != PLACEHOLDER_RUN_ENV} for s, e in step_environments.items()}
        env = self._orchestrator_environment(snapshot, image, base_environment, step_environments, stores)
        env_list, data = m.split_environment(env, name)
        labels = {**self._base_labels(snapshot, "schedule"), LABEL_SCHEDULE: name}
        command = [image.python, "-m", DRIVER_MODULE, *self._entrypoint_args(snapshot)]
        manifest = m.cronjob_manifest(name=name, namespace=self.namespace, cron_expression=snapshot.schedule.cron_expression,
                                      labels=labels, annotations={m.ANNOTATION_PIPELINE: snapshot.pipeline_name},
                                      **self._template(snapshot, image, command, env_list))
        core, batch = self.core(), self.batch()
        secret = m.secret_manifest(name, self.namespace, data, labels)
        if create:
            core.create_namespaced_secret(self.namespace, secret, _preload_content=False)
            cronjob = body(batch.create_namespaced_cron_job(self.namespace, manifest, _preload_content=False))
            cronjob.setdefault("apiVersion", "batch/v1")
            cronjob.setdefault("kind", "CronJob")
            core.patch_namespaced_secret(name, self.namespace, {"metadata": {"ownerReferences": [m.owner_reference(cronjob)]}},
                                         _preload_content=False)
        else:
            current = body(batch.read_namespaced_cron_job(name, self.namespace, _preload_content=False))
            manifest["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
            batch.replace_namespaced_cron_job(name, self.namespace, manifest, _preload_content=False)
            old = body(core.read_namespaced_secret(name, self.namespace, _preload_content=False))
            secret["metadata"]["ownerReferences"] = old["metadata"].get("ownerReferences") or []
            core.replace_namespaced_secret(name, self.namespace, secret, _preload_content=False)

    def list_schedules(self) -> list[str]:
        listing = body(self.batch().list_namespaced_cron_job(
            self.namespace, label_selector=m.selector({LABEL_ROLE: "schedule"}), _preload_content=False))
        return sorted(item["metadata"]["name"] for item in listing.get("items", []))

    def update_schedule(self, schedule_id: str, snapshot: PipelineSnapshot) -> None:
        """Replace what the CronJob runs (and when, if the cron expression changed)."""
        if snapshot.schedule is None or snapshot.schedule.cron_expression is None:
            raise UnsupportedFeatureError("a kubernetes schedule is a cron schedule", feature="schedule")
        self.validate_snapshot(snapshot)
        stores = StackStores.of(snapshot.stack)
        self.check_stores(stores)
        self.check_snapshot(snapshot, stores)
        save_snapshot(open_artifact_store(snapshot.stack.artifact_store, snapshot.stack.artifact_store_options), snapshot)
        sealed = seal(snapshot)
        base = {SNAPSHOT_ID_ENV: snapshot.snapshot_id, **snapshot.environment, **sealed.environment()}
        steps = {name: {**base, **spec.environment, **sealed.environment(name)} for name, spec in snapshot.steps.items()}
        self._apply_cronjob(schedule_id, snapshot, self.step_image(snapshot), base, steps, stores, create=False)

    def delete_schedule(self, schedule_id: str) -> None:
        ignore_missing(lambda: self.batch().delete_namespaced_cron_job(
            schedule_id, self.namespace, propagation_policy="Background", _preload_content=False))
        ignore_missing(lambda: self.core().delete_namespaced_secret(schedule_id, self.namespace, _preload_content=False))

    # -- helpers -------------------------------------------------------------------------------

    def _list(self, kind: str, run_id: str, roles: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
        core, batch = self.core(), self.batch()
        call = {"pod": core.list_namespaced_pod, "secret": core.list_namespaced_secret, "job": batch.list_namespaced_job}[kind]
        items = body(call(self.namespace, label_selector=m.selector({LABEL_RUN: run_id}), _preload_content=False)).get("items", [])
        if roles is not None:
            items = [i for i in items if (i["metadata"].get("labels") or {}).get(LABEL_ROLE) in roles]
        return items

    def _delete_labelled(self, run_id: str, roles: tuple[str, ...] | None, secrets: bool = True) -> list[str]:
        """Delete the run's objects (of ``roles``); what was still there."""
        core, batch = self.core(), self.batch()
        left = []
        kinds = ("job", "pod", "secret") if secrets else ("job", "pod")
        for kind in kinds:
            if kind == "job" and roles is not None:
                continue
            for obj in self._list(kind, run_id, roles):
                name = obj["metadata"]["name"]
                left.append(f"{kind} {name}")
                if obj["metadata"].get("deletionTimestamp"):
                    continue
                if kind == "pod":
                    ignore_missing(lambda: core.delete_namespaced_pod(name, self.namespace, grace_period_seconds=0, _preload_content=False))
                elif kind == "secret":
                    ignore_missing(lambda: core.delete_namespaced_secret(name, self.namespace, _preload_content=False))
                else:
                    ignore_missing(lambda: batch.delete_namespaced_job(name, self.namespace, propagation_policy="Background",
                                                                       _preload_content=False))
        return left

    def _exists_secret(self, name: str) -> bool:
        try:
            self.core().read_namespaced_secret(name, self.namespace, _preload_content=False)
            return True
        except Exception as exc:  # noqa: BLE001
            if status_of(exc) == 404:
                return False
            raise


class StepPod:
    """One step attempt's pod (a :class:`~orcakit.reference.StepHandle`)."""

    def __init__(self, orchestrator: KubernetesOrchestrator, run: RunContext, step: str, attempt: int, name: str, kube: _KubeRun) -> None:
        self.orchestrator, self.run, self.step, self.attempt, self.name, self.kube = orchestrator, run, step, attempt, name, kube
        self.pod: dict[str, Any] | None = None
        self.deleted = False

    def wait(self) -> int:
        self.pod, self.deleted = self.kube.watcher.wait(self.name)
        terminated = self._terminated()
        if terminated is not None and terminated.get("exitCode") is not None:
            return int(terminated["exitCode"])
        if self.deleted:
            return -9  # deleted (stopped) before it ended
        return 0 if (self.pod or {}).get("status", {}).get("phase") == "Succeeded" else 1

    def _terminated(self) -> dict[str, Any] | None:
        for status in ((self.pod or {}).get("status") or {}).get("containerStatuses") or []:
            if status.get("name") == m.STEP_CONTAINER:
                return (status.get("state") or {}).get("terminated")
        return None

    def kill(self) -> None:
        ignore_missing(lambda: self.orchestrator.core().delete_namespaced_pod(
            self.name, self.orchestrator.namespace, grace_period_seconds=0, _preload_content=False))

    def describe_exit(self, code: int) -> str:
        terminated = self._terminated() or {}
        if terminated.get("reason") == "OOMKilled":
            return f"OOM-killed: the pod exceeded its memory limit (exit code {code})"
        if self.deleted and not terminated:
            return f"the pod {self.name} was deleted before it ended"
        message = (self.pod or {}).get("status", {}).get("message") or terminated.get("message") or ""
        return f"exit code {code}" + (f" ({terminated.get('reason')}: {message})" if terminated.get("reason") or message else "")

    def cleanup(self) -> None:
        """Keep the step's log (pods of ended attempts stay until the run ends: a restarted
        orchestrator pod adopts them)."""
        try:
            text = self.orchestrator.core().read_namespaced_pod_log(self.name, self.orchestrator.namespace,
                                                                    container=m.STEP_CONTAINER, _preload_content=False).data
            path = self.run.log_path(self.step)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(text)
            open_artifact_store(self.run.snapshot.stack.artifact_store, self.run.snapshot.stack.artifact_store_options).put(
                log_key(self.run.snapshot.snapshot_id, self.step), text)
        except Exception as exc:  # noqa: BLE001 - a log is nice to have, never a reason to fail
            logger.debug("no log for pod %s: %s", self.name, exc)
        if self.run.isolated:
            self.kube.watcher.close()


class OrchestrationJob:
    """A dynamic run's orchestration Job (a :class:`~orcakit.reference.StepHandle`)."""

    def __init__(self, orchestrator: KubernetesOrchestrator, name: str) -> None:
        self.orchestrator, self.name = orchestrator, name
        self.outcome: str | None = None
        self._stop = threading.Event()

    def wait(self) -> int:
        job = wait_for_job(self.orchestrator.batch(), self.orchestrator.namespace, self.name)
        self.outcome = job_finished(job) if job is not None else "Deleted"
        return {"Complete": 0, "Failed": 1}.get(self.outcome, -9)

    def kill(self) -> None:
        ignore_missing(lambda: self.orchestrator.batch().delete_namespaced_job(
            self.name, self.orchestrator.namespace, propagation_policy="Background", _preload_content=False))

    def describe_exit(self, code: int) -> str:
        return {"Failed": f"the orchestration job {self.name} failed (its pod exited non-zero {self.orchestrator.config.orchestrator_backoff_limit + 1} times)",
                "Deleted": f"the orchestration job {self.name} was deleted"}.get(self.outcome or "", f"exit code {code}")

    def cleanup(self) -> None:
        pass
