"""Sealing a snapshot: what is stored holds no secret; the secrets travel to the step apart
(SPEC SEC-1).

A snapshot is written where others can read it (an artifact folder, a bucket) and kept there. So
before it is stored it is *sealed*: every secret value in it is replaced by the
:data:`~orcakit.redaction.REDACTED` marker, and the values go, as a JSON map from a JSON Pointer
(RFC 6901) in the snapshot to the value, into one variable of the step's environment,
:data:`SNAPSHOT_SECRETS_ENV`. That name is itself secret-looking, so a backend that keeps
secret-looking variables in its own secret store (a Kubernetes Secret through ``secretKeyRef``)
moves them all by moving one variable. The step *unseals* the snapshot it loaded with it.

What is secret is decided by :mod:`orcakit.redaction` (one definition): in the pipeline's and
each step's ``environment``, in the orchestrator's config (at any depth) and in the artifact
store's options, the value of every secret-looking key, and every URL's password; the run-store
URL's password; the pipeline's parameters with secret-looking names (``--param db_password=...``),
and wherever such a value is passed on to a step's parameters, under any name. Keys and non-secret values stay, so the stored snapshot still says what ran where.

Each process gets only the secrets it needs: the stack's and the pipeline's, and its own step's
environment (:meth:`SealedSnapshot.environment`); other steps' secrets stay sealed in it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import ConfigurationError
from .redaction import _URL_PASSWORD, REDACTED, is_secret_key, redact
from .snapshot import PipelineSnapshot, StepSpec

#: The step-environment variable that carries a sealed snapshot's secrets (JSON: pointer -> value).
SNAPSHOT_SECRETS_ENV = "ORCAKIT_SNAPSHOT_SECRETS"

#: Where a snapshot may hold secrets, outside the steps (every process needs these).
_SHARED_ROOTS = (
    ("environment",), ("stack", "run_store"), ("stack", "orchestrator", "config"), ("stack", "artifact_store_options"),
    ("pipeline_parameters",),
)
#: Where a step holds secrets of its own (under /steps/<name>/).
_STEP_PARTS = ("environment", "parameters")


@dataclass(frozen=True)
class SealedSnapshot:
    """A snapshot fit to be stored, and the secrets taken out of it (by JSON Pointer)."""

    snapshot: PipelineSnapshot
    secrets: dict[str, Any]

    def environment(self, step: str | None = None) -> dict[str, str]:
        """What a process running ``step`` (None: a dynamic pipeline's orchestration
        environment) adds to its environment to unseal the stored snapshot: the shared secrets
        and that step's own. Empty when there is nothing to carry."""
        own = _step_prefix(step) if step is not None else None
        needed = {path: value for path, value in self.secrets.items()
                  if not path.startswith("/steps/") or (own is not None and path.startswith(own))}
        return secrets_environment(needed)


def seal(snapshot: PipelineSnapshot) -> SealedSnapshot:
    """``snapshot`` with every secret value replaced by REDACTED, and those values by path."""
    data = snapshot.model_dump(mode="json")
    secrets: dict[str, Any] = {}
    for root in _SHARED_ROOTS:
        _update(data, root, lambda value, pointer, key: _seal(value, key, pointer, secrets))
    # A secret parameter's value passed on to a step (``connect(url=db_password)``) is secret
    # there too, whatever the step calls it.
    known = secret_parameter_values(snapshot.pipeline_parameters)
    for name in snapshot.steps:
        for part in _STEP_PARTS:
            _update(data, ("steps", name, part), lambda value, pointer, key: _seal(value, key, pointer, secrets, known))
    return SealedSnapshot(PipelineSnapshot.model_validate(data), secrets)


def secret_parameter_values(parameters: Mapping[str, Any]) -> list[Any]:
    """The values of the secret-looking parameters in ``parameters`` (sealed wherever they go)."""
    return [value for key, value in parameters.items() if is_secret_key(str(key)) and value not in (None, "", {}, [])]


def seal_step(spec: StepSpec, known: list[Any] = ()) -> tuple[StepSpec, dict[str, Any]]:
    """A step a dynamic pipeline adds at run time, sealed like the steps of :func:`seal` (its
    paths are those it has once in the snapshot: ``/steps/<name>/environment/<KEY>``);
    ``known``: values sealed wherever they occur in its parameters (the pipeline's secret ones)."""
    data = {"steps": {spec.name: spec.model_dump(mode="json")}}
    secrets: dict[str, Any] = {}
    for part in _STEP_PARTS:
        _update(data, ("steps", spec.name, part), lambda value, pointer, key: _seal(value, key, pointer, secrets, known))
    return StepSpec.model_validate(data["steps"][spec.name]), secrets


def unseal(snapshot: PipelineSnapshot, secrets: Mapping[str, Any], step: str | None = None) -> PipelineSnapshot:
    """The stored ``snapshot`` with ``secrets`` put back: everything a process running ``step``
    needs (None: only the shared parts, as the orchestration environment and a step runner
    before it knows its step). Secrets for paths this snapshot does not have (another step's)
    are ignored. Raises ConfigurationError when a needed value is still sealed."""
    data = snapshot.model_dump(mode="json")
    roots = [*_SHARED_ROOTS] + ([("steps", step, part) for part in _STEP_PARTS] if step is not None and step in snapshot.steps else [])
    _restore(data, roots, secrets, f"snapshot {snapshot.snapshot_id!r} of pipeline {snapshot.pipeline_name!r}")
    return PipelineSnapshot.model_validate(data)


def unseal_step(spec: StepSpec, secrets: Mapping[str, Any]) -> StepSpec:
    """A step stored by :func:`seal_step`, with its secrets put back (see :func:`unseal`)."""
    data = {"steps": {spec.name: spec.model_dump(mode="json")}}
    _restore(data, [("steps", spec.name, part) for part in _STEP_PARTS], secrets, f"step {spec.name!r}")
    return StepSpec.model_validate(data["steps"][spec.name])


def secrets_environment(secrets: Mapping[str, Any]) -> dict[str, str]:
    """``{SNAPSHOT_SECRETS_ENV: JSON}`` for ``secrets``; empty when there are none."""
    return {SNAPSHOT_SECRETS_ENV: json.dumps(dict(secrets), sort_keys=True)} if secrets else {}


def snapshot_secrets(environ: Mapping[str, str]) -> dict[str, Any]:
    """The secrets a step environment carries (empty when it carries none)."""
    text = environ.get(SNAPSHOT_SECRETS_ENV)
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        # never repeat the text: it is the secrets themselves
        raise ConfigurationError(
            f"{SNAPSHOT_SECRETS_ENV} in this step's environment is not a JSON object",
            why="it carries the sealed snapshot's secret values from the orchestrator to the step, exactly as built",
            fix="pass the variable through unchanged (no quoting, trimming or templating on the way)",
        )
    return value


# -- the walk ---------------------------------------------------------------------------------


def _seal(value: Any, key: str, pointer: str, secrets: dict[str, Any], known: list[Any] = ()) -> Any:
    """Seal ``value`` (found under ``key``) as :func:`orcakit.redaction.redact` would redact it,
    and wherever it equals one of the ``known`` secret values, keeping each value it takes out
    under its pointer."""
    if (key and is_secret_key(key) and value not in (None, "", {}, [])) or (known and value in known):
        secrets[pointer] = value
        return REDACTED
    if isinstance(value, dict):
        return {k: _seal(v, str(k), f"{pointer}/{_escape(str(k))}", secrets, known) for k, v in value.items()}
    if isinstance(value, list):
        return [_seal(v, "", f"{pointer}/{i}", secrets, known) for i, v in enumerate(value)]
    # A value that already looks sealed is carried too, so that unsealing can tell it from a
    # placeholder whose secret is missing.
    if isinstance(value, str) and (redact(value) != value or _is_sealed(value, "")):
        secrets[pointer] = value
        return redact(value)
    return value


def _restore(data: dict, roots: list[tuple[str, ...]], secrets: Mapping[str, Any], owner: str) -> None:
    def put_back(value: Any, pointer: str, key: str) -> Any:
        # (a value sealed because it equals a secret parameter's: REDACTED under any key)
        if pointer in secrets and (value == REDACTED or _seal(secrets[pointer], key, pointer, {}) == value):
            return secrets[pointer]
        if isinstance(value, dict):
            return {k: put_back(v, f"{pointer}/{_escape(str(k))}", str(k)) for k, v in value.items()}
        if isinstance(value, list):
            return [put_back(v, f"{pointer}/{i}", "") for i, v in enumerate(value)]
        if _is_sealed(value, key):
            missing.append(pointer)
        return value

    missing: list[str] = []
    for root in roots:
        _update(data, root, put_back)
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        carried = "is not set" if not secrets else "does not carry them"
        raise ConfigurationError(
            f"{owner} was stored sealed, but {SNAPSHOT_SECRETS_ENV} in this step's environment {carried}: "
            f"the secret value(s) at {shown} cannot be restored",
            why="secrets are never stored in plain text (SPEC SEC-1): the stored snapshot holds a placeholder and the "
            f"real values travel in {SNAPSHOT_SECRETS_ENV}, which the orchestrator puts into every step environment it builds",
            fix=f"launch the step with the environment the orchestrator built, unchanged (it includes {SNAPSHOT_SECRETS_ENV}); "
            "a launcher that copies variables one by one, or keeps secret-looking ones apart (e.g. in a Kubernetes Secret), "
            "must bring that one back into the step",
        )


def _is_sealed(value: Any, key: str) -> bool:
    """Whether ``value`` is what sealing leaves in place of a secret."""
    if key and is_secret_key(key) and value == REDACTED:
        return True
    return isinstance(value, str) and any(match["password"] == REDACTED for match in _URL_PASSWORD.finditer(value))


def _update(data: dict, root: tuple[str, ...], change) -> None:
    """Replace the value at ``root`` (if there is one) by ``change(value, pointer, key)``;
    the root's own key never makes it secret (``environment`` is not a secret-looking name,
    but a root must not become one by a rename either)."""
    *parents, last = root
    node = data
    for part in parents:
        node = node.get(part) if isinstance(node, dict) else None
        if node is None:
            return
    if isinstance(node, dict) and last in node:
        node[last] = change(node[last], "/" + "/".join(_escape(part) for part in root), "")


def _step_prefix(step: str) -> str:
    return f"/steps/{_escape(step)}/"


def _escape(token: str) -> str:
    """A JSON Pointer reference token (RFC 6901): ``~`` and ``/`` escaped."""
    return token.replace("~", "~0").replace("/", "~1")
