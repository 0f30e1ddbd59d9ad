"""The control loops a cluster runs besides the kubelet, in the server's event loop.

- garbage collector: Background deletion of dependents whose owners are gone (ownerReferences);
- namespaces: a terminating namespace's contents are deleted, then the namespace;
- Jobs: one pod at a time from the template (``completions``/``parallelism`` 1 as the flavor
  uses them), ``backoffLimit`` counting failed pods (and container restarts under OnFailure),
  conditions ``SuccessCriteriaMet``/``Complete`` or ``FailureTarget``/``Failed``, and
  ``ttlSecondsAfterFinished``. The delay before a retry is ``job_backoff`` seconds (a real
  cluster waits 10 s, doubling; tests set it short);
- CronJobs: a Job per schedule time (``croniter``), ``concurrencyPolicy``, history limits;
- Events (core/v1) for what they do, as ``kubectl describe`` shows them.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from typing import Any

from croniter import croniter

from .operations import Cluster, now
from .resources import RESOURCES, find
from .status import ApiError
from .store import Event

PODS, JOBS, CRONJOBS, EVENTS = find("", "v1", "pods"), find("batch", "v1", "jobs"), find("batch", "v1", "cronjobs"), find("", "v1", "events")


def parse_time(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)


def owner_reference(obj: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "name": obj["metadata"]["name"], "uid": obj["metadata"]["uid"],
            "controller": True, "blockOwnerDeletion": True}


def controller_of(obj: dict[str, Any], kind: str) -> str | None:
    for ref in obj["metadata"].get("ownerReferences") or []:
        if ref.get("kind") == kind and ref.get("controller"):
            return ref["uid"]
    return None


def pod_failure_action(policy: dict[str, Any] | None, pod: dict[str, Any]) -> tuple[str, str]:
    """The action of the first podFailurePolicy rule a failed pod matches ("Count" when none
    does), and the message a FailJob gives (as pkg/controller/job/pod_failure_policy.go words it)."""
    meta = pod["metadata"]
    for index, rule in enumerate((policy or {}).get("rules") or []):
        codes = rule.get("onExitCodes")
        if codes:
            statuses = [*(pod.get("status", {}).get("initContainerStatuses") or []), *(pod.get("status", {}).get("containerStatuses") or [])]
            for container in statuses:
                if codes.get("containerName") and container.get("name") != codes["containerName"]:
                    continue
                code = ((container.get("state") or {}).get("terminated") or {}).get("exitCode")
                # exit code 0 never matches a rule
                if code and (code in codes.get("values", [])) == (codes.get("operator") == "In"):
                    return rule["action"], (f"Container {container['name']} for pod {meta['namespace']}/{meta['name']} failed with exit code "
                                            f"{code} matching {rule['action']} rule at index {index}")
        for wanted in rule.get("onPodConditions") or []:
            for condition in pod.get("status", {}).get("conditions") or []:
                if condition.get("type") == wanted.get("type") and condition.get("status") == wanted.get("status", "True"):
                    return rule["action"], (f"Pod {meta['namespace']}/{meta['name']} has condition {wanted['type']} matching "
                                            f"{rule['action']} rule at index {index}")
    return "Count", ""


class Controllers:
    def __init__(self, cluster: Cluster, job_backoff: float = 1.0, tick: float = 0.5, ca_pem: bytes = b"") -> None:
        self.cluster = cluster
        self.ca_pem = ca_pem
        self.store = cluster.store
        self.job_backoff = job_backoff
        self.tick = tick
        self._pending_jobs: set[tuple[str, str]] = set()
        self._retry_after: dict[str, float] = {}
        self._task: asyncio.Task | None = None
        self.store.subscribe(self._on_event)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._periodic())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    # event-driven ----------------------------------------------------------------------
    def _on_event(self, event: Event) -> None:
        loop = asyncio.get_running_loop()
        meta = event.object["metadata"]
        if event.type == "DELETED":
            loop.call_soon(self._collect_garbage, meta["uid"])
        if event.storage_key == "namespaces" and event.type == "ADDED":
            loop.call_soon(self._populate_namespace, meta["name"])
        if event.storage_key == "jobs.batch" and event.type != "DELETED":
            self._queue_job(meta["namespace"], meta["name"])
        elif event.storage_key == "pods":
            for ref in meta.get("ownerReferences") or []:
                if ref.get("kind") == "Job":
                    self._queue_job(meta["namespace"], ref["name"])

    def _populate_namespace(self, namespace: str) -> None:
        """What the service-account and root-CA publisher controllers put in every new namespace:
        the ``default`` ServiceAccount and the ``kube-root-ca.crt`` ConfigMap (the server's CA)."""
        for resource, obj in ((find("", "v1", "serviceaccounts"), {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}}),
                              (find("", "v1", "configmaps"), {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
                                  "name": "kube-root-ca.crt", "annotations": {"kubernetes.io/description": (
                                      "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints "
                                      "such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across "
                                      "distributions of Kubernetes clusters.")}}, "data": {"ca.crt": self.ca_pem.decode()}})):
            try:
                self.cluster.create(resource, namespace, obj)
            except ApiError:
                pass  # there already, or the namespace is going

    def _queue_job(self, namespace: str, name: str) -> None:
        if (namespace, name) not in self._pending_jobs:
            self._pending_jobs.add((namespace, name))
            asyncio.get_running_loop().call_soon(self._sync_job, namespace, name)

    def _collect_garbage(self, owner_uid: str) -> None:
        for resource, obj in self.cluster.dependents(owner_uid):
            owners = obj["metadata"]["ownerReferences"]
            if any(self._exists(ref) for ref in owners if ref.get("uid") != owner_uid):
                continue
            self._delete_quietly(resource, obj, "Background")

    def _exists(self, ref: dict[str, Any]) -> bool:
        return any(obj["metadata"]["uid"] == ref.get("uid") for r in RESOURCES if r.kind == ref.get("kind") for obj in self.store.list(r.storage_key))

    def _delete_quietly(self, resource: Any, obj: dict[str, Any], policy: str) -> None:
        try:
            self.cluster.delete(resource, obj["metadata"].get("namespace", ""), obj["metadata"]["name"], {"propagationPolicy": policy})
        except ApiError:
            pass  # already gone: another loop got there first

    # events ----------------------------------------------------------------------------
    def record(self, obj: dict[str, Any], reason: str, message: str, kind: str = "Normal", component: str = "job-controller") -> None:
        self.cluster.record_event(obj, reason, message, kind, component)

    # Jobs ------------------------------------------------------------------------------
    def _sync_job(self, namespace: str, name: str) -> None:
        self._pending_jobs.discard((namespace, name))
        job = self.store.get(JOBS.storage_key, namespace, name)
        if job is None or job["metadata"].get("deletionTimestamp"):
            return
        status = job.setdefault("status", {})
        conditions = status.setdefault("conditions", [])
        if any(c["type"] in ("Complete", "Failed") and c["status"] == "True" for c in conditions):
            return
        spec = job["spec"]
        uid = job["metadata"]["uid"]
        pods = [p for p in self.store.list(PODS.storage_key, namespace) if controller_of(p, "Job") == uid]
        phases = [p.get("status", {}).get("phase") for p in pods]
        active = [p for p, phase in zip(pods, phases) if phase not in ("Succeeded", "Failed") and not p["metadata"].get("deletionTimestamp")]
        succeeded = phases.count("Succeeded")
        # podFailurePolicy: each failed pod's first matching rule says whether it counts towards
        # backoffLimit (Count, or no rule), is ignored (Ignore) or fails the Job (FailJob)
        failed, fail_job = 0, None
        for pod, phase in zip(pods, phases):
            if phase != "Failed":
                continue
            action, why = pod_failure_action(spec.get("podFailurePolicy"), pod)
            if action == "Ignore":
                continue
            failed += 1
            if action == "FailJob" and fail_job is None:
                fail_job = why
        if spec["template"]["spec"].get("restartPolicy") == "OnFailure":
            failed += sum(s.get("restartCount", 0) for p in pods for s in p.get("status", {}).get("containerStatuses") or [])
        status.setdefault("startTime", now())
        loop = asyncio.get_running_loop()
        deadline = spec.get("activeDeadlineSeconds")
        overdue = deadline is not None and (datetime.now(timezone.utc) - parse_time(status["startTime"])).total_seconds() >= deadline
        if succeeded >= spec.get("completions", 1):
            stamp = now()
            conditions += [self._condition("SuccessCriteriaMet", "CompletionsReached", "Reached expected number of succeeded pods", stamp),
                           self._condition("Complete", "CompletionsReached", "Reached expected number of succeeded pods", stamp)]
            status["completionTime"] = stamp
            self.record(job, "Completed", "Job completed")
        elif fail_job or overdue or failed > spec.get("backoffLimit", 6):
            stamp = now()
            reason, message = (("PodFailurePolicy", fail_job) if fail_job else
                               ("DeadlineExceeded", "Job was active longer than specified deadline") if overdue else
                               ("BackoffLimitExceeded", "Job has reached the specified backoff limit"))
            conditions += [self._condition("FailureTarget", reason, message, stamp),
                           self._condition("Failed", reason, message, stamp)]
            for pod in active:
                self._delete_quietly(PODS, pod, "Background")
            active = []
            self.record(job, reason, message, "Warning")
        elif not active and not spec.get("suspend"):
            wait = self._retry_after.get(uid, 0) - loop.time()
            if failed and wait > 0:
                loop.call_later(wait, self._queue_job, namespace, name)
            else:
                self._retry_after[uid] = loop.time() + self.job_backoff * (2 ** max(failed - 1, 0)) if failed else 0
                active = [self._create_job_pod(job)]
        if deadline is not None and active:
            left = deadline - (datetime.now(timezone.utc) - parse_time(status["startTime"])).total_seconds()
            loop.call_later(max(left, 0) + 0.05, self._queue_job, namespace, name)
        status.update(active=len(active) or None, succeeded=succeeded or None, failed=failed or None, ready=sum(
            1 for p in active if any(c["type"] == "Ready" and c["status"] == "True" for c in p.get("status", {}).get("conditions") or [])),
            terminating=0, uncountedTerminatedPods={})
        job["status"] = {k: v for k, v in status.items() if v is not None and v != []}
        current = self.store.get(JOBS.storage_key, namespace, name)
        if current is not None and current.get("status") != job["status"]:
            job["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
            self.cluster.update(JOBS, namespace, name, job, "status")
        if job["status"].get("completionTime") or any(c["type"] == "Failed" for c in job["status"].get("conditions", [])):
            ttl = spec.get("ttlSecondsAfterFinished")
            if ttl is not None:
                loop.call_later(ttl, self._expire_job, namespace, name, uid)

    @staticmethod
    def _condition(kind: str, reason: str, message: str, stamp: str) -> dict[str, Any]:
        return {"type": kind, "status": "True", "reason": reason, "message": message, "lastProbeTime": stamp, "lastTransitionTime": stamp}

    def _create_job_pod(self, job: dict[str, Any]) -> dict[str, Any]:
        template = job["spec"]["template"]
        meta = dict(template.get("metadata") or {})
        meta.update(generateName=f"{job['metadata']['name']}-", ownerReferences=[owner_reference(job)])
        pod, _ = self.cluster.create(PODS, job["metadata"]["namespace"], {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
                                                                            "spec": template["spec"]})
        self.record(job, "SuccessfulCreate", f"Created pod: {pod['metadata']['name']}")
        return pod

    def _expire_job(self, namespace: str, name: str, uid: str) -> None:
        job = self.store.get(JOBS.storage_key, namespace, name)
        if job is not None and job["metadata"]["uid"] == uid:
            self._delete_quietly(JOBS, job, "Background")

    # periodic: CronJobs and terminating namespaces ---------------------------------------
    async def _periodic(self) -> None:
        while True:
            await asyncio.sleep(self.tick)
            for cronjob in self.store.list(CRONJOBS.storage_key):
                self._sync_cronjob(cronjob)
            for ns in self.store.list("namespaces"):
                if ns["metadata"].get("deletionTimestamp"):
                    self._finish_namespace(ns)

    def _sync_cronjob(self, cronjob: dict[str, Any]) -> None:
        spec, meta = cronjob["spec"], cronjob["metadata"]
        status = cronjob.get("status") or {}
        jobs = [j for j in self.store.list(JOBS.storage_key, meta["namespace"]) if controller_of(j, "CronJob") == meta["uid"]]
        finished = lambda j, kind: any(c["type"] == kind and c["status"] == "True" for c in (j.get("status") or {}).get("conditions") or [])
        active = [j for j in jobs if not finished(j, "Complete") and not finished(j, "Failed")]
        for kind, limit in (("Complete", spec.get("successfulJobsHistoryLimit", 3)), ("Failed", spec.get("failedJobsHistoryLimit", 1))):
            done = sorted((j for j in jobs if finished(j, kind)), key=lambda j: j["metadata"]["creationTimestamp"])
            for old in done[:max(len(done) - limit, 0)]:
                self._delete_quietly(JOBS, old, "Background")
        last = parse_time(status.get("lastScheduleTime") or meta["creationTimestamp"])
        due = croniter(spec["schedule"], last).get_next(datetime)
        new_status = dict(status, active=[{"kind": "Job", "apiVersion": "batch/v1", "name": j["metadata"]["name"], "namespace": j["metadata"]["namespace"],
                                           "uid": j["metadata"]["uid"], "resourceVersion": j["metadata"]["resourceVersion"]} for j in active] or None)
        if not spec.get("suspend") and due <= datetime.now(timezone.utc):
            policy = spec.get("concurrencyPolicy", "Allow")
            if policy == "Replace":
                for job in active:
                    self._delete_quietly(JOBS, job, "Background")
            if policy != "Forbid" or not active:
                self._create_cron_job(cronjob, due)
            new_status["lastScheduleTime"] = due.strftime("%Y-%m-%dT%H:%M:%SZ")
        succeeded = [j for j in jobs if finished(j, "Complete")]
        if succeeded:
            new_status["lastSuccessfulTime"] = max(j["status"]["completionTime"] for j in succeeded)
        new_status = {k: v for k, v in new_status.items() if v is not None}
        if new_status != status:
            cronjob["status"] = new_status
            self.cluster.update(CRONJOBS, meta["namespace"], meta["name"], cronjob, "status")

    def _create_cron_job(self, cronjob: dict[str, Any], due: datetime) -> None:
        template = cronjob["spec"]["jobTemplate"]
        meta = dict(template.get("metadata") or {})
        # the name is the schedule time in minutes, so a schedule time makes at most one Job
        meta.update(name=f"{cronjob['metadata']['name']}-{int(due.timestamp()) // 60}", ownerReferences=[owner_reference(cronjob)])
        meta.setdefault("annotations", {})["batch.kubernetes.io/cronjob-scheduled-timestamp"] = due.strftime("%Y-%m-%dT%H:%M:%SZ")
        try:
            job, _ = self.cluster.create(JOBS, cronjob["metadata"]["namespace"], {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta,
                                                                                  "spec": template["spec"]})
        except ApiError:
            return
        self.record(cronjob, "SuccessfulCreate", f"Created job {job['metadata']['name']}", component="cronjob-controller")

    def _finish_namespace(self, ns: dict[str, Any]) -> None:
        name = ns["metadata"]["name"]
        remaining = 0
        for resource in RESOURCES:
            if not resource.namespaced or resource.group == "events.k8s.io":
                continue
            for obj in self.store.list(resource.storage_key, name):
                remaining += 1
                if not obj["metadata"].get("deletionTimestamp"):
                    self._delete_quietly(resource, obj, "Background")
        if not remaining:
            self.store.remove("namespaces", "", name)
