"""The contract models (``orcakit``): settings, statuses, snapshots, authoring and flavors.

Every refusal is checked for naming the thing that is wrong, not only for raising.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from orcakit import (
    MAX_RUN_ID_LENGTH,
    MEMORY_UNITS,
    ArtifactRef,
    BaseOrchestrator,
    BaseOrchestratorConfig,
    Capabilities,
    ComponentSpec,
    ConfigurationError,
    CycleError,
    ExecutionStatus,
    Flavor,
    FlavorNotFoundError,
    FlavorRegistrationError,
    PipelineDefinitionError,
    PipelineSnapshot,
    ResourceSettings,
    RunIdError,
    Schedule,
    StackSpec,
    StepRetryConfig,
    StepSpec,
    check_run_id,
    load_flavor,
    pipeline,
    step,
)
from orcakit.snapshot import topological_order, validate_environment
from tests.pipelines import foundation as fp

STACK = StackSpec(orchestrator=ComponentSpec(flavor="local"), artifact_store="/tmp/unused", run_store="sqlite:///unused.db")
UNIT_NAMES = list(MEMORY_UNITS)
S = ExecutionStatus


def refusal(exc: BaseException) -> BaseException:
    """The orcakit error behind a pydantic ValidationError (validators raise ours inside)."""
    if isinstance(exc, ValidationError):
        return exc.errors()[0].get("ctx", {}).get("error", exc)
    return exc


# == ResourceSettings ===========================================================================


@pytest.mark.parametrize(
    "memory, expected",
    [
        ("8GB", 8 * 10**9),
        ("8GiB", 8 * 2**30),
        ("512MiB", 512 * 2**20),
        ("300MB", 300 * 10**6),
        ("1KB", 1000),
        ("1KiB", 1024),
        ("2TB", 2 * 10**12),
        ("1PiB", 2**50),
        ("007MB", 7 * 10**6),
    ],
)
def test_memory_units_decimal_and_binary(memory, expected):
    assert ResourceSettings(memory=memory).memory_bytes == expected


def test_decimal_and_binary_units_differ():
    assert ResourceSettings(memory="8GB").memory_bytes != ResourceSettings(memory="8GiB").memory_bytes
    assert ResourceSettings(memory="1GiB").get_memory("MiB") == 1024
    assert ResourceSettings(memory="1GB").get_memory("MB") == 1000
    assert ResourceSettings(memory="1GB").get_memory("GiB") == pytest.approx(10**9 / 2**30)


@pytest.mark.parametrize(
    "memory",
    ["8G", "1.5GB", "8gb", "8Gb", "8gB", "8 GB", " 8GB", "8GB ", "8GB\n", "GB", "", "-1GB", "+1GB", "8GBs",
     "8KIB", "8kB", "8B", "1e3MB", "0x10MB", "8_000MB", "\u0663GB", "8,5GB", "0KB", "0GiB", "000MB"],
)
def test_invalid_memory_strings_are_refused_naming_the_value(memory):
    with pytest.raises(ValidationError) as refused:
        ResourceSettings(memory=memory)
    text = str(refused.value)
    assert "memory" in text and repr(memory) in text


def test_invalid_memory_error_says_how_to_fix():
    with pytest.raises(ValidationError) as refused:
        ResourceSettings(memory="8G")
    assert "'8GB'" in str(refused.value) and "'8GiB'" in str(refused.value)


@given(st.integers(min_value=1, max_value=10**9), st.sampled_from(UNIT_NAMES))
def test_memory_grammar_valid_strings(number, unit):
    resources = ResourceSettings(memory=f"{number}{unit}")
    assert resources.memory_bytes == number * MEMORY_UNITS[unit]
    assert resources.get_memory(unit) == pytest.approx(number)
    assert resources.requested_kinds() == ["memory"]


@st.composite
def near_miss_memory(draw):
    """A valid memory string broken in one of the ways people actually break them."""
    number = draw(st.integers(min_value=1, max_value=10**6))
    unit = draw(st.sampled_from(UNIT_NAMES))
    mutation = draw(st.sampled_from(["lower", "upper", "drop_b", "decimal", "space", "sign", "suffix", "prefix", "no_number", "exponent"]))
    if mutation == "lower":
        return f"{number}{unit.lower()}"
    if mutation == "upper":
        assume(unit != unit.upper())
        return f"{number}{unit.upper()}"
    if mutation == "drop_b":
        return f"{number}{unit[:-1]}"  # "8G", "8Gi"
    if mutation == "decimal":
        return f"{number}.{draw(st.integers(0, 99))}{unit}"
    if mutation == "space":
        return draw(st.sampled_from([f"{number} {unit}", f" {number}{unit}", f"{number}{unit} ", f"{number}{unit}\t"]))
    if mutation == "sign":
        return f"{draw(st.sampled_from(['-', '+']))}{number}{unit}"
    if mutation == "suffix":
        return f"{number}{unit}{draw(st.sampled_from(['s', 'B', '/s', '0']))}"
    if mutation == "prefix":
        return f"{draw(st.sampled_from(['~', '=', 'x', 'KB']))}{number}{unit}"
    if mutation == "no_number":
        return unit
    return f"{number}e3{unit}"


@given(near_miss_memory())
def test_memory_grammar_near_misses_are_refused(memory):
    with pytest.raises(ValidationError, match="memory"):
        ResourceSettings(memory=memory)


REFERENCE_GRAMMAR = re.compile(r"([0-9]+)(KB|KiB|MB|MiB|GB|GiB|TB|TiB|PB|PiB)", re.ASCII)


@given(st.text(alphabet="0123456789.+- KMGTPiBbkgm\n", max_size=8))
def test_memory_accepted_exactly_when_the_grammar_says_so(memory):
    match = REFERENCE_GRAMMAR.fullmatch(memory)
    expected_ok = match is not None and int(match.group(1)) > 0
    try:
        ResourceSettings(memory=memory)
        accepted = True
    except ValidationError:
        accepted = False
    assert accepted == expected_ok


@pytest.mark.parametrize("cpu", [0.5, 0.001, 1, 2, 64, 1e-3])
def test_cpu_count_accepts_positive_numbers_and_fractions(cpu):
    resources = ResourceSettings(cpu_count=cpu)
    assert resources.cpu_count == cpu and isinstance(resources.cpu_count, float)


@pytest.mark.parametrize("cpu", [0, 0.0, -1, -0.5, math.nan, math.inf, -math.inf, True, False, "2", "0.5", [1]])
def test_cpu_count_refuses_non_positive_non_finite_and_non_numbers(cpu):
    with pytest.raises(ValidationError) as refused:
        ResourceSettings(cpu_count=cpu)
    assert "cpu_count" in str(refused.value)


@pytest.mark.parametrize("gpu", [0, 1, 8])
def test_gpu_count_accepts_whole_numbers(gpu):
    assert ResourceSettings(gpu_count=gpu).gpu_count == gpu


@pytest.mark.parametrize("gpu", [-1, -8, 1.5, 1.0, True, "1", math.nan])
def test_gpu_count_refuses_negative_fractional_and_non_integers(gpu):
    with pytest.raises(ValidationError) as refused:
        ResourceSettings(gpu_count=gpu)
    assert "gpu_count" in str(refused.value)


def test_resource_settings_refuse_unknown_keys_and_are_frozen():
    with pytest.raises(ValidationError, match="cpus"):
        ResourceSettings(cpus=2)
    resources = ResourceSettings(cpu_count=1)
    with pytest.raises(ValidationError):
        resources.cpu_count = 2
    assert ResourceSettings().empty and not resources.empty


# == StepRetryConfig ============================================================================


def zenml_waits(max_retries: int, delay: float, backoff: float) -> list[float]:
    """ZenML's retry loop, transcribed: after each failed attempt with retries left, sleep
    ``delay`` and then ``delay *= backoff``."""
    waits, retries = [], 0
    while retries <= max_retries:
        # the attempt fails
        retries += 1
        if retries <= max_retries:
            waits.append(delay)
            delay *= backoff
    return waits


@given(
    st.integers(min_value=0, max_value=12),
    st.floats(min_value=0, max_value=1e4, allow_nan=False),
    st.floats(min_value=0, max_value=10, allow_nan=False),
)
def test_retry_arithmetic_matches_zenml(max_retries, delay, backoff):
    config = StepRetryConfig(max_retries=max_retries, delay=delay, backoff=backoff)
    assert config.total_attempts == max_retries + 1
    assert config.delays() == pytest.approx(zenml_waits(max_retries, delay, backoff))
    assert len(config.delays()) == max_retries


def test_retry_examples_and_defaults():
    assert StepRetryConfig(max_retries=3, delay=2, backoff=3).delays() == [2, 6, 18]
    assert StepRetryConfig(max_retries=3, delay=5, backoff=0).delays() == [5, 0, 0]
    default = StepRetryConfig()
    assert (default.max_retries, default.delay, default.backoff, default.total_attempts) == (1, 0, 0, 2)


@pytest.mark.parametrize("field, value", [("max_retries", -1), ("delay", -0.1), ("backoff", -2), ("max_retries", 1.5)])
def test_retry_refuses_negative_values(field, value):
    with pytest.raises(ValidationError, match=field):
        StepRetryConfig(**{field: value})


# == Schedule ===================================================================================


def test_schedule_kinds():
    assert Schedule(cron_expression="0 2 * * *").kind == "cron"
    assert Schedule(start_time=datetime(2030, 1, 1), interval_second=timedelta(hours=1)).kind == "interval"
    assert Schedule(run_once_start_time=datetime(2030, 1, 1)).kind == "run_once"


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"name": "nightly"},
        {"cron_expression": "0 2 * * *", "run_once_start_time": datetime(2030, 1, 1)},
        {"cron_expression": "0 2 * * *", "start_time": datetime(2030, 1, 1), "interval_second": timedelta(seconds=5)},
        {"start_time": datetime(2030, 1, 1)},
        {"interval_second": timedelta(seconds=30)},
    ],
)
def test_schedule_needs_exactly_one_kind(fields):
    with pytest.raises(ValidationError, match="exactly one|needs a start_time"):
        Schedule(**fields)


@pytest.mark.parametrize("cron", ["not cron", "61 * * * *", "* * * *", "0 25 * * *", ""])
def test_bad_cron_is_refused_naming_the_expression(cron):
    with pytest.raises(ValidationError) as refused:
        Schedule(cron_expression=cron)
    assert "cron_expression" in str(refused.value)


def test_naive_datetimes_are_utc_and_aware_ones_are_kept():
    naive = Schedule(run_once_start_time=datetime(2030, 1, 1, 12, 0))
    assert naive.run_once_start_time == datetime(2030, 1, 1, 12, 0, tzinfo=timezone.utc)
    plus_two = timezone(timedelta(hours=2))
    aware = Schedule(run_once_start_time=datetime(2030, 1, 1, 12, 0, tzinfo=plus_two))
    assert aware.run_once_start_time == datetime(2030, 1, 1, 10, 0, tzinfo=timezone.utc)
    interval = Schedule(start_time=datetime(2030, 1, 1), end_time=datetime(2030, 2, 1), interval_second=timedelta(days=1))
    assert interval.start_time.tzinfo is not None and interval.end_time.tzinfo is not None


def test_schedule_refuses_bad_interval_and_end_before_start():
    with pytest.raises(ValidationError, match="interval_second"):
        Schedule(start_time=datetime(2030, 1, 1), interval_second=timedelta(0))
    with pytest.raises(ValidationError, match="end_time"):
        Schedule(start_time=datetime(2030, 1, 2), end_time=datetime(2030, 1, 1), interval_second=timedelta(hours=1))


# == ExecutionStatus ============================================================================

TERMINAL = {S.COMPLETED, S.CACHED, S.SKIPPED, S.FAILED, S.STOPPED, S.CANCELLED}


def test_finished_statuses_are_exactly_the_terminal_ones():
    assert {status for status in S if status.is_finished} == TERMINAL
    assert {status for status in S if status.is_successful} == {S.COMPLETED, S.CACHED}


@pytest.mark.parametrize("terminal", sorted(TERMINAL, key=lambda s: s.value))
def test_terminal_statuses_have_no_way_out(terminal):
    for other in S:
        assert terminal.can_become(other) is (other is terminal), (terminal, other)


def test_every_status_can_reach_a_terminal_one():
    for start in S:
        seen, frontier = {start}, [start]
        while frontier:
            current = frontier.pop()
            for other in S:
                if other not in seen and current.can_become(other):
                    seen.add(other)
                    frontier.append(other)
        assert seen & TERMINAL, start


def test_retry_and_stop_transitions():
    assert S.RUNNING.can_become(S.RETRYING) and S.RETRYING.can_become(S.RUNNING)
    assert S.RETRYING.can_become(S.FAILED)
    assert S.STOPPING.can_become(S.STOPPED) and not S.STOPPING.can_become(S.RUNNING)
    assert not S.RUNNING.can_become(S.INITIALIZING)
    assert not S.RUNNING.can_become(S.SKIPPED)  # a step that started cannot be skipped


# == PipelineSnapshot: DAGs =====================================================================


@st.composite
def dags(draw, min_size=1, max_size=12):
    """``{step: upstream}`` of a random DAG: edges go from earlier to later in a random order."""
    size = draw(st.integers(min_size, max_size))
    names = [f"s{i}" for i in range(size)]
    order = draw(st.permutations(names))
    upstream = {name: [] for name in names}
    for j, later in enumerate(order):
        for earlier in order[:j]:
            if draw(st.booleans()):
                upstream[later].append(earlier)
    return upstream


def snapshot_of(upstream: dict[str, list[str]], **fields) -> PipelineSnapshot:
    steps = {name: StepSpec(name=name, source="tests.pipelines.foundation:numbers", upstream=tuple(ups)) for name, ups in upstream.items()}
    return PipelineSnapshot(pipeline_name="p", steps=steps, stack=STACK, **fields)


def ancestors(upstream: dict[str, list[str]], name: str) -> set[str]:
    seen, frontier = set(), list(upstream[name])
    while frontier:
        current = frontier.pop()
        if current not in seen:
            seen.add(current)
            frontier.extend(upstream[current])
    return seen


@given(dags())
def test_topological_order_respects_every_edge(upstream):
    order = snapshot_of(upstream).topological_order()
    assert sorted(order) == sorted(upstream)
    position = {name: i for i, name in enumerate(order)}
    for name, ups in upstream.items():
        for up in ups:
            assert position[up] < position[name]


def kahn_first_in_first_out(upstream: dict[str, list[str]]) -> list[str]:
    """The reference order: Kahn's algorithm with a first-in, first-out queue of ready steps,
    seeded in definition order; a step that becomes ready joins the queue after the ones already
    waiting (the children of one step join in definition order)."""
    waiting = {name: set(ups) for name, ups in upstream.items()}
    queue = [name for name, ups in waiting.items() if not ups]
    order: list[str] = []
    while queue:
        current = queue.pop(0)
        order.append(current)
        for name, ups in waiting.items():
            if current in ups:
                ups.discard(current)
                if not ups:
                    queue.append(name)
    return order


@given(dags(), st.randoms(use_true_random=False))
def test_topological_order_keeps_definition_order_on_ties(upstream, rnd):
    # the definition order need not be a topological one: shuffle it
    names = list(upstream)
    rnd.shuffle(names)
    shuffled = {name: upstream[name] for name in names}
    assert topological_order(shuffled) == kahn_first_in_first_out(shuffled)
    assert snapshot_of(shuffled).topological_order() == kahn_first_in_first_out(shuffled)


def test_topological_order_ties_come_out_first_in_first_out():
    # a and b are ready at once; x becomes ready after a, so it waits behind b
    assert topological_order({"a": [], "x": ["a"], "b": []}) == ["a", "b", "x"]
    assert topological_order({"x": ["c"], "b": [], "c": []}) == ["b", "c", "x"]


@given(dags(min_size=1), st.data())
def test_a_back_edge_makes_a_cycle_error_naming_the_cycle(upstream, data):
    # add one edge from a step to one of its ancestors (or to itself): a cycle
    candidates = [(name, anc) for name in upstream for anc in ancestors(upstream, name)] + [(n, n) for n in upstream]
    descendant, ancestor = data.draw(st.sampled_from(candidates))
    cyclic = {name: list(ups) for name, ups in upstream.items()}
    cyclic[ancestor].append(descendant)  # the ancestor now waits for its own descendant

    with pytest.raises(CycleError) as raised:
        topological_order(cyclic)
    cycle = raised.value.cycle
    assert cycle[0] == cycle[-1] and len(cycle) >= 2
    for before, after in zip(cycle, cycle[1:]):  # each step waits for the one before it
        assert before in cyclic[after]
    assert " -> ".join(cycle) in str(raised.value)
    assert raised.value.fix

    with pytest.raises(ValidationError) as refused:
        snapshot_of(cyclic)
    assert isinstance(refusal(refused.value), CycleError)
    assert "cycle" in str(refused.value)


def test_unknown_upstream_is_refused_naming_it():
    with pytest.raises(ValidationError, match="ghost"):
        snapshot_of({"a": ["ghost"]})
    with pytest.raises(PipelineDefinitionError, match="ghost"):
        topological_order({"a": ["ghost"]})


def test_inputs_must_come_from_upstream_steps():
    with pytest.raises(ValidationError, match="not in its upstream"):
        StepSpec(name="b", source="m:f", inputs={"x": ArtifactRef(step="a")})


@pytest.mark.parametrize("name", ["", ".hidden", "-dash", "has space", "slash/name", "x" * 201, "\u00e9t\u00e9"])
def test_bad_step_names_are_refused(name):
    with pytest.raises(ValidationError, match="step name"):
        StepSpec(name=name, source="m:f")


def test_downstream_of_is_transitive():
    snapshot = snapshot_of({"a": [], "b": ["a"], "c": ["b"], "d": [], "e": ["d", "b"]})
    assert snapshot.downstream_of("a") == {"b", "c", "e"}
    assert snapshot.downstream_of("d") == {"e"}
    assert snapshot.downstream_of("c") == set()


# == environment ================================================================================


@pytest.mark.parametrize("key", ["1ABC", "A-B", "A B", "", "A=B", "\u00c9T\u00c9", "A.B", "$A", "A\nB"])
def test_bad_environment_keys_are_refused_naming_the_key(key):
    with pytest.raises(PipelineDefinitionError) as refused:
        validate_environment({key: "v"}, "pipeline 'p'")
    assert repr(key) in str(refused.value) and "pipeline 'p'" in str(refused.value)
    assert refused.value.fix


@pytest.mark.parametrize("key", ["ORCAKIT_RUN", "ORCAKIT_", "ORCAKIT_LOCAL_RUN_ID"])
def test_reserved_prefix_is_refused(key):
    with pytest.raises(PipelineDefinitionError, match="reserved prefix") as refused:
        validate_environment({key: "v"}, "step 's'")
    assert repr(key) in str(refused.value)


@pytest.mark.parametrize("value", [1, 1.5, None, True, b"bytes", ["a"]])
def test_non_str_environment_values_are_refused_naming_the_key(value):
    with pytest.raises(PipelineDefinitionError, match="'KEY'") as refused:
        validate_environment({"KEY": value}, "step 's'")
    assert type(value).__name__ in str(refused.value)


def test_non_str_keys_and_nul_values_are_refused():
    with pytest.raises(PipelineDefinitionError, match="1"):
        validate_environment({1: "v"}, "step 's'")
    with pytest.raises(PipelineDefinitionError, match="NUL") as refused:
        validate_environment({"KEY": "a\x00b"}, "step 's'")
    assert "'KEY'" in str(refused.value)


@given(st.dictionaries(st.text(max_size=12), st.text(max_size=20), max_size=5))
def test_environment_accepted_exactly_when_names_are_portable(env):
    portable = all(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", k, re.ASCII) and not k.startswith("ORCAKIT_") for k in env)
    clean = all("\x00" not in v for v in env.values())
    try:
        checked = validate_environment(env, "pipeline 'p'")
    except PipelineDefinitionError:
        assert not (portable and clean)
    else:
        assert portable and clean and checked == env


def test_environment_is_validated_where_it_is_declared():
    with pytest.raises(PipelineDefinitionError, match="'BAD-KEY'"):
        step(environment={"BAD-KEY": "x"})(fp.numbers.func)
    with pytest.raises(PipelineDefinitionError, match="'ORCAKIT_X'"):
        pipeline(environment={"ORCAKIT_X": "x"})(fp.flow.func)
    with pytest.raises(ValidationError, match="'9X'"):
        PipelineSnapshot(pipeline_name="p", stack=STACK, environment={"9X": "v"})
    with pytest.raises(ValidationError, match="'X-Y'"):
        StepSpec(name="s", source="m:f", environment={"X-Y": "v"})


def test_step_environment_overlays_the_pipeline_environment():
    snapshot = fp.hostile_env.compile(STACK)
    assert snapshot.step_environment("env_with_step_env") == {**fp.HOSTILE_PIPELINE_ENV, **fp.HOSTILE_STEP_ENV}
    assert snapshot.step_environment("env_with_step_env")["HOSTILE_SHARED"] == fp.HOSTILE_STEP_ENV["HOSTILE_SHARED"]
    assert snapshot.step_environment("env_pipeline_only") == fp.HOSTILE_PIPELINE_ENV


# == JSON round trip ============================================================================


def test_snapshot_json_round_trip_is_exact():
    snapshot = fp.hostile_env.compile(STACK).model_copy(
        update={"schedule": Schedule(cron_expression="0 2 * * *"), "pipeline_parameters": {"x": [1, "\u2603"]}}
    )
    for original in (snapshot, fp.flow.compile(STACK, 3), fp.resources.compile(STACK), fp.retried.compile(STACK), fp.dynamic_flow.compile(STACK, 2)):
        again = PipelineSnapshot.model_validate_json(original.model_dump_json())
        assert again == original
        assert again.model_dump_json() == original.model_dump_json()


@settings(max_examples=30, suppress_health_check=[HealthCheck.too_slow])
@given(dags(max_size=8), st.dictionaries(st.from_regex(r"[A-Z][A-Z0-9_]{0,6}", fullmatch=True), st.text(alphabet=st.characters(blacklist_characters="\x00"), max_size=10), max_size=4))
def test_random_snapshots_round_trip(upstream, environment):
    snapshot = snapshot_of(upstream, environment=environment)
    assert PipelineSnapshot.model_validate_json(snapshot.model_dump_json()) == snapshot


# == @pipeline compilation ======================================================================


def test_compile_turns_inputs_into_edges():
    snapshot = fp.flow.compile(STACK, 4)
    steps = snapshot.steps
    assert steps["numbers"].parameters == {"n": 4} and steps["numbers"].upstream == ()
    assert steps["square"].inputs == {"xs": ArtifactRef(step="numbers")}
    assert steps["square"].upstream == ("numbers",)
    assert set(steps["combine"].upstream) == {"square", "cube"}
    assert steps["who_first"].upstream == ()
    assert steps["who_last"].upstream == ("combine",)  # after=
    assert steps["numbers"].source == "tests.pipelines.foundation:numbers"
    assert snapshot.pipeline_name == "flow" and not snapshot.dynamic


def test_repeated_calls_get_suffixed_ids():
    snapshot = fp.fan_out.compile(STACK, 3, 0.1)
    assert list(snapshot.steps) == ["sleeper", "sleeper_2", "sleeper_3"]
    assert [s.parameters["i"] for s in snapshot.steps.values()] == [0, 1, 2]


@step
def contract_step(x: int = 0) -> int:
    return x


@pipeline
def explicit_duplicate_ids():
    contract_step(1, id="same")
    contract_step(2, id="same")


@pipeline
def after_unknown():
    contract_step(after="not_yet")


@pipeline
def after_by_name():
    contract_step(1, id="first")
    contract_step(2, id="second", after="first")


@pipeline
def no_steps():
    pass


@pipeline
def non_json_parameter():
    contract_step(object())


def test_explicit_duplicate_id_is_refused():
    with pytest.raises(PipelineDefinitionError, match="'same'"):
        explicit_duplicate_ids.compile(STACK)


def test_after_accepts_names_of_earlier_steps_only():
    assert after_by_name.compile(STACK).steps["second"].upstream == ("first",)
    with pytest.raises(PipelineDefinitionError, match="not_yet"):
        after_unknown.compile(STACK)


def test_other_bad_pipelines_are_refused():
    with pytest.raises(PipelineDefinitionError, match="calls no step"):
        no_steps.compile(STACK)
    with pytest.raises(PipelineDefinitionError, match="'x'"):
        non_json_parameter.compile(STACK)
    with pytest.raises(PipelineDefinitionError, match="wrong arguments"):
        fp.flow.compile(STACK, 1, 2, 3)


def test_steps_and_pipelines_defined_in_a_function_are_refused():
    with pytest.raises(PipelineDefinitionError, match="module level"):

        @step
        def local_step() -> int:
            return 1

    with pytest.raises(PipelineDefinitionError, match="module level"):

        @pipeline
        def local_pipeline():
            contract_step()


def test_step_settings_are_validated_at_decoration():
    with pytest.raises(PipelineDefinitionError, match="unknown settings"):
        step(settings={"resource": ResourceSettings()})(contract_step.func)
    with pytest.raises(ValidationError, match="memory"):
        step(settings={"resources": {"memory": "8G"}})(contract_step.func)


def test_dynamic_pipeline_compiles_to_its_source():
    snapshot = fp.dynamic_flow.compile(STACK, 3)
    assert snapshot.dynamic and snapshot.steps == {}
    assert snapshot.pipeline_source == "tests.pipelines.foundation:dynamic_flow"
    assert snapshot.pipeline_parameters == {"n": 3}


# == run IDs ====================================================================================


def test_run_id_limit():
    assert check_run_id("r" * MAX_RUN_ID_LENGTH, "x") == "r" * MAX_RUN_ID_LENGTH
    with pytest.raises(RunIdError, match="251 characters"):
        check_run_id("r" * (MAX_RUN_ID_LENGTH + 1), "myflavor")
    for bad in ("", None, 42):
        with pytest.raises(RunIdError, match="myflavor"):
            check_run_id(bad, "myflavor")


# == flavors ====================================================================================


class RequiredConfig(BaseOrchestratorConfig):
    endpoint: str
    workers: int = 1


class Plain(BaseOrchestrator):
    def get_orchestrator_run_id(self) -> str:
        return "run"

    def submit_pipeline(self, snapshot, base_environment, step_environments, placeholder_run=None):
        return None


class Abstract(BaseOrchestrator):
    def submit_pipeline(self, snapshot, base_environment, step_environments, placeholder_run=None):
        return None


class NotAnOrchestrator:
    pass


class GoodFlavor(Flavor):
    name = "good"
    config_class = RequiredConfig
    implementation_source = f"{__name__}:Plain"
    capabilities = Capabilities()
    run_id_env_var = "GOOD_RUN_ID"


class ClaimsDynamic(GoodFlavor):
    capabilities = Capabilities(dynamic_pipelines=True)


class ClaimsStop(GoodFlavor):
    capabilities = Capabilities(stop_run=True)


class ClaimsSchedules(GoodFlavor):
    capabilities = Capabilities(schedules=frozenset({"cron"}))


class BadRunIdVariable(GoodFlavor):
    run_id_env_var = "good-run-id"


class BadName(GoodFlavor):
    name = "Bad Name"


class BadConfigClass(GoodFlavor):
    config_class = dict


class BadImplementation(GoodFlavor):
    implementation_source = f"{__name__}:NotAnOrchestrator"


class MissingImplementation(GoodFlavor):
    implementation_source = "no_such_module_anywhere:Thing"


class AbstractImplementation(GoodFlavor):
    implementation_source = f"{__name__}:Abstract"


class NoRunIdVariable(Flavor):
    name = "incomplete"
    config_class = RequiredConfig
    implementation_source = f"{__name__}:Plain"
    capabilities = Capabilities()


def test_a_consistent_flavor_passes_the_check():
    assert GoodFlavor().check().name == "good"
    assert load_flavor(f"{__name__}:GoodFlavor").name == "good"


@pytest.mark.parametrize(
    "flavor, words",
    [
        (ClaimsDynamic, ["dynamic_pipelines", "submit_dynamic_pipeline"]),
        (ClaimsStop, ["stop_run"]),
        (ClaimsSchedules, ["schedules", "update_schedule"]),
        (BadRunIdVariable, ["run_id_env_var", "good-run-id"]),
        (BadName, ["Bad Name"]),
        (BadConfigClass, ["config_class"]),
        (BadImplementation, ["NotAnOrchestrator"]),
        (MissingImplementation, ["no_such_module_anywhere"]),
        (AbstractImplementation, ["get_orchestrator_run_id"]),
        (NoRunIdVariable, ["run_id_env_var"]),
    ],
)
def test_inconsistent_flavor_declarations_are_refused(flavor, words):
    with pytest.raises(FlavorRegistrationError) as refused:
        flavor().check()
    for word in words:
        assert word in str(refused.value)
    with pytest.raises(FlavorRegistrationError):
        load_flavor(f"{__name__}:{flavor.__name__}")


def test_unknown_flavor_lists_the_registered_names():
    with pytest.raises(FlavorNotFoundError) as refused:
        load_flavor("kubernetez")
    assert "'kubernetez'" in str(refused.value) and "local" in str(refused.value)
    assert refused.value.fix
    with pytest.raises(FlavorNotFoundError, match="no_such_module"):
        load_flavor("no_such_module:Flavor")
    with pytest.raises(FlavorNotFoundError, match="not an orcakit.Flavor"):
        load_flavor(f"{__name__}:Plain")


def test_the_local_flavor_is_registered_and_consistent():
    flavor = load_flavor("local")
    assert flavor.name == "local" and flavor.run_id_env_var == "ORCAKIT_LOCAL_RUN_ID"


@pytest.mark.parametrize(
    "values, words",
    [
        ({"endpoint": "x", "bogus": 1}, ["unknown field 'bogus'", "endpoint", "workers"]),
        ({}, ["missing required field 'endpoint'"]),
        ({"endpoint": "x", "workers": "many"}, ["field 'workers'", "'many'"]),
    ],
)
def test_invalid_config_names_the_field(values, words):
    with pytest.raises(ConfigurationError) as refused:
        GoodFlavor().validate_config(values)
    for word in words:
        assert word in str(refused.value)
    assert "'good'" in str(refused.value)


@pytest.mark.parametrize(
    "values, field",
    [({"max_parallelism": 0}, "max_parallelism"), ({"launcher": "spawn"}, "launcher"), ({"cgroup_rot": "/x"}, "cgroup_rot")],
)
def test_invalid_local_config_names_the_field(values, field):
    with pytest.raises(ConfigurationError, match=f"'{field}'"):
        load_flavor("local").validate_config(values)


def test_config_values_are_coerced():
    config = GoodFlavor().validate_config({"endpoint": "x", "workers": "3"})
    assert config.workers == 3


def test_capabilities_print_the_same_in_every_process():
    """A Capabilities repr is part of failure messages (Hypothesis prints a failing example's
    arguments); its sets follow string hashing, which each process seeds at random, so they
    print sorted: the same seed gives the same message in every process (checks side by side)."""
    import os
    import subprocess
    import sys

    code = ("from orcakit import Capabilities, ExecutionMode\n"
            "print(repr(Capabilities(schedules=frozenset({'cron', 'interval', 'run_once'}), execution_modes=frozenset(ExecutionMode))))")
    printed = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                              env={**os.environ, "PYTHONHASHSEED": str(seed)}).stdout for seed in range(6)}
    assert len(printed) == 1, printed
