"""The object lifecycle a kube-apiserver's generic registry gives every write, without HTTP.

Create, update (whole object or ``/status``), patch and delete, with the metadata rules of a
real server: ``uid``/``creationTimestamp``/``generation`` set by the server, ``generateName``,
optimistic concurrency on ``resourceVersion`` (409 Conflict), status kept apart from spec,
graceful pod deletion, namespaces that terminate, and ``propagationPolicy`` for dependents
(the garbage collector in ``controllers`` finishes Background deletions). The HTTP handlers,
the controllers and the kubelet all write through this one class.
"""

from __future__ import annotations

import copy
import secrets
import time
import uuid
from base64 import b64encode
from datetime import datetime, timedelta, timezone
from typing import Any

from . import validation
from .resources import RESOURCES, Resource, apply_defaults, initial_status
from .status import ApiError, already_exists, bad_request, conflict, invalid, not_found, success
from .store import Store

# what generateName appends: apimachinery's SimpleNameGenerator alphabet (no vowels), 5 characters
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
JOB_ORPHAN_WARNING = ("child pods are preserved by default when jobs are deleted; set propagationPolicy=Background to remove them "
                      "or set propagationPolicy=Orphan to suppress this warning")


def now(offset: float = 0) -> str:
    return (datetime.now(timezone.utc) + timedelta(seconds=offset)).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_micro() -> str:
    """A ``MicroTime``, as events.k8s.io's ``eventTime`` carries it."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _unchanged(updated: dict[str, Any], current: dict[str, Any]) -> bool:
    def comparable(obj: dict[str, Any]) -> dict[str, Any]:
        view = copy.deepcopy(obj)
        view.get("metadata", {}).pop("resourceVersion", None)
        return view
    return comparable(updated) == comparable(current)


class Cluster:
    def __init__(self, store: Store) -> None:
        self.store = store

    # events ----------------------------------------------------------------------------
    _last_event_ns = 0

    def _event_clock(self) -> int:
        self._last_event_ns = max(time.time_ns(), self._last_event_ns + 1)
        return self._last_event_ns

    def record_event(self, obj: dict[str, Any], reason: str, message: str, kind: str = "Normal", component: str = "",
                     host: str = "", field_path: str = "", series_time: bool = False) -> None:
        """A core/v1 Event about ``obj``, as client-go's event recorder writes it: a repeat of the
        same reason and message about the same object (the EventCorrelator's key) bumps ``count``
        and ``lastTimestamp`` of the one event rather than adding another. ``series_time``: the
        events.k8s.io form a scheduler writes (``eventTime``, no first/lastTimestamp)."""
        from .resources import find

        events = find("", "v1", "events")
        meta = obj["metadata"]
        namespace = meta.get("namespace") or "default"
        stamp = now()
        involved = {"apiVersion": obj.get("apiVersion", "v1"), "kind": obj.get("kind", ""), "name": meta["name"],
                    "namespace": meta.get("namespace", ""), "uid": meta["uid"], "resourceVersion": meta.get("resourceVersion", "")}
        if field_path:
            involved["fieldPath"] = field_path
        for existing in self.store.list(events.storage_key, namespace):
            same = existing.get("involvedObject", {})
            if (same.get("uid"), same.get("fieldPath", ""), existing.get("reason"), existing.get("message"), existing.get("source", {}).get("component", "")) \
                    == (meta["uid"], field_path, reason, message, component if not series_time else ""):
                existing["count"] = existing.get("count", 1) + 1
                if series_time:
                    existing["series"] = {"count": existing["count"], "lastObservedTime": now_micro()}
                else:
                    existing["lastTimestamp"] = stamp
                self.store.put(events.storage_key, existing)
                return
        event: dict[str, Any] = {
            "apiVersion": "v1", "kind": "Event",
            # client-go names an event after the object and the time in nanoseconds, in hex, so
            # that listing by name (etcd's order) lists events in the order they happened
            "metadata": {"name": f"{meta['name']}.{self._event_clock():x}", "namespace": namespace},
            "involvedObject": involved, "reason": reason, "message": message, "type": kind,
            "reportingComponent": component, "reportingInstance": host or "",
        }
        if series_time:
            event.update(eventTime=now_micro(), firstTimestamp=None, lastTimestamp=None, source={}, action="Binding",
                         reportingInstance=f"{component}-{host}" if host else component)
        else:
            event.update(count=1, firstTimestamp=stamp, lastTimestamp=stamp, eventTime=None,
                         source={"component": component, **({"host": host} if host else {})})
        try:
            self.create(events, namespace, event)
        except ApiError:
            pass  # the namespace is terminating: its events go with it

    # helpers ---------------------------------------------------------------------------
    def require(self, resource: Resource, namespace: str, name: str) -> dict[str, Any]:
        obj = self.store.get(resource.storage_key, namespace if resource.namespaced else "", name)
        if obj is None:
            raise not_found(resource.plural, resource.group, name)
        return obj

    def _check_kind(self, resource: Resource, obj: Any) -> dict[str, Any]:
        if not isinstance(obj, dict):
            raise bad_request(f"the object provided is unrecognized (must be of type {resource.kind})")
        if obj.get("kind", resource.kind) != resource.kind or obj.get("apiVersion", resource.api_version) != resource.api_version:
            raise bad_request(f'the API version in the data ({obj.get("apiVersion")}) does not match the expected API version ({resource.api_version})'
                              if obj.get("kind") == resource.kind else
                              f"the object provided is unrecognized (must be of type {resource.kind}): {obj.get('kind')}")
        obj = copy.deepcopy(obj)
        obj["kind"], obj["apiVersion"] = resource.kind, resource.api_version
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise bad_request(f'{resource.kind} in version "{resource.version}" cannot be handled as a {resource.kind}: metadata must be an object')
        return obj

    @staticmethod
    def _normalize(resource: Resource, obj: dict[str, Any]) -> None:
        # what Go's JSON omits (omitempty): an empty map or list of metadata is no field at all,
        # so a patch that removes the last label leaves no "labels: {}" behind
        meta = obj.get("metadata")
        if isinstance(meta, dict):
            for key in ("labels", "annotations", "finalizers", "ownerReferences", "managedFields"):
                if key in meta and not meta[key]:
                    del meta[key]
        if resource.kind in ("ConfigMap", "Secret"):
            for key in ("data", "binaryData"):
                if key in obj and not obj[key]:
                    del obj[key]
        if resource.kind == "Secret" and obj.get("stringData"):
            # stringData is write-only: merged into data, base64-encoded, and never stored
            data = obj.setdefault("data", {}) or {}
            for key, value in obj.pop("stringData").items():
                data[key] = b64encode(str(value).encode()).decode()
            obj["data"] = data

    # create ----------------------------------------------------------------------------
    def create(self, resource: Resource, namespace: str | None, body: Any, field_validation: str = "Warn",
               dry_run: bool = False) -> tuple[dict[str, Any], list[str]]:
        obj = self._check_kind(resource, body)
        meta = obj["metadata"]
        if resource.namespaced:
            if meta.get("namespace") and meta["namespace"] != namespace:
                raise bad_request("the namespace of the provided object does not match the namespace sent on the request")
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + "".join(secrets.choice(_NAME_ALPHABET) for _ in range(5))
        if not meta.get("name"):
            raise ApiError(422, "Invalid", f'{resource.kind} "" is invalid: metadata.name: Required value: name or generateName is required',
                           {"kind": resource.kind, **({"group": resource.group} if resource.group else {}),
                            "causes": [{"reason": "FieldValueRequired", "message": "Required value: name or generateName is required", "field": "metadata.name"}]})
        for server_field in ("uid", "resourceVersion", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"):
            meta.pop(server_field, None)
        self._normalize(resource, obj)
        warnings = validation.validate(resource, obj, field_validation)
        if resource.namespaced:
            self._require_active_namespace(namespace or "")
        if self.store.get(resource.storage_key, meta.get("namespace", ""), meta["name"]) is not None:
            raise already_exists(resource.plural, resource.group, meta["name"])
        meta.update(uid=str(uuid.uuid4()), creationTimestamp=now())
        if resource.kind in ("Pod", "Job", "CronJob"):  # the types whose strategies track generation
            meta["generation"] = 1
        obj = apply_defaults(resource, obj)
        if resource.kind == "Service":
            self._allocate_cluster_ip(obj)
        status = initial_status(resource, obj)
        if status is not None:
            obj["status"] = status
        if dry_run:
            return obj, warnings
        return self.store.put(resource.storage_key, obj), warnings

    def _require_active_namespace(self, namespace: str) -> None:
        ns = self.store.get("namespaces", "", namespace)
        if ns is None:
            raise not_found("namespaces", "", namespace)
        if ns["metadata"].get("deletionTimestamp"):
            raise ApiError(403, "Forbidden", f"unable to create new content in namespace {namespace} because it is being terminated",
                           {"name": namespace, "kind": "namespaces"})

    # update and patch ------------------------------------------------------------------
    def update(self, resource: Resource, namespace: str, name: str, body: Any, subresource: str = "",
               field_validation: str = "Warn", dry_run: bool = False) -> tuple[dict[str, Any], list[str]]:
        obj = self._check_kind(resource, body)
        meta = obj["metadata"]
        if meta.get("name", name) != name:
            raise bad_request(f"the name of the object ({meta.get('name')}) does not match the name on the URL ({name})")
        if resource.namespaced and meta.get("namespace", namespace) != namespace:
            raise bad_request("the namespace of the provided object does not match the namespace sent on the request")
        current = self.require(resource, namespace, name)
        if meta.get("resourceVersion") and meta["resourceVersion"] != current["metadata"]["resourceVersion"]:
            raise conflict(resource.plural, resource.group, name)
        if subresource == "status":
            updated = copy.deepcopy(current)
            updated["status"] = obj.get("status", {})
        else:
            updated = obj
            # the server owns these; the status of a type with a status subresource is kept
            for owned in ("uid", "creationTimestamp", "namespace", "generation", "deletionTimestamp", "deletionGracePeriodSeconds"):
                if owned in current["metadata"]:
                    meta[owned] = current["metadata"][owned]
                else:
                    meta.pop(owned, None)
            if "status" in resource.subresources:
                if "status" in current:
                    updated["status"] = current["status"]
                else:
                    updated.pop("status", None)
            self._normalize(resource, updated)
            updated = self._defaulted_like(resource, updated, current)
            self._check_immutable(resource, current, updated)
            if updated.get("spec") != current.get("spec") and "generation" in current["metadata"]:
                meta["generation"] = current["metadata"]["generation"] + 1
        warnings = validation.validate(resource, updated, field_validation)
        if _unchanged(updated, current):
            # the storage writes nothing for a no-op update: same object, same resourceVersion
            return current, warnings
        if dry_run:
            return updated, warnings
        return self.store.put(resource.storage_key, updated), warnings

    def _allocate_cluster_ip(self, service: dict[str, Any]) -> None:
        """The next free address of the service range 10.96.0.0/12 (10.96.0.1 is ``kubernetes``'s);
        nothing routes to it here."""
        spec = service["spec"]
        if spec["type"] == "ExternalName" or spec.get("clusterIP") == "None":
            if spec.get("clusterIP") == "None":
                spec["clusterIPs"] = ["None"]
            return
        if not spec.get("clusterIP"):
            used = {s.get("spec", {}).get("clusterIP") for s in self.store.list("services")}
            number = 10
            while f"10.96.{number // 256}.{number % 256}" in used:
                number += 1
            spec["clusterIP"] = f"10.96.{number // 256}.{number % 256}"
        spec["clusterIPs"] = [spec["clusterIP"]]
        for port in spec.get("ports") or []:
            if spec["type"] in ("NodePort", "LoadBalancer") and not port.get("nodePort"):
                port["nodePort"] = 30000 + (sum(map(ord, f"{service['metadata']['name']}{port.get('port')}")) * 7919) % 2768

    @staticmethod
    def _defaulted_like(resource: Resource, obj: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
        """Defaults again, keeping the Job's generated selector (its uid does not change) and a
        Service's allocated addresses."""
        if resource.kind == "Job" and not obj.get("spec", {}).get("selector"):
            obj.setdefault("spec", {})["selector"] = current["spec"].get("selector")
        if resource.kind == "Service":
            spec = obj.setdefault("spec", {})
            for key in ("clusterIP", "clusterIPs"):
                if not spec.get(key) and current["spec"].get(key):
                    spec[key] = current["spec"][key]
        return apply_defaults(resource, obj)

    @staticmethod
    def _check_immutable(resource: Resource, current: dict[str, Any], updated: dict[str, Any]) -> None:
        name = current["metadata"]["name"]
        if resource.kind == "Pod":
            # only images, activeDeadlineSeconds and added tolerations may change on a pod
            def mutable_view(spec: dict[str, Any]) -> dict[str, Any]:
                view = copy.deepcopy(spec)
                for container in [*(view.get("containers") or []), *(view.get("initContainers") or [])]:
                    container.pop("image", None)
                for key in ("activeDeadlineSeconds", "tolerations"):
                    view.pop(key, None)
                return view
            if mutable_view(current["spec"]) != mutable_view(updated.get("spec") or {}):
                raise invalid(resource.kind, resource.group, name, [{"reason": "FieldValueForbidden", "field": "spec", "message":
                    "Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,"
                    "`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),"
                    "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)"}])
        elif resource.kind == "Job":
            for field in ("template", "selector", "completions", "completionMode"):
                if current["spec"].get(field) != (updated.get("spec") or {}).get(field):
                    raise invalid(resource.kind, resource.group, name, [{"reason": "FieldValueInvalid", "field": f"spec.{field}",
                                                                         "message": "field is immutable"}])

    def patch(self, resource: Resource, namespace: str, name: str, patched: dict[str, Any], subresource: str = "",
              field_validation: str = "Warn", dry_run: bool = False) -> tuple[dict[str, Any], list[str]]:
        """Store the result of a patch already applied to the current object."""
        return self.update(resource, namespace, name, patched, subresource, field_validation, dry_run)

    # delete ----------------------------------------------------------------------------
    def delete(self, resource: Resource, namespace: str, name: str, options: dict[str, Any] | None = None) -> tuple[dict[str, Any], list[str]]:
        """Returns the answer body (the object for pods and namespaces, else a Success Status)."""
        options = options or {}
        current = self.require(resource, namespace, name)
        meta = current["metadata"]
        preconditions = options.get("preconditions") or {}
        if preconditions.get("uid") and preconditions["uid"] != meta["uid"]:
            raise conflict(resource.plural, resource.group, name,
                           f"Precondition failed: UID in precondition: {preconditions['uid']}, UID in object meta: {meta['uid']}")
        if preconditions.get("resourceVersion") and preconditions["resourceVersion"] != meta["resourceVersion"]:
            raise conflict(resource.plural, resource.group, name,
                           f"Precondition failed: ResourceVersion in precondition: {preconditions['resourceVersion']}, "
                           f"ResourceVersion in object meta: {meta['resourceVersion']}")
        warnings: list[str] = []
        policy = options.get("propagationPolicy")
        if policy is None and options.get("orphanDependents") is not None:
            policy = "Orphan" if options["orphanDependents"] else "Background"
        if policy is None:
            # batch/v1 Jobs orphan their pods by default (and say so); everything else is Background
            policy = "Orphan" if resource.kind == "Job" else "Background"
            if resource.kind == "Job":
                warnings.append(JOB_ORPHAN_WARNING)
        if policy not in ("Orphan", "Background", "Foreground"):
            raise ApiError(422, "Invalid", f'DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Unsupported value: "{policy}": '
                           'supported values: "Foreground", "Background", "Orphan", "nil"')
        if options.get("dryRun"):
            return (current if resource.kind in ("Pod", "Namespace") else self._deleted(resource, current)), warnings
        if resource.kind == "Namespace":
            return self._terminate_namespace(current), warnings
        if resource.kind == "Pod" and self._deletes_gracefully(current, options):
            if meta.get("deletionTimestamp"):
                return current, warnings
            grace = int(options.get("gracePeriodSeconds", current["spec"].get("terminationGracePeriodSeconds", 30)))
            meta.update(deletionTimestamp=now(grace), deletionGracePeriodSeconds=grace)
            return self.store.put(resource.storage_key, current), warnings
        if policy == "Foreground" and self.dependents(meta["uid"]):
            return self._delete_in_foreground(resource, current), warnings
        self._handle_dependents(meta["uid"], policy)
        final = self.store.remove(resource.storage_key, meta.get("namespace", ""), name)
        self._release_foreground_owners(final)
        return (final if resource.kind == "Pod" else self._deleted(resource, current)), warnings

    def _delete_in_foreground(self, resource: Resource, owner: dict[str, Any]) -> dict[str, Any]:
        """Foreground cascading deletion as the API server and the garbage collector do it: the
        owner stays, visible and marked (``deletionTimestamp``, the ``foregroundDeletion``
        finalizer), while its dependents are deleted the way the garbage collector deletes them,
        each with its own grace period — a running pod is stopped with SIGTERM and gets its
        ``terminationGracePeriodSeconds`` (ZenML's step pods mark their step run STOPPED in that
        time), not killed — and the owner goes when its last dependent has gone."""
        meta = owner["metadata"]
        if "foregroundDeletion" not in (meta.get("finalizers") or []):
            meta.update(deletionTimestamp=now(), deletionGracePeriodSeconds=0,
                        finalizers=[*(meta.get("finalizers") or []), "foregroundDeletion"])
            owner = self.store.put(resource.storage_key, owner)
            for dependent_resource, dependent in self.dependents(meta["uid"]):
                try:
                    self.delete(dependent_resource, dependent["metadata"].get("namespace", ""), dependent["metadata"]["name"],
                                {"propagationPolicy": "Foreground"})
                except ApiError:
                    pass  # gone meanwhile
        still_there = self.store.get(resource.storage_key, meta.get("namespace", ""), meta["name"])
        return still_there if still_there is not None else self._deleted(resource, owner)

    def _release_foreground_owners(self, gone: dict[str, Any]) -> None:
        """The garbage collector's last step of a foreground deletion: an owner waiting for its
        dependents goes once ``gone`` was the last of them."""
        for ref in gone["metadata"].get("ownerReferences") or []:
            for resource in RESOURCES:
                if resource.kind != ref.get("kind"):
                    continue
                for owner in self.store.list(resource.storage_key):
                    meta = owner["metadata"]
                    if (meta["uid"] == ref.get("uid") and "foregroundDeletion" in (meta.get("finalizers") or [])
                            and not self.dependents(meta["uid"])):
                        self._release_foreground_owners(self.store.remove(resource.storage_key, meta.get("namespace", ""), meta["name"]))

    @staticmethod
    def _deleted(resource: Resource, obj: dict[str, Any]) -> dict[str, Any]:
        details: dict[str, Any] = {"name": obj["metadata"]["name"], "kind": resource.plural, "uid": obj["metadata"]["uid"]}
        if resource.group:
            details["group"] = resource.group
        return success(details)

    @staticmethod
    def _deletes_gracefully(pod: dict[str, Any], options: dict[str, Any]) -> bool:
        """A pod bound to the node, not finished, is stopped by the kubelet before it goes."""
        bound = bool(pod["spec"].get("nodeName"))
        finished = pod.get("status", {}).get("phase") in ("Succeeded", "Failed")
        return bound and not finished and int(options.get("gracePeriodSeconds", 1)) != 0

    def finish_pod_deletion(self, pod: dict[str, Any]) -> None:
        """The kubelet's last word on a gracefully deleted pod: it is gone."""
        meta = pod["metadata"]
        self._release_foreground_owners(self.store.remove("pods", meta["namespace"], meta["name"]))

    def dependents(self, owner_uid: str) -> list[tuple[Resource, dict[str, Any]]]:
        found = []
        for resource in RESOURCES:
            if resource.group == "events.k8s.io":
                continue
            for obj in self.store.list(resource.storage_key):
                if any(ref.get("uid") == owner_uid for ref in obj["metadata"].get("ownerReferences") or []):
                    found.append((resource, obj))
        return found

    def _handle_dependents(self, owner_uid: str, policy: str) -> None:
        for resource, obj in self.dependents(owner_uid):
            meta = obj["metadata"]
            if policy == "Orphan":
                meta["ownerReferences"] = [r for r in meta["ownerReferences"] if r.get("uid") != owner_uid] or None
                if meta["ownerReferences"] is None:
                    del meta["ownerReferences"]
                self.store.put(resource.storage_key, obj)
            # Background: the garbage collector deletes dependents whose owners are gone

    def _terminate_namespace(self, ns: dict[str, Any]) -> dict[str, Any]:
        if not ns["metadata"].get("deletionTimestamp"):
            ns["metadata"]["deletionTimestamp"] = now()
            ns["status"] = {"phase": "Terminating"}
            ns = self.store.put("namespaces", ns)
        return ns
