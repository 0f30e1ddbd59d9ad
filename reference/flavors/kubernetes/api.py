"""The Kubernetes API as the flavor uses it: one connection (kubeconfig + context, in-cluster
config, or an explicit address for test environments), raw JSON in and out (the manifests are
dicts; the official client accepts them as bodies, 31.x to 37.x alike), and watches that never
lose an event: a dropped watch resumes from its last resourceVersion, and a 410 Gone (the
version is too old) re-lists and watches on from the list's version."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from typing import Any, Callable

from orcakit import SubmissionError

logger = logging.getLogger("orcakit.kubernetes")

#: Set in orchestrator pods when the config names ``pod_api_server`` (test environments).
API_ENV = "ORCAKIT_KUBERNETES_API"
WATCH_SECONDS = 60
#: A Job's watch is renewed (and the Job re-read) this often.
JOB_WATCH_SECONDS = 15


def connect(config: Any) -> Any:
    """An ``ApiClient`` for the flavor's config (see module doc)."""
    from kubernetes import client
    from kubernetes import config as kube_config

    configuration = client.Configuration()
    address = os.environ.get(API_ENV)
    incluster = config.incluster if config.incluster is not None else bool(os.environ.get("KUBERNETES_SERVICE_HOST"))
    try:
        if address:
            configuration.host = address
        elif incluster:
            kube_config.load_incluster_config(client_configuration=configuration)
        else:
            kube_config.load_kube_config(config_file=config.kubeconfig, context=config.kubernetes_context,
                                         client_configuration=configuration)
    except Exception as exc:  # noqa: BLE001 - every loader error means the same to the user
        raise SubmissionError(
            f"cannot configure the Kubernetes client ({'in-cluster' if incluster else 'kubeconfig ' + str(config.kubeconfig or os.environ.get('KUBECONFIG') or '~/.kube/config')}"
            f"{', context ' + config.kubernetes_context if config.kubernetes_context else ''}): {exc}",
            fix="set the orchestrator's kubeconfig= and kubernetes_context=, or run inside the cluster (incluster=true)",
        ) from None
    return client.ApiClient(configuration)


def body(response: Any) -> dict[str, Any]:
    """The JSON of a ``_preload_content=False`` response."""
    return json.loads(response.data)


def status_of(exc: BaseException) -> int | None:
    return getattr(exc, "status", None)


def ignore_missing(call: Callable[[], Any]) -> Any:
    """``call()``, where 404 Not Found means: already gone."""
    try:
        return call()
    except Exception as exc:  # noqa: BLE001
        if status_of(exc) == 404:
            return None
        raise


class PodWatcher:
    """The state of a set of pods (a label selector in one namespace), kept by one watch.

    ``wait(name)`` blocks until that pod ended (phase Succeeded/Failed) or was deleted, and
    returns its last state."""

    def __init__(self, core: Any, namespace: str, label_selector: str) -> None:
        self.core = core
        self.namespace = namespace
        self.label_selector = label_selector
        self.pods: dict[str, dict[str, Any]] = {}
        self.deleted: set[str] = set()
        self._changed = threading.Condition()
        self._watch: Any = None
        self._closed = False
        self.relists = 0
        self._thread = threading.Thread(target=self._run, name=f"orcakit-watch-{label_selector[-12:]}", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._closed = True
        if self._watch is not None:
            self._watch.stop()
        with self._changed:
            self._changed.notify_all()

    def forget(self, name: str) -> None:
        with self._changed:
            self.pods.pop(name, None)
            self.deleted.discard(name)

    def wait(self, name: str, timeout: float | None = None) -> tuple[dict[str, Any] | None, bool]:
        """``(last seen pod, deleted)`` once the pod ended or is gone."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            while True:
                pod = self.pods.get(name)
                if name in self.deleted:
                    return pod, True
                if pod is not None and pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
                    return pod, False
                if self._closed:
                    return pod, False
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return pod, False
                self._changed.wait(timeout=1.0 if remaining is None else min(1.0, remaining))

    def saw(self, pod: dict[str, Any]) -> None:
        """Record a pod this process created (so that a wait never misses an already-known pod)."""
        self._update("ADDED", pod)

    def _update(self, kind: str, pod: dict[str, Any]) -> None:
        name = pod.get("metadata", {}).get("name")
        if not name:
            return
        with self._changed:
            old = self.pods.get(name)
            if old is None or int(old["metadata"].get("resourceVersion") or 0) <= int(pod["metadata"].get("resourceVersion") or 0):
                self.pods[name] = pod
            if kind == "DELETED":
                self.deleted.add(name)
            self._changed.notify_all()

    def _relist(self) -> str:
        listing = body(self.core.list_namespaced_pod(self.namespace, label_selector=self.label_selector, _preload_content=False))
        present = set()
        for pod in listing.get("items", []):
            present.add(pod["metadata"]["name"])
            self._update("MODIFIED", pod)
        with self._changed:
            for name in list(self.pods):
                if name not in present and name not in self.deleted:
                    self.deleted.add(name)  # deleted while nobody watched
            self._changed.notify_all()
        self.relists += 1
        return listing.get("metadata", {}).get("resourceVersion") or ""

    def _run(self) -> None:
        from kubernetes import watch

        version: str | None = None
        while not self._closed:
            try:
                if version is None:
                    version = self._relist()
                self._watch = watch.Watch()
                for event in self._watch.stream(
                    self.core.list_namespaced_pod, self.namespace, label_selector=self.label_selector,
                    resource_version=version, timeout_seconds=WATCH_SECONDS, allow_watch_bookmarks=True, deserialize=False,
                    _request_timeout=WATCH_SECONDS + 15,  # a silent, half-dead connection never blocks for ever
                ):
                    if self._closed:
                        break
                    obj = event.get("raw_object") or event.get("object") or {}
                    if event.get("type") != "BOOKMARK":
                        self._update(event.get("type", ""), obj)
                    version = (obj.get("metadata") or {}).get("resourceVersion") or version
                # the stream ended: the next one resumes from ``version``
            except Exception as exc:  # noqa: BLE001
                if self._closed:
                    return
                if status_of(exc) == 410:
                    logger.info("watch of pods %s: resourceVersion %s is gone (410); re-listing", self.label_selector, version)
                    version = None
                    continue
                logger.warning("watch of pods %s dropped (%s); resuming from resourceVersion %s", self.label_selector, exc, version)
                time.sleep(0.5)


def wait_for_job(batch: Any, namespace: str, name: str, stop: threading.Event | None = None) -> dict[str, Any] | None:
    """Block until Job ``name`` has a Complete or Failed condition (None: it was deleted).
    One watch on that Job, resumed from its resourceVersion when it drops, re-listed on 410."""
    from kubernetes import watch

    field = f"metadata.name={name}"
    version: str | None = None
    while stop is None or not stop.is_set():
        try:
            if version is None:
                listing = body(batch.list_namespaced_job(namespace, field_selector=field, _preload_content=False))
                items = listing.get("items", [])
                if not items:
                    return None
                if job_finished(items[0]):
                    return items[0]
                version = listing["metadata"].get("resourceVersion") or ""
            for event in watch.Watch().stream(
                batch.list_namespaced_job, namespace, field_selector=field, resource_version=version,
                timeout_seconds=JOB_WATCH_SECONDS, deserialize=False, _request_timeout=JOB_WATCH_SECONDS + 15,
            ):
                obj = event.get("raw_object") or {}
                version = (obj.get("metadata") or {}).get("resourceVersion") or version
                if event.get("type") == "DELETED":
                    return None
                if event.get("type") in ("ADDED", "MODIFIED") and job_finished(obj):
                    return obj
            # the stream ended: look at the Job itself before watching on (one cheap GET per
            # JOB_WATCH_SECONDS; an end missed by a broken stream is seen here)
            version = None
        except Exception as exc:  # noqa: BLE001
            if status_of(exc) == 410:
                version = None
                continue
            logger.warning("watch of job %s dropped (%s); resuming", name, exc)
            time.sleep(0.5)
    return None


def job_finished(job: dict[str, Any]) -> str | None:
    """'Complete' or 'Failed' once the Job ended, else None."""
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("type") in ("Complete", "Failed") and condition.get("status") == "True":
            return condition["type"]
    return None
