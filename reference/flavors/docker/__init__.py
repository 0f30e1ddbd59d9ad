"""The ``docker`` flavor: every step in its own container on a Docker engine.

Only the declaration lives here (cheap to import: listing flavors never loads the Docker SDK);
the orchestrator is in :mod:`.orchestrator`, image building in :mod:`.image`, store mounts in
:mod:`.mounts`.
"""

from __future__ import annotations

from orcakit import Capabilities, Flavor, ResourceSupport

from .config import DockerOrchestratorConfig

RUN_ID_ENV = "ORCAKIT_DOCKER_RUN_ID"


class DockerFlavor(Flavor):
    name = "docker"
    config_class = DockerOrchestratorConfig
    implementation_source = "orcakit.reference.flavors.docker.orchestrator:DockerOrchestrator"
    run_id_env_var = RUN_ID_ENV
    description = (
        "every step in its own container on a Docker engine (Docker SDK); image built offline from "
        "wheels; cpu/memory/gpu enforced by the engine"
    )
    capabilities = Capabilities(
        cpu=ResourceSupport.ENFORCED,  # CFS quota (cpu_period/cpu_quota)
        memory=ResourceSupport.ENFORCED,  # memory limit, no extra swap
        gpu=ResourceSupport.ENFORCED,  # device requests; more than the engine has is refused
        dynamic_pipelines=True,  # an orchestration container starts sibling step containers
        parallel_steps=True,
        stop_run=True,
    )


__all__ = ["DockerFlavor", "DockerOrchestratorConfig", "RUN_ID_ENV"]
