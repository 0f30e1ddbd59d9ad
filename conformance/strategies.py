"""Hypothesis strategies that reach the nasty cases, and the suite's example-count profiles."""

from __future__ import annotations

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st

from orcakit import MEMORY_UNITS

#: Profiles: examples per property test. ``certify`` is derandomised (same cases every run).
PROFILES = {
    "quick": dict(max_examples=3),
    "standard": dict(max_examples=8),
    "certify": dict(max_examples=15, derandomize=True),
}


def register_profiles() -> None:
    for name, options in PROFILES.items():
        settings.register_profile(
            f"orcakit-{name}",
            deadline=None,  # each example runs a whole pipeline on a real backend
            database=None,  # certification must not depend on a local example database
            suppress_health_check=list(HealthCheck),
            # No "@reproduce_failure" blob: the flavor author does not own the suite's tests; the
            # orcakit reproducer (seed and -k) replays the example instead.
            print_blob=False,
            # No shrinking: each example is a whole pipeline run (seconds), so shrinking a failure
            # takes longer than the suite; the failing example is printed and replays with the
            # seed (the reproducer), which is what a flavor author needs.
            phases=[phase for phase in Phase if phase not in (Phase.shrink, Phase.explain)],
            **options,
        )


# -- DAGs -------------------------------------------------------------------------------------


@st.composite
def dags(draw, min_nodes: int = 1, max_nodes: int = 7) -> dict:
    """DAG descriptions: named shapes (chain, fan-out/fan-in, diamond, wide layer, disconnected
    parts) and random DAGs, with nodes in topological order."""
    shape = draw(st.sampled_from(["random", "chain", "fan", "diamond", "wide", "disconnected"]))
    n = draw(st.integers(min_value=max(min_nodes, 1), max_value=max_nodes))
    upstream: list[list[int]] = []
    if shape == "chain":
        upstream = [[i - 1] if i else [] for i in range(n)]
    elif shape == "fan":  # one root, a fan-out, then a fan-in
        n = max(n, 3)
        upstream = [[]] + [[0] for _ in range(n - 2)] + [list(range(1, n - 1))]
    elif shape == "diamond":
        n = 4
        upstream = [[], [0], [0], [1, 2]]
    elif shape == "wide":  # independent roots
        upstream = [[] for _ in range(n)]
    elif shape == "disconnected":  # two chains
        half = max(1, n // 2)
        upstream = [[i - 1] if i else [] for i in range(half)] + [[half + i - 1] if i else [] for i in range(n - half)]
    else:
        for i in range(n):
            ups = draw(st.lists(st.integers(0, i - 1), unique=True, max_size=min(i, 3))) if i else []
            upstream.append(sorted(ups))
    names = [f"p{i}" for i in range(n)]
    return {"nodes": [{"name": names[i], "upstream": [names[u] for u in ups], "spec": {}} for i, ups in enumerate(upstream)]}


# -- environment ------------------------------------------------------------------------------

HOSTILE_VALUES = [
    "",
    " ",
    "two words",
    "'single'",
    '"double"',
    "a=b=c",
    "$HOME",
    "${PATH}",
    "$(echo pwned)",
    "`id`",
    "line1\nline2",
    "tab\there",
    "back\\slash",
    "ümlaut €uro 日本",
    "emoji 🚀",
    "; rm -rf / #",
    "x" * 4096,
]

env_keys = st.from_regex(r"\A[A-Za-z_][A-Za-z0-9_]{0,30}\Z").filter(lambda key: not key.upper().startswith("ORCAKIT_"))
# Any str an OS environment can carry: no NUL, no lone surrogates.
env_values = st.one_of(
    st.sampled_from(HOSTILE_VALUES),
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=200),
)
environments = st.dictionaries(env_keys, env_values, min_size=1, max_size=6)


# -- resources --------------------------------------------------------------------------------

cpu_counts = st.one_of(
    st.sampled_from([0.1, 0.25, 0.333, 0.5, 0.75, 1.0, 1.5, 2.0]),
    st.integers(min_value=5, max_value=200).map(lambda n: n / 100),
)

#: Memory strings between 128 MiB and 1 GiB in every unit (a step must still be able to start).
MIN_MEMORY, MAX_MEMORY = 128 * 2**20, 2**30


@st.composite
def memory_strings(draw) -> str:
    unit = draw(st.sampled_from(["KB", "KiB", "MB", "MiB", "GB", "GiB"]))
    factor = MEMORY_UNITS[unit]
    low, high = -(-MIN_MEMORY // factor), MAX_MEMORY // factor
    if low > high:  # GB/GiB: only 1GiB fits in the window
        return "1GiB"
    return f"{draw(st.integers(min_value=low, max_value=high))}{unit}"
