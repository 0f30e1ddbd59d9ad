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
