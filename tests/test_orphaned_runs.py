"""A killed client must not strand a run (issue 8): driver leases and reaping orphaned runs.

End to end, with real processes: ``orcakit run`` of a pipeline whose step sleeps (and starts a
grandchild) runs as a subprocess; the test kills it and checks, from other processes, that the
run ends with a reason and that no step process and no cgroup of the run remains. Then the run
store's lease primitives, on SQLite and PostgreSQL, including a store made before leases existed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from orcakit import ExecutionStatus
from orcakit.reference import ConfigStore, RunStore
from orcakit.reference._runtime import leases
from orcakit.reference._runtime.leases import Heartbeat, current_driver, orphaned_because
from orcakit.reference._runtime.run_store import METADATA
from orcakit.reference.flavors.local import RUN_ID_ENV, cgroups, leftovers

ROOT = Path(__file__).resolve().parents[1]
ORCAKIT = Path(sys.executable).with_name("orcakit")
PIPELINES = "tests.pipelines.orphans"
S = ExecutionStatus
needs_cgroups = pytest.mark.skipif(cgroups.probe() is None, reason="needs a writable cgroup file system (root)")


# -- helpers: the CLI in real processes, and what is left on this host ---------------------------


class Client:
    """``orcakit`` commands in their own ORCAKIT_HOME, as a user runs them."""

    def __init__(self, tmp_path: Path, launcher: str = "fork") -> None:
        self.home = tmp_path / "home"
        self.pids_file = tmp_path / "pids.json"
        self.env = {**os.environ, "ORCAKIT_HOME": str(self.home), "ORCAKIT_TEST_PIDS": str(self.pids_file)}
        self.env.pop("ORCAKIT_DEBUG", None)
        if launcher != "fork":
            self.ok("orchestrator", "register", "other", "--flavor=local", f"--launcher={launcher}")
            self.ok("stack", "register", "other", "-o", "other", "--set")

    def __call__(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([str(ORCAKIT), *args], cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=timeout)

    def ok(self, *args: str) -> subprocess.CompletedProcess:
        result = self(*args)
        assert result.returncode == 0, result.stdout + result.stderr
        return result

    def start(self, pipeline: str) -> subprocess.Popen:
        """``orcakit run`` in the background, returned once its long step runs (it wrote its PIDs)."""
        proc = subprocess.Popen(
            [str(ORCAKIT), "run", f"{PIPELINES}:{pipeline}"], cwd=ROOT, env=self.env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        deadline = time.monotonic() + 90
        while not self.pids_file.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"the step never started:\n{proc.communicate()[0]}")
            time.sleep(0.1)
        return proc

    def store(self) -> RunStore:
        return RunStore(ConfigStore(self.home).stack_spec().run_store)

    def the_run(self):
        (run,) = self.store().list_runs()
        return run

    def step_pids(self) -> dict[str, int]:
        return json.loads(self.pids_file.read_text())


def alive(pid: int) -> bool:
    """Running (a zombie is not: it has ended, and only its parent can remove its entry)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


def processes_of(run_id: str) -> list[int]:
    """Live processes whose environment names the run (as /proc shows it)."""
    marker = f"{RUN_ID_ENV}={run_id}".encode()
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if marker in (proc / "environ").read_bytes().split(b"\0") and alive(int(proc.name)):
                    found.append(int(proc.name))
            except OSError:
                continue
    return found


def cgroup_dirs(pid: int) -> list[Path]:
    """The orcakit cgroup directories ``pid`` is in (v1: one per controller; v2: one)."""
    dirs = []
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "/orcakit/" in path:
            for controller in (controllers.split(",") if controllers else [""]):
                base = Path("/sys/fs/cgroup") / controller if controller else Path("/sys/fs/cgroup")
                if controller in ("", "cpu", "memory"):
                    dirs.append(base / path.lstrip("/"))
    return dirs


def sigkill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)  # collected: its PID is gone, as after a real crash


def wait_until(condition, timeout: float = 15) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


# -- a killed client: the next client ends the run and kills what it left -------------------------


def check_reaped(client: Client, pids: dict[str, int], groups: list[Path], status: ExecutionStatus, driver_pid: int) -> None:
    run = client.the_run()
    assert run.status is status, run
    assert f"the client driving this run (pid {driver_pid} on host" in run.reason and "died without finishing it" in run.reason
    steps = client.store().steps(run.id)
    step_status = S.FAILED if status is S.FAILED else S.STOPPED
    (long_step,) = [name for name in steps if name.startswith("stubborn")]
    assert steps[long_step].status is step_status and "died without finishing it" in steps[long_step].reason
    assert steps["after"].status is S.SKIPPED  # never started, never will
    assert processes_of(run.metadata["orchestrator_run_id"]) == []
    assert not alive(pids["step"]) and not alive(pids["child"])
    assert [group for group in groups if group.exists()] == []
    assert not leftovers.ledger_path(run.metadata["orchestrator_run_id"]).exists()


@pytest.mark.parametrize("launcher", ["fork", "exec"])
def test_sigkilled_client_run_is_ended_failed_by_runs_list_and_nothing_is_left(tmp_path: Path, launcher: str) -> None:
    client = Client(tmp_path, launcher)
    proc = client.start("lingering")
    pids, run = client.step_pids(), client.the_run()
    sigkill(proc)
    # Nothing has ended the run yet: the step and its grandchild outlive the client.
    assert client.the_run().status is S.RUNNING and alive(pids["step"]) and alive(pids["child"])
    assert processes_of(run.metadata["orchestrator_run_id"])

    listed = client.ok("runs", "list")
    assert run.id in listed.stdout and "failed" in listed.stdout
    assert "was orphaned and is now FAILED" in listed.stderr
    check_reaped(client, pids, [], S.FAILED, proc.pid)


@needs_cgroups
def test_sigkilled_client_run_with_cgroups_leaves_no_cgroup(tmp_path: Path) -> None:
    client = Client(tmp_path)
    proc = client.start("lingering_limited")
    pids = client.step_pids()
    groups = cgroup_dirs(pids["step"])
    assert groups and all(group.is_dir() for group in groups)
    sigkill(proc)
    assert all(group.is_dir() for group in groups)  # left behind, until someone reaps the run

    shown = client.ok("runs", "show", client.the_run().id)
    assert "FAILED" in shown.stdout and "died without finishing it" in shown.stdout
    check_reaped(client, pids, groups, S.FAILED, proc.pid)


def test_runs_stop_on_an_orphaned_run_ends_it_stopped(tmp_path: Path) -> None:
    client = Client(tmp_path)
    proc = client.start("lingering")
    pids, run = client.step_pids(), client.the_run()
    sigkill(proc)
    stopped = client("runs", "stop", run.id, "--timeout", "5")
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert "ended STOPPED" in stopped.stdout
    check_reaped(client, pids, [], S.STOPPED, proc.pid)
    assert client.the_run().reason.startswith("stopped; ")


def test_the_next_orcakit_run_reaps_an_orphaned_run(tmp_path: Path) -> None:
    client = Client(tmp_path)
    proc = client.start("lingering")
    pids, orphan = client.step_pids(), client.the_run()
    sigkill(proc)
    client.pids_file.unlink()
    after = client("run", f"{PIPELINES}:lingering", "-p", "seconds=0.1")
    assert after.returncode == 0, after.stdout + after.stderr
    store = client.store()
    assert store.get_run(orphan.id).status is S.FAILED
    assert not alive(pids["step"]) and processes_of(orphan.metadata["orchestrator_run_id"]) == []


def test_sigterm_stops_the_run_like_ctrl_c(tmp_path: Path) -> None:
    client = Client(tmp_path)
    proc = client.start("lingering")
    pids = client.step_pids()
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, output
    assert "interrupted" in output and "STOPPED" in output
    run = client.the_run()
    assert run.status is S.STOPPED
    assert {name: step.status for name, step in client.store().steps(run.id).items()} == {"stubborn": S.STOPPED, "after": S.SKIPPED}
    assert wait_until(lambda: not alive(pids["step"]) and not alive(pids["child"]))


def test_a_live_run_is_not_reaped_by_another_client(tmp_path: Path) -> None:
    client = Client(tmp_path)
    proc = client.start("lingering")
    try:
        pids, run = client.step_pids(), client.the_run()
        listed = client.ok("runs", "list")
        shown = client.ok("runs", "show", run.id)
        assert "orphaned" not in listed.stderr + shown.stderr
        assert client.the_run().status is S.RUNNING and alive(pids["step"]) and alive(pids["child"])
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
    assert client.the_run().status is S.STOPPED  # ended by its own driver, not reaped


# -- the run store's side: leases, on both backends ----------------------------------------------


@pytest.fixture
def store(store_url: str):
    store = RunStore(store_url)
    yield store
    store.close()


def _run(store: RunStore) -> str:
    run = store.create_placeholder_run(uuid.uuid4().hex, "leased", "local")
    return store.get_or_create_run(run.snapshot_id, uuid.uuid4().hex, "leased", "local", placeholder_id=run.id).id


def _lease(store: RunStore, run_id: str):
    (found,) = [lease for run, lease in store.leased_unfinished_runs([run_id])]
    return found


def test_only_runs_with_a_driver_lease_are_candidates(store: RunStore) -> None:
    unleased = _run(store)  # driven by something else (an orchestrator pod): never reaped
    leased = _run(store)
    me = current_driver()
    store.claim_lease(leased, "backend-id", me.host, me.pid, me.process)
    candidates = {run.id for run, _ in store.leased_unfinished_runs([unleased, leased])}
    assert candidates == {leased}
    assert orphaned_because(_lease(store, leased)) is None  # this process is alive
    store.set_run_status(leased, S.COMPLETED)
    assert store.leased_unfinished_runs([leased]) == []  # a finished run is no candidate either


def test_a_dead_pid_on_this_host_is_an_orphan_at_once(store: RunStore) -> None:
    run_id = _run(store)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    me = current_driver()
    process = f"{me.kernel}|{me.process.rsplit('|', 1)[1]}"
    store.claim_lease(run_id, "backend-id", me.host, dead.pid, process)
    why = orphaned_because(_lease(store, run_id))
    assert why is not None and f"pid {dead.pid} on host {me.host}" in why and "died without finishing it" in why


def test_a_driver_elsewhere_is_an_orphan_only_when_its_lease_expired(store: RunStore) -> None:
    run_id = _run(store)
    store.claim_lease(run_id, "backend-id", "elsewhere", os.getpid(), "another-boot|pid:[1]|42")
    assert orphaned_because(_lease(store, run_id)) is None  # fresh heartbeat: alive as far as we know
    store.renew_lease(run_id, os.getpid(), "another-boot|pid:[1]|42")
    aged = _lease(store, run_id)
    assert aged.beat == 1 and aged.age < leases.LEASE_SECONDS
    # Its heartbeat stopped long ago (written straight into the store, as a dead driver leaves it).
    engine = create_engine(store.url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE run_leases SET heartbeat_at = :when WHERE run_id = :run"),
                           {"when": aged.heartbeat_at.replace(year=aged.heartbeat_at.year - 1), "run": run_id})
    engine.dispose()
    why = orphaned_because(_lease(store, run_id))
    assert why is not None and "stopped renewing its lease" in why and "pid" in why and "elsewhere" in why


def test_exactly_one_reaper_takes_a_lease_over_and_the_driver_learns_it_lost(store: RunStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(leases, "HEARTBEAT_SECONDS", 0.05)
    run_id = _run(store)
    lost = []
    heartbeat = Heartbeat(store, run_id, "backend-id", on_lost=lambda: lost.append(True))
    assert wait_until(lambda: _lease(store, run_id).beat >= 2, timeout=10)  # renewed
    lease = _lease(store, run_id)
    assert store.take_over_lease(lease, "reaper", 1, "reaper|x|1") in (True, False)
    # The heartbeat may have renewed between the read and the take-over; then the take-over
    # failed and must be retried with a fresh read, as a reaper does on its next pass.
    while _lease(store, run_id).pid != 1:
        assert store.take_over_lease(_lease(store, run_id), "reaper", 1, "reaper|x|1") in (True, False)
    assert not store.take_over_lease(lease, "second-reaper", 2, "reaper|y|2")  # a stale read loses
    assert wait_until(lambda: lost == [True], timeout=10)
    heartbeat.stop()
    assert _lease(store, run_id).pid == 1  # the driver does not drop a lease it no longer holds


def test_heartbeat_stop_releases_the_lease(store: RunStore) -> None:
    run_id = _run(store)
    Heartbeat(store, run_id, "backend-id").stop()
    assert store.leased_unfinished_runs([run_id]) == []


def test_a_store_made_before_leases_existed_gains_them(store_url: str) -> None:
    """The previous orcakit created every table but ``run_leases``; opening such a store adds it."""
    old_tables = [table for name, table in METADATA.tables.items() if name != "run_leases"]
    url = store_url
    schema = None
    if not store_url.startswith("sqlite"):
        # A schema of its own on the shared server: other tests' run_leases must stay untouched.
        schema = f"old_{uuid.uuid4().hex[:12]}"
        with create_engine(store_url).begin() as connection:
            connection.execute(text(f"CREATE SCHEMA {schema}"))
        url = f"{store_url}{'&' if '?' in store_url else '?'}options=-csearch_path%3D{schema}"
    try:
        engine = create_engine(url)
        METADATA.create_all(engine, tables=old_tables)
        with engine.connect() as connection:
            assert "run_leases" not in _table_names(connection)
        engine.dispose()
        store = RunStore(url)
        run_id = _run(store)
        me = current_driver()
        store.claim_lease(run_id, "backend-id", me.host, me.pid, me.process)
        assert [run.id for run, _ in store.leased_unfinished_runs()] == [run_id]
        store.close()
    finally:
        if schema is not None:
            with create_engine(store_url).begin() as connection:
                connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))


def _table_names(connection) -> set[str]:
    from sqlalchemy import inspect

    return set(inspect(connection).get_table_names())
