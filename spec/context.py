"""What a running step can know about itself: ``orcakit.get_step_context()``."""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator

from .errors import OrcakitError

if TYPE_CHECKING:
    from .orchestrator import BaseOrchestrator
    from .snapshot import PipelineSnapshot


@dataclass(frozen=True)
class StepContext:
    """Facts about the step being executed, set by the step entrypoint inside the step's own
    process/container/pod.

    ``orchestrator_run_id`` is what ``get_orchestrator_run_id()`` returned *there*;
    ``attempt`` counts from 1; ``artifact_store`` is the run's artifact store (``put``/``get``
    of bytes under a key, atomic).
    """

    snapshot: "PipelineSnapshot"
    step_name: str
    orchestrator: "BaseOrchestrator"
    orchestrator_run_id: str
    run_uuid: str
    attempt: int
    artifact_store: Any

    @property
    def pipeline_name(self) -> str:
        return self.snapshot.pipeline_name


_CURRENT: ContextVar[StepContext | None] = ContextVar("orcakit_step_context", default=None)


def get_step_context() -> StepContext:
    """The context of the step being executed; an error anywhere else."""
    context = _CURRENT.get()
    if context is None:
        raise OrcakitError(
            "get_step_context() was called outside a running step",
            fix="call it from inside a @step function while the pipeline runs",
        )
    return context


@contextmanager
def step_context(context: StepContext) -> Iterator[StepContext]:
    """Runtime hook: inside the block, :func:`get_step_context` returns ``context``. A step
    entrypoint wraps the user function in it (the reference one does)."""
    token = _CURRENT.set(context)
    try:
        yield context
    finally:
        _CURRENT.reset(token)
