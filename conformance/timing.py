"""Every timing judgement of the suite, calibrated against the backend in the same run.

A check that times a flavor (RETRY-2's waits, ORDER-4's overlap, FAIL-2's and CLEAN-2's stops)
must give the same verdict on an idle machine and on a CI runner with every core busy: a correct
flavor passes and each timing mutant is caught at load 0 and at load 4. So no judgement here
compares a duration with a fixed number of seconds alone; each compares it with what this
backend was measured to take *in the same run, under the same load* — the latency with which it
starts a process after another ended (a retry with no wait, a step after its upstream) — or with
the run's own records (a step's start and its sleep), which a loaded machine delays alike.

The checks call these functions; the tolerances live here, once. An upper bound (a retry that
started late) can still be broken by a burst of load on a correct backend, since load only ever
delays: a check confirms such a verdict with a second run of the same case (a backend that waits
too long does so in every run). A lower bound never needs that.
"""

from __future__ import annotations

from datetime import timezone
from typing import Any, Iterable

#: Seconds of clock granularity between two probe records on one machine (their clocks are the
#: same clock; records are written a few milliseconds apart at the least).
CLOCK_TOLERANCE = 0.05
#: Seconds a wait may exceed the formula beyond the backend's measured latency...
LATENCY_TOLERANCE = 0.5
#: ...plus this share of that latency: one sample of a backend that needs seconds to start a
#: process (a pod: scheduling, a container, an interpreter) varies by a part of it from one start
#: to the next on a loaded machine. For a backend that starts attempts in milliseconds the
#: tolerance stays about 0.5 s.
LATENCY_JITTER = 0.25


def epoch(moment: Any) -> float:
    """A record's datetime as the probes' clock reads it (seconds since the epoch); naive ones
    are UTC (some frameworks' stores drop the zone), and a missing one is 0 (long ago)."""
    if moment is None:
        return 0.0
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def _time(record: dict[str, Any]) -> float:
    return float(record["time"])


def launch_latencies(obs: Any) -> list[float]:
    """How long this backend took, in this run, to start a step once what it waited for had
    ended: for every step with upstream steps, its first start minus the latest end of its
    upstreams (the scheduler noticing the ends, then a process, container or pod starting).
    Empty when no step of the run had upstreams that ended."""
    samples = []
    for name, spec in obs.snapshot.steps.items():
        starts = obs.starts.get(name) or []
        ends = [obs.ends.get(up) or [] for up in spec.upstream]
        if not starts or not spec.upstream or not all(ends):
            continue
        latest_end = max(_time(records[-1]) for records in ends)
        samples.append(max(0.0, _time(starts[0]) - latest_end))
    return samples


def retry_latency(baseline_starts: list[dict[str, Any]], obs: Any | None = None) -> float:
    """The backend's latency in starting an attempt with no wait, measured in this run: the gap
    between the two attempts of a step that fails once and retries at once (which includes
    the failing attempt's own end, as every retry's gap does), and — for a backend whose
    restarts are as slow as its launches — no less than the slowest launch of a step after its
    upstream in the same run. The larger sample: under load a single sample can come out low."""
    samples = [max(0.0, _time(baseline_starts[1]) - _time(baseline_starts[0]))]
    if obs is not None:
        samples += launch_latencies(obs)
    return max(samples)


def retry_too_early(gap: float, wait: float) -> bool:
    """A retry started before its wait was up (a lower bound: load only ever delays a start)."""
    return gap + CLOCK_TOLERANCE < wait


def retry_wait_limit(wait: float, latency: float) -> float:
    """The longest a retry may take to start after the attempt before it: the configured wait,
    plus the latency this backend showed in the same run, plus the jitter of one sample."""
    return wait + latency * (1 + LATENCY_JITTER) + LATENCY_TOLERANCE


def retry_too_late(gap: float, wait: float, latency: float) -> bool:
    return gap > retry_wait_limit(wait, latency)


def most_at_once(intervals: Iterable[tuple[float, float]]) -> int:
    """The largest number of (start, end) intervals that overlap at one instant (an end and a
    start at the same instant do not overlap)."""
    intervals = list(intervals)
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals], key=lambda e: (e[0], e[1]))
    current = peak = 0
    for _, change in events:
        current += change
        peak = max(peak, current)
    return peak


def ran_side_by_side(intervals: Iterable[tuple[float, float]]) -> bool:
    """Independent steps ran concurrently: at least two of them were running at the same
    instant. Not all of them at once: on a loaded machine the last may be launched after the
    first ended (launches are serial somewhere on every backend); a backend that runs one step
    at a time never has two running, at any load."""
    return most_at_once(intervals) >= 2


def stopped_before_its_end(step_start: float, sleep: float, run_end: float) -> bool:
    """A step that sleeps ``sleep`` seconds from ``step_start`` (its own record) was stopped: the
    run was over before the step's sleep would have been. Measured from the step's own start,
    not from the submission, so a slow launch under load does not count against the flavor."""
    return run_end < step_start + sleep


def could_be_stopped(failure_seen: float, running_start: float, running_sleep: float, latency: float) -> bool:
    """Whether a step that sleeps ``running_sleep`` from ``running_start`` was still running long
    enough after a failure at ``failure_seen`` for the backend to stop it (its measured launch
    latency is the time it takes to react to an end). When not, the run says nothing about
    stopping it, at this load: a FAIL_FAST judgement on it would blame the machine."""
    return failure_seen + latency * (1 + LATENCY_JITTER) + LATENCY_TOLERANCE < running_start + running_sleep
