"""Finding a run by what a user typed: a full run ID or its first characters (``orcakit runs
show 3fa2``). A prefix that fits several runs is refused, listing them, rather than answered
with one of them."""

from __future__ import annotations

from typing import Any

from orcakit import StoreError

#: How many candidates an ambiguous prefix lists (the newest; more are only counted as "...").
AMBIGUOUS_SHOWN = 10


def ambiguous_prefix(prefix: str, candidates: list[Any]) -> StoreError:
    """The error for ``prefix`` fitting several runs; ``candidates`` are the newest of them (at
    most ``AMBIGUOUS_SHOWN + 1``: one more than shown says that there are more), as run records
    (``run_store.RunRecord``; not imported: the run store imports this module)."""
    lines = [
        f"{run.id}  {run.pipeline_name}  {run.status.value}  {run.created_at:%Y-%m-%d %H:%M:%S}"
        for run in candidates[:AMBIGUOUS_SHOWN]
    ]
    more = "\n    ... and more" if len(candidates) > AMBIGUOUS_SHOWN else ""
    return StoreError(
        f"run ID prefix {prefix!r} is ambiguous: it fits {'more than ' if more else ''}{min(len(candidates), AMBIGUOUS_SHOWN)} runs:\n    "
        + "\n    ".join(lines) + more,
        why="a prefix stands for one run only when no other run ID starts with it",
        fix="give more characters of the run ID (or all of it)",
    )
