"""``meta.k8s.io/v1 Table`` answers, which ``kubectl get`` asks for (server-side printing).

Columns follow the API server's printers for the common ones (pods: Ready/Status/Restarts/Age,
jobs: Status/Completions/Duration/Age); other types show Name and Age. Each row carries the
object's metadata as ``PartialObjectMetadata``, the server's default ``includeObject=Metadata``.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from .resources import Resource


def _age(timestamp: str | None) -> str:
    if not timestamp:
        return "<unknown>"
    seconds = int((datetime.now(timezone.utc) - datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= 2 * size:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


def _pod_cells(pod: dict[str, Any]) -> list[Any]:
    statuses = pod.get("status", {}).get("containerStatuses") or []
    ready = sum(1 for s in statuses if s.get("ready"))
    reason = pod.get("status", {}).get("phase", "Pending")
    for status in statuses:
        state = status.get("state") or {}
        waiting, terminated = state.get("waiting"), state.get("terminated")
        if waiting and waiting.get("reason"):
            reason = waiting["reason"]
        elif terminated and terminated.get("reason"):
            reason = terminated["reason"]
    if pod["metadata"].get("deletionTimestamp"):
        reason = "Terminating"
    restarts = sum(s.get("restartCount", 0) for s in statuses)
    return [f"{ready}/{len(pod['spec'].get('containers') or [])}", reason, restarts]


def _job_cells(job: dict[str, Any]) -> list[Any]:
    status = job.get("status") or {}
    conditions = {c["type"]: c["status"] for c in status.get("conditions") or []}
    state = "Complete" if conditions.get("Complete") == "True" else "Failed" if conditions.get("Failed") == "True" else "Running"
    return [state, f"{status.get('succeeded', 0)}/{job['spec'].get('completions', 1)}"]


COLUMNS = {
    "Pod": [("Ready", "string"), ("Status", "string"), ("Restarts", "string")],
    "Job": [("Status", "string"), ("Completions", "string")],
}
CELLS = {"Pod": _pod_cells, "Job": _job_cells}


def table(resource: Resource, objects: list[dict[str, Any]], resource_version: str | None) -> dict[str, Any]:
    columns = [("Name", "string"), *COLUMNS.get(resource.kind, []), ("Age", "string")]
    definitions = [{"name": name, "type": kind, "format": "name" if name == "Name" else "", "description": "", "priority": 0}
                   for name, kind in columns]
    rows = []
    for obj in objects:
        cells = [obj["metadata"]["name"], *CELLS.get(resource.kind, lambda o: [])(obj), _age(obj["metadata"].get("creationTimestamp"))]
        rows.append({"cells": cells, "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]}})
    metadata = {"resourceVersion": resource_version} if resource_version else {}
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": metadata, "columnDefinitions": definitions, "rows": rows}


def wants_table(accept: str) -> bool:
    return "as=Table" in accept
