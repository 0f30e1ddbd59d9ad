"""Configuration of the kubernetes flavor (a light module: no Kubernetes client here)."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from orcakit.reference import ContainerRuntimeConfig

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


class PodSettings(BaseModel):
    """Pod settings that may be given for the whole flavor and, per step, in ``step_pod_settings``
    (a step's settings are merged over the flavor's: dicts key by key, lists appended).
    Values are Kubernetes' own JSON forms (camelCase), e.g. a toleration
    ``{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    node_selector: dict[str, str] = Field(default_factory=dict, description="spec.nodeSelector")
    tolerations: list[dict[str, Any]] = Field(default_factory=list, description="spec.tolerations")
    affinity: dict[str, Any] | None = Field(default=None, description="spec.affinity (a step's replaces the flavor's)")
    service_account_name: str | None = Field(default=None, description="spec.serviceAccountName")
    image_pull_secrets: list[str] = Field(default_factory=list, description="names of docker-registry Secrets")
    labels: dict[str, str] = Field(default_factory=dict, description="more pod labels")
    annotations: dict[str, str] = Field(default_factory=dict, description="more pod annotations")
    volumes: list[dict[str, Any]] = Field(default_factory=list, description="more spec.volumes")
    volume_mounts: list[dict[str, Any]] = Field(default_factory=list, description="more volumeMounts of the container")

    def merged(self, other: "PodSettings | None") -> "PodSettings":
        if other is None:
            return self
        return PodSettings(
            node_selector={**self.node_selector, **other.node_selector},
            tolerations=[*self.tolerations, *other.tolerations],
            affinity=other.affinity if other.affinity is not None else self.affinity,
            service_account_name=other.service_account_name or self.service_account_name,
            image_pull_secrets=[*self.image_pull_secrets, *[s for s in other.image_pull_secrets if s not in self.image_pull_secrets]],
            labels={**self.labels, **other.labels},
            annotations={**self.annotations, **other.annotations},
            volumes=[*self.volumes, *other.volumes],
            volume_mounts=[*self.volume_mounts, *other.volume_mounts],
        )


class KubernetesOrchestratorConfig(ContainerRuntimeConfig, PodSettings):
    """The shared container fields (parent_image, image, requirements, code_paths, max_parallelism,
    forward_environment, wheel_cache), the flavor-wide pod settings, and the cluster's own."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kubeconfig: str | None = Field(default=None, description="kubeconfig file (default: KUBECONFIG, then ~/.kube/config)")
    kubernetes_context: str | None = Field(default=None, description="kubeconfig context (default: the current one)")
    incluster: bool | None = Field(
        default=None,
        description=("use the pod's service account (in-cluster config). Default: when KUBERNETES_SERVICE_HOST is set and "
                     "no kubeconfig is given; orcakit's own orchestrator pods always do"),
    )
    kubernetes_namespace: str = Field(default="default", description="namespace of every object the flavor creates")
    step_pod_settings: dict[str, PodSettings] = Field(
        default_factory=dict, description="per-step pod settings, by step name (merged over the flavor's)"
    )
    image_pull_policy: str = Field(
        default="IfNotPresent",
        description="imagePullPolicy of every container: IfNotPresent (a content-hashed tag never changes), Never or Always",
    )
    orchestrator_backoff_limit: int = Field(
        default=3, ge=0, description="how often a crashed orchestrator pod is restarted (the Job's backoffLimit)"
    )
    ttl_seconds_after_finished: int | None = Field(
        default=3600, ge=0,
        description="finished orchestrator Jobs (and, through ownerReferences, their pods and Secrets) are deleted after this",
    )
    gpus: int | None = Field(
        default=None, ge=0,
        description="GPUs (nvidia.com/gpu) the largest node offers (default: asked from the nodes' allocatable)",
    )
    api_timeout: float = Field(default=60.0, gt=0, description="seconds one API call may take")

    @field_validator("kubernetes_namespace")
    @classmethod
    def _check_namespace(cls, value: str) -> str:
        if not _DNS1123_LABEL.fullmatch(value):
            raise ValueError(f"namespace {value!r} is not a DNS-1123 label (lower-case letters, digits, '-', at most 63)")
        return value

    @field_validator("image_pull_policy")
    @classmethod
    def _check_pull_policy(cls, value: str) -> str:
        if value not in ("IfNotPresent", "Never", "Always"):
            raise ValueError(f"image_pull_policy must be IfNotPresent, Never or Always, got {value!r}")
        return value

    def pod_settings(self, step_name: str | None = None) -> PodSettings:
        """The pod settings of a step (the flavor's, with the step's merged over them)."""
        base = PodSettings(**{name: getattr(self, name) for name in PodSettings.model_fields})
        return base.merged(self.step_pod_settings.get(step_name)) if step_name else base
