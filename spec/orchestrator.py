"""The orchestrator contract: what a flavor implements and what the base class does around it.

A flavor subclasses :class:`BaseOrchestrator` (or :class:`ContainerizedOrchestrator`) and
implements two things: :meth:`~BaseOrchestrator.get_orchestrator_run_id`, called *inside every
step's own environment*, and :meth:`~BaseOrchestrator.submit_pipeline`, called once per run on
the client. :meth:`BaseOrchestrator.run` wraps the submission: it validates the snapshot
against the flavor's declared capabilities, builds every step's environment and hands over.
"""

from __future__ import annotations

import logging
import warnings
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, ClassVar

from pydantic import BaseModel, ConfigDict

from .capabilities import Capabilities, ResourceSupport
from .errors import RunIdError, UnsupportedFeatureError
from .sealing import seal
from .snapshot import PipelineSnapshot
from .status import ExecutionStatus

if TYPE_CHECKING:
    from .flavor import Flavor

logger = logging.getLogger("orcakit.orchestrator")

#: The largest run ID the run store accepts (ZenML's documented limit; SPEC RUNID-4).
MAX_RUN_ID_LENGTH = 250
#: The module every backend runs for one step: ``python -m STEP_ENTRYPOINT_MODULE ...``.
STEP_ENTRYPOINT_MODULE = "orcakit.reference.entrypoint"
#: Set by the base class in every step environment: the snapshot being run.
SNAPSHOT_ID_ENV = "ORCAKIT_SNAPSHOT_ID"
#: Set by the base class when the client created a placeholder run: the first step of *this*
#: submission takes it over (never another submission's placeholder of the same snapshot).
PLACEHOLDER_RUN_ENV = "ORCAKIT_PLACEHOLDER_RUN_ID"


def unimplemented(capability: str) -> Callable[[Callable], Callable]:
    """Mark a method's default as a placeholder that a flavor declaring ``capability`` must
    override. :meth:`Flavor.check` refuses, at registration, an implementation that declares
    the capability but still has a marked default anywhere in its class hierarchy (a base
    class built on this contract marks its own hooks the same way)."""

    def mark(method: Callable) -> Callable:
        method.__orcakit_unimplemented__ = capability  # type: ignore[attr-defined]
        return method

    return mark


def unimplemented_methods(implementation: type, capability: str) -> list[str]:
    """Names of the placeholders for ``capability`` that ``implementation`` leaves in place."""
    return sorted(
        name for name in dir(implementation)
        if getattr(getattr(implementation, name, None), "__orcakit_unimplemented__", None) == capability
    )


class ResourcesIgnoredWarning(UserWarning):
    """A step asked for a resource kind its orchestrator declares as WARNED (ignored, loudly)."""


class BaseOrchestratorConfig(BaseModel):
    """Base of every flavor's config. Unknown keys are refused; values are validated and coerced
    by pydantic, so ``orcakit orchestrator register ... --key=value`` errors name the field."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @property
    def is_synchronous(self) -> bool:
        """Whether ``submit_pipeline`` only returns once the run is over (ZenML's flag)."""
        return False


@dataclass(frozen=True)
class SubmissionResult:
    """What ``submit_pipeline`` returns: a way to wait for the run, and metadata to record.

    ``wait_for_completion`` blocks until the run reached a terminal status; errors it raises
    are reported but do not by themselves mark the run failed (the steps' statuses decide).
    """

    wait_for_completion: Callable[[], None] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


class BaseOrchestrator(ABC):
    """Runs compiled pipelines on a backend.

    Invariants a flavor must keep (SPEC.md is normative):
    - ``get_orchestrator_run_id()`` returns, in every step of one run, the same string of at
      most 250 characters, and a different one for every run (RUNID-1..5);
    - every step environment carries ``flavor.run_id_env_var`` and exactly the environment
      built by :meth:`run` (ENV-1..3);
    - resource kinds are enforced or refused as the capability manifest says (RES-*).
    """

    #: Set by subclasses that run steps in containers (see ContainerizedOrchestrator).
    containerized: ClassVar[bool] = False

    def __init__(self, config: BaseOrchestratorConfig, *, flavor: "Flavor", name: str = "default") -> None:
        self.config = config
        self.flavor = flavor
        self.name = name

    # -- what a flavor implements -------------------------------------------------------------

    @abstractmethod
    def get_orchestrator_run_id(self) -> str:
        """The run ID, read inside a step's own environment (usually from the flavor's run-ID
        variable or a backend object such as a job or pod name)."""

    @abstractmethod
    def submit_pipeline(
        self,
        snapshot: PipelineSnapshot,
        base_environment: dict[str, str],
        step_environments: dict[str, dict[str, str]],
        placeholder_run: Any | None = None,
    ) -> SubmissionResult | None:
        """Start every step of a static pipeline on the backend. Should not block: return a
        :class:`SubmissionResult` whose ``wait_for_completion`` blocks instead."""

    @unimplemented("dynamic_pipelines")
    def submit_dynamic_pipeline(
        self,
        snapshot: PipelineSnapshot,
        environment: dict[str, str],
        placeholder_run: Any | None = None,
    ) -> SubmissionResult | None:
        """Start one orchestration environment that runs the pipeline function live.
        Support is declared with ``Capabilities(dynamic_pipelines=True)``."""
        raise UnsupportedFeatureError(
            f"orchestrator flavor {self.flavor.name!r} does not run dynamic pipelines",
            feature="dynamic_pipelines",
            fix="use a static pipeline (dynamic=False) or a flavor that declares dynamic_pipelines",
        )

    @unimplemented("dynamic_pipelines")
    def run_isolated_step(self, snapshot: PipelineSnapshot, step_name: str, environment: dict[str, str]) -> None:
        """Run one step of a dynamic pipeline in its own environment and block until it ended.
        Called from inside the orchestration environment; needed for dynamic pipelines."""
        raise UnsupportedFeatureError(
            f"orchestrator flavor {self.flavor.name!r} cannot run isolated steps",
            feature="dynamic_pipelines",
        )

    @unimplemented("fetch_status")
    def fetch_status(self, run_id: str) -> ExecutionStatus | None:
        """The backend's view of a run's status, or None when the backend cannot tell."""
        return None

    @unimplemented("stop_run")
    def stop_run(self, run_id: str, graceful: bool = False) -> None:
        """Stop a run on the backend: running steps end STOPPED, pending steps never start."""
        raise UnsupportedFeatureError(
            f"orchestrator flavor {self.flavor.name!r} cannot stop runs", feature="stop_run"
        )

    def leftover_resources(self, snapshot: PipelineSnapshot, run_id: str) -> list[str] | None:
        """What the backend still holds for a run that has ended (processes, containers,
        networks, volumes, cgroups, pods...), described one per string (SPEC CLEAN-1).
        ``None`` means the flavor cannot tell; the conformance suite then checks what it can."""
        return None

    @unimplemented("schedules")
    def update_schedule(self, schedule_id: str, snapshot: PipelineSnapshot) -> None:
        raise UnsupportedFeatureError(f"orchestrator flavor {self.flavor.name!r} has no schedules", feature="schedule")

    @unimplemented("schedules")
    def delete_schedule(self, schedule_id: str) -> None:
        raise UnsupportedFeatureError(f"orchestrator flavor {self.flavor.name!r} has no schedules", feature="schedule")

    @unimplemented("schedules")
    def list_schedules(self) -> list[str]:
        raise UnsupportedFeatureError(f"orchestrator flavor {self.flavor.name!r} has no schedules", feature="schedule")

    # -- what the base class provides -----------------------------------------------------------

    @property
    def capabilities(self) -> Capabilities:
        """The capability manifest in force. Defaults to the flavor's declaration; a flavor whose
        support depends on its config or host overrides this (and must only narrow it)."""
        return self.flavor.capabilities

    @property
    def run_id_env_var(self) -> str:
        return self.flavor.run_id_env_var

    @property
    def is_schedulable(self) -> bool:
        return bool(self.capabilities.schedules)

    @property
    def handles_step_retries(self) -> bool:
        return self.capabilities.native_retries

    def run(self, snapshot: PipelineSnapshot, placeholder_run: Any | None = None) -> SubmissionResult | None:
        """Validate, build environments and submit. Flavors do not override this."""
        self.validate_snapshot(snapshot)
        # The stored snapshot is sealed (SPEC SEC-1): each step gets the secrets it needs to
        # unseal it in one secret-looking variable of its environment.
        sealed = seal(snapshot)
        base_environment = {SNAPSHOT_ID_ENV: snapshot.snapshot_id, **snapshot.environment, **sealed.environment()}
        placeholder_id = getattr(placeholder_run, "id", None)
        if placeholder_id:
            base_environment[PLACEHOLDER_RUN_ENV] = placeholder_id
        if snapshot.dynamic:
            return self.submit_dynamic_pipeline(snapshot, base_environment, placeholder_run)
        step_environments = {
            name: {**base_environment, **spec.environment, **sealed.environment(name)} for name, spec in snapshot.steps.items()
        }
        return self.submit_pipeline(snapshot, base_environment, step_environments, placeholder_run)

    def validate_snapshot(self, snapshot: PipelineSnapshot) -> None:
        """Refuse what the capability manifest does not declare, before anything runs."""
        caps = self.capabilities
        flavor = self.flavor.name
        if snapshot.dynamic and not caps.dynamic_pipelines:
            raise UnsupportedFeatureError(
                f"pipeline {snapshot.pipeline_name!r} is dynamic, but orchestrator flavor {flavor!r} does not run dynamic pipelines",
                feature="dynamic_pipelines",
                fix="use a flavor that declares dynamic_pipelines, or make the pipeline static",
            )
        if snapshot.schedule is not None and snapshot.schedule.kind not in caps.schedules:
            supported = ", ".join(sorted(caps.schedules)) or "none"
            raise UnsupportedFeatureError(
                f"pipeline {snapshot.pipeline_name!r} has a {snapshot.schedule.kind} schedule, but orchestrator flavor {flavor!r} supports schedules: {supported}",
                feature="schedule",
                why="a schedule the backend cannot honour would silently never run",
                fix="run the pipeline without a schedule, or use a flavor that schedules (e.g. kubernetes: cron)",
            )
        if snapshot.execution_mode not in caps.execution_modes:
            raise UnsupportedFeatureError(
                f"orchestrator flavor {flavor!r} does not support execution mode {snapshot.execution_mode.name}",
                feature="execution_mode",
                fix=f"use one of {sorted(m.name for m in caps.execution_modes)}",
            )
        for spec in snapshot.steps.values():
            for kind in spec.resources.requested_kinds():
                support = caps.resource_support(kind)
                if support is ResourceSupport.REJECTED:
                    raise UnsupportedFeatureError(
                        f"step {spec.name!r} requests {kind} ({_describe(spec.resources, kind)}), which orchestrator flavor {flavor!r} cannot enforce",
                        feature=f"resources.{kind}",
                        why="a resource request that is silently ignored makes steps fail or starve in production",
                        fix=f"remove the {kind} request from the step's ResourceSettings, or use a flavor that enforces {kind}",
                    )
                if support is ResourceSupport.WARNED:
                    message = (
                        f"step {spec.name!r} requests {kind} ({_describe(spec.resources, kind)}), which orchestrator "
                        f"flavor {flavor!r} does NOT enforce: the step runs without that limit"
                    )
                    logger.warning(message)
                    warnings.warn(message, ResourcesIgnoredWarning, stacklevel=3)

    def step_command(self, snapshot: PipelineSnapshot, step_name: str, python: str = "python3") -> list[str]:
        """The argv that runs one step (ZenML's entrypoint command plus arguments)."""
        return [python, "-m", STEP_ENTRYPOINT_MODULE, "step", *self._entrypoint_args(snapshot), "--step", step_name]

    def orchestration_command(self, snapshot: PipelineSnapshot, python: str = "python3") -> list[str]:
        """The argv of a dynamic pipeline's orchestration environment."""
        return [python, "-m", STEP_ENTRYPOINT_MODULE, "orchestrate", *self._entrypoint_args(snapshot)]

    @staticmethod
    def _entrypoint_args(snapshot: PipelineSnapshot) -> list[str]:
        return ["--artifact-store", snapshot.stack.artifact_store, "--snapshot", snapshot.snapshot_id]


class ContainerizedOrchestrator(BaseOrchestrator, ABC):
    """An orchestrator that runs every step in a container image (ZenML's class of that name)."""

    containerized: ClassVar[bool] = True

    @abstractmethod
    def get_image(self, snapshot: PipelineSnapshot, step_name: str | None = None) -> str:
        """The image a step (or the orchestration environment, for None) runs in."""


def check_run_id(run_id: Any, flavor_name: str) -> str:
    """Apply the run-ID rules a single value can be checked against (RUNID-3, RUNID-4)."""
    if not isinstance(run_id, str) or not run_id:
        raise RunIdError(
            f"orchestrator flavor {flavor_name!r} returned run ID {run_id!r}; it must be a non-empty string",
            fix="return the backend's job/pod/execution identifier, or the value of the flavor's run-ID variable",
        )
    if len(run_id) > MAX_RUN_ID_LENGTH:
        raise RunIdError(
            f"orchestrator flavor {flavor_name!r} returned a run ID of {len(run_id)} characters (limit {MAX_RUN_ID_LENGTH}): {run_id[:60]!r}...",
            why="the run store keys runs by (snapshot_id, orchestrator_run_id) in a bounded column",
            fix="derive the ID from a backend identifier rather than the pipeline name, or hash long parts",
        )
    return run_id


def _describe(resources, kind: str) -> str:
    return {"cpu": f"cpu_count={resources.cpu_count}", "memory": f"memory={resources.memory}", "gpu": f"gpu_count={resources.gpu_count}"}[kind]
