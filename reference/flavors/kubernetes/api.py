"""The Kubernetes API as the flavor uses it: one connection (kubeconfig + context, in-cluster
config, or an explicit address for test environments), raw JSON in and out (the manifests are
dicts; the official client accepts them as bodies, 31.x to 37.x alike), and watches that never
lose an event: a dropped watch resumes from its last resourceVersion, and a 410 Gone (the
version is too old) re-lists and watches on from the list's version."""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from typing import Any, Callable, Iterator

from orcakit import SubmissionError

from .manifests import POD_ENV

logger = logging.getLogger("orcakit.kubernetes")

WATCH_SECONDS = 60
#: A Job's watch is renewed (and the Job re-read) this often.
JOB_WATCH_SECONDS = 15


def uses_incluster_config(config: Any) -> bool:
    """orcakit's own pods always use their service account (the client's kubeconfig path means
    nothing there); elsewhere ``incluster`` decides, by default: no kubeconfig given and
    ``KUBERNETES_SERVICE_HOST`` set (a client running in a pod)."""
    in_cluster = bool(os.environ.get("KUBERNETES_SERVICE_HOST"))
    if in_cluster and os.environ.get(POD_ENV):
        return True
    if config.incluster is not None:
        return config.incluster
    return in_cluster and not config.kubeconfig


def connect(config: Any) -> Any:
    """An ``ApiClient`` for the flavor's config (see module doc)."""
    from kubernetes import client
    from kubernetes import config as kube_config

    configuration = client.Configuration()
    incluster = uses_incluster_config(config)
    try:
        if incluster:
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


class WatchError(Exception):
    """An ERROR event in a watch stream (410: the resourceVersion is too old; re-list)."""

    def __init__(self, status: int | None, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status


class EventStream:
    """One watch request (``?watch=true``), read here as ``(type, object)`` pairs rather than
    through the client's ``Watch``: with raw JSON (``deserialize=False``) that one drops
    ``raw_object`` and turns an ERROR event into a KeyError, hiding the 410 that says to
    re-list. ``close()`` from another thread ends the iteration."""

    def __init__(self, list_call: Callable[..., Any], namespace: str, resource_version: str, timeout_seconds: int,
                 **selectors: Any) -> None:
        self._response = list_call(
            namespace, watch=True, resource_version=resource_version, timeout_seconds=timeout_seconds,
            allow_watch_bookmarks=True, _preload_content=False,
            _request_timeout=timeout_seconds + 15,  # a silent, half-dead connection never blocks for ever
            **selectors)

    def __iter__(self) -> Iterator[tuple[str, dict[str, Any]]]:
        from kubernetes.watch.watch import iter_resp_lines

        try:
            for line in iter_resp_lines(self._response):
                if not line.strip():
                    continue
                event = json.loads(line)
                obj = event.get("object") or {}
                if event.get("type") == "ERROR":
                    raise WatchError(obj.get("code"), obj.get("message") or "")
                yield event.get("type", ""), obj
        finally:
            self._release()

    def close(self) -> None:
        """End the iteration from another thread: shut the socket down (the reader wakes up at
        once; closing the response object instead would wait for the reader's next byte)."""
        sock = getattr(getattr(self._response, "connection", None), "sock", None)
        try:
            if sock is not None:
                sock.shutdown(socket.SHUT_RDWR)
        except OSError:  # already closed
            pass

    def _release(self) -> None:
        try:
            self._response.close()
            self._response.release_conn()
        except Exception:  # noqa: BLE001 - the socket was shut down by close()
            pass


class ListWatch:
    """List, then watch from the list's resourceVersion, for as long as needed: a dropped watch
    resumes from the last version seen, a 410 Gone re-lists. ``relist_each_stream`` re-lists
    whenever a stream ends (one cheap GET per renewal: an event lost with a broken stream is
    seen then). ``run`` returns once a handler returns true, or after ``close()``."""

    def __init__(self, list_call: Callable[..., Any], namespace: str, *, watch_seconds: int, relist_each_stream: bool = False,
                 **selectors: Any) -> None:
        self.list_call, self.namespace, self.selectors = list_call, namespace, selectors
        self.watch_seconds, self.relist_each_stream = watch_seconds, relist_each_stream
        self._stream: EventStream | None = None
        self._closed = threading.Event()

    def close(self) -> None:
        self._closed.set()
        if self._stream is not None:
            self._stream.close()

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def run(self, on_list: Callable[[list[dict[str, Any]]], Any], on_event: Callable[[str, dict[str, Any]], Any]) -> None:
        version: str | None = None
        while not self.closed:
            try:
                if version is None:
                    listing = body(self.list_call(self.namespace, _preload_content=False, **self.selectors))
                    if on_list(listing.get("items", [])):
                        return
                    version = (listing.get("metadata") or {}).get("resourceVersion") or ""
                self._stream = EventStream(self.list_call, self.namespace, version, self.watch_seconds, **self.selectors)
                for kind, obj in self._stream:
                    if self.closed:
                        return
                    version = (obj.get("metadata") or {}).get("resourceVersion") or version
                    if kind != "BOOKMARK" and on_event(kind, obj):
                        return
                if self.relist_each_stream:
                    version = None
            except Exception as exc:  # noqa: BLE001
                if self.closed:
                    return
                if status_of(exc) == 410:
                    logger.info("watch %s: resourceVersion %s is gone (410); re-listing", self.selectors, version)
                    version = None
                    continue
                logger.warning("watch %s dropped (%s); resuming from resourceVersion %s", self.selectors, exc, version)
                time.sleep(0.5)


class PodWatcher:
    """The state of a set of pods (a label selector in one namespace), kept by one watch.

    ``wait(name)`` blocks until that pod ended (phase Succeeded/Failed) or was deleted, and
    returns its last state."""

    def __init__(self, core: Any, namespace: str, label_selector: str) -> None:
        self.pods: dict[str, dict[str, Any]] = {}
        self.deleted: set[str] = set()
        self._changed = threading.Condition()
        self._watch = ListWatch(core.list_namespaced_pod, namespace, watch_seconds=WATCH_SECONDS, label_selector=label_selector)
        self._thread = threading.Thread(target=self._run, name=f"orcakit-watch-{label_selector[-12:]}", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._watch.close()
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
                if self._watch.closed:
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

    def _relisted(self, items: list[dict[str, Any]]) -> None:
        present = set()
        for pod in items:
            present.add(pod["metadata"]["name"])
            self._update("MODIFIED", pod)
        with self._changed:
            for name in list(self.pods):
                if name not in present and name not in self.deleted:
                    self.deleted.add(name)  # deleted while nobody watched
            self._changed.notify_all()

    def _run(self) -> None:
        self._watch.run(self._relisted, self._update)


def wait_for_job(batch: Any, namespace: str, name: str, stop: threading.Event | None = None,
                 until: Callable[[dict[str, Any]], Any] | None = None) -> dict[str, Any] | None:
    """Block until Job ``name`` has a Complete or Failed condition, or ``until(job)`` holds; the
    Job then, or None: it was deleted (or ``stop`` was set, seen at the next renewal)."""
    until = until or job_finished
    found: list[dict[str, Any] | None] = [None]
    watch = ListWatch(batch.list_namespaced_job, namespace, watch_seconds=JOB_WATCH_SECONDS, relist_each_stream=True,
                      field_selector=f"metadata.name={name}")

    def listed(items: list[dict[str, Any]]) -> bool:
        if stop is not None and stop.is_set():
            return True
        found[0] = items[0] if items and until(items[0]) else None
        return not items or found[0] is not None

    def changed(kind: str, job: dict[str, Any]) -> bool:
        if kind == "DELETED":
            return True
        found[0] = job if until(job) else None
        return found[0] is not None

    watch.run(listed, changed)
    return found[0]


def job_finished(job: dict[str, Any]) -> str | None:
    """'Complete' or 'Failed' once the Job ended, else None."""
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("type") in ("Complete", "Failed") and condition.get("status") == "True":
            return condition["type"]
    return None
