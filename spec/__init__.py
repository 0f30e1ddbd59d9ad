"""orcakit: the orchestrator contract.

This package is the public surface a flavor author and a pipeline author use; everything else
(``orcakit.reference``, ``orcakit.conformance``) is built on exactly these names.
"""

from .authoring import RUNNER_ENTRY_POINT_GROUP, DynamicRun, Pipeline, Step, StepOutput, load_runner, pipeline, step
from .capabilities import Capabilities, ResourceSupport
from .context import StepContext, get_step_context, step_context
from .errors import (
    ArtifactNotFoundError,
    ConfigurationError,
    CycleError,
    FlavorNotFoundError,
    FlavorRegistrationError,
    OrcakitError,
    ParameterError,
    PipelineDefinitionError,
    RunFailedError,
    RunIdError,
    StepFailedError,
    StoreError,
    SubmissionError,
    UnsupportedFeatureError,
)
from .flavor import FLAVOR_ENTRY_POINT_GROUP, Flavor, available_flavors, load_flavor
from .options import parse_flavor_config, parse_flavor_options
from .orchestrator import (
    MAX_RUN_ID_LENGTH,
    PLACEHOLDER_RUN_ENV,
    SNAPSHOT_ID_ENV,
    STEP_ENTRYPOINT_MODULE,
    BaseOrchestrator,
    BaseOrchestratorConfig,
    ContainerizedOrchestrator,
    ResourcesIgnoredWarning,
    SubmissionResult,
    check_run_id,
    unimplemented,
)
from .sealing import (
    SNAPSHOT_SECRETS_ENV,
    SealedSnapshot,
    seal,
    seal_step,
    secrets_environment,
    snapshot_secrets,
    unseal,
    unseal_step,
)
from .settings import MEMORY_UNITS, ResourceSettings, Schedule, StepRetryConfig, parse_memory
from .snapshot import ArtifactRef, ComponentSpec, PipelineSnapshot, StackSpec, StepSpec
from .status import ExecutionMode, ExecutionStatus

__version__ = "0.1.0"
#: The version of SPEC.md this package implements (bumped with any normative change).
SPEC_VERSION = "1.1"

__all__ = [
    "ArtifactNotFoundError", "ArtifactRef", "BaseOrchestrator", "BaseOrchestratorConfig", "Capabilities",
    "ComponentSpec", "ConfigurationError", "ContainerizedOrchestrator", "CycleError", "ExecutionMode",
    "ExecutionStatus", "FLAVOR_ENTRY_POINT_GROUP", "Flavor", "FlavorNotFoundError", "FlavorRegistrationError",
    "MAX_RUN_ID_LENGTH", "MEMORY_UNITS", "OrcakitError", "ParameterError", "Pipeline", "PipelineDefinitionError",
    "PipelineSnapshot", "ResourceSettings", "ResourceSupport", "ResourcesIgnoredWarning", "RunFailedError",
    "RunIdError", "Schedule", "StackSpec", "Step", "StepContext", "StepFailedError", "StepOutput",
    "StepRetryConfig", "StepSpec", "StoreError", "SubmissionError", "SubmissionResult",
    "UnsupportedFeatureError", "available_flavors", "check_run_id", "get_step_context", "load_flavor",
    "parse_flavor_config", "parse_flavor_options",
    "parse_memory", "pipeline", "step", "SPEC_VERSION", "__version__",
    # runtime hooks: what a runtime (orcakit.reference, or another) builds on
    "DynamicRun", "PLACEHOLDER_RUN_ENV", "RUNNER_ENTRY_POINT_GROUP", "SNAPSHOT_ID_ENV", "STEP_ENTRYPOINT_MODULE",
    "load_runner", "step_context", "unimplemented",
    # sealed snapshots (SPEC SEC-1): what is stored holds no secret; the step gets them apart
    "SNAPSHOT_SECRETS_ENV", "SealedSnapshot", "seal", "seal_step", "secrets_environment", "snapshot_secrets", "unseal",
    "unseal_step",
]
