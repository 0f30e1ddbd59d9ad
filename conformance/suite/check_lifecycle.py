"""STATUS-1, CLEAN-*, CAP-*, SEC-1: how runs move, end and clean up, and what the flavor declares."""

from __future__ import annotations

import json
import time
import uuid

import pytest

from orcakit import Capabilities, ExecutionStatus, ResourceSupport
from orcakit.conformance import timing
from orcakit.conformance.harness import Findings, chain, violation
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
    leftovers = fut.leftovers(obs)
    if leftovers:
        raise violation("CLEAN-1", "the backend still holds resources of a finished run", leftovers=leftovers)


#: Seconds the step to be stopped would run if nobody stopped it.
LONG_STEP = 30


@pytest.mark.requirement("CLEAN-2", "CAP-2", "CLEAN-1")
@pytest.mark.parametrize("stopper", ["another-client", "driving-client"])
def test_stop_run_stops_running_steps_and_starts_nothing_new(fut, capabilities, stopper):
    """Stopped as users stop runs: from another client (a separate process with an orchestrator
    object of its own, what `orcakit runs stop` does) and through the client driving the run
    (Ctrl-C in the terminal that runs it). A stop that works only one way is no stop."""
    if not capabilities.stop_run:
        unsupported("stop_run is not declared")
    dag = {"nodes": [{"name": "long", "upstream": [], "spec": {"sleep": LONG_STEP}},
                     {"name": "never", "upstream": ["long"], "spec": {}}]}
    snapshot = fut.compile_dag(dag)

    def stop_when_running(watch) -> None:
        deadline = time.monotonic() + fut.timeout / 2
        while time.monotonic() < deadline:
            started = any("/long/" in key for key in fut.probes_of(snapshot.snapshot_id))
            if started and watch.run_record and watch.run_record.orchestrator_run_id:
                # From another client, as users stop runs (`orcakit runs stop`): a stop that
                # works only through the object driving the run is no stop at all.
                elsewhere = getattr(fut, "stop_run_from_another_client", None)
                if elsewhere is not None and stopper == "another-client":
                    elsewhere(watch.run_record)
                else:
                    fut.stop_run(watch.run_record.orchestrator_run_id)
                return
            time.sleep(0.05)
        raise violation("CLEAN-2", "the long step never started, so the run could not be stopped")

    obs = fut.run(snapshot, during=stop_when_running, requirement="CLEAN-2")
    ended = time.time()  # the run was over by now (same clock as the probes' records)
    long_starts = obs.starts.get("long") or []
    if long_starts and not timing.stopped_before_its_end(long_starts[0]["time"], LONG_STEP, ended):
        raise violation("CLEAN-2", f"stop_run did not stop a step that sleeps {LONG_STEP} s")
    status = {name: s.status.value for name, s in obs.steps.items()}
    if status.get("long") != "stopped" or obs.ends.get("long"):
        raise violation("CLEAN-2", f"the running step is {status.get('long')} after stop_run, expected stopped", statuses=status)
    still = fut.still_running(obs)
    if still:
        found = Findings()
        found.add(violation("CLEAN-2", "the run is recorded stopped but its step still runs", leftovers=still))
        # What still runs after the run ended is also left behind (CLEAN-1).
        found.add(violation("CLEAN-1", "the stopped run's step processes remain after the run ended", leftovers=still))
        found.raise_any()
    if obs.executed("never") or status.get("never") not in ("skipped", "stopped"):
        raise violation("CLEAN-2", "a pending step started after stop_run", statuses=status)
    if obs.run.status.value != "stopped":
        raise violation("CLEAN-2", f"a stopped run ended {obs.run.status.value}")


@pytest.mark.requirement("CAP-1")
def test_capability_declaration_is_consistent(fut):
    try:
        fut.check_declaration()
    except Exception as exc:  # the registration check explains itself
        raise violation("CAP-1", f"Flavor.check() refuses the declaration: {exc}")
    declared: Capabilities = fut.declared_capabilities
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
def test_secret_config_values_are_redacted(fut):
    secrets = {key: value for key, value in fut.config.items() if isinstance(value, str) and redact(value, key) == REDACTED}
    rendered = json.dumps(redact(fut.config))
    leaked = [key for key, value in secrets.items() if value and value in rendered]
    if leaked:
        raise violation("SEC-1", "secret config values survive redaction", keys=leaked)


@pytest.mark.requirement("SEC-1", "ENV-2", "ENV-3")
def test_secrets_are_not_written_in_plain_text(fut):
    """A pipeline carries secret-looking values (pipeline- and step-level environment), which
    must reach the step and nowhere else: not the stored snapshot, not the step logs, not the
    run store, not anything else the run left in the artifact store."""
    canary = secret_canary()
    pipeline_env = {"CK_API_TOKEN": f"{canary}-pipeline"}
    step_env = {"CK_DB_PASSWORD": f"{canary}-step"}
    dag = {"nodes": [{"name": "s0", "upstream": [], "spec": {"env_keys": ["CK_API_TOKEN", "CK_DB_PASSWORD"], "log_env": True},
                      "environment": step_env}]}
    obs = fut.run(fut.compile_dag(dag, environment=pipeline_env))
    if not obs.executed("s0"):
        raise violation("SEC-1", "the step carrying secret-looking variables did not run", status=obs.run.status.value, reason=obs.run.reason)
    seen = obs.starts["s0"][0]["env"]
    # held to what the orchestrator was handed (blame by stage, see Driver.handed_environment)
    handed = fut.handed_environment(obs, "s0", {**pipeline_env, **step_env})
    found = Findings()
    if seen.get("CK_API_TOKEN") != handed["CK_API_TOKEN"]:
        found.add(violation("ENV-2", "a secret-looking pipeline variable did not reach the step intact"))
    if seen.get("CK_DB_PASSWORD") != handed["CK_DB_PASSWORD"]:
        found.add(violation("ENV-3", "a secret-looking step variable did not reach the step intact"))
    found.verify("ENV-2", "ENV-3")  # compared: passed unless a violation of it was found above
    hidden = {f"{canary}-pipeline": "pipeline-level variable CK_API_TOKEN", f"{canary}-step": "step-level variable CK_DB_PASSWORD",
              **{secret: "a secret of the session's config or store" for secret in distinctive(fut.secret_values())}}
    leaks = []
    for where, text in fut.written_by(obs):
        for value, what in hidden.items():
            if value in text:
                leaks.append({"what": what, "where": where, "excerpt": excerpt(text, value, hidden)})
    if leaks:
        found.add(violation("SEC-1", f"the value of {leaks[0]['what']} appears in plain text in {leaks[0]['where']}",
                            leaks=leaks[:5]))
    found.raise_any()


def excerpt(text: str, value: str, hidden: dict[str, str], context: int = 80) -> str:
    """The text around the first place ``value`` appears, every secret value in it replaced by
    a label: the evidence shows how it leaked without repeating it (or cutting one in half)."""
    label = f"<value of {hidden[value]}>"
    for secret, what in hidden.items():
        text = text.replace(secret, label if secret == value else f"<value of {what}>")
    at = text.index(label)
    return f"...{text[max(0, at - context):at + len(label) + context]}..."


def distinctive(secrets: list[str]) -> list[str]:
    """The session's secrets (the run store's password, secret config values) long enough to be
    searched for in text without false alarms: a test database whose password is "orcakit" would
    be "found" in every snapshot. The planted canaries are what the check relies on."""
    return [secret for secret in secrets if len(secret) >= 8]


def secret_canary() -> str:
    """A value no flavor would write by chance; its prefix lets a reader of the suite's own
    output (reports, JUnit, terminal) search for any canary of any session."""
    return f"orcakit-canary-{uuid.uuid4().hex}"
