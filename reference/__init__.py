"""orcakit's reference runtime: what a flavor uses to run steps. Read this first.

A flavor is built on two public surfaces and nothing else: the contract (``import orcakit``:
``BaseOrchestrator``, ``Flavor``, settings, errors) and the names listed here. The reference
flavors (``orcakit.reference.flavors.local`` and ``.docker``) are written exactly this way, and
an import-linter contract in orcakit's tests keeps it so. Every other module under
``orcakit.reference`` (``_runtime``, ``cli``) is private and may change without notice.

Orchestrator bases
    :class:`RuntimeOrchestrator` — drives each static run from the submitting process with the
    shared :class:`DagScheduler`; a flavor implements only ``launch_step`` (start one attempt of
    one step on its backend and return a :class:`StepHandle`). Run IDs, the run's bookkeeping,
    stop requests (the run store's STOPPING state, the one stop channel), isolated steps of
    dynamic pipelines and step logs are done once, here.
    :class:`ContainerRuntimeOrchestrator` — the same for container backends: the engine-neutral
    step image recipe (:class:`ImageRecipe`), the step container (:class:`ContainerSpec`: command,
    environment, names within the backend's limits, labels) and hooks to translate
    ``ResourceSettings`` into the backend's units, launch, find leftovers and kill a run.

Stores
    :class:`StackStores` classifies and opens a stack's run store and artifact store (one place
    for "is it a local SQLite file? an S3 bucket?"); :class:`RunStore` (runs, steps, attempts:
    ``get_or_create_run``, ``start_attempt``, ``finish_attempt``, ``request_stop``...),
    :class:`ArtifactStore` and the key helpers :func:`log_key` / :func:`output_key`.

Steps
    :func:`step_command` is in the contract (``BaseOrchestrator.step_command``); a backend that
    forks instead of exec-ing runs steps in-process with :class:`StepRunner`.

Running pipelines
    :func:`run_pipeline` / :func:`run_snapshot` (what ``pipeline()`` and ``orcakit run`` call) and
    :class:`ConfigStore` (registered orchestrators and stacks).

Names are imported lazily: ``import orcakit.reference`` costs nothing until a name is used, so
a flavor declaration can import it without loading SQLAlchemy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the same names, for type checkers and for import-linter's graph
    from ._runtime.artifact_store import (
        ArtifactStore,
        dematerialize,
        load_snapshot,
        log_key,
        materialize,
        open_artifact_store,
        output_key,
        save_snapshot,
    )
    from ._runtime.client import run_pipeline, run_snapshot
    from ._runtime.container_config import ContainerRuntimeConfig
    from ._runtime.config_store import ConfigStore
    from ._runtime.containers import (
        LABEL_ROLE,
        LABEL_RUN,
        LABEL_SNAPSHOT,
        ContainerRuntimeOrchestrator,
        ContainerSpec,
    )
    from ._runtime.image_recipe import PROBE_SCRIPT, ImagePlan, ImageRecipe, StepImage, TargetPython
    from ._runtime.orchestrator import RunContext, RuntimeOrchestrator
    from ._runtime.run_store import AttemptRecord, RunRecord, RunStore, StepRecord, redact_url
    from ._runtime.scheduler import EXIT_NOT_ATTACHED, DagScheduler, Launcher, StepHandle
    from ._runtime.stores import StackStores
    from .entrypoint import StepRunner

#: public name -> the private module that defines it
_EXPORTS: dict[str, str] = {
    **dict.fromkeys(
        ["ArtifactStore", "dematerialize", "load_snapshot", "log_key", "materialize", "open_artifact_store",
         "output_key", "save_snapshot"],
        "._runtime.artifact_store",
    ),
    **dict.fromkeys(["run_pipeline", "run_snapshot"], "._runtime.client"),
    "ConfigStore": "._runtime.config_store",
    "ContainerRuntimeConfig": "._runtime.container_config",
    **dict.fromkeys(
        ["LABEL_ROLE", "LABEL_RUN", "LABEL_SNAPSHOT", "ContainerRuntimeOrchestrator", "ContainerSpec"],
        "._runtime.containers",
    ),
    **dict.fromkeys(["PROBE_SCRIPT", "ImagePlan", "ImageRecipe", "StepImage", "TargetPython"], "._runtime.image_recipe"),
    **dict.fromkeys(["RunContext", "RuntimeOrchestrator"], "._runtime.orchestrator"),
    **dict.fromkeys(["AttemptRecord", "RunRecord", "RunStore", "StepRecord", "redact_url"], "._runtime.run_store"),
    **dict.fromkeys(["EXIT_NOT_ATTACHED", "DagScheduler", "Launcher", "StepHandle"], "._runtime.scheduler"),
    "StackStores": "._runtime.stores",
    "StepRunner": ".entrypoint",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(
            f"module 'orcakit.reference' has no attribute {name!r}; its public names are listed in "
            f"orcakit.reference.__all__ (private modules are not part of the flavor API)"
        )
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
