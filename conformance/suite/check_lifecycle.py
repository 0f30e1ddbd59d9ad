"""STATUS-1, CLEAN-*, CAP-*, SEC-1: how runs move, end and clean up, and what the flavor declares."""

from __future__ import annotations

import json
import time

import pytest

from orcakit import Capabilities, ExecutionStatus, ResourceSupport
from orcakit.conformance.harness import chain, violation
from orcakit.conformance.plugin import unsupported
from orcakit.conformance.report import REDACTED, redact


@pytest.mark.requirement("STATUS-1", "STATUS-2")
def test_statuses_only_move_along_allowed_transitions(fut):
    dag = chain(3, sleep=0.3)
    dag["nodes"][1]["spec"]["fail_attempts"] = [1]
    dag["nodes"][1]["retry"] = {"max_retries": 1}
    obs = fut.run(fut.compile_dag(dag))
    for key, seen in obs.history.items():
        statuses = [ExecutionStatus(s) for s in seen]
        for before, after in zip(statuses, statuses[1:]):
            if not before.can_become(after):
                raise violation("STATUS-1", f"{key!r} moved from {before.name} to {after.name}, which is not an allowed transition",
                                history=seen)
        if not statuses[-1].is_finished:
            raise violation("STATUS-2", f"{key!r} ended in {statuses[-1].name}", history=seen)
    if "run" not in obs.history:
        raise violation("STATUS-1", "the run's status could not be followed in the run store")


@pytest.mark.requirement("CLEAN-1")
def test_nothing_is_left_behind_after_runs(fut, capabilities):
    # Ask for every enforced resource kind, so that whatever the backend creates to enforce
    # them (cgroups, container settings) is part of what must be cleaned up.
    resources = {}
    if capabilities.cpu is ResourceSupport.ENFORCED:
        resources["cpu_count"] = 0.5
    if capabilities.memory is ResourceSupport.ENFORCED:
        resources["memory"] = "256MiB"
    dag = {"nodes": [{"name": "ok", "upstream": [], "spec": {"sleep": 0.2}, "resources": resources},
                     {"name": "bad", "upstream": [], "spec": {"fail_attempts": [-1]}},
                     {"name": "killed", "upstream": [], "spec": {"kill": True}}]}
    obs = fut.run(fut.compile_dag(dag))
    time.sleep(0.5)  # let the backend finish its own clean-up
    leftovers = fut.orchestrator().leftover_resources(obs.snapshot, obs.run.orchestrator_run_id)
    if leftovers:
        raise violation("CLEAN-1", "the backend still holds resources of a finished run", leftovers=leftovers)
    import os
    import socket

    for records in obs.starts.values():
        for record in records:
            same_host = record["host"] == socket.gethostname() and not record["container"]
            if same_host and os.path.exists(f"/proc/{record['pid']}"):
                try:
                    environ = open(f"/proc/{record['pid']}/environ", "rb").read()
                except OSError:
                    continue
                if obs.run.orchestrator_run_id.encode() in environ:
                    raise violation("CLEAN-1", f"step process {record['pid']} ({record['step']}) is still alive after the run ended")


@pytest.mark.requirement("CLEAN-2", "CAP-2")
def test_stop_run_stops_running_steps_and_starts_nothing_new(fut, capabilities):
    if not capabilities.stop_run:
        unsupported("stop_run is not declared")
    dag = {"nodes": [{"name": "long", "upstream": [], "spec": {"sleep": 60}},
                     {"name": "never", "upstream": ["long"], "spec": {}}]}
    snapshot = fut.compile_dag(dag)
    artifacts = fut.artifact_store()
    orchestrator = fut.orchestrator()

    def stop_when_running(watch) -> None:
        deadline = time.monotonic() + fut.timeout / 2
        while time.monotonic() < deadline:
            started = any("/long/" in key for key in artifacts.list(f"probes/{snapshot.snapshot_id}/"))
            if started and watch.run_record and watch.run_record.orchestrator_run_id:
                orchestrator.stop_run(watch.run_record.orchestrator_run_id)
                return
            time.sleep(0.05)
        raise violation("CLEAN-2", "the long step never started, so the run could not be stopped")

    started = time.monotonic()
    obs = fut.run(snapshot, during=stop_when_running, requirement="CLEAN-2")
    if time.monotonic() - started > 45:
        raise violation("CLEAN-2", "stop_run did not stop a step that sleeps 60 s")
    status = {name: s.status.value for name, s in obs.steps.items()}
    if status.get("long") != "stopped" or obs.ends.get("long"):
        raise violation("CLEAN-2", f"the running step is {status.get('long')} after stop_run, expected stopped", statuses=status)
    if obs.executed("never") or status.get("never") not in ("skipped", "stopped"):
        raise violation("CLEAN-2", "a pending step started after stop_run", statuses=status)
    if obs.run.status.value != "stopped":
        raise violation("CLEAN-2", f"a stopped run ended {obs.run.status.value}")


@pytest.mark.requirement("CAP-1")
def test_capability_declaration_is_consistent(fut):
    flavor = fut.flavor
    try:
        flavor.check()
    except Exception as exc:  # the registration check explains itself
        raise violation("CAP-1", f"Flavor.check() refuses the declaration: {exc}")
    declared: Capabilities = flavor.capabilities
    in_force = fut.capabilities
    widened = []
    order = {"rejected": 0, "warned": 1, "enforced": 2}
    for kind in ("cpu", "memory", "gpu"):
        if order[in_force.resource_support(kind).value] > order[declared.resource_support(kind).value]:
            widened.append(kind)
    for flag in ("dynamic_pipelines", "native_retries", "parallel_steps", "stop_run", "fetch_status"):
        if getattr(in_force, flag) and not getattr(declared, flag):
            widened.append(flag)
    if not in_force.schedules <= declared.schedules or not in_force.execution_modes <= declared.execution_modes:
        widened.append("schedules/execution_modes")
    if widened:
        raise violation("CAP-1", "the orchestrator claims more than its flavor declares", widened=widened)


@pytest.mark.requirement("SEC-1")
def test_secrets_are_not_written_in_plain_text(fut):
    secrets = {key: value for key, value in fut.config.items() if isinstance(value, str) and redact(value, key) == REDACTED}
    rendered = json.dumps(redact(fut.config))
    leaked = [key for key, value in secrets.items() if value and value in rendered]
    if leaked:
        raise violation("SEC-1", "secret config values survive redaction", keys=leaked)
    obs = fut.run(fut.compile_dag(chain(1)))
    store = fut.artifact_store()
    logs = [key for key in store.list(f"logs/{obs.snapshot.snapshot_id}/")]
    from orcakit.reference import redact_url

    password_free = redact_url(fut.run_store_url)
    hidden = [value for value in secrets.values() if value]
    if password_free != fut.run_store_url:
        hidden.append(fut.run_store_url.split("://", 1)[1].split("@", 1)[0].split(":", 1)[-1])
    for key in logs:
        text = store.get(key).decode(errors="replace")
        for value in hidden:
            if value in text:
                raise violation("SEC-1", f"a secret value appears in plain text in the step log {key}")
