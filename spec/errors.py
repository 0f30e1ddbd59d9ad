"""Typed errors of the orcakit contract.

Every error teaches: it says *what* went wrong (naming the thing), *why* it matters and *how* to
fix it. Flavors raise these (or subclasses) so that the conformance suite can tell a clean,
declared refusal from a crash.
"""

from __future__ import annotations


class OrcakitError(Exception):
    """Base class of every orcakit error.

    ``what`` names the thing that is wrong; ``fix`` says what to do about it; ``why`` (optional)
    says why the rule exists. ``str(error)`` renders all three so a log line is self-contained.
    """

    def __init__(self, what: str, *, fix: str | None = None, why: str | None = None) -> None:
        self.what = what
        self.fix = fix
        self.why = why
        super().__init__(self._render())

    def _render(self) -> str:
        parts = [self.what]
        if self.why:
            parts.append(f"why: {self.why}")
        if self.fix:
            parts.append(f"fix: {self.fix}")
        return "\n  ".join(parts)

    def __reduce__(self):  # keep errors picklable across processes
        return (_rebuild, (type(self), self.what, self.fix, self.why))


def _rebuild(cls, what, fix, why):
    return cls(what, fix=fix, why=why)


class ConfigurationError(OrcakitError, ValueError):
    """A component, stack or setting is configured wrongly (unknown key, bad value, missing field)."""


class PipelineDefinitionError(OrcakitError, ValueError):
    """A pipeline cannot be compiled: a cycle, an unknown upstream step, a bad step name..."""


class ParameterError(PipelineDefinitionError):
    """A pipeline was given a parameter it does not declare, not given a required one, or given
    a value that is not of the declared type (checked before anything is submitted)."""


class CycleError(PipelineDefinitionError):
    """The step graph has a cycle; ``cycle`` lists the step names around it."""

    def __init__(self, cycle: list[str]) -> None:
        self.cycle = cycle
        super().__init__(
            f"the pipeline's steps form a cycle: {' -> '.join(cycle)}",
            why="a step may only start after all its upstream steps completed, so a cycle can never start",
            fix="remove one of the edges (an input or an `after=`) along the cycle",
        )

    def __reduce__(self):
        return (CycleError, (self.cycle,))


class FlavorNotFoundError(OrcakitError, LookupError):
    """No flavor is registered under the requested name."""


class FlavorRegistrationError(OrcakitError, TypeError):
    """A flavor's declaration does not match its implementation (checked at registration)."""


class UnsupportedFeatureError(OrcakitError):
    """The orchestrator does not support a feature the pipeline asks for (schedule, resources...).

    ``feature`` is a stable key (``"schedule"``, ``"resources.memory"``, ``"dynamic_pipelines"``...)
    so that callers and the conformance suite can tell which capability was refused.
    """

    def __init__(self, what: str, *, feature: str, fix: str | None = None, why: str | None = None):
        self.feature = feature
        super().__init__(what, fix=fix, why=why)

    def __reduce__(self):
        return (_rebuild_unsupported, (self.what, self.feature, self.fix, self.why))


def _rebuild_unsupported(what, feature, fix, why):
    return UnsupportedFeatureError(what, feature=feature, fix=fix, why=why)


class RunIdError(OrcakitError, ValueError):
    """``get_orchestrator_run_id()`` returned a value that breaks the run-ID rules."""


class StepFailedError(OrcakitError, RuntimeError):
    """A step ended FAILED (raised, exited non-zero or was killed)."""


class RunFailedError(OrcakitError, RuntimeError):
    """A run ended in a non-successful terminal status."""


class StoreError(OrcakitError, RuntimeError):
    """The run store or the artifact store cannot be used."""


class ArtifactNotFoundError(StoreError, LookupError):
    """An artifact a step needs is not in the artifact store."""


class SubmissionError(OrcakitError, RuntimeError):
    """The backend refused or failed a submission (engine unreachable, image missing...)."""
