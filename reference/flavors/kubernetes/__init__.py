"""The ``kubernetes`` flavor: every step attempt in its own pod, the DAG driven by an
orchestrator pod run as a Job.

Only the declaration lives here (cheap to import: listing flavors never loads the Kubernetes
client); the orchestrator is in :mod:`.orchestrator`, the objects it creates in
:mod:`.manifests` (pure functions), the API connection and watches in :mod:`.api`, and the
orchestrator pod's program in :mod:`.driver`.
"""

from __future__ import annotations

from orcakit import Capabilities, Flavor, ResourceSupport

from .config import KubernetesOrchestratorConfig, PodSettings

RUN_ID_ENV = "ORCAKIT_KUBERNETES_RUN_ID"


class KubernetesFlavor(Flavor):
    name = "kubernetes"
    config_class = KubernetesOrchestratorConfig
    implementation_source = "orcakit.reference.flavors.kubernetes.orchestrator:KubernetesOrchestrator"
    run_id_env_var = RUN_ID_ENV
    description = (
        "every step attempt in its own pod (official kubernetes client); static pipelines driven by an "
        "orchestrator Job whose UID is the run ID; cpu/memory as exact requests=limits, gpu as nvidia.com/gpu; "
        "cron schedules as CronJobs; needs PostgreSQL + S3 stores"
    )
    capabilities = Capabilities(
        cpu=ResourceSupport.ENFORCED,  # requests = limits in millicores (the kubelet's CFS quota)
        memory=ResourceSupport.ENFORCED,  # requests = limits in exact bytes (the kubelet's memory limit)
        gpu=ResourceSupport.ENFORCED,  # nvidia.com/gpu limits; refused when no node has that many
        schedules=frozenset({"cron"}),  # a CronJob; interval and run_once are refused (SCHED-2)
        dynamic_pipelines=True,  # an orchestration Job runs the pipeline function and starts step pods
        parallel_steps=True,
        stop_run=True,
    )


__all__ = ["KubernetesFlavor", "KubernetesOrchestratorConfig", "PodSettings", "RUN_ID_ENV"]
