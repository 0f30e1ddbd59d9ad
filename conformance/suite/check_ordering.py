"""ORDER-*: dependencies are respected, every step runs once, outputs reach the right inputs."""

from __future__ import annotations

import copy

import pytest
from hypothesis import example, given

from orcakit.conformance import timing
from orcakit.conformance.harness import Findings, violation
from orcakit.conformance.plugin import unsupported
from orcakit.conformance.strategies import dags


#: A fan-in whose inputs finish far apart: a scheduler that starts the join when *one* input is
#: ready is caught here on every run, whatever Hypothesis draws.
UNEVEN_FAN_IN = {"nodes": [
    {"name": "fast", "upstream": [], "spec": {"sleep": 0.0}},
    {"name": "slow", "upstream": [], "spec": {"sleep": 1.0}},
    {"name": "join", "upstream": ["fast", "slow"], "spec": {}},
    {"name": "tail", "upstream": ["join", "fast"], "spec": {}},
]}


#: Fan-ins whose parents finish within milliseconds of each other (equal sleeps, started
#: together): a scheduler that reacts to each parent's end may launch the join once per parent.
#: Every step's executions are counted in every run (harness.attempt_accounting).
EVEN_FAN_IN = {"nodes": [
    *({"name": f"p{i}", "upstream": [], "spec": {"sleep": 0.2}} for i in range(3)),
    {"name": "join", "upstream": ["p0", "p1", "p2"], "spec": {}},
    {"name": "q", "upstream": [], "spec": {}},
    {"name": "tail", "upstream": ["join", "q"], "spec": {}},
]}


@pytest.mark.requirement("ORDER-1", "ORDER-2", "ORDER-3", "STATUS-3", "ART-1")
@given(dag=dags(max_nodes=7))
@example(dag=UNEVEN_FAN_IN)
@example(dag=EVEN_FAN_IN)
def test_dag_runs_in_dependency_order_with_data_flowing(fut, dag):
    dag = copy.deepcopy(dag)
    for node in dag["nodes"]:
        node["spec"].setdefault("sleep", 0.05)
    obs = fut.run(fut.compile_dag(dag))
    for node in dag["nodes"]:
        name = node["name"]
        starts = obs.starts.get(name, [])
        step = obs.steps.get(name)
        if not starts and step is not None and "ArtifactNotFoundError" in (step.reason or ""):
            raise violation("ORDER-1", f"step {name!r} started before its upstream steps completed: their outputs were not there yet",
                            reason=step.reason, dag=dag)
        if len(starts) != 1 or len(obs.ends.get(name, [])) != 1:
            raise violation("ORDER-2", f"step {name!r} executed {len(starts)} times (expected exactly once)",
                            dag=dag, attempts=[r["attempt"] for r in starts])
        record = starts[0]
        early = [up for up, done in record["upstream_done"].items() if not done]
        if early:
            raise violation("ORDER-1", f"step {name!r} started before its upstream step(s) {early} completed", dag=dag)
        for up in node["upstream"]:
            token = obs.ends[up][0]["token"]
            if record["inputs"].get(f"in_{up}") != token:
                raise violation("ORDER-3", f"step {name!r} did not receive the output of {up!r}",
                                expected=token, received=record["inputs"].get(f"in_{up}"), dag=dag)
        if step is None or step.status.value != "completed":
            raise violation("STATUS-3", f"step {name!r} ran to the end but is recorded {step and step.status.value}")
        if obs.outputs.get(name, {}).get("token") != obs.ends[name][0]["token"]:
            raise violation("ART-1", f"the output of completed step {name!r} is not readable from the artifact store",
                            read=obs.outputs.get(name))
    if obs.run.status.value != "completed":
        raise violation("STATUS-3", f"all steps completed but the run is {obs.run.status.value}", reason=obs.run.reason)
    partial = fut.partial_artifacts()
    if partial:
        raise violation("ART-1", "partially written artifacts are visible in the artifact store", keys=partial[:5])


@pytest.mark.requirement("ORDER-4", "CAP-2")
def test_independent_steps_run_concurrently(fut, capabilities):
    if not capabilities.parallel_steps:
        unsupported("parallel_steps is not declared")
    width = 3
    dag = {"nodes": [{"name": f"w{i}", "upstream": [], "spec": {"sleep": 1.5}} for i in range(width)]}
    obs = fut.run(fut.compile_dag(dag))
    intervals = []
    for node in dag["nodes"]:
        if not obs.starts.get(node["name"]) or not obs.ends.get(node["name"]):
            raise violation("ORDER-4", f"step {node['name']!r} did not complete", status=obs.run.status.value)
        intervals.append((obs.starts[node["name"]][0]["time"], obs.ends[node["name"]][0]["time"]))
    if not timing.ran_side_by_side(intervals):
        raise violation("ORDER-4", f"{width} independent steps that each sleep 1.5 s did not overlap "
                        "although parallel_steps is declared", intervals=intervals)


@pytest.mark.requirement("ORDER-5", "ORDER-1")
def test_max_parallelism_bounds_a_wide_layer_and_its_join(fut):
    if not fut.config_field("max_parallelism"):
        unsupported("the flavor's config has no max_parallelism field")
    width = 5
    found = Findings()
    # Uneven sleeps, so that a scheduler that refills slots in any order reaches the join with
    # some parents done and others not yet started; bound 1 leaves no parent running at all.
    parents = [{"name": f"w{i}", "upstream": [], "spec": {"sleep": 0.3 + 0.3 * (i % 2)}} for i in range(width)]
    dag = {"nodes": [*parents, {"name": "join", "upstream": [p["name"] for p in parents], "spec": {}}]}
    for bound in (2, 1):
        bounded = fut.with_config(max_parallelism=bound)
        obs = bounded.run(bounded.compile_dag(dag))
        intervals = [(obs.starts[p["name"]][0]["time"], obs.ends[p["name"]][0]["time"])
                     for p in parents if obs.starts.get(p["name"]) and obs.ends.get(p["name"])]
        peak = timing.most_at_once(intervals)
        if peak > bound:
            found.add(violation("ORDER-5", f"{peak} steps executed at once with max_parallelism={bound}", intervals=intervals))
        join = obs.starts.get("join")
        step = obs.steps.get("join")
        if join:
            early = [up for up, done in join[0]["upstream_done"].items() if not done]
            if early:
                found.add(violation("ORDER-1", f"with max_parallelism={bound}, the join started before parents {early} completed "
                                    f"(width {width}: parents held back by the bound are parents all the same)"))
        elif step is not None and "ArtifactNotFoundError" in (step.reason or ""):
            found.add(violation("ORDER-1", f"with max_parallelism={bound}, the join started before its parents' outputs existed",
                                reason=step.reason))
        if (len(intervals) < width or not join) and not found.violations:  # unexplained by an early start
            found.add(violation("ORDER-5", f"with max_parallelism={bound}, the layer of {width} and its join did not all complete",
                                status=obs.run.status.value, reason=obs.run.reason))
        if found.violations:
            break
    found.raise_any()
