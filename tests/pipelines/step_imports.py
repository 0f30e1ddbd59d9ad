"""A step that reports which modules its own process has loaded (tests/test_step_imports.py)."""

from __future__ import annotations

import sys

from orcakit import pipeline, step


@step
def loaded_modules() -> list:
    return sorted(sys.modules)


@pipeline
def report_modules():
    loaded_modules()


#: The client of tests/test_fork_server.py changes this before its run; a step must see the
#: module as freshly imported, not the client's copy.
MARK = "as imported"


@step
def where_am_i() -> dict:
    import os

    return {"pid": os.getpid(), "ppid": os.getppid(), "mark": MARK, "env": os.environ.get("STEP_IMPORTS_PROBE")}


@pipeline
def two_steps():
    where_am_i(id="a")
    where_am_i(id="b")
