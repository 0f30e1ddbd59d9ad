"""Server-side apply and the ``metadata.managedFields`` every write keeps, in the small.

What structured-merge-diff does on a cluster, for the JSON shapes of the served kinds:

- a *field set* is the set of paths an object sets: map keys (``f:``), items of the lists the
  API merges by a key (``k:{"name":"c"}``, the same lists strategic merge patch merges: see
  ``patch.MERGE_KEYS``); every other list, and every scalar, is a leaf owned whole;
- each write records who set what: an ``Update`` (create, replace, patch) makes its manager the
  owner of the fields it changed and takes them from the others; an ``Apply``
  (``application/apply-patch+yaml``) makes its manager own exactly the applied fields;
- an apply that would change a field another manager owns is a 409 Conflict naming the manager
  and the path (``Apply failed with 1 conflict: conflict with "kubectl-create" using v1:
  .data.key``), unless ``force=true``, which takes the field over;
- fields the applier owned before and no longer applies are removed, unless another manager owns
  them too.

Not modelled: per-version schemas (one version per kind here), granular/atomic markers beyond the
merge-key lists, ``x-kubernetes-list-type: set`` lists (owned whole), status managers.
"""

from __future__ import annotations

import copy
import json
from typing import Any, Iterable

from .operations import now
from .patch import MERGE_KEYS, strategic_merge_patch
from .status import ApiError

Path = tuple[tuple[str, str], ...]  # (("f", "data"), ("f", "key")) / (("f", "containers"), ("k", '{"name":"c"}'))
# what no manager owns: identity and server-set metadata, and status on the main resource
_UNTRACKED_TOP = {"apiVersion", "kind", "status"}
_UNTRACKED_META = {"name", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp", "managedFields", "selfLink",
                   "deletionTimestamp", "deletionGracePeriodSeconds", "generateName"}


def field_set(obj: dict[str, Any]) -> set[Path]:
    out: set[Path] = set()
    for key, value in obj.items():
        if key in _UNTRACKED_TOP:
            continue
        if key == "metadata" and isinstance(value, dict):
            for meta_key, meta_value in value.items():
                if meta_key not in _UNTRACKED_META:
                    _walk(meta_value, (("f", "metadata"), ("f", meta_key)), out)
            continue
        _walk(value, (("f", key),), out)
    return out


def _item_key(field: str, item: Any) -> str | None:
    key = MERGE_KEYS.get(field)
    if key and isinstance(item, dict) and key in item:
        return json.dumps({key: item[key]}, separators=(",", ":"))
    return None


def _walk(value: Any, path: Path, out: set[Path]) -> None:
    if isinstance(value, dict) and value:
        for key, child in value.items():
            _walk(child, path + (("f", key),), out)
    elif isinstance(value, list) and value and all(_item_key(path[-1][1], item) for item in value):
        for item in value:
            item_path = path + (("k", _item_key(path[-1][1], item) or ""),)
            out.add(item_path)  # the item itself ("."), so that removing it is known
            for key, child in item.items():
                _walk(child, item_path + (("f", key),), out)
    else:
        out.add(path)


_MISSING = object()


def value_at(obj: Any, path: Path) -> Any:
    for kind, name in path:
        if kind == "f":
            if not isinstance(obj, dict) or name not in obj:
                return _MISSING
            obj = obj[name]
        else:
            key, wanted = next(iter(json.loads(name).items()))
            obj = next((item for item in obj or [] if isinstance(item, dict) and item.get(key) == wanted), _MISSING)
            if obj is _MISSING:
                return obj
    return obj


def _remove(obj: Any, path: Path) -> None:
    parent = value_at(obj, path[:-1]) if len(path) > 1 else obj
    kind, name = path[-1]
    if kind == "f" and isinstance(parent, dict):
        parent.pop(name, None)
    elif kind == "k" and isinstance(parent, list):
        key, wanted = next(iter(json.loads(name).items()))
        parent[:] = [item for item in parent if not (isinstance(item, dict) and item.get(key) == wanted)]


def path_text(path: Path) -> str:
    """fieldpath.Path's String(): ``.spec.containers[name="c"].image``."""
    text = ""
    for kind, name in path:
        if kind == "f":
            text += f".{name}"
        else:
            text += "[" + ",".join(f"{k}={json.dumps(v)}" for k, v in json.loads(name).items()) + "]"
    return text


# FieldsV1 ------------------------------------------------------------------------------
def to_fields_v1(paths: Iterable[Path]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    paths = set(paths)
    for path in paths:
        node = tree
        for kind, name in path:
            node = node.setdefault(f"{kind}:{name}", {})
    # an owned item that also has owned fields says so with "."
    for path in paths:
        node = tree
        for kind, name in path:
            node = node[f"{kind}:{name}"]
        if node:
            node["."] = {}
    return _sorted(tree)


def _sorted(node: dict[str, Any]) -> dict[str, Any]:
    # as structured-merge-diff writes them: "." first, then the keys in order
    return {key: _sorted(node[key]) for key in sorted(node, key=lambda k: (k != ".", k))}


def from_fields_v1(tree: dict[str, Any], prefix: Path = ()) -> set[Path]:
    out: set[Path] = set()
    for key, child in tree.items():
        if key == ".":
            out.add(prefix)
            continue
        kind, _, name = key.partition(":")
        path = prefix + ((kind, name),)
        if child:
            out |= from_fields_v1(child, path)
        else:
            out.add(path)
    return out


# managers ------------------------------------------------------------------------------
class Managers:
    """An object's managedFields as (manager, operation) -> field set, plus their entries."""

    def __init__(self, obj: dict[str, Any] | None) -> None:
        self.entries: list[dict[str, Any]] = copy.deepcopy((obj or {}).get("metadata", {}).get("managedFields") or [])
        self.sets = [from_fields_v1(e.get("fieldsV1") or {}) for e in self.entries]

    def _index(self, manager: str, operation: str) -> int:
        for i, entry in enumerate(self.entries):
            if entry.get("manager") == manager and entry.get("operation") == operation and not entry.get("subresource"):
                return i
        self.entries.append({"manager": manager, "operation": operation})
        self.sets.append(set())
        return len(self.entries) - 1

    def set(self, manager: str, operation: str, api_version: str, paths: set[Path]) -> None:
        i = self._index(manager, operation)
        self.entries[i].update(apiVersion=api_version, time=now(), fieldsType="FieldsV1")
        self.sets[i] = set(paths)

    def take(self, paths: set[Path], keep: int | None = None) -> None:
        for i, owned in enumerate(self.sets):
            if i != keep:
                owned -= paths

    def result(self) -> list[dict[str, Any]] | None:
        entries = []
        for entry, owned in zip(self.entries, self.sets):
            if owned:
                entries.append({**entry, "fieldsV1": to_fields_v1(owned)})
        return entries or None


def _describe(entry: dict[str, Any]) -> str:
    # printManager over the manager identifier, which never has the time (BuildManagerIdentifier):
    # an Update names its apiVersion, an Apply only its name
    if entry.get("operation") == "Update":
        return f'"{entry["manager"]}" using {entry.get("apiVersion", "")}'
    return f'"{entry["manager"]}"'


def conflict_error(conflicts: list[tuple[dict[str, Any], Path]]) -> ApiError:
    causes = [{"reason": "FieldManagerConflict", "message": f"conflict with {_describe(entry)}", "field": path_text(path)}
              for entry, path in conflicts]
    if len(conflicts) == 1:
        message = f"Apply failed with 1 conflict: conflict with {_describe(conflicts[0][0])}: {path_text(conflicts[0][1])}"
    else:
        by_manager: dict[str, list[str]] = {}
        for entry, path in conflicts:
            by_manager.setdefault(_describe(entry), []).append(path_text(path))
        lines = []
        for manager in sorted(by_manager):
            lines.append(f"conflicts with {manager}:")
            lines += [f"- {p}" for p in by_manager[manager]]
        message = f"Apply failed with {len(conflicts)} conflicts: " + "\n".join(lines)
    return ApiError(409, "Conflict", message, {"causes": causes})


# map-typed fields (Go maps, not structs): an Update that creates one owns the map itself too,
# which managedFields show as ".": {} beside its keys
_MAPS = {"data", "binaryData", "stringData", "labels", "annotations", "matchLabels", "nodeSelector", "limits", "requests"}


def _new_maps(current: dict[str, Any] | None, new: dict[str, Any]) -> set[Path]:
    found = set()
    for path in field_set(new):
        for end in range(1, len(path)):
            prefix = path[:end]
            if prefix[-1] in (("f", name) for name in _MAPS) and (current is None or value_at(current, prefix) is _MISSING):
                found.add(prefix)
    return found


def record_update(current: dict[str, Any] | None, new: dict[str, Any], manager: str, api_version: str) -> None:
    """Stamp ``new`` with the managedFields after an Update by ``manager`` (create/replace/patch)."""
    managers = Managers(current)
    new_fields = field_set(new)
    old_fields = field_set(current) if current else set()
    changed = {p for p in new_fields if current is None or value_at(current, p) != value_at(new, p)} | _new_maps(current, new)
    managers.take(old_fields - new_fields)  # removed: nobody owns them any more
    i = managers._index(manager, "Update")
    managers.take(changed, keep=i)
    if changed or current is None:
        managers.set(manager, "Update", api_version, managers.sets[i] | changed)
    new.setdefault("metadata", {})["managedFields"] = managers.result()
    if new["metadata"]["managedFields"] is None:
        del new["metadata"]["managedFields"]


def apply(current: dict[str, Any] | None, applied: dict[str, Any], manager: str, force: bool, api_version: str) -> dict[str, Any]:
    """The object after ``manager`` applies ``applied`` (a new object when ``current`` is None)."""
    managers = Managers(current)
    applied_fields = field_set(applied)
    mine = managers._index(manager, "Apply")
    previously = set(managers.sets[mine])
    if current is None:
        result = copy.deepcopy(applied)
    else:
        conflicts = []
        for i, (entry, owned) in enumerate(zip(managers.entries, managers.sets)):
            if i == mine:
                continue
            for path in sorted(applied_fields & owned):
                if path[-1][0] != "k" and value_at(applied, path) != value_at(current, path):
                    conflicts.append((entry, path))
        if conflicts and not force:
            raise conflict_error(conflicts)
        if force:
            managers.take({path for _, path in conflicts}, keep=mine)
        result = copy.deepcopy(current)
        others: set[Path] = set().union(*(owned for i, owned in enumerate(managers.sets) if i != mine))
        # what this manager applied before and applies no more goes, unless someone else holds it
        for path in sorted(previously - applied_fields - others, key=len, reverse=True):
            _remove(result, path)
        applied_body = {k: v for k, v in applied.items() if k not in ("status",)}
        result = strategic_merge_patch(result, applied_body)
    managers.set(manager, "Apply", api_version, applied_fields)
    result.setdefault("metadata", {})["managedFields"] = managers.result()
    return result
