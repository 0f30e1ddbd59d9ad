"""A step that outlives its driver ends itself (issue 20).

A static run is driven by a thread of the client that submitted it (see :mod:`.leases`). When
that client dies (SIGKILL, OOM killer), the run's step processes — started in sessions of their
own so that a stop can kill each with everything it started — would run on until some later
command opened the run store and reaped the run. So each step process watches its run's driver
lease from a daemon thread: once the lease says the driver is dead (:func:`.leases.orphaned_because`:
at once on this host, after LEASE_SECONDS elsewhere), the step reaps the run itself — the run
and its unfinished steps end FAILED with a reason naming the dead client, and the flavor's
``kill_run`` ends what the run left, this process included — and, should anything of that fail,
ends its own process group.

The first look is after one interval (:data:`WATCH_ENV`, default 10 s), so short steps never
query the store for it; runs without a lease (driven by an orchestrator pod) are never touched.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from typing import Any

logger = logging.getLogger("orcakit.driver_watch")

#: Seconds between two looks at the driver's lease (a step's environment may set it).
WATCH_ENV = "ORCAKIT_DRIVER_WATCH_SECONDS"
DEFAULT_SECONDS = 10.0


def watch_driver(store: Any, stack: Any, run_uuid: str) -> threading.Thread | None:
    """Start watching ``run_uuid``'s driver lease in ``store`` (a daemon thread)."""
    try:
        interval = float(os.environ.get(WATCH_ENV) or DEFAULT_SECONDS)
    except ValueError:
        interval = DEFAULT_SECONDS
    if interval <= 0:
        return None
    thread = threading.Thread(target=_watch, args=(store.url, stack, run_uuid, interval), name="orcakit-driver-watch", daemon=True)
    thread.start()
    return thread


def _watch(url: str, stack: Any, run_uuid: str, interval: float) -> None:
    import time

    from .leases import orphaned_because
    from .orphans import reap_orphaned_runs
    from .run_store import RunStore

    store = None
    while True:
        time.sleep(interval)
        try:
            store = store or RunStore(url, create_tables=False)  # its own connections: not the step's
            leased = store.leased_unfinished_runs([run_uuid])
            if not leased:
                return  # finished, or driven by no client: nothing to watch
            why = orphaned_because(leased[0][1])
            if why is None:
                continue
            print(f"orcakit: this step's driver is gone ({why}); ending its run", flush=True)
            reap_orphaned_runs(store, stack, [run_uuid])
        except Exception:  # noqa: BLE001 - a store that cannot be read now may be readable next time
            logger.debug("driver watch of run %s failed", run_uuid, exc_info=True)
            continue
        break
    # kill_run ended this process with its run; if it could not, end this step's process group.
    try:
        os.killpg(os.getpgrp(), signal.SIGKILL)
    finally:
        os._exit(1)
