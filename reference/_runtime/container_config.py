"""The config fields every container flavor shares (a light module: a flavor declaration imports
it, and listing flavors must not load the runtime)."""

from __future__ import annotations

from pydantic import Field

from orcakit import BaseOrchestratorConfig


class ContainerRuntimeConfig(BaseOrchestratorConfig):
    """Config fields every container flavor has; a flavor's config subclasses this."""

    parent_image: str = Field(
        default="orcakit/python-base:bookworm",
        description=(
            "image the step image is built FROM: needs python3 (>= 3.11) and pip. Never pulled "
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
    forward_environment: list[str] = Field(
        default_factory=lambda: ["AWS_*"],
        description="client environment variables (fnmatch patterns) passed into every step container, e.g. S3 credentials",
    )
    wheel_cache: str | None = Field(
        default=None,
        description="where host-built wheels are cached (default: $ORCAKIT_CACHE/wheels, ORCAKIT_CACHE defaulting to ~/.cache/orcakit)",
    )
