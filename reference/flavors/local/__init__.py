"""The ``local`` flavor: every step in its own OS process on this machine.

Only the declaration lives here (cheap to import: listing flavors never loads an
implementation); the orchestrator is in :mod:`.orchestrator`.
"""

from __future__ import annotations

from orcakit import Capabilities, Flavor, ResourceSupport

from .config import LocalOrchestratorConfig

RUN_ID_ENV = "ORCAKIT_LOCAL_RUN_ID"


class LocalFlavor(Flavor):
    name = "local"
    config_class = LocalOrchestratorConfig
    implementation_source = "orcakit.reference.flavors.local.orchestrator:LocalOrchestrator"
    run_id_env_var = RUN_ID_ENV
    description = "every step in its own OS process on this machine; cpu/memory enforced with cgroups"
    # The most this flavor can do. On a host without a writable cgroup file system the
    # orchestrator narrows cpu and memory to REJECTED (see LocalOrchestrator.capabilities).
    capabilities = Capabilities(
        cpu=ResourceSupport.ENFORCED,
        memory=ResourceSupport.ENFORCED,
        gpu=ResourceSupport.ENFORCED,
        dynamic_pipelines=True,
        parallel_steps=True,
        stop_run=True,
    )


__all__ = ["LocalFlavor", "LocalOrchestratorConfig", "RUN_ID_ENV"]
