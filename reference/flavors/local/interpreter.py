"""The interpreter that runs the local flavor's steps (``--python``): checked before a run
starts and where it is started, so that a missing or unusable one is an error that names it
instead of a traceback from deep inside ``subprocess`` or a failed step."""

from __future__ import annotations

import os
import shutil

from orcakit import ConfigurationError, SubmissionError

FIX = (
    "give the orchestrator an interpreter that exists here and has orcakit installed, e.g. "
    "`orcakit orchestrator register NAME --flavor=local --python=$(command -v python3)`, or leave python unset "
    "to use the one orcakit runs in"
)


def interpreter_problem(python: str) -> str | None:
    """Why ``python`` (a path, or a name looked up on PATH) cannot be started, or None."""
    if os.sep not in python:
        return None if shutil.which(python) else f"there is no {python!r} on PATH"
    if not os.path.exists(python):
        return f"{python} does not exist"
    if os.path.isdir(python):
        return f"{python} is a folder, not an interpreter"
    if not os.access(python, os.X_OK):
        return f"{python} is not executable by this user"
    return None


def check_interpreter(python: str, orchestrator: str) -> None:
    """Refuse, before anything runs, an interpreter that cannot be started. (Not a validator of
    the config field: a config may be written for another machine, and an empty value means
    "this interpreter".)"""
    problem = interpreter_problem(python)
    if problem is not None:
        raise ConfigurationError(
            f"orchestrator {orchestrator!r} runs its steps with python={python!r}, but {problem}",
            why="every step of the local flavor runs in a process of this interpreter",
            fix=FIX,
        )


def start_failed(python: str, exc: OSError) -> SubmissionError:
    """The error for an interpreter that exists in the config but failed to start."""
    return SubmissionError(
        f"cannot start the step interpreter {python}: {interpreter_problem(python) or exc.strerror or exc}",
        why="every step of the local flavor runs in a process of this interpreter",
        fix=FIX,
    )
