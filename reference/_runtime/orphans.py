"""Reaping orphaned runs: a run whose driving client died is finished by whoever comes next.

"Whoever comes next" is any client that opens the run store: ``orcakit runs list`` / ``show``,
``orcakit runs stop``, and every submission (:func:`~.client.run_snapshot`). Each asks the run
store for unfinished runs that hold a driver lease (one query; see :mod:`.leases`), and for each
whose driver is gone:

1. takes the lease over (conditionally, so of two clients that found the same orphan exactly
   one reaps it);
2. asks the run's flavor, built from the run's snapshot as it was submitted, to kill what the
   run left on the backend (:meth:`RuntimeOrchestrator.kill_run`: step processes and cgroups,
   containers...);
3. ends the run's unfinished steps and the run itself: STOPPED when a stop had been requested,
   else FAILED, with a reason naming the dead driver.

A failure to kill leftovers does not keep the run open (nothing else would ever end it): the
reason then says what could not be cleaned up.
"""

from __future__ import annotations

import logging
from typing import Any

from orcakit import ExecutionStatus, PipelineSnapshot, StackSpec, load_flavor

from .artifact_store import load_snapshot, open_artifact_store
from .leases import current_driver, orphaned_because
from .run_store import LeaseRecord, RunRecord, RunStore

logger = logging.getLogger("orcakit.orphans")
S = ExecutionStatus


def submitted_snapshot(stack: StackSpec, snapshot_id: str) -> PipelineSnapshot | None:
    """The snapshot a run was submitted with, from ``stack``'s artifact store (None if not there)."""
    try:
        return load_snapshot(open_artifact_store(stack.artifact_store, stack.artifact_store_options), snapshot_id)
    except Exception:  # noqa: BLE001 - another stack's run, or a pruned store
        return None


def orchestrator_for(snapshot: PipelineSnapshot | None, stack: StackSpec) -> Any:
    """The orchestrator as the run was submitted (the snapshot carries its flavor and config);
    ``stack``'s orchestrator when the snapshot is not available."""
    component = snapshot.stack.orchestrator if snapshot is not None else stack.orchestrator
    return load_flavor(component.flavor_source or component.flavor).create(component.config, name=component.name)


def reap_orphaned_runs(store: RunStore, stack: StackSpec, run_ids: list[str] | None = None, *, stop: bool = False) -> list[RunRecord]:
    """End every orphaned run (of ``run_ids``, default all) and kill what it left; return the
    runs as they ended. ``stop``: a stop was asked for (``orcakit runs stop``), so they end STOPPED."""
    reaped = []
    for run, lease in store.leased_unfinished_runs(run_ids):
        why = orphaned_because(lease)
        if why is None:
            continue
        me = current_driver()
        if not store.take_over_lease(lease, me.host, me.pid, me.process):
            continue  # another client is reaping it
        logger.info("run %s is orphaned: %s; reaping it", run.id, why)
        record = _reap(store, stack, run, lease, why, stop)
        store.release_lease(run.id, me.pid, me.process)
        reaped.append(record)
    return reaped


def _reap(store: RunStore, stack: StackSpec, run: RunRecord, lease: LeaseRecord, why: str, stop: bool) -> RunRecord:
    snapshot = submitted_snapshot(stack, run.snapshot_id)
    problem = ""
    try:
        orchestrator_for(snapshot, stack).kill_run(lease.orchestrator_run_id)
    except Exception as exc:  # noqa: BLE001 - reported in the run's reason
        logger.error("could not kill what run %s left on its backend", run.id, exc_info=True)
        problem = f"; what it left on the backend could not be killed ({type(exc).__name__}: {exc}), check the backend"
    if stop:
        run = store.request_stop(run.id)
    if run.status is S.CANCELLING:
        status = S.CANCELLED
    elif run.status is S.STOPPING:
        status = S.STOPPED
    else:
        status = S.FAILED
    reason = (f"stopped; {why}" if status is not S.FAILED else why) + problem
    steps = store.steps(run.id)
    unfinished = [name for name, step in steps.items() if not step.status.is_finished]
    if unfinished:
        store.mark_steps(run.id, unfinished, S.STOPPED if status is not S.FAILED else S.FAILED, reason)
    never_started = [name for name in (snapshot.steps if snapshot is not None and not snapshot.dynamic else []) if name not in steps]
    if never_started:
        store.mark_steps(run.id, never_started, S.SKIPPED, "not run: " + why)
    return store.set_run_status(run.id, status, reason=reason)
