"""What a flavor declares it supports. Declared means the conformance suite must see it work;
undeclared means the flavor must refuse cleanly (or, for resources, may warn) — SPEC CAP-*."""

from __future__ import annotations

from enum import Enum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from .status import ExecutionMode

ResourceKind = Literal["cpu", "memory", "gpu"]
ScheduleKind = Literal["cron", "interval", "run_once"]
RESOURCE_KINDS: tuple[ResourceKind, ...] = ("cpu", "memory", "gpu")


class ResourceSupport(str, Enum):
    """How a flavor treats one kind of resource request.

    - ``ENFORCED``: the limit is applied and observable inside the step (cgroup quota/limit,
      visible GPUs).
    - ``REJECTED``: unsupported; a pipeline asking for it is refused before anything runs
      with :class:`~orcakit.errors.UnsupportedFeatureError`.
    - ``WARNED``: unsupported; the request is ignored *loudly* — a
      :class:`~orcakit.ResourcesIgnoredWarning` is issued and logged for every step affected.
    """

    ENFORCED = "enforced"
    REJECTED = "rejected"
    WARNED = "warned"


class _SortedSet(frozenset):
    def __repr__(self) -> str:
        return f"frozenset({{{', '.join(sorted(map(repr, self)))}}})" if self else "frozenset()"


class Capabilities(BaseModel):
    """A flavor's capability manifest (a sealed value; compare and report it as data)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cpu: ResourceSupport = ResourceSupport.REJECTED
    memory: ResourceSupport = ResourceSupport.REJECTED
    gpu: ResourceSupport = ResourceSupport.REJECTED
    schedules: frozenset[ScheduleKind] = Field(default=frozenset())
    dynamic_pipelines: bool = False
    native_retries: bool = Field(default=False, description="the backend retries steps (ZenML handles_step_retries)")
    parallel_steps: bool = True
    stop_run: bool = False
    fetch_status: bool = False
    execution_modes: frozenset[ExecutionMode] = Field(default=frozenset(ExecutionMode))
    max_concurrent_runs: int | None = Field(
        default=None, ge=1,
        description="how many runs the backend takes at once (None: no limit); the conformance suite, "
                    "running checks side by side, never has more runs in flight than this")

    def __repr_args__(self):
        # Sets print sorted: a frozenset's order follows string hashing, which differs from one
        # process to the next, and this repr is part of failure messages (Hypothesis prints the
        # failing example's arguments) that must read the same in every run with the same seed.
        for name, value in super().__repr_args__():
            yield name, _SortedSet(value) if isinstance(value, frozenset) else value

    def resource_support(self, kind: ResourceKind) -> ResourceSupport:
        return getattr(self, kind)

    def manifest(self) -> dict:
        """JSON-ready form for reports (sorted, so that equal manifests print equal)."""
        data = self.model_dump(mode="json")
        for key in ("schedules", "execution_modes"):
            data[key] = sorted(data[key])
        return data
