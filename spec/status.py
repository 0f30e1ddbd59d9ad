"""Execution modes and statuses, with the transitions the run store allows (SPEC STATUS-*)."""

from __future__ import annotations

from enum import Enum


class ExecutionMode(str, Enum):
    """What a run does when a step fails (SPEC FAIL-*).

    - ``FAIL_FAST``: stop at once; running steps are stopped, nothing new starts.
    - ``STOP_ON_FAILURE``: running steps finish, nothing new starts.
    - ``CONTINUE_ON_FAILURE``: everything not downstream of a failure still runs.
    In every mode the steps downstream of a failed step are SKIPPED and never executed.
    """

    FAIL_FAST = "fail_fast"
    STOP_ON_FAILURE = "stop_on_failure"
    CONTINUE_ON_FAILURE = "continue_on_failure"


class ExecutionStatus(str, Enum):
    """ZenML's statuses, for runs and for steps."""

    INITIALIZING = "initializing"
    PROVISIONING = "provisioning"
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    CACHED = "cached"
    SKIPPED = "skipped"
    FAILED = "failed"
    RETRYING = "retrying"
    STOPPING = "stopping"
    STOPPED = "stopped"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"

    @property
    def is_finished(self) -> bool:
        """Terminal: nothing will change this status again."""
        return self in _TERMINAL

    @property
    def is_successful(self) -> bool:
        return self in (ExecutionStatus.COMPLETED, ExecutionStatus.CACHED)

    def can_become(self, other: "ExecutionStatus") -> bool:
        """Whether the store accepts a transition from this status to ``other``."""
        return other == self or other in _TRANSITIONS[self]


S = ExecutionStatus
_TERMINAL = frozenset({S.COMPLETED, S.CACHED, S.SKIPPED, S.FAILED, S.STOPPED, S.CANCELLED})
_ACTIVE_END = {S.COMPLETED, S.FAILED, S.STOPPING, S.STOPPED, S.CANCELLING, S.CANCELLED}
_TRANSITIONS: dict[ExecutionStatus, frozenset[ExecutionStatus]] = {
    S.INITIALIZING: frozenset({S.PROVISIONING, S.QUEUED, S.RUNNING, S.SKIPPED, S.CACHED} | _ACTIVE_END),
    S.PROVISIONING: frozenset({S.QUEUED, S.RUNNING, S.SKIPPED, S.CACHED} | _ACTIVE_END),
    S.QUEUED: frozenset({S.RUNNING, S.SKIPPED, S.CACHED} | _ACTIVE_END),
    S.RUNNING: frozenset({S.RETRYING} | _ACTIVE_END),
    S.RETRYING: frozenset({S.RUNNING} | _ACTIVE_END),
    S.STOPPING: frozenset({S.STOPPED, S.FAILED, S.COMPLETED}),
    S.CANCELLING: frozenset({S.CANCELLED, S.FAILED, S.COMPLETED}),
    **{terminal: frozenset() for terminal in _TERMINAL},
}
del S
