"""Configuration of the docker flavor."""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from orcakit import BaseOrchestratorConfig

_USER = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*(:[A-Za-z0-9_][A-Za-z0-9_.-]*)?$")


class DockerOrchestratorConfig(BaseOrchestratorConfig):
    parent_image: str = Field(
        default="orcakit/python-base:bookworm",
        description=(
            "local image the step image is built FROM: needs python3 (>= 3.11) and pip. Never pulled "
            "(no registry is assumed); scripts/testenv/ensure-base-image.sh builds the default offline"
        ),
    )
    image: str | None = Field(
        default=None,
        description="a ready step image (orcakit and the step code installed) to use instead of building one",
    )
    requirements: list[str] = Field(
        default_factory=list,
        description="more pip requirements for the step image (wheels are fetched on the host, never in the build)",
    )
    code_paths: list[str] = Field(
        default_factory=list,
        description=(
            "more files or folders copied next to the step code (importable by their name); the packages "
            "the steps come from are found automatically"
        ),
    )
    max_parallelism: int = Field(default=8, ge=1, description="how many step containers may run at once")
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
    forward_environment: list[str] = Field(
        default_factory=lambda: ["AWS_*"],
        description="client environment variables (fnmatch patterns) passed into every step container, e.g. S3 credentials",
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
    wheel_cache: str | None = Field(
        default=None,
        description="where host-built wheels are cached (default: $ORCAKIT_CACHE/wheels, ORCAKIT_CACHE defaulting to ~/.cache/orcakit)",
    )
    engine_timeout: float = Field(default=60.0, gt=0, description="seconds one Docker API call may take")

    @field_validator("user")
    @classmethod
    def _check_user(cls, value: str | None) -> str | None:
        if value is not None and not _USER.fullmatch(value):
            raise ValueError(f"user {value!r} is not UID[:GID] or NAME[:GROUP]")
        return value
