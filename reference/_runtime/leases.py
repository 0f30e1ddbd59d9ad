"""Driver leases: how any process tells a run whose client is alive from one whose client died.

A static run of a :class:`~.orchestrator.RuntimeOrchestrator` is driven by a thread of the
client process that submitted it (``orcakit run``, a ``pipeline()`` call). If that process dies
(SIGKILL, OOM killer, a closed laptop), nothing would ever finish the run. So the driver holds a
*lease* in the run store (table ``run_leases``): who it is (host, PID and what makes that PID one
process: the kernel's boot ID, the PID namespace and the process's start time) and a heartbeat it
renews every :data:`HEARTBEAT_SECONDS`.

A run is *orphaned* when its lease is held by a process that is gone. Two ways to know:

- on the same kernel and PID namespace as the driver: the driver's PID no longer exists, or is
  another process now (different start time), or is a zombie: decided at once, no waiting;
- anywhere else (another machine, another container): the heartbeat is older than
  :data:`LEASE_SECONDS` on the database's clock (so client clocks never matter).

Runs without a lease (driven by a backend with no waiting client) are never orphans.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

from .run_store import LeaseRecord, RunStore

logger = logging.getLogger("orcakit.leases")

#: How often a driver renews its lease.
HEARTBEAT_SECONDS = 5.0
#: How long a lease lives without a heartbeat before a process on another host may declare the
#: driver dead: 12 missed heartbeats, generous for a loaded machine or a slow database.
LEASE_SECONDS = 60.0


@dataclass(frozen=True)
class Driver:
    """One process, identified so that another process can tell whether it still runs."""

    host: str
    pid: int
    #: ``"<boot ID>|<PID namespace>|<start time>"``: the same host, PID and start time is the
    #: same process; another boot or namespace means the PID says nothing.
    process: str

    @property
    def kernel(self) -> str:
        """Boot ID and PID namespace: where ``pid`` means this process."""
        return self.process.rsplit("|", 1)[0]

    def describe(self) -> str:
        return f"pid {self.pid} on host {self.host}"


def _read(path: str) -> str:
    try:
        with open(path) as handle:
            return handle.read().strip()
    except OSError:
        return ""


@lru_cache(maxsize=1)
def _kernel() -> str:
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        namespace = ""
    return f"{_read('/proc/sys/kernel/random/boot_id')}|{namespace}"


def _process_state(pid: int) -> tuple[str, str] | None:
    """``(state, start time)`` of ``pid`` from /proc, or None if there is no such process."""
    stat = _read(f"/proc/{pid}/stat")
    if not stat:
        return None
    fields = stat.rsplit(")", 1)[-1].split()  # the command name may hold spaces and parentheses
    return fields[0], fields[19]


def current_driver() -> Driver:
    """This process. Not cached whole: a forked child (``orcakit run --no-wait``) is another one."""
    pid = os.getpid()
    state = _process_state(pid)
    return Driver(host=socket.gethostname(), pid=pid, process=f"{_kernel()}|{state[1] if state else ''}")


def _kernel_known() -> bool:
    # Without /proc (not Linux) the PID test cannot be trusted: fall back to the timeout.
    return not _kernel().startswith("|")


def orphaned_because(lease: LeaseRecord) -> str | None:
    """Why the process holding ``lease`` counts as gone, or None while it may be alive."""
    holder = Driver(lease.host, lease.pid, lease.process)
    if _kernel_known() and holder.kernel == _kernel():
        state = _process_state(holder.pid)
        if state is None:
            return f"the client driving this run ({holder.describe()}) died without finishing it"
        if f"{_kernel()}|{state[1]}" != holder.process:
            return f"the client driving this run ({holder.describe()}) died without finishing it (its PID now belongs to another process)"
        if state[0] in ("Z", "X"):
            return f"the client driving this run ({holder.describe()}) died without finishing it (it is a zombie process)"
        return None  # alive here: the PID is authoritative, however late its heartbeat
    if lease.age > LEASE_SECONDS:
        return (
            f"the client driving this run ({holder.describe()}) stopped renewing its lease {lease.age:.0f}s ago "
            f"(limit {LEASE_SECONDS:g}s), so it is presumed dead"
        )
    return None


class Heartbeat:
    """Holds a run's lease for this process while the run is driven here: claims it, renews it
    every :data:`HEARTBEAT_SECONDS` from a daemon thread and releases it at :meth:`stop`.

    ``on_lost`` is called (once) when a renewal finds the lease taken over: another process
    declared this driver dead and ended the run, so whatever still runs here must stop."""

    def __init__(self, store: RunStore, run_id: str, orchestrator_run_id: str, on_lost: Callable[[], None] | None = None) -> None:
        self.store, self.run_id = store, run_id
        self.driver = current_driver()
        self.on_lost = on_lost
        self._done = threading.Event()
        store.claim_lease(run_id, orchestrator_run_id, self.driver.host, self.driver.pid, self.driver.process)
        self._thread = threading.Thread(target=self._beat, name=f"orcakit-lease-{run_id[:8]}", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._done.wait(HEARTBEAT_SECONDS):
            try:
                held = self.store.renew_lease(self.run_id, self.driver.pid, self.driver.process)
            except Exception:  # noqa: BLE001 - the store may come back; the lease is generous
                logger.warning("could not renew the lease of run %s; retrying in %gs", self.run_id, HEARTBEAT_SECONDS, exc_info=True)
                continue
            if not held:
                logger.error(
                    "run %s was taken over: another process found its driver (%s) unresponsive and ended the run; "
                    "stopping what still runs here", self.run_id, self.driver.describe(),
                )
                self._done.set()
                if self.on_lost is not None:
                    self.on_lost()
                return

    def stop(self) -> None:
        """The run ended (or could not start): stop renewing and drop the lease."""
        if self._done.is_set():
            return
        self._done.set()
        try:
            self.store.release_lease(self.run_id, self.driver.pid, self.driver.process)
        except Exception:  # noqa: BLE001 - a leftover lease of a finished run is never reaped
            logger.warning("could not release the lease of run %s", self.run_id, exc_info=True)
