"""Label and field selectors, parsed as apimachinery parses them.

Label selectors: ``k=v``, ``k==v``, ``k!=v``, ``k in (a,b)``, ``k notin (a,b)``, ``k`` (exists),
``!k`` (does not exist), comma-separated (AND). Field selectors: ``path=v``, ``path==v``,
``path!=v`` on the fields each resource type supports; others are a 400 as on a real server.
"""

from __future__ import annotations

import re
from typing import Any, Callable

from .status import bad_request

Predicate = Callable[[dict[str, Any]], bool]

_SET_TERM = re.compile(r"^\s*(!?)\s*([A-Za-z0-9./_-]+)\s*(?:(notin|in)\s*\(([^)]*)\))?\s*$")
_EQ_TERM = re.compile(r"^\s*([A-Za-z0-9./_-]+)\s*(==|=|!=)\s*([A-Za-z0-9._-]*)\s*$")


def _split_terms(selector: str) -> list[str]:
    """Split on commas that are not inside ``in (...)`` sets."""
    terms, depth, current = [], 0, ""
    for ch in selector:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            terms.append(current)
            current = ""
        else:
            current += ch
    terms.append(current)
    return [t for t in terms if t.strip()]


def _label_matches(labels: dict[str, str], key: str, op: str, values: frozenset[str]) -> bool:
    # "!=" and "notin" match objects without the key, as on a real server
    if op in ("=", "==", "in"):
        return labels.get(key) in values
    if op in ("!=", "notin"):
        return labels.get(key) not in values
    return (key in labels) == (op == "exists")


def label_selector(selector: str | None) -> Predicate:
    requirements: list[tuple[str, str, frozenset[str]]] = []
    for term in _split_terms(selector or ""):
        eq = _EQ_TERM.match(term)
        if eq:
            key, op, value = eq.groups()
            requirements.append((key, op, frozenset([value])))
            continue
        st = _SET_TERM.match(term)
        if not st:
            raise bad_request(f"unable to parse requirement: found '{term.strip()}', expected: in, notin, =, ==, !=, gt, lt")
        negate, key, op, values = st.groups()
        op = op or ("!" if negate else "exists")
        requirements.append((key, op, frozenset(v.strip() for v in (values or "").split(",") if v.strip())))

    def matches(obj: dict[str, Any]) -> bool:
        labels = obj.get("metadata", {}).get("labels") or {}
        return all(_label_matches(labels, *requirement) for requirement in requirements)

    return matches


def _field(obj: dict[str, Any], path: str) -> str:
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def field_selector(selector: str | None, supported: frozenset[str]) -> Predicate:
    requirements: list[tuple[str, str, str]] = []
    for term in _split_terms(selector or ""):
        eq = re.match(r"^\s*([A-Za-z0-9._-]+)\s*(==|=|!=)\s*(.*?)\s*$", term)
        if not eq:
            raise bad_request(f"invalid selector: '{selector}'; can't understand '{term}'")
        path, op, value = eq.groups()
        if path not in supported and path not in ("metadata.name", "metadata.namespace"):
            raise bad_request(f"field label not supported: {path}")
        requirements.append((path, op, value))

    def matches(obj: dict[str, Any]) -> bool:
        return all((_field(obj, path) == value) == (op != "!=") for path, op, value in requirements)

    return matches
