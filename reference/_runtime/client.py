"""Running pipelines: compile, create the placeholder run, submit, wait.

This is the client half of the execution model (README.md, "Running a pipeline"); the
step half is :mod:`.entrypoint`.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, Callable

from orcakit import ExecutionStatus, Pipeline, PipelineSnapshot, StackSpec, load_flavor, seal

from .artifact_store import open_artifact_store, save_snapshot
from .orphans import reap_orphaned_runs
from .run_store import RunRecord, RunStore
from .scrub import Scrubber

logger = logging.getLogger("orcakit.client")


def run_pipeline(pipeline: Pipeline, *args: Any, stack: StackSpec | str | None = None, wait: bool = True, **kwargs: Any) -> RunRecord:
    """Compile ``pipeline(*args, **kwargs)`` for ``stack`` (default: the active stack) and run it."""
    if not isinstance(stack, StackSpec):
        from .config_store import ConfigStore

        stack = ConfigStore().stack_spec(stack)
    return run_snapshot(pipeline.compile(stack, *args, **kwargs), wait=wait)


def run_snapshot(
    snapshot: PipelineSnapshot,
    *,
    wait: bool = True,
    on_submitted: Callable[[RunRecord, Any], None] | None = None,
) -> RunRecord:
    """Submit a compiled snapshot; with ``wait``, block until the run ended and return its record.

    The run always ends in a terminal status: if submission fails, the placeholder run is
    marked FAILED with the reason before the error propagates (SPEC STATUS-2).
    ``on_submitted(run, orchestrator)`` is called once the backend accepted the run (the CLI
    uses it to show progress and to stop the run on Ctrl-C).
    """
    component = snapshot.stack.orchestrator
    orchestrator = load_flavor(component.flavor_source or component.flavor).create(component.config, name=component.name)
    store = RunStore(snapshot.stack.run_store)
    reap_quietly(store, snapshot.stack)
    artifacts = open_artifact_store(snapshot.stack.artifact_store, snapshot.stack.artifact_store_options)
    save_snapshot(artifacts, snapshot)
    placeholder = store.create_placeholder_run(snapshot.snapshot_id, snapshot.pipeline_name, orchestrator.flavor.name)
    try:
        result = orchestrator.run(snapshot, placeholder_run=placeholder)
    except BaseException as exc:
        # The error may quote a config value the flavor was given: never one that is sealed (SEC-1).
        reason = Scrubber(seal(snapshot).secrets)(f"submission failed: {exc}")
        store.set_run_status(placeholder.id, ExecutionStatus.FAILED, reason=reason)
        raise
    metadata = dict(result.metadata) if result else {}
    run = store.set_run_status(placeholder.id, ExecutionStatus.PROVISIONING, metadata=metadata)
    if on_submitted is not None:
        on_submitted(run, orchestrator)
    if wait and result is not None and result.wait_for_completion is not None:
        try:
            result.wait_for_completion()
        except KeyboardInterrupt:
            run_id = metadata.get("orchestrator_run_id")
            if run_id and orchestrator.capabilities.stop_run:
                logger.warning("interrupted: stopping run %s", placeholder.id)
                orchestrator.stop_run(run_id)
                result.wait_for_completion()
            raise
    from .outputs import StepOutputs

    # run.outputs["step"] reads that step's output from the artifact store when asked for.
    return dataclasses.replace(store.get_run(placeholder.id), _outputs=StepOutputs.of(placeholder.id, snapshot.stack))


def reap_quietly(store: RunStore, stack: StackSpec) -> None:
    """Before a submission: finish the runs whose driving client died (see :mod:`.orphans`).
    Never a reason not to submit: a failure is logged and the new run goes ahead."""
    try:
        for run in reap_orphaned_runs(store, stack):
            logger.warning("run %s had been orphaned by its client; it ended %s: %s", run.id, run.status.value.upper(), run.reason)
    except Exception:  # noqa: BLE001
        logger.warning("could not check the run store for orphaned runs", exc_info=True)
