"""Per-step and per-pipeline settings: resources, retries and schedules.

The semantics follow ZenML's models exactly where they apply (memory pattern and units, retry
arithmetic, the three kinds of schedule) so that a ZenML orchestrator author reads them at sight.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta, timezone
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

#: Bytes per memory unit. Decimal units are powers of ten, binary units powers of two:
#: ``"8GB"`` is 8 * 10**9 bytes, ``"8GiB"`` is 8 * 2**30 bytes.
MEMORY_UNITS: dict[str, int] = {
    "KB": 10**3,
    "KiB": 2**10,
    "MB": 10**6,
    "MiB": 2**20,
    "GB": 10**9,
    "GiB": 2**30,
    "TB": 10**12,
    "TiB": 2**40,
    "PB": 10**15,
    "PiB": 2**50,
}
MEMORY_PATTERN = re.compile(r"^[0-9]+(KB|KiB|MB|MiB|GB|GiB|TB|TiB|PB|PiB)$")

_frozen = ConfigDict(frozen=True, extra="forbid")


def parse_memory(value: str) -> int:
    """Return the number of bytes that a memory string such as ``"512MiB"`` stands for."""
    match = MEMORY_PATTERN.fullmatch(value)
    if not match:
        raise ValueError(
            f"memory {value!r} is not a valid size. Write a whole number followed by one of "
            f"{', '.join(MEMORY_UNITS)} (case matters), for example '8GB' (8*10^9 bytes) or "
            f"'8GiB' (8*2^30 bytes); '8G', '1.5GB' and '8gb' are not accepted"
        )
    unit = match.group(1)
    return int(value[: -len(unit)]) * MEMORY_UNITS[unit]


class ResourceSettings(BaseModel):
    """What one step needs: CPUs (fractions allowed), memory and GPUs.

    A flavor either *enforces* each kind it declares (the limit is observable inside the step)
    or declares it unsupported and refuses or warns loudly; it never ignores it silently
    (SPEC RES-1).
    """

    model_config = _frozen

    cpu_count: float | None = Field(default=None, description="CPUs, > 0; fractions such as 0.5 allowed")
    gpu_count: int | None = Field(default=None, description="GPUs, >= 0")
    memory: str | None = Field(default=None, description="e.g. '512MiB' or '8GB'")

    @field_validator("cpu_count", mode="before")
    @classmethod
    def _check_cpu(cls, value: Any) -> Any:
        if value is None:
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"cpu_count must be a number greater than 0, got {value!r}")
        if not math.isfinite(value) or value <= 0:
            raise ValueError(
                f"cpu_count must be a finite number greater than 0 (fractions such as 0.5 are fine), got {value!r}"
            )
        return float(value)

    @field_validator("gpu_count", mode="before")
    @classmethod
    def _check_gpu(cls, value: Any) -> Any:
        if value is None:
            return value
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"gpu_count must be a whole number >= 0, got {value!r}")
        if value < 0:
            raise ValueError(f"gpu_count must be >= 0 (use 0 or leave it unset for no GPU), got {value}")
        return value

    @field_validator("memory")
    @classmethod
    def _check_memory(cls, value: str | None) -> str | None:
        if value is not None and parse_memory(value) == 0:
            # The pattern admits "0KB", but no step runs in zero bytes, and backends disagree
            # on what a zero limit means (a cgroup OOM-kills at once; elsewhere 0 = unlimited).
            raise ValueError(f"memory {value!r} is zero bytes; ask for a positive size such as '512MiB', or leave memory unset")
        return value

    @property
    def empty(self) -> bool:
        """True when no resource is requested at all."""
        return self.cpu_count is None and self.gpu_count is None and self.memory is None

    @property
    def memory_bytes(self) -> int | None:
        """The memory request in bytes (decimal and binary units honoured), or None."""
        return None if self.memory is None else parse_memory(self.memory)

    def get_memory(self, unit: str = "GB") -> float | None:
        """The memory request expressed in ``unit`` (ZenML's helper of the same name)."""
        if self.memory is None:
            return None
        if unit not in MEMORY_UNITS:
            raise ValueError(f"unknown memory unit {unit!r}; use one of {', '.join(MEMORY_UNITS)}")
        return parse_memory(self.memory) / MEMORY_UNITS[unit]

    def requested_kinds(self) -> list[str]:
        """The resource kinds this setting asks for, as capability keys: cpu, memory, gpu."""
        kinds = []
        if self.cpu_count is not None:
            kinds.append("cpu")
        if self.memory is not None:
            kinds.append("memory")
        if self.gpu_count is not None:
            kinds.append("gpu")
        return kinds


class StepRetryConfig(BaseModel):
    """Retries of a failed step: ``max_retries`` more attempts, waiting ``delay`` seconds before
    the first retry and multiplying the wait by ``backoff`` after each one (ZenML's arithmetic:
    total attempts = max_retries + 1; a backoff of 0 means only the first retry waits)."""

    model_config = _frozen

    max_retries: int = Field(default=1, ge=0)
    delay: float = Field(default=0, ge=0)
    backoff: float = Field(default=0, ge=0)

    @property
    def total_attempts(self) -> int:
        return self.max_retries + 1

    def delays(self) -> list[float]:
        """The wait before each retry, in order: ``[delay, delay*backoff, delay*backoff**2, ...]``."""
        waits, current = [], float(self.delay)
        for _ in range(self.max_retries):
            waits.append(current)
            current *= self.backoff
        return waits


class Schedule(BaseModel):
    """When a pipeline runs by itself: a cron expression, a start time plus an interval, or once
    at ``run_once_start_time``. Naive datetimes are read as UTC (SPEC SCHED-3)."""

    model_config = _frozen

    name: str | None = None
    cron_expression: str | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    interval_second: timedelta | None = None
    catchup: bool = False
    run_once_start_time: datetime | None = None

    @field_validator("start_time", "end_time", "run_once_start_time")
    @classmethod
    def _as_utc(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value

    @field_validator("cron_expression")
    @classmethod
    def _check_cron(cls, value: str | None) -> str | None:
        if value is None:
            return value
        from croniter import croniter  # imported here: only scheduling code pays for it

        if not croniter.is_valid(value):
            raise ValueError(
                f"cron_expression {value!r} is not a valid cron expression; use five fields "
                "'minute hour day-of-month month day-of-week', e.g. '0 2 * * *' for 02:00 daily"
            )
        return value

    @field_validator("interval_second")
    @classmethod
    def _positive_interval(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value.total_seconds() <= 0:
            raise ValueError(f"interval_second must be positive, got {value}")
        return value

    @model_validator(mode="after")
    def _exactly_one_kind(self) -> "Schedule":
        kinds = [
            self.cron_expression is not None,
            self.start_time is not None and self.interval_second is not None,
            self.run_once_start_time is not None,
        ]
        if sum(kinds) != 1:
            raise ValueError(
                "a Schedule needs exactly one of: cron_expression; start_time together with "
                "interval_second; or run_once_start_time"
            )
        if self.interval_second is not None and self.start_time is None:
            raise ValueError("interval_second needs a start_time to count from")
        if self.end_time and self.start_time and self.end_time <= self.start_time:
            raise ValueError("end_time must be after start_time")
        return self

    @property
    def kind(self) -> str:
        if self.cron_expression is not None:
            return "cron"
        if self.run_once_start_time is not None:
            return "run_once"
        return "interval"
