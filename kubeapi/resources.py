"""The resource types this server serves, with what discovery says of them and their defaults.

Defaulting follows the API server's defaulters (``pkg/apis/*/v1/defaults.go``) for the fields the
flavor, the python client's models and ``kubectl describe`` read back; status fields that a
controller would fill are left to ``controllers`` and ``kubelet``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


@dataclass(frozen=True)
class Resource:
    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool = True
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    # field selector paths beyond metadata.name / metadata.namespace
    fields: frozenset[str] = field(default_factory=frozenset)
    # the name must be a DNS-1123 label (63 chars) rather than a subdomain (253)
    label_name: bool = False
    verbs: tuple[str, ...] = tuple(VERBS)

    @property
    def review(self) -> bool:
        """A create-only review (SelfSubjectAccessReview...): answered, never stored."""
        return self.verbs == ("create",)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def storage_key(self) -> str:
        """What identifies the stored objects; two versions of one type would share it."""
        return f"{self.plural}.{self.group}" if self.group else self.plural


RESOURCES = [
    Resource("", "v1", "Namespace", "namespaces", namespaced=False, short_names=("ns",), subresources=("status",),
             fields=frozenset({"status.phase"}), label_name=True),
    Resource("", "v1", "Pod", "pods", short_names=("po",), categories=("all",), subresources=("status", "log"),
             fields=frozenset({"spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
                               "spec.hostNetwork", "status.phase", "status.podIP", "status.nominatedNodeName"})),
    Resource("", "v1", "Secret", "secrets", fields=frozenset({"type"})),
    Resource("", "v1", "ConfigMap", "configmaps", short_names=("cm",)),
    Resource("", "v1", "Event", "events", short_names=("ev",),
             fields=frozenset({"involvedObject.kind", "involvedObject.namespace", "involvedObject.name", "involvedObject.uid",
                               "involvedObject.apiVersion", "involvedObject.resourceVersion", "involvedObject.fieldPath",
                               "reason", "reportingComponent", "source", "type"})),
    Resource("events.k8s.io", "v1", "Event", "events", short_names=("ev",),
             fields=frozenset({"regarding.kind", "regarding.namespace", "regarding.name", "regarding.uid", "reason",
                               "reportingController", "type"})),
    Resource("batch", "v1", "Job", "jobs", categories=("all",), subresources=("status",), fields=frozenset({"status.successful"})),
    Resource("batch", "v1", "CronJob", "cronjobs", short_names=("cj",), categories=("all",), subresources=("status",)),
    Resource("", "v1", "ServiceAccount", "serviceaccounts", short_names=("sa",), subresources=("token",)),
    # stored with a ClusterIP, never routed (README: limits)
    Resource("", "v1", "Service", "services", short_names=("svc",), categories=("all",), subresources=("status",)),
    Resource("rbac.authorization.k8s.io", "v1", "Role", "roles"),
    Resource("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings"),
    Resource("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", namespaced=False),
    Resource("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", namespaced=False),
    Resource("authorization.k8s.io", "v1", "SelfSubjectAccessReview", "selfsubjectaccessreviews", namespaced=False, verbs=("create",)),
    Resource("authorization.k8s.io", "v1", "SelfSubjectRulesReview", "selfsubjectrulesreviews", namespaced=False, verbs=("create",)),
    Resource("authentication.k8s.io", "v1", "SelfSubjectReview", "selfsubjectreviews", namespaced=False, verbs=("create",)),
]

GROUPS = {"": ["v1"], "batch": ["v1"], "events.k8s.io": ["v1"], "rbac.authorization.k8s.io": ["v1"], "authorization.k8s.io": ["v1"],
          "authentication.k8s.io": ["v1"]}


def find(group: str, version: str, plural: str) -> Resource | None:
    for resource in RESOURCES:
        if (resource.group, resource.version, resource.plural) == (group, version, plural):
            return resource
    return None


def by_kind(api_version: str, kind: str) -> Resource | None:
    for resource in RESOURCES:
        if (resource.api_version, resource.kind) == (api_version, kind):
            return resource
    return None


def _default_container(container: dict[str, Any]) -> None:
    container.setdefault("terminationMessagePath", "/dev/termination-log")
    container.setdefault("terminationMessagePolicy", "File")
    image = container.get("image", "")
    tag = image.rsplit("/", 1)[-1]
    latest = "@" not in image and (":" not in tag or tag.endswith(":latest"))
    container.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")
    container.setdefault("resources", {})
    resources = container["resources"]
    # requests default to limits, as the API server does when only limits are given
    if resources.get("limits"):
        resources.setdefault("requests", {})
        for name, value in resources["limits"].items():
            resources["requests"].setdefault(name, value)
    for port in container.get("ports") or []:
        port.setdefault("protocol", "TCP")


def default_pod_spec(spec: dict[str, Any]) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    spec.setdefault("priority", 0)
    spec.setdefault("serviceAccountName", spec.get("serviceAccount", "default"))
    spec.setdefault("serviceAccount", spec["serviceAccountName"])
    spec.setdefault("tolerations", [
        {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
        {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
    ])
    for container in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        _default_container(container)


def qos_class(spec: dict[str, Any]) -> str:
    containers = spec.get("containers") or []
    resources = [c.get("resources") or {} for c in containers]
    if not any(r.get("requests") or r.get("limits") for r in resources):
        return "BestEffort"
    guaranteed = all(
        set(r.get("limits") or {}) >= {"cpu", "memory"} and (r.get("requests") or {}) == {k: v for k, v in (r.get("limits") or {}).items() if k in (r.get("requests") or {})}
        for r in resources
    )
    return "Guaranteed" if guaranteed else "Burstable"


def _default_job_fields(spec: dict[str, Any]) -> None:
    """SetDefaults_Job and SetDefaults_PodFailurePolicyOnPodConditionsPattern of
    pkg/apis/batch/v1/defaults.go: a Job with a podFailurePolicy replaces only Failed pods, and
    a pod-condition pattern without ``status`` matches ``"True"`` (clients may leave it out:
    ZenML's step jobs do, and a client that requires it, such as the python client before 26,
    cannot read the Job back otherwise)."""
    spec.setdefault("parallelism", 1)
    spec.setdefault("completions", 1)
    spec.setdefault("backoffLimit", 6)
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    spec.setdefault("podReplacementPolicy", "Failed" if spec.get("podFailurePolicy") else "TerminatingOrFailed")
    spec.setdefault("manualSelector", False)
    for rule in (spec.get("podFailurePolicy") or {}).get("rules") or []:
        for pattern in rule.get("onPodConditions") or []:
            if not pattern.get("status"):
                pattern["status"] = "True"


def default_job_spec(spec: dict[str, Any], uid: str, name: str) -> None:
    """Job defaults plus the selector and template labels the job controller's admission adds."""
    _default_job_fields(spec)
    template = spec.setdefault("template", {})
    labels = template.setdefault("metadata", {}).setdefault("labels", {})
    if not spec.get("selector"):
        spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
        labels.update({"batch.kubernetes.io/controller-uid": uid, "batch.kubernetes.io/job-name": name,
                       "controller-uid": uid, "job-name": name})
    default_pod_spec(template.setdefault("spec", {}))


def default_service_spec(spec: dict[str, Any]) -> None:
    """The Service defaults of pkg/apis/core/v1/defaults.go (the ClusterIP is allocated on create)."""
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    if spec["type"] != "ExternalName":
        spec.setdefault("internalTrafficPolicy", "Cluster")
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
    if spec["type"] in ("NodePort", "LoadBalancer"):
        spec.setdefault("externalTrafficPolicy", "Cluster")
    for port in spec.get("ports") or []:
        port.setdefault("protocol", "TCP")
        port.setdefault("targetPort", port.get("port"))


def default_cronjob_spec(spec: dict[str, Any]) -> None:
    spec.setdefault("concurrencyPolicy", "Allow")
    spec.setdefault("suspend", False)
    spec.setdefault("successfulJobsHistoryLimit", 3)
    spec.setdefault("failedJobsHistoryLimit", 1)
    job_spec = spec.setdefault("jobTemplate", {}).setdefault("spec", {})
    _default_job_fields(job_spec)
    default_pod_spec(job_spec.setdefault("template", {}).setdefault("spec", {}))


def apply_defaults(resource: Resource, obj: dict[str, Any]) -> dict[str, Any]:
    """A defaulted copy of ``obj`` (a new object: its metadata must already be complete)."""
    obj = copy.deepcopy(obj)
    meta = obj["metadata"]
    if resource.kind == "Pod":
        default_pod_spec(obj.setdefault("spec", {}))
    elif resource.kind == "Job":
        default_job_spec(obj.setdefault("spec", {}), meta["uid"], meta["name"])
        # a Job without labels takes its pod template's (the generated selector labels included)
        if not meta.get("labels"):
            meta["labels"] = dict(obj["spec"]["template"]["metadata"]["labels"])
    elif resource.kind == "CronJob":
        default_cronjob_spec(obj.setdefault("spec", {}))
    elif resource.kind == "Service":
        default_service_spec(obj.setdefault("spec", {}))
    elif resource.kind == "Secret":
        obj.setdefault("type", "Opaque")
    elif resource.kind == "Namespace":
        meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta["name"]
        obj["spec"] = {"finalizers": ["kubernetes"]}
    return obj


def initial_status(resource: Resource, obj: dict[str, Any]) -> dict[str, Any] | None:
    """The status a new object starts with: clients cannot set it on create."""
    if resource.kind == "Pod":
        return {"phase": "Pending", "qosClass": qos_class(obj["spec"])}
    if resource.kind == "Namespace":
        return {"phase": "Active"}
    if resource.kind in ("Job", "CronJob"):
        return {}
    if resource.kind == "Service":
        return {"loadBalancer": {}}
    return None
