"""Checks side by side: how many runs the suite may have in flight at once.

``pytest --flavor=NAME -n N`` (pytest-xdist) runs checks in N worker processes; each worker opens
its own flavor under test (its own stores, run IDs and temporary folders) and the results travel
to the controller in ``report.user_properties`` (see :mod:`orcakit.conformance.plugin`). A flavor
whose backend takes only so many runs at once declares ``Capabilities.max_concurrent_runs``; the
suite then never has more runs in flight, whatever N is and whatever a check starts at once
(RUNID-2 submits several runs together): every run holds one of that many *slots* — a file locked
with ``flock`` in a folder the controller creates and hands to its workers — from submission to
its end. Waiting for a slot happens before the run starts, so it never counts in a run's timing.
"""

from __future__ import annotations

import contextlib
import fcntl
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

#: ``orcakit certify`` runs this many checks at once unless told otherwise: the checks mostly
#: wait (sleeping probe steps, container and pod start-up), so more than the cores pay.
DEFAULT_WORKERS = 4


def default_workers(max_concurrent_runs: int | None, cpus: int | None = None) -> int:
    """How many checks ``orcakit certify`` runs at once: :data:`DEFAULT_WORKERS`, never more than
    the flavor's run limit (a worker runs one check, and a check at least one run)."""
    workers = DEFAULT_WORKERS
    if max_concurrent_runs is not None:
        workers = min(workers, max_concurrent_runs)
    return max(1, workers)


class RunSlots:
    """``limit`` slots shared by every process given the same ``folder``."""

    def __init__(self, folder: Path, limit: int) -> None:
        self.folder = Path(folder)
        self.limit = limit
        self.folder.mkdir(parents=True, exist_ok=True)

    @classmethod
    def create(cls, limit: int) -> "RunSlots":
        return cls(Path(tempfile.mkdtemp(prefix="orcakit-run-slots-")), limit)

    @contextlib.contextmanager
    def hold(self, poll: float = 0.05) -> Iterator[int]:
        """Hold one slot for the duration of the block (waits for a free one)."""
        while True:
            for index in range(self.limit):
                # A fresh open file description per attempt: flock conflicts between threads of
                # one process too, so RUNID-2's threads count one slot each.
                handle = open(self.folder / f"slot-{index}", "a")
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    handle.close()
                    continue
                try:
                    yield index
                finally:
                    fcntl.flock(handle, fcntl.LOCK_UN)
                    handle.close()
                return
            time.sleep(poll)

    def in_use(self) -> int:
        """How many slots are held right now (for tests)."""
        held = 0
        for index in range(self.limit):
            with open(self.folder / f"slot-{index}", "a") as handle:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    held += 1
                else:
                    fcntl.flock(handle, fcntl.LOCK_UN)
        return held


def limit_runs(fut: Any, slots: RunSlots) -> None:
    """Make every run of ``fut`` — and of the flavors its ``with_config`` derives — hold a slot.

    Wraps the instance's ``run`` (whichever driver it is), not the class: the limit belongs to
    this session's flavor under test only."""
    run, with_config = fut.run, fut.with_config

    def limited_run(*args: Any, **kwargs: Any) -> Any:
        with slots.hold():
            return run(*args, **kwargs)

    def limited_with_config(*args: Any, **kwargs: Any) -> Any:
        derived = with_config(*args, **kwargs)
        limit_runs(derived, slots)
        return derived

    fut.run = limited_run
    fut.with_config = limited_with_config
    submit = getattr(fut, "submit_from_other_processes", None)
    if submit is not None:
        def limited_submit(snapshot: Any, processes: int) -> list:
            # One client process at a time, each holding a slot: several at once would have to
            # hold several slots together, and two workers each holding some would wait on each
            # other for ever. A per-process ID still repeats across processes run in turn.
            answers = []
            for _ in range(processes):
                with slots.hold():
                    answers += submit(snapshot, 1)
            return answers

        fut.submit_from_other_processes = limited_submit
