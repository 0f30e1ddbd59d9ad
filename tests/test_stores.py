"""StackStores: the one place that classifies and opens a stack's stores."""

from __future__ import annotations

from pathlib import Path

import pytest

from orcakit import ComponentSpec, StackSpec, StoreError, SubmissionError
from orcakit.reference import RuntimeOrchestrator, StackStores
from orcakit.reference._runtime.stores import ArtifactStoreKind, RunStoreKind


def stores(run_store: str, artifact_store: str, **options) -> StackStores:
    return StackStores(run_store, artifact_store, options)


@pytest.mark.parametrize(
    "url, kind",
    [
        ("sqlite:///runs.db", RunStoreKind.SQLITE_FILE),
        ("sqlite:////abs/runs.db", RunStoreKind.SQLITE_FILE),
        ("sqlite://", RunStoreKind.SQLITE_MEMORY),
        ("sqlite:///:memory:", RunStoreKind.SQLITE_MEMORY),
        ("postgresql+psycopg://u:p@db:5432/orcakit", RunStoreKind.NETWORK),
        ("mysql+pymysql://u@h/db", RunStoreKind.NETWORK),
    ],
)
def test_run_store_kinds(url: str, kind: RunStoreKind) -> None:
    assert stores(url, "/tmp/a").run_store_kind is kind


def test_local_paths_are_resolved_and_relative_ones_noticed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    local = stores("sqlite:///db/runs.db", "artifacts")
    assert local.sqlite_file == tmp_path / "db" / "runs.db"
    assert local.artifact_root == tmp_path / "artifacts"
    assert local.uses_local_disk and local.relative_paths
    absolute = stores(f"sqlite:///{tmp_path}/runs.db", f"file://{tmp_path}/a")
    assert absolute.artifact_store_kind is ArtifactStoreKind.LOCAL and not absolute.relative_paths
    remote = stores("postgresql+psycopg://u:p@127.0.0.1/db", "s3://bucket/prefix", endpoint_url="http://localhost:9000")
    assert remote.sqlite_file is None and remote.artifact_root is None and not remote.uses_local_disk
    assert remote.network_hosts() == ["127.0.0.1", "localhost"] and remote.on_loopback()
    assert not stores("postgresql+psycopg://u:p@db.example/db", "s3://b").on_loopback()


def test_an_unknown_artifact_scheme_is_refused_with_the_fix() -> None:
    with pytest.raises(StoreError, match="unknown scheme") as info:
        stores("sqlite:///r.db", "gs://bucket").artifact_store_kind
    assert "s3://bucket/prefix" in str(info.value)


def test_s3_options_travel_as_variables_and_nothing_else_does() -> None:
    s3 = stores("sqlite:///r.db", "s3://b/p", endpoint_url="http://h:1", region_name="eu", aws_secret_access_key="k", other="x")
    assert s3.step_environment() == {"AWS_ENDPOINT_URL": "http://h:1", "AWS_DEFAULT_REGION": "eu", "AWS_SECRET_ACCESS_KEY": "k"}
    assert stores("sqlite:///r.db", "/tmp/a", endpoint_url="http://h:1").step_environment() == {}


def test_flavors_whose_steps_cannot_see_this_disk_refuse_local_stores() -> None:
    with pytest.raises(SubmissionError) as info:
        stores("sqlite:///r.db", "/tmp/artifacts").require_remote("k8s")
    message = str(info.value)
    assert "'k8s'" in message and "run store 'sqlite:///r.db'" in message and "artifact store '/tmp/artifacts'" in message
    assert "postgresql" in message and "s3://" in message  # the fix
    stores("postgresql+psycopg://u:p@db/x", "s3://b").require_remote("k8s")  # fine


def test_an_in_memory_run_store_is_refused_before_anything_runs(tmp_path: Path) -> None:
    """A flavor on the runtime refuses it in submit, before any step or run record exists."""
    from orcakit import load_flavor
    from tests.pipelines.sample import pipe

    stack = StackSpec(orchestrator=ComponentSpec(flavor="local", name="t"), artifact_store=str(tmp_path / "a"), run_store="sqlite://")
    orchestrator = load_flavor("local").create({})
    assert isinstance(orchestrator, RuntimeOrchestrator)
    with pytest.raises(SubmissionError, match="in-memory database"):
        orchestrator.run(pipe.compile(stack))


def test_stores_open_what_they_classify(tmp_path: Path) -> None:
    local = stores(f"sqlite:///{tmp_path}/runs.db", str(tmp_path / "artifacts"))
    store = local.open_run_store()
    try:
        assert store.list_runs() == []
    finally:
        store.close()
    artifacts = local.open_artifact_store()
    artifacts.put("k", b"v")
    assert (tmp_path / "artifacts" / "k").read_bytes() == b"v"
    assert local.log_dir("snap") == tmp_path / "artifacts" / "logs" / "snap"
