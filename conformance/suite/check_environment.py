"""ENV-*: the run-ID variable and the pipeline/step environment reach the steps exactly."""

from __future__ import annotations

import copy

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from orcakit import PipelineDefinitionError
from orcakit.conformance.harness import Findings, violation
from orcakit.conformance.plugin import unsupported
from orcakit.conformance.strategies import dags, env_keys, env_values

# A fixed prefix keeps generated names clear of variables the backend itself sets (PATH, HOME):
# the keys are not the nasty part, the values are.
keys = env_keys.map(lambda key: f"CK_{key}")
environments = st.dictionaries(keys, env_values, min_size=1, max_size=5)


@st.composite
def environment_cases(draw):
    dag = draw(dags(max_nodes=4))
    pipeline_env = draw(environments)
    for node in dag["nodes"]:
        if draw(st.booleans()):
            # Some keys override pipeline keys, some are new.
            overrides = draw(st.dictionaries(st.sampled_from(sorted(pipeline_env)), env_values, max_size=2))
            node["environment"] = {**draw(st.dictionaries(keys, env_values, max_size=3)), **overrides}
    return dag, pipeline_env


#: Each hostile class of value, at pipeline level and at step level, in every run whatever
#: Hypothesis draws: a flavor that strips, splits, drops or re-encodes values is caught every
#: time, not "sometimes" (trailing newlines vanish in `$(...)`, empty values in `if value:`
#: filters, leading/trailing blanks in env files, "=" confuses KEY=VALUE parsers, non-ASCII in
#: latin-1 round trips, placeholders expanded by a layer in between). The secret-looking keys
#: also exercise the sealed snapshot path (SEC-1).
HOSTILE_BY_CLASS = {
    "TRAILING_LF": "ends with a newline\n",
    "TRAILING_CR": "ends with a carriage return\r",
    "TRAILING_CRLF": "windows line\r\n",
    "EMPTY": "",
    "EQUALS": "=",
    "KEY_VALUE": "a=b=c",
    "PADDED": "  leading and trailing  ",
    "LEADING": " leading",
    "NON_ASCII": "ümlaut €uro 日本 🚀",
    "SHELL": "$HOME $(id) `id` 'single' \"double\" ; #",
    # Placeholder syntax a layer on the way may expand (ZenML substitutes ${VAR} placeholders in a
    # run's configuration): the step must see it verbatim.
    "PLACEHOLDER": "${HOME}",
    "API_TOKEN": "s3cr3t-token value\n",
}

#: Values at and just past each common cut (a 4 KiB or 8 KiB buffer, a field limit) up to the
#: 32 KiB ENV-2 promises, each ending in a marker that survives only if nothing was cut.
LONG_BY_CLASS = {
    "LONG_4K_PLUS_1": "x" * 4096 + "!",
    "LONG_8K_PLUS_1": "y" * 8192 + "!",
    "LONG_32K": "z" * (32 * 1024 - 1) + "!",
}


def _hostile(prefix: str) -> dict[str, str]:
    return {f"CK_{prefix}_{name}": value for name, value in {**HOSTILE_BY_CLASS, **LONG_BY_CLASS}.items()}


HOSTILE_CASE = (
    {"nodes": [
        {"name": "a", "upstream": [], "spec": {}, "environment": {**_hostile("STEP_A"), "CK_PIPE_EMPTY": "a's own\n"}},
        {"name": "b", "upstream": ["a"], "spec": {}, "environment": {"CK_STEP_B": "it's \"quoted\" $HOME\nnext  line",
                                                                     "CK_PIPE_PADDED": ""}},
        {"name": "c", "upstream": [], "spec": {}},
    ]},
    _hostile("PIPE"),
)


def shown(value: str | None) -> str:
    """A value as evidence: short ones whole, long ones by length and both ends (a value cut at
    4 KiB shows as 4096 characters without its final marker)."""
    if value is None or len(value) <= 120:
        return repr(value)
    return f"{len(value)} characters: {value[:24]!r} ... {value[-24:]!r}"


@pytest.mark.requirement("ENV-1")
def test_the_run_id_variable_applies(fut):
    """ENV-1 is checked where the flavor has a run-ID variable (every orcakit flavor declares
    one); a flavor without one is reported so, not passed for want of anything to check."""
    reason = fut.not_applicable().get("ENV-1")
    if reason:
        unsupported(f"no run-ID variable: {reason}")
    if not fut.run_id_env_var:
        raise violation("ENV-1", "the flavor declares no run-ID variable")


@pytest.mark.requirement("ENV-1", "ENV-2", "ENV-3")
@given(case=environment_cases())
@example(case=HOSTILE_CASE)
def test_environment_reaches_each_step_exactly(fut, case):
    dag, pipeline_env = copy.deepcopy(case)
    step_envs = {node["name"]: node["environment"] for node in dag["nodes"] if node.get("environment")}
    all_keys = sorted({*pipeline_env, *(k for env in step_envs.values() for k in env)})
    for node in dag["nodes"]:
        node["spec"]["env_keys"] = all_keys
    obs = fut.run(fut.compile_dag(dag, environment=pipeline_env))
    found = Findings()
    if not any(obs.executed(node["name"]) for node in dag["nodes"]):
        raise violation("ENV-2", "no step ran, so no environment reached any", status=obs.run.status.value, reason=obs.run.reason)
    for node in dag["nodes"]:
        name = node["name"]
        if not obs.executed(name):
            continue  # a step held back by another bug (other checks name it) has no environment to check
        record = obs.starts[name][0]
        if fut.run_id_env_var is not None and record["env_run_id"] is None:
            found.add(violation("ENV-1", f"step {name!r} has no run-ID variable {fut.run_id_env_var}"))
        expected = {key: None for key in all_keys}
        expected.update(pipeline_env)
        expected.update(step_envs.get(name, {}))
        if fut.run_id_env_var is not None:
            found.verify("ENV-1")
        # Blame by stage: the orchestrator is held to what it was handed (a framework between the
        # author and the orchestrator may change values first: a framework finding, not its fault).
        expected = fut.handed_environment(obs, name, expected)
        for key in all_keys:
            found.verify("ENV-3" if key in step_envs.get(name, {}) or key not in pipeline_env else "ENV-2")
            seen = record["env"].get(key)
            if seen != expected[key]:
                source = "step" if key in step_envs.get(name, {}) else "pipeline" if key in pipeline_env else "another step"
                requirement = "ENV-3" if source in ("step", "another step") else "ENV-2"
                found.add(violation(requirement, f"step {name!r}: variable {key} (set at {source} level) arrived wrong",
                                    **{key: {"expected": shown(expected[key]), "seen": shown(seen)}}))
    found.raise_any()


@pytest.mark.requirement("ENV-4")
@pytest.mark.parametrize(
    "environment",
    [{"1BAD": "x"}, {"WITH-DASH": "x"}, {"ORCAKIT_LOCAL_RUN_ID": "forged"}, {"OK": "nul\x00byte"}, {"OK": 3}, {"": "x"}],
    ids=["leading-digit", "dash", "reserved-prefix", "nul-value", "non-str", "empty-key"],
)
def test_unportable_environment_is_refused_at_compile_time(fut, environment):
    if not fut.defines_pipelines:
        unsupported(f"pipelines are defined by orcakit's authoring API in the {fut.kind} driver, not by the flavor under "
                    "test, so its definition-time checks are not exercised")
    try:
        fut.compile_dag({"nodes": [{"name": "s", "upstream": [], "spec": {}}]}, environment=environment)
    except PipelineDefinitionError as exc:
        if not any(str(key) in str(exc) for key in environment):
            raise violation("ENV-4", "the error does not name the offending key", error=str(exc))
        return
    raise violation("ENV-4", f"environment {environment!r} was accepted")
