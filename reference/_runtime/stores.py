"""A stack's two stores as one concept: what kind each is, what steps need to reach them, and
opening them.

Every question a flavor asks about the stores ("is the run store a SQLite file on this disk?",
"which host folders must a container mount?", "which variables carry the S3 endpoint into a
step?", "can a pod on another node use these stores at all?") is answered here, once, so that no
flavor parses URLs of its own.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from orcakit import StackSpec, SubmissionError

# The URL kinds live below every store module; re-exported here for StackStores' users.
from .store_urls import ArtifactStoreKind, RunStoreKind, artifact_store_kind, run_store_kind, sqlite_database  # noqa: F401

if TYPE_CHECKING:
    from .artifact_store import ArtifactStore
    from .run_store import RunStore


#: Artifact-store options that the step entrypoint reads from the environment instead (the
#: snapshot carries only the URI into a step), and the variables that carry them.
S3_OPTION_VARIABLES = {
    "endpoint_url": "AWS_ENDPOINT_URL",
    "region_name": "AWS_DEFAULT_REGION",
    "aws_access_key_id": "AWS_ACCESS_KEY_ID",
    "aws_secret_access_key": "AWS_SECRET_ACCESS_KEY",
}


@dataclass(frozen=True)
class StackStores:
    """The run store and artifact store of a stack, classified once (see module doc)."""

    run_store_url: str
    artifact_store_uri: str
    artifact_store_options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, stack: StackSpec) -> "StackStores":
        return cls(stack.run_store, stack.artifact_store, dict(stack.artifact_store_options))

    # -- what kind ----------------------------------------------------------------------------

    @property
    def run_store_kind(self) -> RunStoreKind:
        return run_store_kind(self.run_store_url)

    @property
    def artifact_store_kind(self) -> ArtifactStoreKind:
        return artifact_store_kind(self.artifact_store_uri)

    @property
    def sqlite_file(self) -> Path | None:
        """The run store's SQLite file, resolved (None unless it is one)."""
        if self.run_store_kind is not RunStoreKind.SQLITE_FILE:
            return None
        return Path(sqlite_database(self.run_store_url)).expanduser().resolve()

    @property
    def artifact_root(self) -> Path | None:
        """The local artifact folder, resolved (None for S3)."""
        if self.artifact_store_kind is not ArtifactStoreKind.LOCAL:
            return None
        return Path(self.artifact_store_uri.removeprefix("file://")).expanduser().resolve()

    @property
    def uses_local_disk(self) -> bool:
        return self.sqlite_file is not None or self.artifact_root is not None

    @property
    def relative_paths(self) -> bool:
        """Whether a local store was given relative to the working directory (a step must then
        run in the same working directory to find it)."""
        paths = []
        if self.artifact_store_kind is ArtifactStoreKind.LOCAL:
            paths.append(self.artifact_store_uri.removeprefix("file://"))
        if self.run_store_kind is RunStoreKind.SQLITE_FILE:
            paths.append(sqlite_database(self.run_store_url) or "")
        return any(path and not os.path.isabs(os.path.expanduser(path)) for path in paths)

    def network_hosts(self) -> list[str]:
        """Hosts a step must reach: the run-store server and the S3 endpoint, where set."""
        hosts = []
        if self.run_store_kind is RunStoreKind.NETWORK:
            from sqlalchemy.engine import make_url

            hosts.append(make_url(self.run_store_url).host or "")
        if self.artifact_store_kind is ArtifactStoreKind.S3:
            endpoint = self.artifact_store_options.get("endpoint_url") or os.environ.get("AWS_ENDPOINT_URL")
            if endpoint:
                hosts.append(urlparse(endpoint).hostname or "")
        return [host for host in hosts if host]

    def on_loopback(self) -> bool:
        """Whether a store listens on this machine's loopback address (a container on a bridge
        network, or a pod, cannot reach it there)."""
        return any(is_loopback(host) for host in self.network_hosts())

    def step_environment(self) -> dict[str, str]:
        """Variables that carry the artifact store's options into a step (the snapshot carries
        only the URI; boto3 reads endpoint, region and credentials from the environment)."""
        if self.artifact_store_kind is not ArtifactStoreKind.S3:
            return {}
        return {
            variable: str(self.artifact_store_options[option])
            for option, variable in S3_OPTION_VARIABLES.items()
            if self.artifact_store_options.get(option)
        }

    # -- what a flavor may demand ----------------------------------------------------------

    def require_shareable(self, flavor: str) -> None:
        """Refuse a store that no other process can open (an in-memory SQLite database)."""
        if self.run_store_kind is RunStoreKind.SQLITE_MEMORY:
            raise SubmissionError(
                f"run store {self.run_store_url!r} is an in-memory database, which the steps of orchestrator flavor {flavor!r} cannot share",
                why="every step records its own attempts in the run store from its own process",
                fix="use a SQLite file (sqlite:///path/runs.db) or PostgreSQL",
            )

    def require_remote(self, flavor: str) -> None:
        """Refuse stores on this machine's disk, for flavors whose steps run elsewhere."""
        local = []
        if self.run_store_kind is not RunStoreKind.NETWORK:
            local.append(f"run store {self.run_store_url!r} (SQLite)")
        if self.artifact_store_kind is ArtifactStoreKind.LOCAL:
            local.append(f"artifact store {self.artifact_store_uri!r} (a local folder)")
        if local:
            raise SubmissionError(
                f"orchestrator flavor {flavor!r} runs steps where this machine's disk is not visible, but the stack uses "
                + " and ".join(local),
                why="every step reads its inputs and records its status in the stack's stores from where it runs",
                fix="register a stack with a network run store (postgresql+psycopg://...) and an S3 artifact store (s3://bucket/prefix)",
            )

    # -- opening ------------------------------------------------------------------------------

    def open_run_store(self, create_tables: bool = True) -> "RunStore":
        from .run_store import RunStore

        return RunStore(self.run_store_url, create_tables=create_tables)

    def open_artifact_store(self) -> "ArtifactStore":
        from .artifact_store import open_artifact_store

        return open_artifact_store(self.artifact_store_uri, self.artifact_store_options)

    def log_dir(self, snapshot_id: str) -> Path:
        """Where this machine keeps the step logs of a snapshot: next to the artifacts when they
        are local (where ``log_key`` puts them), else under ``$ORCAKIT_HOME/logs``."""
        from .artifact_store import log_key

        root = self.artifact_root
        if root is not None:
            path = root / Path(log_key(snapshot_id, "x")).parent
        else:
            path = Path(os.environ.get("ORCAKIT_HOME", Path.home() / ".orcakit")) / "logs" / snapshot_id
        path.mkdir(parents=True, exist_ok=True)
        return path


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
