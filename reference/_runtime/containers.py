"""The containerized runtime base: what every container backend (Docker, Kubernetes, a cloud
batch service) does the same way, so that a backend only says how its engine runs a container.

Engine-neutral here: the config every container flavor shares, the step image recipe
(:class:`~.image_recipe.ImageRecipe`), the container of one step attempt
(:class:`ContainerSpec`: image, command, exact environment, a name within the backend's
limits, labels), the environment that carries the stores into a container, and the run's
bookkeeping inherited from :class:`~.orchestrator.RuntimeOrchestrator`. Per backend: launching
a container (``launch_step``), translating ``ResourceSettings`` into the engine's units
(:meth:`ContainerRuntimeOrchestrator.translate_resources`), which names it accepts
(:attr:`~ContainerRuntimeOrchestrator.max_name_length`, :meth:`~ContainerRuntimeOrchestrator.sanitize_name`),
and finding, killing and removing a run's objects.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import re
from abc import abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

from orcakit import ContainerizedOrchestrator, PipelineSnapshot, ResourceSettings

from .orchestrator import RunContext, RuntimeOrchestrator
from .stores import StackStores

#: Labels every container object of a run carries (a backend may spell them its own way).
LABEL_MANAGED = "orcakit.managed"
LABEL_ROLE = "orcakit.role"
LABEL_PIPELINE = "orcakit.pipeline"
LABEL_SNAPSHOT = "orcakit.snapshot"
LABEL_RUN = "orcakit.run"
LABEL_STEP = "orcakit.step"
LABEL_ATTEMPT = "orcakit.attempt"


@dataclass(frozen=True)
class ContainerSpec:
    """One step attempt's container, before a backend turns it into its own object.

    Invariants: ``command`` is an argv (no shell ever sees it or the environment);
    ``environment`` is the step's environment exactly, plus the flavor's enforcement variables
    and the run-ID variable; ``name`` fits the backend's limits and is unique per run, step and
    attempt; ``resources`` are the step's settings, untranslated (the backend's
    ``translate_resources`` turns them into its units)."""

    image: str
    command: list[str]
    environment: dict[str, str]
    name: str
    labels: dict[str, str]
    resources: ResourceSettings = field(default_factory=ResourceSettings)
    working_dir: str | None = None


class ContainerRuntimeOrchestrator(RuntimeOrchestrator, ContainerizedOrchestrator):
    """Base of container flavors (see module doc). A backend implements ``get_image``,
    ``launch_step`` (usually: ``self.container_spec(...)`` → the engine's create/start) and
    :meth:`translate_resources`; it narrows :attr:`max_name_length` and :meth:`sanitize_name`
    to its engine's naming rules."""

    #: The longest object name the backend accepts.
    max_name_length: ClassVar[int] = 128
    #: Prefix of every object name.
    name_prefix: ClassVar[str] = "orcakit"

    # -- what a backend implements -----------------------------------------------------------

    @abstractmethod
    def translate_resources(self, resources: ResourceSettings) -> Any:
        """The backend's own form of a step's ResourceSettings (engine limits, a pod's requests
        and limits...). Every kind the flavor declares ENFORCED must appear in it exactly:
        decimal and binary memory units differ, fractional CPUs stay fractional."""

    def sanitize_name(self, name: str) -> str:
        """Make ``name`` acceptable to the backend (default: Docker's ``[A-Za-z0-9][A-Za-z0-9_.-]*``)."""
        return re.sub(r"[^A-Za-z0-9_.-]", "-", name)

    # -- what the base provides -------------------------------------------------------------

    def object_name(self, run_id: str, step_name: str, attempt: int | str) -> str:
        """``<prefix>-<run>-<step>-<attempt>``, sanitized and within :attr:`max_name_length`:
        unique per attempt (a long step name keeps a hash of itself, so look-alike long names
        stay apart), readable in the backend's listings."""
        head = f"{self.name_prefix}-{run_id[:12]}-"
        tail = f"-{attempt}"
        room = self.max_name_length - len(head) - len(tail)
        step = self.sanitize_name(step_name)
        if len(step) > room or step != step_name:
            # Truncated or rewritten: two steps could now share a name, unless it keeps a hash
            # of the original.
            digest = hashlib.sha256(step_name.encode()).hexdigest()[:12]
            step = f"{step[: max(1, room - 13)]}-{digest}"
        return self.sanitize_name(head + step + tail)

    def labels(self, snapshot: PipelineSnapshot, run_id: str, step_name: str, attempt: int, role: str = "step") -> dict[str, str]:
        """What every object of a step attempt is labelled with (finding leftovers, stopping)."""
        return {
            LABEL_MANAGED: "true",
            LABEL_ROLE: role,
            LABEL_PIPELINE: snapshot.pipeline_name,
            LABEL_SNAPSHOT: snapshot.snapshot_id,
            LABEL_RUN: run_id,
            LABEL_STEP: step_name,
            LABEL_ATTEMPT: str(attempt),
        }

    def forwarded_environment(self, stores: StackStores) -> dict[str, str]:
        """Client variables the config forwards (S3 credentials...), and the variables that carry
        the artifact store's options (its endpoint...) into a step."""
        forwarded = {
            key: value for key, value in os.environ.items()
            if any(fnmatch.fnmatchcase(key, pattern) for pattern in self.config.forward_environment)
        }
        return {**stores.step_environment(), **forwarded}

    def container_spec(
        self, run: RunContext, step_name: str, attempt: int, *, image: str, python: str = "python3",
        working_dir: str | None = None,
    ) -> ContainerSpec:
        """The container of one step attempt (see :class:`ContainerSpec`)."""
        snapshot = run.snapshot
        environment = {**self.forwarded_environment(run.stores), **run.step_environments[step_name]}
        return ContainerSpec(
            image=image,
            command=self.step_command(snapshot, step_name, python=python),
            environment=self.step_environment(snapshot, step_name, environment, run.run_id, attempt),
            name=self.object_name(run.run_id, step_name, attempt),
            labels=self.labels(snapshot, run.run_id, step_name, attempt),
            resources=snapshot.steps[step_name].resources,
            working_dir=working_dir,
        )
