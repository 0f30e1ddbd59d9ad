"""Connecting to the Docker engine, with errors that say where and what to do.

The Docker SDK is imported here, on use: the step containers rebuild the orchestrator from the
snapshot (to read the run ID) and must not need the SDK.
"""

from __future__ import annotations

import glob
import os
from typing import Any

from orcakit import SubmissionError

#: How to get an engine on the machines this project targets (and on others).
START_ENGINE_FIX = (
    "start a Docker engine: on Debian, scripts/testenv/ensure-docker.sh installs docker.io and starts dockerd "
    "(elsewhere `systemctl start docker` or Docker Desktop), or point the orchestrator's docker_host (or DOCKER_HOST) "
    "at a running engine"
)


def engine_address(docker_host: str | None) -> str:
    """The address the SDK will use, for messages."""
    return docker_host or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def is_local(docker_host: str | None) -> bool:
    """Whether the engine runs on this machine (so this machine's devices are the engine's)."""
    address = engine_address(docker_host)
    return address.startswith(("unix://", "npipe://", "http+unix://")) or "://127." in address or "://localhost" in address


def local_gpu_count() -> int:
    return len(glob.glob("/dev/nvidia[0-9]*"))


def connect(docker_host: str | None, timeout: float, pool_size: int = 10) -> Any:
    """A ``docker.DockerClient`` that has answered a ping; SubmissionError otherwise."""
    try:
        import docker
        from docker.errors import DockerException
    except ImportError as exc:  # pragma: no cover - the extra is part of dev installs
        raise SubmissionError(
            "the docker flavor needs the Docker SDK for Python", fix="pip install 'orcakit[docker]'"
        ) from exc
    address = engine_address(docker_host)
    try:
        if docker_host:
            client = docker.DockerClient(base_url=docker_host, version="auto", timeout=timeout, max_pool_size=pool_size)
        else:
            client = docker.from_env(version="auto", timeout=timeout, max_pool_size=pool_size)
        client.ping()
    except (DockerException, OSError) as exc:
        raise SubmissionError(
            f"cannot reach the Docker engine at {address}: {_short(exc)}",
            why="every step of the docker flavor runs in a container the engine starts",
            fix=START_ENGINE_FIX,
        ) from None
    except Exception as exc:  # requests' connection errors and friends
        raise SubmissionError(
            f"cannot reach the Docker engine at {address}: {_short(exc)}", fix=START_ENGINE_FIX
        ) from None
    return client


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 300 else text[:300] + "..."
