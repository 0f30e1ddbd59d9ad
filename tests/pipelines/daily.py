"""Pipelines for tests/test_daily_use.py (issue 20: daily use of the runtime and the CLI)."""

from __future__ import annotations

import os
import sys

from orcakit import pipeline, step

#: A value the runtime seals: the step gets it as DB_PASSWORD (a secret-looking key).
SECRET = "hunter2-s3cr3t-value-0f-the-db"
PARAM_SECRET = "tok-param-9d1e0c7a-secret"


@step(environment={"DB_PASSWORD": SECRET})
def connect(url: str) -> int:
    password = os.environ["DB_PASSWORD"]
    print(f"connecting with {password} to {url}")                                  # a print: the step log
    print(f"stderr says {password!r}", file=sys.stderr)
    raise ConnectionError(f"cannot reach postgresql://app:{password}@db:5432/app ({url})")


@pipeline
def leaky(api_token: str = "none"):
    connect(api_token)


@step
def produce(n: int) -> dict:
    print(f"producing {n} rows")
    return {"rows": list(range(n)), "n": n}


@step
def summarise(data: dict) -> str:
    print("summary line 1")
    print("summary line 2")
    return f"{data['n']} rows"


@pipeline
def results(n: int = 3):
    summarise(produce(n))


@pipeline(dynamic=True)
def leaky_dynamic(api_token: str = "none"):
    connect(api_token)
