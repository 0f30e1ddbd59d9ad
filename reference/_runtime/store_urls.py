"""What kind of store a URL names: the bottom of the stores' import order.

``run_store``, ``artifact_store`` and ``stores`` (:class:`~.stores.StackStores`, which opens
both) classify URLs here; this module imports none of them, so the four modules import in one
direction: ``store_urls`` <- ``run_store``, ``artifact_store`` <- ``stores``.
"""

from __future__ import annotations

from enum import Enum

from orcakit import StoreError


class RunStoreKind(str, Enum):
    SQLITE_FILE = "sqlite-file"  #: a SQLite database file on this machine's disk
    SQLITE_MEMORY = "sqlite-memory"  #: an in-memory SQLite database: one process only
    NETWORK = "network"  #: a database server (PostgreSQL, any SQLAlchemy URL)


class ArtifactStoreKind(str, Enum):
    LOCAL = "local"  #: a folder on this machine's disk
    S3 = "s3"  #: an S3 (or S3-compatible) bucket


def run_store_kind(url: str) -> RunStoreKind:
    if not url.startswith("sqlite"):
        return RunStoreKind.NETWORK
    return RunStoreKind.SQLITE_FILE if sqlite_database(url) else RunStoreKind.SQLITE_MEMORY


def sqlite_database(url: str) -> str | None:
    """The database file of a SQLite URL (None: in memory)."""
    from sqlalchemy.engine import make_url

    database = make_url(url).database
    return database if database and database != ":memory:" else None


def artifact_store_kind(uri: str) -> ArtifactStoreKind:
    if uri.startswith("s3://"):
        return ArtifactStoreKind.S3
    if "://" in uri and not uri.startswith("file://"):
        raise StoreError(f"artifact store {uri!r}: unknown scheme", fix="use a local folder path or s3://bucket/prefix")
    return ArtifactStoreKind.LOCAL
