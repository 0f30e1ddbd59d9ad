"""Configuration of the docker flavor."""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from orcakit.reference import ContainerRuntimeConfig

_USER = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*(:[A-Za-z0-9_][A-Za-z0-9_.-]*)?$")


class DockerOrchestratorConfig(ContainerRuntimeConfig):
    """The shared container fields (parent_image, image, requirements, code_paths, max_parallelism,
    forward_environment, wheel_cache) and the Docker engine's own."""

    user: str | None = Field(
        default="1000:1000",
        description="UID[:GID] (or name) the step containers run as; non-root by default. None: the image's user",
    )
    docker_host: str | None = Field(
        default=None,
        description="engine address, e.g. unix:///var/run/docker.sock or tcp://127.0.0.1:2375 (default: DOCKER_HOST, then the local socket)",
    )
    network_mode: str | None = Field(
        default=None,
        description=(
            "container network: 'bridge', 'host', 'none' or a network name. Default: 'host' when a store "
            "(PostgreSQL run store, S3 endpoint) is on this machine's loopback address, else the engine's default"
        ),
    )
    stream_logs: bool = Field(
        default=True,
        description=(
            "echo each step's output, line by line, to the terminal through the 'orcakit.docker.steps' logger "
            "(given a stderr handler when logging is not configured); the step logs are kept in any case"
        ),
    )
    gpus: int | None = Field(
        default=None,
        ge=0,
        description="GPUs the engine can hand out (default: the /dev/nvidiaN devices of this machine when the engine is local, else 0)",
    )
    engine_timeout: float = Field(default=60.0, gt=0, description="seconds one Docker API call may take")

    @field_validator("user")
    @classmethod
    def _check_user(cls, value: str | None) -> str | None:
        if value is not None and not _USER.fullmatch(value):
            raise ValueError(f"user {value!r} is not UID[:GID] or NAME[:GROUP]")
        return value
