"""pytest fixtures for the Kubernetes API test environment.

``kube_api`` (module scope) starts one server on 127.0.0.1 with pods run in Docker and yields a
``KubeApi``: ``.kubeconfig`` (a path for the python client's ``config.load_kube_config`` and for
``kubectl --kubeconfig``), ``.url`` (https), ``.namespace`` (a fresh namespace per module) and
``.server`` (the ``ServerThread``, e.g. ``server.call(fn, ...)`` on its loop, ``server.credentials``
for raw requests: its CA and admin token). It needs a Docker engine:
without one it SKIPs, but FAILs under ``ORCAKIT_REQUIRE_DOCKER=1`` like the docker flavor's tests.
``kube_api_nopods`` is the same server without Docker (pods stay Pending), for API-only tests.

Use: ``pytest_plugins = ["orcakit.kubeapi.fixtures"]`` in a test module or conftest (orcakit's own
tests name it ``tests.kubeapi.fixtures``, which re-exports these).
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from .server import Options, ServerThread


@dataclass
class KubeApi:
    url: str
    kubeconfig: Path
    namespace: str
    server: ServerThread


def _docker_or_skip() -> None:
    try:
        import docker

        client = docker.from_env(timeout=30)
        client.ping()
        client.close()
    except Exception as exc:  # noqa: BLE001 - whatever it is, there is no engine
        message = f"the Kubernetes API test environment runs pods in Docker, and no engine answers ({' '.join(str(exc).split())[:200]})"
        if os.environ.get("ORCAKIT_REQUIRE_DOCKER") == "1":
            pytest.fail(f"ORCAKIT_REQUIRE_DOCKER=1 but {message}", pytrace=False)
        pytest.skip(message)


def _serve(tmp_path_factory: pytest.TempPathFactory, options: Options) -> Iterator[KubeApi]:
    server = ServerThread(options)
    url = server.start()
    namespace = f"test-{uuid.uuid4().hex[:8]}"
    kubeconfig = server.write_kubeconfig(tmp_path_factory.mktemp("kube") / "config", namespace)
    from .resources import find

    server.call(lambda: server.cluster.create(find("", "v1", "namespaces"), None,
                                              {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}))
    try:
        yield KubeApi(url, kubeconfig, namespace, server)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def kube_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeApi]:
    _docker_or_skip()
    yield from _serve(tmp_path_factory, Options(run_pods=True, job_backoff=0.5))


@pytest.fixture(scope="module")
def kube_api_nopods(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeApi]:
    yield from _serve(tmp_path_factory, Options(run_pods=False, watch_window=50, bookmark_interval=0.5))
