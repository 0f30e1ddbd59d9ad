"""The step entrypoint: what a backend runs for one step, inside the step's own environment.

    python -m orcakit.reference.entrypoint step --artifact-store URI --snapshot ID --step NAME
    python -m orcakit.reference.entrypoint orchestrate --artifact-store URI --snapshot ID

``step`` rebuilds the orchestrator from the snapshot, asks it for the run ID *here*, attaches to
the run (get-or-create), loads inputs, runs the function, writes outputs atomically and records
the attempt. ``orchestrate`` is a dynamic pipeline's orchestration environment: it runs the
pipeline function live and launches each step through the orchestrator.

Exit codes: 0 the step completed; 1 the step failed (recorded in the run store); 3 the step
could not attach to its run (nothing could be recorded; the launcher records it).
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Mapping
from typing import Any

from orcakit import (
    PLACEHOLDER_RUN_ENV,
    SNAPSHOT_ID_ENV,
    ArtifactRef,
    BaseOrchestrator,
    DynamicRun,
    ExecutionStatus,
    OrcakitError,
    PipelineSnapshot,
    Step,
    StepContext,
    StepFailedError,
    StepSpec,
    check_run_id,
    load_flavor,
    secrets_environment,
    snapshot_secrets,
    step_context,
    unseal,
    unseal_step,
)
from orcakit.sealing import secret_parameter_values
from orcakit.sources import import_object

from ._runtime.artifact_store import (
    ArtifactStore,
    dematerialize,
    load_dynamic_step,
    load_snapshot,
    materialize,
    open_artifact_store,
    output_key,
    save_dynamic_step,
)
from ._runtime.run_store import RunStore
from ._runtime.driver_watch import watch_driver
from ._runtime.scrub import scrub_output

EXIT_COMPLETED, EXIT_FAILED, EXIT_NOT_ATTACHED = 0, 1, 3


def build_orchestrator(snapshot: PipelineSnapshot) -> BaseOrchestrator:
    """The snapshot's orchestrator, rebuilt from its flavor and config."""
    component = snapshot.stack.orchestrator
    flavor = load_flavor(component.flavor_source or component.flavor)
    return flavor.create(component.config, name=component.name)


def import_source(source: str, roots: list[str] = ()) -> Any:
    """Import ``'module:qualname'``, with ``roots`` on sys.path first."""
    for root in roots:
        if root not in sys.path:
            sys.path.insert(0, root)
    try:
        value = import_object(source)
    except (ImportError, AttributeError) as exc:
        raise OrcakitError(
            f"cannot import step code {source!r} in this environment: {exc}",
            why="every step re-imports its function by module and name inside its own process or container",
            fix="make the module importable there (install it in the image, or run from the folder that contains it)",
        ) from exc
    return value


class StepRunner:
    """Runs steps of one snapshot against its stores (one instance per process)."""

    def __init__(self, artifact_store_uri: str, snapshot_id: str, environ: Mapping[str, str] | None = None) -> None:
        """``environ``: the step environment that carries the snapshot's secrets (default: this
        process's; a fork server passes the step's, which it builds the runner for)."""
        self.artifacts: ArtifactStore = open_artifact_store(artifact_store_uri)
        # The stored snapshot is sealed (SPEC SEC-1); the stack's and the pipeline's secrets
        # come from the environment, each step's own in run_step.
        self.secrets = snapshot_secrets(os.environ if environ is None else environ)
        self.snapshot = unseal(load_snapshot(self.artifacts, snapshot_id), self.secrets)
        self.orchestrator = build_orchestrator(self.snapshot)
        self._store: RunStore | None = None

    @property
    def store(self) -> RunStore:
        # Opened on first use, so that a fork server can build a runner once and every forked
        # step opens its own database connections.
        if self._store is None:
            self._store = RunStore(self.snapshot.stack.run_store, create_tables=False)
        return self._store

    def attach(self, step_name: str | None = None) -> tuple[str, str, int | None]:
        """``(orchestrator_run_id, run uuid, attempt)`` of the run this process belongs to; with
        ``step_name``, also starts that step's next attempt, in the same transaction (one write
        transaction instead of two on every step's path)."""
        run_id = check_run_id(self.orchestrator.get_orchestrator_run_id(), self.orchestrator.flavor.name)
        args = (self.snapshot.snapshot_id, run_id, self.snapshot.pipeline_name, self.orchestrator.flavor.name)
        placeholder = os.environ.get(PLACEHOLDER_RUN_ENV)
        if step_name is None:
            return run_id, self.store.get_or_create_run(*args, placeholder_id=placeholder).id, None
        run, attempt = self.store.attach_step(*args, placeholder, step_name)
        return run_id, run.id, attempt

    def step_spec(self, step_name: str) -> StepSpec:
        """The step, unsealed with the secrets of this process's environment (the step's own)."""
        secrets = snapshot_secrets(os.environ)
        if step_name in self.snapshot.steps:
            # Only this step's part: the shared parts were unsealed when the runner was built
            # (every step of a snapshot carries the same shared secrets). Unsealing the whole
            # snapshot again dumped and re-validated every step, per step: O(steps) CPU a step.
            spec = unseal_step(self.snapshot.steps[step_name], secrets)
            self.snapshot = self.snapshot.model_copy(update={"steps": {**self.snapshot.steps, step_name: spec}})
            return spec
        # a step a dynamic pipeline added at run time
        return unseal_step(load_dynamic_step(self.artifacts, self.snapshot.snapshot_id, step_name), secrets)

    def run_step(self, step_name: str) -> int:
        # Before anything can print: the step's output and failure reason never carry a value
        # the runtime sealed for this run (SPEC SEC-1; see _runtime/scrub.py).
        scrub = scrub_output(self.secrets, snapshot_secrets(os.environ))
        try:
            spec = self.step_spec(step_name)
            run_id, run_uuid, attempt = self.attach(step_name)
        except Exception:
            traceback.print_exc()
            print(f"orcakit: step {step_name!r} could not attach to its run; nothing was recorded", file=sys.stderr)
            return EXIT_NOT_ATTACHED
        watch_driver(self.store, self.snapshot.stack, run_uuid)  # a step whose client died ends its run
        try:
            func = import_source(spec.source, self.snapshot.source_roots)
            func = func.func if isinstance(func, Step) else func
            arguments = dict(spec.parameters)
            for name, ref in spec.inputs.items():
                arguments[name] = self.load_output(run_uuid, ref)
            context = StepContext(
                snapshot=self.snapshot,
                step_name=step_name,
                orchestrator=self.orchestrator,
                orchestrator_run_id=run_id,
                run_uuid=run_uuid,
                attempt=attempt,
                artifact_store=self.artifacts,
            )
            with step_context(context):
                value = func(**arguments)
            uri = self.artifacts.put(output_key(run_uuid, step_name), materialize(value))
        except BaseException as exc:  # noqa: BLE001 - every failure must be recorded
            traceback.print_exc()
            reason = scrub(f"{type(exc).__name__}: {exc}".strip())
            status = self.store.finish_attempt(
                run_uuid, step_name, attempt, succeeded=False, total_attempts=spec.total_attempts, reason=reason[:4000],
                finalize=self._finalize_steps(),
            )
            print(f"orcakit: step {step_name!r} attempt {attempt} failed ({reason.splitlines()[0][:200]}); step is now {status.name}", file=sys.stderr)
            return EXIT_FAILED
        self.store.finish_attempt(
            run_uuid, step_name, attempt, succeeded=True, total_attempts=spec.total_attempts, outputs={"output": uri},
            finalize=self._finalize_steps(),
        )
        return EXIT_COMPLETED

    def _finalize_steps(self) -> list[str] | None:
        # The last step to finish derives the run's status (in the transaction that ends its
        # attempt), so flavors without a waiting client (a cluster) still end runs in a
        # terminal status. Dynamic runs are finalized by their orchestration environment instead.
        return None if self.snapshot.dynamic else list(self.snapshot.steps)

    def load_output(self, run_uuid: str, ref: ArtifactRef) -> Any:
        return dematerialize(self.artifacts.get(output_key(run_uuid, ref.step, ref.output)))

    # -- dynamic pipelines -------------------------------------------------------------------

    def orchestrate(self) -> int:
        """Run a dynamic pipeline's function live; each step call runs as an isolated step."""
        scrub_output(self.secrets)
        run_id, run_uuid, _ = self.attach()
        self.store.set_run_status(run_uuid, ExecutionStatus.RUNNING)
        base_env = {SNAPSHOT_ID_ENV: self.snapshot.snapshot_id, **self.snapshot.environment}
        known = secret_parameter_values(self.snapshot.pipeline_parameters)  # sealed wherever a step gets them

        def execute(spec: StepSpec) -> Any:
            name = spec.name
            self.snapshot = self.snapshot.with_step(spec)
            # Stored sealed; the step gets the shared secrets and its own (SPEC SEC-1).
            step_secrets = save_dynamic_step(self.artifacts, self.snapshot.snapshot_id, spec, known)
            secrets = secrets_environment({**self.secrets, **step_secrets})
            self.orchestrator.run_isolated_step(self.snapshot, name, {**base_env, **spec.environment, **secrets})
            record = self.store.step(run_uuid, name)
            if record is None or record.status is not ExecutionStatus.COMPLETED:
                status = "never started" if record is None else record.status.name
                raise StepFailedError(
                    f"step {name!r} of dynamic pipeline {self.snapshot.pipeline_name!r} ended {status}"
                    + (f": {record.reason}" if record and record.reason else "")
                )
            return self.load_output(run_uuid, ArtifactRef(step=name))

        pipeline = import_source(self.snapshot.pipeline_source, self.snapshot.source_roots)
        dynamic = DynamicRun(execute)
        try:
            dynamic.run(getattr(pipeline, "func", pipeline), self.snapshot.pipeline_parameters)
            failed = False
        except BaseException:  # noqa: BLE001
            traceback.print_exc()
            failed = True
        ran = dynamic.ran
        final = self.store.finalize_run(run_uuid, ran)
        if failed and final.status is not ExecutionStatus.FAILED:
            final = self.store.set_run_status(run_uuid, ExecutionStatus.FAILED, reason="the dynamic pipeline function raised")
        return EXIT_COMPLETED if final.status is ExecutionStatus.COMPLETED else EXIT_FAILED


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orcakit.reference.entrypoint")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in ("step", "orchestrate"):
        p = sub.add_parser(command)
        p.add_argument("--artifact-store", required=True)
        p.add_argument("--snapshot", required=True)
        if command == "step":
            p.add_argument("--step", required=True)
    args = parser.parse_args(argv)
    try:
        runner = StepRunner(args.artifact_store, args.snapshot)
    except Exception:
        traceback.print_exc()
        print("orcakit: could not load the snapshot or rebuild the orchestrator", file=sys.stderr)
        return EXIT_NOT_ATTACHED
    if args.command == "step":
        return runner.run_step(args.step)
    return runner.orchestrate()


if __name__ == "__main__":
    sys.stdout.reconfigure(line_buffering=True)
    sys.exit(main())
