"""``orcakit runs list | show | stop``: recorded runs, read from a stack's run store (default:
the active stack's), whichever process or machine ran them."""

from __future__ import annotations

import json
from typing import Any

import click

from orcakit import ConfigurationError, OrcakitError

from .output import console, esc


@click.group("runs")
def runs_group() -> None:
    """Recorded runs, from a stack's run store (default: the active stack's)."""


def _run_store(stack_name: str | None) -> Any:
    """The stack's run store, its orphaned runs already reaped (so none shows as running forever)."""
    from .._runtime.config_store import ConfigStore
    from .._runtime.run_store import RunStore
    from .orphans import reap_orphans

    stack_spec = ConfigStore().stack_spec(stack_name)
    store = RunStore(stack_spec.run_store)
    reap_orphans(store, stack_spec)
    return store


def _when(value: Any) -> str:
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S") if value else ""


_STACK_OPTION = click.option("--stack", "stack_name", default=None, help="Read this stack's run store instead of the active stack's.")


@runs_group.command("list")
@click.option("--limit", "-n", default=20, show_default=True, type=click.IntRange(min=1), help="How many runs, newest first.")
@_STACK_OPTION
def runs_list(limit: int, stack_name: str | None) -> None:
    """List recent runs, newest first."""
    from rich.table import Table

    from .progress import STATUS_STYLE, format_duration, seconds_between

    records = _run_store(stack_name).list_runs(limit=limit)
    out = console()
    if not records:
        out.print("no runs yet")
        return
    table = Table()
    table.add_column("run ID", no_wrap=True, min_width=32)  # never cut: it is what `runs show` takes
    table.add_column("pipeline", no_wrap=True)
    table.add_column("flavor", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("created", no_wrap=True)
    table.add_column("duration", justify="right", no_wrap=True)
    for record in records:
        style = STATUS_STYLE.get(record.status, ("", "", ""))[1]
        table.add_row(
            record.id,
            esc(record.pipeline_name),
            esc(record.orchestrator),
            f"[{style}]{record.status.value}[/]" if style else record.status.value,
            _when(record.created_at),
            format_duration(seconds_between(record.started_at or record.created_at, record.ended_at)),
        )
    out.print(table)


@runs_group.command("show")
@click.argument("run_id", metavar="RUN")
@_STACK_OPTION
def runs_show(run_id: str, stack_name: str | None) -> None:
    """Show a run (an ID prefix is enough): its record, its steps and every attempt."""
    from rich.table import Table

    from .progress import STATUS_STYLE, format_duration, seconds_between

    store = _run_store(stack_name)
    record = store.get_run(run_id)
    out = console()
    style = STATUS_STYLE.get(record.status, ("", "", ""))[1] or "bold"
    out.print(f"[bold]run {record.id}[/]  [{style}]{record.status.value.upper()}[/]")
    rows = [
        ("pipeline", record.pipeline_name),
        ("flavor", record.orchestrator),
        ("backend run ID", record.orchestrator_run_id or "(not attached yet)"),
        ("snapshot", record.snapshot_id),
        ("created", _when(record.created_at)),
        ("started", _when(record.started_at)),
        ("ended", _when(record.ended_at)),
        ("duration", format_duration(seconds_between(record.started_at or record.created_at, record.ended_at))),
    ]
    if record.reason:
        rows.append(("reason", record.reason))
    for key, value in rows:
        if value:
            out.print(f"  {key + ':':<16} {esc(value)}", soft_wrap=True)
    from .._runtime.config_store import redact_config

    for key, value in redact_config(record.metadata).items():
        if key != "orchestrator_run_id":  # shown above as the backend run ID
            out.print(f"  {key + ':':<16} {esc(value if isinstance(value, str) else json.dumps(value))}", soft_wrap=True)

    steps = store.steps(record.id)
    table = Table(title="steps", title_justify="left")
    table.add_column("step", style="bold", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("attempts", justify="right")
    table.add_column("duration", justify="right", no_wrap=True)
    table.add_column("reason")
    for name, step in steps.items():
        step_style = STATUS_STYLE.get(step.status, ("", "", ""))[1]
        table.add_row(
            esc(name),
            f"[{step_style}]{step.status.value}[/]" if step_style else step.status.value,
            str(step.attempts),
            format_duration(seconds_between(step.started_at, step.ended_at)),
            esc((step.reason or "").strip()),
        )
    out.print(table)

    attempts = list(store.attempts(record.id))
    if attempts:
        table = Table(title="attempts", title_justify="left")
        for column in ("step", "attempt", "status", "started", "duration", "host", "reason"):
            table.add_column(column, no_wrap=column not in ("reason",))
        for attempt in attempts:
            table.add_row(
                esc(attempt.step_name),
                str(attempt.attempt),
                attempt.status.value,
                _when(attempt.started_at),
                format_duration(seconds_between(attempt.started_at, attempt.ended_at)),
                esc(attempt.host),
                esc((attempt.reason or "").strip().splitlines()[-1] if attempt.reason and attempt.reason.strip() else ""),
            )
        out.print(table)


@runs_group.command("stop")
@click.argument("run_id", metavar="RUN")
@_STACK_OPTION
@click.option("--timeout", default=10.0, show_default=True, help="Seconds to wait for the run to reach a terminal status.")
def runs_stop(run_id: str, stack_name: str | None, timeout: float) -> None:
    """Stop a run through its orchestrator (when the flavor declares stop_run)."""
    import time

    from orcakit import UnsupportedFeatureError

    from .._runtime.config_store import ConfigStore
    from .._runtime.orphans import orchestrator_for, submitted_snapshot
    from .orphans import reap_orphans

    stack_spec = ConfigStore().stack_spec(stack_name)
    from .._runtime.run_store import RunStore

    store = RunStore(stack_spec.run_store)
    record = store.get_run(run_id)
    out = console()
    if record.status.is_finished:
        out.print(f"run {record.id} already ended {record.status.value.upper()}")
        return
    # Its driving client died: nothing polls for the stop, so end it here (and kill what it left).
    reaped = reap_orphans(store, stack_spec, [record.id], stop=True)
    if reaped:
        out.print(f"run {record.id} stopped: it ended {reaped[0].status.value.upper()}")
        return
    orchestrator_obj = orchestrator_for(submitted_snapshot(stack_spec, record.snapshot_id), stack_spec)
    flavor_obj = orchestrator_obj.flavor
    if not orchestrator_obj.capabilities.stop_run:
        raise UnsupportedFeatureError(
            f"orchestrator flavor {flavor_obj.name!r} cannot stop runs (it does not declare the stop_run capability)",
            feature="stop_run",
            fix="stop the run with the backend's own tools",
        )
    if not record.orchestrator_run_id:
        raise ConfigurationError(
            f"run {record.id} has no backend run ID yet (status {record.status.value}), so there is nothing to stop on the backend",
            fix="retry once its first step started",
        )
    # Ask through the run store first: the process that schedules the run may be another one
    # (the local flavor's scheduler polls for STOPPING); then through the backend.
    store.request_stop(record.id)
    orchestrator_obj.stop_run(record.orchestrator_run_id)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = store.get_run(record.id)
        if record.status.is_finished:
            out.print(f"run {record.id} stopped: it ended {record.status.value.upper()}")
            return
        time.sleep(0.25)
    raise OrcakitError(
        f"asked flavor {flavor_obj.name!r} to stop run {record.id}, but after {timeout:g}s it is still {record.status.value.upper()}",
        why="the backend may take longer to stop, or (local flavor) only the process that runs the pipeline can stop it",
        fix=(
            "check again with `orcakit runs show`; for a local run press Ctrl-C in the terminal that runs it "
            "(or `kill -INT` the driver process `orcakit run --no-wait` printed)"
        ),
    )
