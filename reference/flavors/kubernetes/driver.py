"""The orchestrator pod of a static run: ``python -m orcakit.reference.flavors.kubernetes.driver
--artifact-store URI --snapshot ID``.

It loads the (sealed) snapshot, unseals it with the secrets of its environment, takes the run ID
from its own Job (the Job's UID: the same in every pod the Job restarts, different for every Job
a CronJob fires), gets or creates the run in the run store and drives the DAG with the runtime's
scheduler, one pod per step attempt. Restarted after a crash, it finds the same run and adopts
the pods its predecessor started (their names are deterministic).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading

from orcakit import PLACEHOLDER_RUN_ENV, load_flavor, snapshot_secrets, unseal
from orcakit.reference import DagScheduler, StackStores, load_snapshot, open_artifact_store

from . import manifests as m
from .api import wait_for_job


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="orcakit-kubernetes-driver")
    parser.add_argument("--artifact-store", required=True)
    parser.add_argument("--snapshot", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    from .orchestrator import KubernetesOrchestrator, join_step_secrets

    sealed = load_snapshot(open_artifact_store(args.artifact_store), args.snapshot)
    snapshot = unseal(sealed, snapshot_secrets(os.environ))
    component = snapshot.stack.orchestrator
    orchestrator = load_flavor(component.flavor_source or component.flavor).create(component.config, name=component.name)
    assert isinstance(orchestrator, KubernetesOrchestrator)
    job = orchestrator.own_job()
    if job is None:
        print("the orchestrator pod cannot find its Job (no ownerReference, no job-name label)", file=sys.stderr)
        return 2
    run_id = job["metadata"]["uid"]
    if (job["metadata"].get("annotations") or {}).get(m.ANNOTATION_RUN_ID) != run_id:
        orchestrator._record_run_id(job, run_id)  # a Job a CronJob made: record its run ID on it
    step_environments = json.loads(join_step_secrets(os.environ))
    store = StackStores.of(snapshot.stack).open_run_store()
    record = store.get_or_create_run(snapshot.snapshot_id, run_id, snapshot.pipeline_name, orchestrator.flavor.name,
                                     placeholder_id=os.environ.get(PLACEHOLDER_RUN_ENV))
    if record.status.is_finished:
        logging.getLogger("orcakit.kubernetes").info("run %s already ended %s", run_id, record.status.value)
        return 0
    run = orchestrator.run_context(snapshot, run_id, step_environments, run_uuid=record.id)
    scheduler = DagScheduler(snapshot, store, record.id, lambda step, attempt: orchestrator.launch_step(run, step, attempt),
                             max_parallelism=orchestrator.max_parallelism)
    ended = threading.Event()

    def stop_when_asked() -> None:
        """``stop_run`` from any client annotates this Job (see KubernetesOrchestrator.kill_run)."""
        asked = wait_for_job(orchestrator.batch(), orchestrator.namespace, job["metadata"]["name"], stop=ended,
                             until=lambda job: (job["metadata"].get("annotations") or {}).get(m.ANNOTATION_STOP))
        if asked is not None and not ended.is_set():
            logging.getLogger("orcakit.kubernetes").info("run %s: stop requested on the Job", run_id)
            scheduler.stop()

    threading.Thread(target=stop_when_asked, name="orcakit-stop-watch", daemon=True).start()
    try:
        final = scheduler.run()
    finally:
        ended.set()
        orchestrator.finish_run(run)
        store.close()
    logging.getLogger("orcakit.kubernetes").info("run %s ended %s", run_id, final.status.value)
    return 0


if __name__ == "__main__":
    sys.exit(main())
