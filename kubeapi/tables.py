"""``meta.k8s.io/v1 Table`` answers, which ``kubectl get`` asks for (server-side printing).

Columns and cells follow the API server's printers (``pkg/printers/internalversion/printers.go``)
for every served kind: the server always prints the wide form, and kubectl hides the columns of
priority 1 unless ``-o wide``. Ages are apimachinery's ``duration.HumanDuration`` ("2m30s",
"5h10m", "3d4h"). Each row carries the object as ``includeObject`` asks: ``Metadata`` (the
default, a ``PartialObjectMetadata``), ``Object`` (the whole object, which ``kubectl get
--sort-by`` asks for so that it can sort by any field) or ``None``.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Callable

from .resources import Resource


def parse(timestamp: str) -> datetime:
    text = timestamp.replace("Z", "+00:00")
    return datetime.fromisoformat(text).astimezone(timezone.utc)


def human_duration(seconds_total: float) -> str:
    """apimachinery ``duration.HumanDuration``."""
    seconds = int(seconds_total)
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = seconds // 3600
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d{hours % 24}h" if hours % 24 else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        return f"{hours // 24 // 365}y{days}d" if days else f"{hours // 24 // 365}y"
    return f"{hours // 24 // 365}y"


def age(timestamp: str | None) -> str:
    """``translateTimestampSince``: "<unknown>" for a zero time."""
    if not timestamp:
        return "<unknown>"
    return human_duration((datetime.now(timezone.utc) - parse(timestamp)).total_seconds())


def _pod(pod: dict[str, Any]) -> list[Any]:
    status = pod.get("status") or {}
    statuses = status.get("containerStatuses") or []
    ready = sum(1 for s in statuses if s.get("ready"))
    reason = status.get("reason") or status.get("phase") or "Pending"
    for container in statuses:
        state = container.get("state") or {}
        waiting, terminated = state.get("waiting"), state.get("terminated")
        if waiting and waiting.get("reason"):
            reason = waiting["reason"]
        elif terminated and terminated.get("reason"):
            reason = terminated["reason"]
        elif terminated:
            reason = f"Signal:{terminated['signal']}" if terminated.get("signal") else f"ExitCode:{terminated.get('exitCode', 0)}"
    if pod["metadata"].get("deletionTimestamp"):
        reason = "Terminating"
    restarts = sum(s.get("restartCount", 0) for s in statuses)
    last_restart = max((s.get("lastState", {}).get("terminated", {}).get("finishedAt") or "" for s in statuses), default="")
    restart_text = f"{restarts} ({age(last_restart)} ago)" if restarts and last_restart else str(restarts)
    ip = status.get("podIP") or "<none>"
    return [f"{ready}/{len(pod['spec'].get('containers') or [])}", reason, restart_text, age(pod["metadata"].get("creationTimestamp")),
            ip, pod["spec"].get("nodeName") or "<none>", status.get("nominatedNodeName") or "<none>", "<none>"]


def _containers(template_spec: dict[str, Any]) -> tuple[str, str]:
    containers = template_spec.get("containers") or []
    return ",".join(c["name"] for c in containers), ",".join(c.get("image", "") for c in containers)


def _selector(selector: dict[str, Any] | None) -> str:
    if not selector:
        return "<none>"
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for requirement in selector.get("matchExpressions") or []:
        values = ",".join(requirement.get("values") or [])
        operator = requirement["operator"]
        key = requirement["key"]
        parts.append(key if operator == "Exists" else f"!{key}" if operator == "DoesNotExist" else
                     f"{key} {'in' if operator == 'In' else 'notin'} ({values})")
    return ",".join(parts) or "<none>"


def _job(job: dict[str, Any]) -> list[Any]:
    spec, status = job["spec"], job.get("status") or {}
    conditions = {c["type"]: c["status"] for c in status.get("conditions") or []}
    completions = f"{status.get('succeeded', 0)}/{spec['completions']}" if spec.get("completions") is not None else \
        f"{status.get('succeeded', 0)}/1 of {spec.get('parallelism', 1)}"
    if status.get("completionTime") and status.get("startTime"):
        duration = human_duration((parse(status["completionTime"]) - parse(status["startTime"])).total_seconds())
    elif status.get("startTime"):
        duration = age(status["startTime"])
    else:
        duration = ""
    # printers.go's order: a finished job's condition, then suspension, then deletion
    if conditions.get("Complete") == "True":
        state = "Complete"
    elif conditions.get("Failed") == "True":
        state = "Failed"
    elif job["metadata"].get("deletionTimestamp"):
        state = "Terminating"
    elif conditions.get("Suspended") == "True":
        state = "Suspended"
    elif conditions.get("FailureTarget") == "True":
        state = "FailureTarget"
    else:
        state = "Running"
    names, images = _containers(spec.get("template", {}).get("spec") or {})
    return [state, completions, duration, age(job["metadata"].get("creationTimestamp")), names, images, _selector(spec.get("selector"))]


def _cronjob(cronjob: dict[str, Any]) -> list[Any]:
    spec, status = cronjob["spec"], cronjob.get("status") or {}
    last = age(status["lastScheduleTime"]) if status.get("lastScheduleTime") else "<none>"
    names, images = _containers(spec.get("jobTemplate", {}).get("spec", {}).get("template", {}).get("spec") or {})
    return [spec.get("schedule", ""), spec.get("timeZone") or "<none>", "True" if spec.get("suspend") else "False",
            len(status.get("active") or []), last, age(cronjob["metadata"].get("creationTimestamp")), names, images,
            _selector(spec.get("jobTemplate", {}).get("spec", {}).get("selector"))]


def _event(event: dict[str, Any]) -> list[Any]:
    first = age(event.get("firstTimestamp")) if event.get("firstTimestamp") else age(event.get("eventTime"))
    last = age(event.get("lastTimestamp")) if event.get("lastTimestamp") else first
    count = event.get("count") or 1
    if event.get("series"):
        last, count = age(event["series"].get("lastObservedTime")), event["series"].get("count", count)
    involved = event.get("involvedObject") or {}
    target = f"{involved.get('kind', '').lower()}/{involved['name']}" if involved.get("name") else involved.get("kind", "").lower()
    source = event.get("source") or {}
    source_text = source.get("component") or event.get("reportingComponent") or ""
    if source.get("host"):
        source_text += f", {source['host']}"
    return [last, event.get("type", ""), event.get("reason", ""), target, involved.get("fieldPath", ""), source_text,
            (event.get("message") or "").strip(), first, count, event["metadata"]["name"]]


def _events_v1(event: dict[str, Any]) -> list[Any]:
    """events.k8s.io/v1 Events, printed as the core ones (the storage is shared on a cluster)."""
    regarding = event.get("regarding") or {}
    core = {"metadata": event["metadata"], "type": event.get("type"), "reason": event.get("reason"), "message": event.get("note"),
            "involvedObject": regarding, "firstTimestamp": event.get("deprecatedFirstTimestamp"), "eventTime": event.get("eventTime"),
            "lastTimestamp": event.get("deprecatedLastTimestamp"), "count": event.get("deprecatedCount"), "series": event.get("series"),
            "source": event.get("deprecatedSource"), "reportingComponent": event.get("reportingController")}
    return _event(core)


def _subjects(binding: dict[str, Any]) -> list[str]:
    users, groups, accounts = [], [], []
    for subject in binding.get("subjects") or []:
        kind = subject.get("kind")
        if kind == "User":
            users.append(subject["name"])
        elif kind == "Group":
            groups.append(subject["name"])
        elif kind == "ServiceAccount":
            accounts.append(f"{subject.get('namespace', '')}/{subject['name']}")
    return [", ".join(users), ", ".join(groups), ", ".join(accounts)]


def _binding(binding: dict[str, Any]) -> list[Any]:
    ref = binding.get("roleRef") or {}
    return [f"{ref.get('kind')}/{ref.get('name')}", age(binding["metadata"].get("creationTimestamp")), *_subjects(binding)]


def _created_at(obj: dict[str, Any]) -> list[Any]:
    # roles print their creation time itself, in RFC 3339 UTC
    return [obj["metadata"].get("creationTimestamp", "")]


def _service(svc: dict[str, Any]) -> list[Any]:
    spec = svc["spec"]
    ingress = (svc.get("status") or {}).get("loadBalancer", {}).get("ingress") or []
    external = ",".join(spec.get("externalIPs") or []) or (spec.get("externalName") if spec.get("type") == "ExternalName" else "")
    if spec.get("type") == "LoadBalancer":
        external = ",".join(i.get("ip") or i.get("hostname", "") for i in ingress) or "<pending>"
    ports = ",".join(f"{p['port']}:{p['nodePort']}/{p.get('protocol', 'TCP')}" if p.get("nodePort") else f"{p['port']}/{p.get('protocol', 'TCP')}"
                     for p in spec.get("ports") or []) or "<none>"
    selector = ",".join(f"{k}={v}" for k, v in sorted((spec.get("selector") or {}).items())) or "<none>"
    return [spec.get("type", "ClusterIP"), spec.get("clusterIP") or "<none>", external or "<none>", ports,
            age(svc["metadata"].get("creationTimestamp")), selector]


def _with_age(cells: Callable[[dict[str, Any]], list[Any]]) -> Callable[[dict[str, Any]], list[Any]]:
    return lambda obj: [*cells(obj), age(obj["metadata"].get("creationTimestamp"))]


# kind -> columns after Name ((name, type, priority)) and the cells for them
_AGE = ("Age", "string", 0)
PRINTERS: dict[str, tuple[list[tuple[str, str, int]], Callable[[dict[str, Any]], list[Any]]]] = {
    "Pod": ([("Ready", "string", 0), ("Status", "string", 0), ("Restarts", "string", 0), _AGE, ("IP", "string", 1),
             ("Node", "string", 1), ("Nominated Node", "string", 1), ("Readiness Gates", "string", 1)], _pod),
    "Job": ([("Status", "string", 0), ("Completions", "string", 0), ("Duration", "string", 0), _AGE, ("Containers", "string", 1),
             ("Images", "string", 1), ("Selector", "string", 1)], _job),
    "CronJob": ([("Schedule", "string", 0), ("Timezone", "string", 0), ("Suspend", "boolean", 0), ("Active", "integer", 0),
                 ("Last Schedule", "string", 0), _AGE, ("Containers", "string", 1), ("Images", "string", 1), ("Selector", "string", 1)],
                _cronjob),
    "Namespace": ([("Status", "string", 0), _AGE], _with_age(lambda ns: [(ns.get("status") or {}).get("phase", "")])),
    "ConfigMap": ([("Data", "integer", 0), _AGE],
                  _with_age(lambda cm: [len(cm.get("data") or {}) + len(cm.get("binaryData") or {})])),
    "Secret": ([("Type", "string", 0), ("Data", "integer", 0), _AGE],
               _with_age(lambda s: [s.get("type", ""), len(s.get("data") or {})])),
    "ServiceAccount": ([("Secrets", "string", 0), _AGE], _with_age(lambda sa: [len(sa.get("secrets") or [])])),
    "Service": ([("Type", "string", 0), ("Cluster-IP", "string", 0), ("External-IP", "string", 0), ("Port(s)", "string", 0), _AGE,
                 ("Selector", "string", 1)], _service),
    "Role": ([("Created At", "date", 0)], _created_at),
    "ClusterRole": ([("Created At", "date", 0)], _created_at),
    "RoleBinding": ([("Role", "string", 0), _AGE, ("Users", "string", 1), ("Groups", "string", 1), ("ServiceAccounts", "string", 1)],
                    _binding),
    "ClusterRoleBinding": ([("Role", "string", 0), _AGE, ("Users", "string", 1), ("Groups", "string", 1),
                            ("ServiceAccounts", "string", 1)], _binding),
}
# Events have no Name column in the default view: it comes last, wide only
EVENT_COLUMNS = [("Last Seen", "string", 0), ("Type", "string", 0), ("Reason", "string", 0), ("Object", "string", 0),
                 ("Subobject", "string", 1), ("Source", "string", 1), ("Message", "string", 0), ("First Seen", "string", 1),
                 ("Count", "string", 1), ("Name", "string", 1)]


def _layout(resource: Resource) -> tuple[list[tuple[str, str, int]], Callable[[dict[str, Any]], list[Any]]]:
    if resource.kind == "Event":
        return EVENT_COLUMNS, _events_v1 if resource.group == "events.k8s.io" else _event
    columns, cells = PRINTERS.get(resource.kind, ([_AGE], lambda obj: [age(obj["metadata"].get("creationTimestamp"))]))
    return [("Name", "string", 0), *columns], lambda obj: [obj["metadata"]["name"], *cells(obj)]


def column_definitions(resource: Resource) -> list[dict[str, Any]]:
    columns, _ = _layout(resource)
    return [{"name": name, "type": kind, "format": "name" if name == "Name" else "", "description": "", "priority": priority}
            for name, kind, priority in columns]


def row(resource: Resource, obj: dict[str, Any], include: str = "Metadata") -> dict[str, Any]:
    _, cells = _layout(resource)
    result: dict[str, Any] = {"cells": cells(obj)}
    if include == "Object":
        result["object"] = {"kind": resource.kind, "apiVersion": resource.api_version, **obj}
    elif include != "None":
        result["object"] = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]}
    return result


def table(resource: Resource, objects: list[dict[str, Any]], resource_version: str | None, include: str = "Metadata",
          headers: bool = True) -> dict[str, Any]:
    metadata = {"resourceVersion": resource_version} if resource_version else {}
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": metadata,
            # a watch sends the column definitions with its first event only (kubectl keeps them)
            "columnDefinitions": column_definitions(resource) if headers else [],
            "rows": [row(resource, obj, include) for obj in objects]}


def wants_table(accept: str) -> bool:
    return "as=Table" in accept
