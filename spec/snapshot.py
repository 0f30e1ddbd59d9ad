"""The compiled pipeline: the snapshot a flavor receives and every step process rebuilds from.

A snapshot is plain pydantic data (JSON round-trips exactly), so it can travel to any backend:
a file for a local process, a mounted folder for a container, an object in S3 for a pod.
"""

from __future__ import annotations

import graphlib
import re
import uuid
from datetime import datetime, timezone
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .errors import CycleError, PipelineDefinitionError
from .settings import ResourceSettings, Schedule, StepRetryConfig
from .status import ExecutionMode

#: Environment variable names a pipeline may set: POSIX portable names.
ENV_KEY_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: Names orcakit keeps for itself; user environment may not set them (SPEC ENV-4).
RESERVED_ENV_PREFIX = "ORCAKIT_"
#: Step names: safe as file names, label values and command-line arguments.
STEP_NAME_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,199}$")

_frozen = ConfigDict(frozen=True, extra="forbid")


def validate_environment(env: dict[str, Any], where: str) -> dict[str, str]:
    """Check user environment keys and values; ``where`` names the owner for the error text."""
    checked: dict[str, str] = {}
    for key, value in env.items():
        if not isinstance(key, str) or not ENV_KEY_PATTERN.fullmatch(key):
            raise PipelineDefinitionError(
                f"environment key {key!r} of {where} is not a valid variable name",
                why="keys travel through process environments, container specs and pod specs, which only accept portable names",
                fix="use letters, digits and underscores, not starting with a digit (e.g. 'MY_SETTING')",
            )
        if key.startswith(RESERVED_ENV_PREFIX):
            raise PipelineDefinitionError(
                f"environment key {key!r} of {where} uses the reserved prefix {RESERVED_ENV_PREFIX!r}",
                why="orcakit and its flavors set ORCAKIT_* variables (such as the run-ID variable) in every step",
                fix="rename the variable",
            )
        if not isinstance(value, str):
            raise PipelineDefinitionError(
                f"environment value of {key!r} in {where} is a {type(value).__name__}, not a str",
                fix="convert it yourself (e.g. str(value)), so that what the step sees is what you chose",
            )
        if "\x00" in value:
            raise PipelineDefinitionError(
                f"environment value of {key!r} in {where} contains a NUL character",
                why="no operating system can put a NUL byte into a process environment",
                fix="encode the value (e.g. base64) and decode it inside the step",
            )
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise PipelineDefinitionError(
                f"environment value of {key!r} in {where} is not valid Unicode text (it has a lone surrogate)",
                why="process environments carry bytes; a lone surrogate has no UTF-8 encoding",
                fix="pass the text as decoded str, or encode binary data (e.g. base64)",
            ) from None
        checked[key] = value
    return checked


class ArtifactRef(BaseModel):
    """An input wired to the output of an upstream step."""

    model_config = _frozen
    step: str
    output: str = "output"


class StepSpec(BaseModel):
    """One step invocation of a pipeline: what to run and with which settings."""

    model_config = _frozen

    name: str = Field(description="the invocation's unique name within the pipeline")
    source: str = Field(description="'module:qualname' of the step function")
    parameters: dict[str, Any] = Field(default_factory=dict, description="JSON literal arguments")
    inputs: dict[str, ArtifactRef] = Field(default_factory=dict, description="arguments fed by upstream outputs")
    upstream: tuple[str, ...] = Field(default=(), description="every step that must complete first")
    resources: ResourceSettings = Field(default_factory=ResourceSettings)
    retry: StepRetryConfig | None = None
    environment: dict[str, str] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _check_name(cls, name: str) -> str:
        if not STEP_NAME_PATTERN.fullmatch(name):
            raise ValueError(
                f"step name {name!r} is not allowed: use 1-200 letters, digits, '_', '.' or '-', not starting with '.' or '-'"
            )
        return name

    @model_validator(mode="after")
    def _check(self) -> "StepSpec":
        validate_environment(self.environment, f"step {self.name!r}")
        missing = {ref.step for ref in self.inputs.values()} - set(self.upstream)
        if missing:
            raise ValueError(f"step {self.name!r} reads inputs from {sorted(missing)} which are not in its upstream list")
        return self

    @property
    def total_attempts(self) -> int:
        return 1 if self.retry is None else self.retry.total_attempts


class ComponentSpec(BaseModel):
    """A registered stack component: which flavor, under which name, with which config."""

    model_config = _frozen
    flavor: str
    #: ``module:Class`` of the flavor when it is not registered by name (e.g. a flavor under
    #: development, or a conformance mutant); steps load the flavor from here.
    flavor_source: str | None = None
    name: str = "default"
    config: dict[str, Any] = Field(default_factory=dict)


class StackSpec(BaseModel):
    """Where a run executes and where it keeps its records and artifacts."""

    model_config = _frozen
    orchestrator: ComponentSpec
    artifact_store: str = Field(description="a local folder path or an s3://bucket/prefix URI")
    run_store: str = Field(description="a SQLAlchemy URL: sqlite:///... or postgresql+psycopg://...")
    artifact_store_options: dict[str, Any] = Field(
        default_factory=dict, description="e.g. endpoint_url for S3-compatible stores"
    )


class PipelineSnapshot(BaseModel):
    """The compiled pipeline: DAG, settings and stack, identified by ``snapshot_id``."""

    model_config = _frozen

    snapshot_id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    pipeline_name: str
    steps: dict[str, StepSpec] = Field(default_factory=dict)
    dynamic: bool = False
    pipeline_source: str | None = Field(default=None, description="'module:qualname' of a dynamic pipeline")
    pipeline_parameters: dict[str, Any] = Field(default_factory=dict)
    source_roots: list[str] = Field(
        default_factory=list, description="folders a step process puts on sys.path to import step code"
    )
    execution_mode: ExecutionMode = ExecutionMode.CONTINUE_ON_FAILURE
    environment: dict[str, str] = Field(default_factory=dict, description="pipeline-level environment")
    schedule: Schedule | None = None
    stack: StackSpec
    created_at: datetime = Field(default_factory=lambda: datetime.now(timezone.utc))

    @model_validator(mode="after")
    def _check(self) -> "PipelineSnapshot":
        validate_environment(self.environment, f"pipeline {self.pipeline_name!r}")
        for name, spec in self.steps.items():
            if name != spec.name:
                raise ValueError(f"step registered as {name!r} is named {spec.name!r}")
            unknown = [up for up in spec.upstream if up not in self.steps]
            if unknown:
                raise ValueError(f"step {name!r} depends on unknown step(s) {unknown}")
        if self.dynamic and not self.pipeline_source:
            raise ValueError("a dynamic pipeline snapshot needs pipeline_source")
        self.topological_order()  # raises CycleError
        return self

    def topological_order(self) -> list[str]:
        """Step names so that every step comes after all its upstream steps (stable: ties keep
        definition order). Raises :class:`CycleError` naming the cycle."""
        return topological_order({name: spec.upstream for name, spec in self.steps.items()})

    def downstream_of(self, name: str) -> set[str]:
        """Every step that transitively depends on ``name``."""
        children: dict[str, list[str]] = {n: [] for n in self.steps}
        for spec in self.steps.values():
            for up in spec.upstream:
                children[up].append(spec.name)
        seen: set[str] = set()
        stack = list(children[name])
        while stack:
            current = stack.pop()
            if current not in seen:
                seen.add(current)
                stack.extend(children[current])
        return seen

    def step_environment(self, name: str) -> dict[str, str]:
        """Pipeline environment overlaid with the step's own (the step wins, SPEC ENV-3)."""
        return {**self.environment, **self.steps[name].environment}

    def with_step(self, spec: StepSpec) -> "PipelineSnapshot":
        """A copy with one more step: how a dynamic pipeline grows its DAG at run time."""
        if spec.name in self.steps:
            raise PipelineDefinitionError(
                f"a step named {spec.name!r} already ran in this dynamic pipeline",
                fix="give repeated invocations distinct ids, e.g. step(..., id='train_2')",
            )
        return self.model_copy(update={"steps": {**self.steps, spec.name: spec}})


def topological_order(upstream: dict[str, tuple[str, ...] | list[str]]) -> list[str]:
    """Step names of ``{step: upstream steps}`` so that every step comes after all its upstream
    steps; raises :class:`CycleError` naming the cycle.

    The order is :meth:`graphlib.TopologicalSorter.static_order`: steps become ready in
    definition order (the order of ``upstream``), and the ready ones come out first-in,
    first-out, so ties keep definition order.
    """
    for name, ups in upstream.items():
        unknown = set(ups) - upstream.keys()
        if unknown:
            raise PipelineDefinitionError(
                f"step {name!r} depends on unknown step(s) {sorted(unknown)}",
                fix="pass the output of a step called in the same pipeline, or its name in after=",
            )
    sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter()
    for name in upstream:  # every node first, so that ready ties come out in definition order
        sorter.add(name)
    for name, ups in upstream.items():
        sorter.add(name, *dict.fromkeys(ups))
    try:
        return list(sorter.static_order())
    except graphlib.CycleError as cycle:
        # graphlib lists the cycle so that each step is an upstream step of the next one
        raise CycleError(list(cycle.args[1])) from None
