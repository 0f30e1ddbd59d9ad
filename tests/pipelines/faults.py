"""Pipelines for tests/test_faults.py: defined at module level so step processes can import them."""

from __future__ import annotations

import json
import os
from typing import Optional

from pydantic import BaseModel

from orcakit import pipeline, step


@step
def exit_three() -> int:
    # Ends the process the way a C extension or a careless library might: no exception, no
    # chance for the entrypoint to record anything after the attempt started.
    os._exit(3)


@pipeline
def exits_without_reporting():
    exit_three()


class Tuning(BaseModel):
    lr: float
    layers: int = 2


@step
def record(n: int, x: float, flag: bool, label: str, xs: Optional[list], maybe: Optional[int]) -> str:
    # The test reads this file to see which values, of which JSON types, reached the step.
    values = {"n": n, "x": x, "flag": flag, "label": label, "xs": xs, "maybe": maybe}
    path = os.environ.get("ORCAKIT_TEST_REPORT")
    if path:
        with open(path, "w") as handle:
            json.dump(values, handle)
    return json.dumps(values)


@pipeline
def typed(
    n: int,
    x: float = 0.5,
    flag: bool = False,
    label: str = "plain",
    xs: Optional[list[int]] = None,
    maybe: Optional[int] = None,
    tuning: Optional[Tuning] = None,
):
    record(n, x, flag, label, xs, maybe)
