"""Orphaned runs as the ``orcakit`` commands show them: each command that reads runs first ends
those whose driving client died (see ``orcakit.reference._runtime.orphans``) and says so."""

from __future__ import annotations

from typing import Any

from .output import console, esc


def reap_orphans(store: Any, stack: Any, run_ids: list[str] | None = None, *, stop: bool = False) -> list[Any]:
    """Reap the orphaned runs of ``store`` (of ``run_ids``, default all); print a note on stderr
    for each; return them as they ended."""
    from .._runtime.orphans import reap_orphaned_runs

    reaped = reap_orphaned_runs(store, stack, run_ids, stop=stop)
    err = console(stderr=True)
    for run in reaped:
        err.print(f"[yellow]run {run.id} was orphaned and is now {run.status.value.upper()}: {esc(run.reason or '')}[/]", soft_wrap=True)
    return reaped
