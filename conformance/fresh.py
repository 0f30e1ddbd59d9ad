"""Ask the backend from a fresh process: ``python -m orcakit.conformance.fresh`` reads
``{"reference", "config", "method", "args"}`` as JSON on stdin, builds the flavor's orchestrator
there and prints the method's result as JSON.

Some promises are about the backend, not about an object: a schedule created through one
orchestrator must be listed by any other — a new client, another machine, the next day. Asking
the object that created it proves nothing (it may keep the schedule in memory); asking from a
new interpreter does. The config travels on stdin, never in argv, because it may hold secrets.
"""

from __future__ import annotations

import json
import sys

#: The orchestrator methods a fresh process may be asked to call (read-only questions).
QUESTIONS = ("list_schedules", "fetch_status", "leftover_resources", "stop_run")


def submit(request: dict) -> int:
    """Run a stored snapshot to its end from this (separate) client process, as another user or
    a scheduler on another machine would: prints the run record's ID and orchestrator run ID."""
    from orcakit import PipelineSnapshot
    from orcakit.reference import run_snapshot

    snapshot = PipelineSnapshot.model_validate_json(request["snapshot"])
    try:
        run = run_snapshot(snapshot, wait=True)
    except Exception as exc:  # noqa: BLE001 - reported to the check, which decides
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
        return 1
    print(json.dumps({"answer": {"id": run.id, "orchestrator_run_id": run.orchestrator_run_id}}))
    return 0


def main() -> int:
    request = json.load(sys.stdin)
    if request["method"] == "submit":
        return submit(request)
    if request["method"] not in QUESTIONS:
        print(json.dumps({"error": f"not a question the suite asks: {request['method']!r}"}))
        return 2
    from orcakit import load_flavor

    orchestrator = load_flavor(request["reference"]).create(request["config"])
    if request["method"] == "stop_run" and request.get("run_store"):
        # What `orcakit runs stop` does from another process: ask through the run store (the
        # process that drives the run may be polling it), then through the backend.
        from orcakit.reference import RunStore

        store = RunStore(request["run_store"])
        try:
            store.request_stop(request["run"])
        finally:
            store.close()
    try:
        answer = getattr(orchestrator, request["method"])(*request.get("args", []))
    except Exception as exc:  # noqa: BLE001 - reported to the check, which decides
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
        return 1
    print(json.dumps({"answer": answer}, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
