"""ZenML mutants: the shipped example orchestrator
(:mod:`orcakit.conformance.zenml_orchestrator`) with one pitfall of ZenML's custom-orchestrator
guide each. The project's tests run the suite on each (``--flavor=zenml:orcakit.conformance.
zenml_mutants:<Flavor>``) and hold it to be caught on exactly :data:`EXPECTED` (the requirement IDs
it violates), under three seeds, like the native mutants (conformance/mutants.py).

Each mutant changes one method of the correct orchestrator, so what it breaks is that and
nothing else.
"""

from __future__ import annotations

import os
import time
import uuid
from typing import Dict, Type

from zenml.enums import ExecutionMode  # noqa: F401 - the orchestrators' module needs ZenML anyway

from .zenml_orchestrator import ENV_RUN_ID, ProcessOrchestrator, ProcessOrchestratorFlavor


class FixedRunIdOrchestrator(ProcessOrchestrator):
    """Pitfall "non-unique IDs": a fixed string."""

    def new_run_id(self) -> str:
        return "proc-run"


class TimestampRunIdOrchestrator(ProcessOrchestrator):
    """Pitfall "non-unique IDs": a timestamp (two runs in the same second collide)."""

    def new_run_id(self) -> str:
        return f"proc-{int(time.time())}"


class RunIdPerStepOrchestrator(ProcessOrchestrator):
    """Pitfall "different IDs per step": a new ID generated for every step it launches."""

    def run_id_environment(self, run_id: str) -> Dict[str, str]:
        return {ENV_RUN_ID: f"proc-{uuid.uuid4().hex}"}


class RunIdNotInStepEnvironmentOrchestrator(ProcessOrchestrator):
    """Pitfall "missing environment variables": the run ID is not set in the step's environment;
    each step falls back to an ID of its own (as an orchestrator that keeps the ID on the
    instance does: a step process builds a new instance)."""

    def run_id_environment(self, run_id: str) -> Dict[str, str]:
        return {}

    def get_orchestrator_run_id(self) -> str:
        return os.environ.get(ENV_RUN_ID) or _THIS_PROCESS_ID


#: The fallback of RunIdNotInStepEnvironmentOrchestrator: an ID per (step) process.
_THIS_PROCESS_ID = f"proc-{uuid.uuid4().hex}"


class ResourcesIgnoredOrchestrator(ProcessOrchestrator):
    """Pitfall "ignoring resource settings": cpu_count, memory and gpu_count are not read (and
    the orchestrator still says it refuses them)."""

    def refuse_resources(self, snapshot) -> None:
        return None


def _flavor(flavor_name: str, implementation: Type[ProcessOrchestrator]) -> Type[ProcessOrchestratorFlavor]:
    class MutantFlavor(ProcessOrchestratorFlavor):
        @property
        def name(self) -> str:
            return flavor_name

        @property
        def implementation_class(self) -> Type[ProcessOrchestrator]:
            return implementation

    MutantFlavor.__name__ = MutantFlavor.__qualname__ = f"{implementation.__name__.removesuffix('Orchestrator')}Flavor"
    return MutantFlavor


FixedRunIdFlavor = _flavor("orcakit_process_fixed_run_id", FixedRunIdOrchestrator)
TimestampRunIdFlavor = _flavor("orcakit_process_timestamp_run_id", TimestampRunIdOrchestrator)
RunIdPerStepFlavor = _flavor("orcakit_process_run_id_per_step", RunIdPerStepOrchestrator)
RunIdNotInStepEnvironmentFlavor = _flavor("orcakit_process_run_id_not_in_step_env", RunIdNotInStepEnvironmentOrchestrator)
ResourcesIgnoredFlavor = _flavor("orcakit_process_resources_ignored", ResourcesIgnoredOrchestrator)

#: mutant flavor class name -> (the requirements whose checks the self-test runs, the IDs it must
#: be caught on: exactly these fail, the rest of the selection passes).
EXPECTED: Dict[str, tuple[list[str], set[str]]] = {
    "FixedRunIdFlavor": (["RUNID-2"], {"RUNID-2"}),
    "TimestampRunIdFlavor": (["RUNID-2"], {"RUNID-2"}),
    # A step under a run ID that is not its run's cannot be launched: ZenML's step launcher asks
    # its store for the run by that ID, and creating one under the run's name is refused. So the
    # retry check's step never runs an attempt (RETRY-1, which counts unlaunchable attempts), as
    # the native RunIdPerStep mutant's consequences are listed in conformance/mutants.py.
    "RunIdPerStepFlavor": (["RUNID-1"], {"RUNID-1", "RETRY-1"}),
    # every step's ID differs too, but the run-ID checks stop at the missing variable (ENV-1);
    # the retried step cannot be launched, as above
    "RunIdNotInStepEnvironmentFlavor": (["RUNID-1", "ENV-1"], {"ENV-1", "RETRY-1"}),
    "ResourcesIgnoredFlavor": (["RES-5"], {"RES-5"}),
}

#: What a mutant may break on top of :data:`EXPECTED` in some runs, decided by a race: without
#: the run-ID variable every step makes up its own ID, and of parallel root steps the first to
#: reach ZenML claims the run while the others cannot be launched ("steps never ran", RUNID-1);
#: when one root step wins the race cleanly only ENV-1 shows. Measured: seed 3 both ways.
RACING: Dict[str, set[str]] = {"RunIdNotInStepEnvironmentFlavor": {"RUNID-1"}}
