"""Configuration of the local flavor."""

from __future__ import annotations

import os
from typing import Literal

from pydantic import Field

from orcakit import BaseOrchestratorConfig


class LocalOrchestratorConfig(BaseOrchestratorConfig):
    max_parallelism: int = Field(
        default_factory=lambda: max(4, os.cpu_count() or 1),
        ge=1,
        description="how many steps may run at once",
    )
    launcher: Literal["fork", "exec"] = Field(
        default="fork",
        description=(
            "'fork': each step is a process forked from a server that has already imported orcakit "
            "(started once per client process and shared by its runs: milliseconds per step); "
            "'exec': each step is a fresh `python -m orcakit.reference.entrypoint` process, exactly "
            "the command a container runs"
        ),
    )
    fork_server: Literal["fresh", "client"] = Field(
        default="fresh",
        description=(
            "launcher='fork' only. 'fresh': the fork server is a new `python -m ...zygote` process "
            "(it pays Python start-up and imports once per client process, and holds its own copy "
            "of them: ~50 MiB); 'client': it is forked from the client, which has imported "
            "everything already and shares its pages with it, if the client has no other thread "
            "when its first run starts and the steps use its interpreter (else 'fresh')"
        ),
    )
    python: str | None = Field(default=None, description="interpreter for step processes (default: this one)")
    cgroup_root: str = Field(default="/sys/fs/cgroup", description="where the cgroup file system is mounted")
