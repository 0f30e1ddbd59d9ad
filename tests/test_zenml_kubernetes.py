"""``pytest --flavor=zenml:kubernetes``: ZenML 0.98's own KubernetesOrchestrator, unmodified,
against the local Kubernetes API environment (orcakit.kubeapi) that the ZenML driver starts for the
session, as a user's stack has it: a kubeconfig context and a namespace, a container registry on
loopback, ZenML's local image builder, ZenML's local stores mounted into the pods (``local: true``).

A representative selection only (one check: the run ID is the same in every step, read back
through ZenML's client; it runs ZenML's orchestrator pod and step pods for real): the whole suite
takes far longer and is scripts/certify-zenml-kubernetes. Needs the Docker engine, the image
scripts/testenv/ensure-zenml-kubernetes-image.sh builds and the registry
scripts/testenv/ensure-registry.sh starts: SKIPs without them locally, FAILs under
ORCAKIT_REQUIRE_DOCKER=1 (scripts/test runs both scripts first).
"""

from __future__ import annotations

import os
import subprocess
import urllib.request

import pytest

pytest.importorskip("zenml", reason="the ZenML driver needs the zenml extra (pip install 'orcakit[zenml]')")
pytest.importorskip("aiohttp", reason="the local Kubernetes API environment needs the kubeapi extra")

from tests.limits import WHOLE_SUITE_SECONDS  # noqa: E402
from tests.test_zenml_bridge import explained, outcomes, suite  # noqa: E402

IMAGE = os.environ.get("ORCAKIT_ZENML_KUBERNETES_IMAGE", "orcakit-zenml-kubernetes:latest")
REGISTRY = os.environ.get("ORCAKIT_ZENML_REGISTRY", "127.0.0.1:5000")


def _prerequisites_or_skip() -> None:
    problems = []
    if subprocess.run(["docker", "image", "inspect", IMAGE], capture_output=True).returncode != 0:
        problems.append(f"the image {IMAGE} is missing (scripts/testenv/ensure-zenml-kubernetes-image.sh builds it)")
    try:
        urllib.request.urlopen(f"http://{REGISTRY}/v2/", timeout=5)
    except Exception as exc:  # noqa: BLE001 - whatever it is, no registry answers
        problems.append(f"no container registry answers on {REGISTRY} ({exc}; scripts/testenv/ensure-registry.sh starts one)")
    if problems:
        message = "; ".join(problems)
        if os.environ.get("ORCAKIT_REQUIRE_DOCKER") == "1":
            pytest.fail(f"ORCAKIT_REQUIRE_DOCKER=1 but {message}", pytrace=False)
        pytest.skip(message)


def _session_containers(folder) -> list[str]:
    """Pod containers of the environment a session under ``folder`` started (their ZenML store
    URL names the session's folder)."""
    listed = subprocess.run(["docker", "ps", "-aq", "--no-trunc", "--filter", "label=io.orcakit.kubeapi.namespace=zenml-conformance"],
                            capture_output=True, text=True)
    found = []
    for cid in listed.stdout.split():
        env = subprocess.run(["docker", "inspect", "-f", "{{range .Config.Env}}{{println .}}{{end}}", cid], capture_output=True, text=True)
        if str(folder) in env.stdout:
            found.append(cid)
    return found


@pytest.mark.slow
@pytest.mark.docker
def test_zenml_kubernetes_runs_unmodified_against_the_local_kubernetes_api(tmp_path) -> None:
    _prerequisites_or_skip()
    sessions = tmp_path / "tmp"  # the session's ZenML config (so its pods' store URL) lives here
    sessions.mkdir()
    done, report = suite(tmp_path, "--flavor=zenml:kubernetes", "-k", "every_step_of_a_run_sees_the_same_run_id",
                         "--conformance-timeout=900", timeout=WHOLE_SUITE_SECONDS,
                         env={"TMPDIR": str(sessions)})
    assert report is not None, done.stdout[-3000:] + done.stderr[-3000:]
    explained(report)
    flavor = report["flavor"]
    assert flavor["name"] == "zenml:kubernetes"
    assert "zenml.integrations.kubernetes.orchestrators.kubernetes_orchestrator.KubernetesOrchestrator" in flavor["version"]
    # the stack a user would have: the environment's kubeconfig context, a namespace, local stores mounted
    assert flavor["config"] == {"kubernetes_context": "orcakit-kubeapi", "kubernetes_namespace": "zenml-conformance", "local": True}
    # ZenML's orchestrator exports its run ID to every step pod as ZENML_KUBERNETES_RUN_ID
    assert flavor["run_id_env_var"] == "ZENML_KUBERNETES_RUN_ID"
    seen = outcomes(report)
    assert {rid: seen[rid] for rid in ("RUNID-1", "ENV-1", "STORE-1")} == dict.fromkeys(("RUNID-1", "ENV-1", "STORE-1"), "passed"), \
        [(c["name"], c["outcome"], (c["message"] or "")[:600]) for c in report["checks"]]
    # the environment the session started is gone with its pods' containers
    assert not _session_containers(sessions)
