"""Flavor config given as text: ``KEY=VALUE`` options and config files, one set of rules.

Three places take a flavor's config from a user — ``orcakit orchestrator register NAME
--flavor=X --key=value``, ``pytest --flavor=X --flavor-option key=value`` and ``orcakit certify
--flavor-option key=value`` — and all three parse it here, so the same text means the same
config everywhere (before, ``user=1000`` was a string to one and an integer to another).

The rules for one ``KEY=VALUE`` item:

- the key is the config field's name; ``-`` counts as ``_`` (``max-parallelism``), a key is
  given at most once, and a key the flavor's config model does not declare is refused;
- ``VALUE`` is split off at the first ``=`` (a value may contain ``=``); ``@path`` reads the
  value from a file (one trailing newline dropped; ``@@text`` is the literal ``@text``);
- the value is coerced by the field's type in the flavor's pydantic config model: it is read as
  JSON when it is JSON that the field accepts (``4`` for an int, ``true`` for a bool,
  ``["AWS_*"]`` for a list, ``null`` for an optional field), else as the text itself, which
  pydantic then coerces as usual (``exec`` for a ``Literal``, ``yes`` for a bool). So a string
  field keeps ``1000`` the string ``"1000"``, and ``zero`` is refused for an int field.

The result holds JSON-compatible values (what a config file or ``config.json`` holds), and
every error is a :class:`~orcakit.ConfigurationError` naming the key, the flavor and the fix;
a value is never echoed for a secret-looking key (SEC-1, :mod:`orcakit.redaction`).
"""

from __future__ import annotations

import json
import os
import re
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Union

from pydantic import BaseModel, TypeAdapter, ValidationError

from .errors import ConfigurationError
from .flavor import Flavor
from .redaction import is_secret_key, redact

#: What a flavor's config can be parsed for: the flavor (instance or class) or its config model.
FlavorOrConfig = Union[Flavor, type[Flavor], type[BaseModel]]

_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_FORMAT_HINT = 'lists and mappings as JSON, e.g. ["a", "b"]; true/false; null for none'


def parse_flavor_options(flavor: FlavorOrConfig, items: Iterable[str]) -> dict[str, Any]:
    """``KEY=VALUE`` items (``pytest --flavor-option``, ``orcakit certify --flavor-option``)
    as config values of ``flavor``, coerced by its config model's field types."""
    return coerce_flavor_options(flavor, split_flavor_options(items))


def parse_flavor_config(
    flavor: FlavorOrConfig, config_file: str | os.PathLike[str] | None = None, options: Iterable[str] = ()
) -> dict[str, Any]:
    """A config file (``--flavor-config``) overlaid with ``KEY=VALUE`` options: an option
    overrides the file's value for the same key."""
    values = load_flavor_config(flavor, config_file) if config_file else {}
    values.update(parse_flavor_options(flavor, options))
    return values


def split_flavor_options(items: Iterable[str]) -> dict[str, str]:
    """``KEY=VALUE`` items as ``{key: raw text}``, keys normalised and checked, nothing coerced
    yet (the first half of :func:`parse_flavor_options`, for callers that have their own
    option syntax, such as ``orcakit orchestrator register --key value``)."""
    values: dict[str, str] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep:
            raise ConfigurationError(
                f"flavor option {item!r} has no value",
                fix=f"give it as KEY=VALUE, e.g. {item}=VALUE (an empty value is {item}=)",
            )
        key = key.replace("-", "_")
        if not _KEY.fullmatch(key):
            raise ConfigurationError(
                f"{key!r} is not a valid config key",
                why="config keys are the config model's field names: letters, digits and '_' ('-' counts as '_')",
                fix="check the spelling; `orcakit flavor describe FLAVOR` lists the fields",
            )
        if key in values:
            raise ConfigurationError(
                f"config key {key!r} is given twice",
                why="one of the two values would be dropped without a word",
                fix=f"give {key} once",
            )
        values[key] = raw
    return values


def coerce_flavor_options(flavor: FlavorOrConfig, raw: Mapping[str, str]) -> dict[str, Any]:
    """``{key: text}`` (see :func:`split_flavor_options`) as config values of ``flavor``: each
    text is read (``@path``) and coerced by its field's type, as the module docstring says."""
    config_class, label, describe = _target(flavor)
    values: dict[str, Any] = {}
    for key, text in raw.items():
        _check_known(config_class, key, label, describe)
        text = _read_at_file(key, text, label)
        candidates: list[Any] = []
        try:
            candidates.append(json.loads(text))  # JSON the field accepts wins...
        except ValueError:
            pass
        candidates.append(text)  # ...else the text itself, coerced by pydantic
        first_errors: list[Any] = []
        for candidate in candidates:
            value, errors = _validate_field(config_class, key, candidate)
            if not errors:
                values[key] = value
                break
            # The JSON reading's complaint is the telling one: "2.5" fails an int field as a
            # fractional number, not as "unable to parse string".
            first_errors = first_errors or errors
        else:
            raise _invalid(config_class, key, repr(_shown(text)), first_errors, label, describe)
    return values


def load_flavor_config(flavor: FlavorOrConfig, path: str | os.PathLike[str]) -> dict[str, Any]:
    """A flavor config file (``--flavor-config``): a YAML or JSON (``*.json``) mapping of field
    names to typed values, each checked by its field's type (a file says what type it means, so
    nothing is read from text here)."""
    config_class, label, describe = _target(flavor)
    path = Path(path).expanduser()
    where = f"flavor config file {str(path)!r}"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"cannot read the {where} ({exc.strerror})", fix="check the path") from None
    try:
        if path.suffix == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except ValueError as exc:
        raise ConfigurationError(f"{where} is not valid JSON: {exc}", fix="fix the JSON, or name the file *.yaml") from None
    except Exception as exc:  # yaml.YAMLError; its message would quote the line, maybe a secret
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise ConfigurationError(f"{where} is not valid YAML{at}: {problem}", fix="fix the YAML") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigurationError(
            f"{where} holds a {type(data).__name__}, not a mapping of config fields",
            fix="write one `field: value` line per config field",
        )
    values: dict[str, Any] = {}
    for key, value in data.items():
        if not isinstance(key, str):
            raise ConfigurationError(f"{where}: key {key!r} is not a field name", fix="quote it, or correct it")
        _check_known(config_class, key, label, describe, where=f" in the {where}")
        checked, errors = _validate_field(config_class, key, value)
        if errors:
            raise _invalid(config_class, key, repr(_shown(value)), errors, label, describe, where=f" in the {where}")
        values[key] = checked
    return values


# -- helpers ---------------------------------------------------------------------------------------


def _target(flavor: FlavorOrConfig) -> tuple[type[BaseModel], str, str]:
    """The config model, how errors name it, and where its fields are listed."""
    if isinstance(flavor, Flavor) or (isinstance(flavor, type) and issubclass(flavor, Flavor)):
        return flavor.config_class, f"orchestrator flavor {flavor.name!r}", f"`orcakit flavor describe {flavor.name}` lists the fields and their types"
    if isinstance(flavor, type) and issubclass(flavor, BaseModel):
        name = f"{flavor.__module__}.{flavor.__qualname__}"
        return flavor, f"config model {name}", f"the fields are those of {name}"
    raise TypeError(f"expected an orcakit.Flavor or a pydantic config model, got {flavor!r}")


def _check_known(config_class: type[BaseModel], key: str, label: str, describe: str, where: str = "") -> None:
    if key in config_class.model_fields or config_class.model_config.get("extra") == "allow":
        return
    known = ", ".join(config_class.model_fields) or "none"
    raise ConfigurationError(
        f"unknown field {key!r} for {label}{where} (known fields: {known})",
        why="a misspelt key would otherwise be dropped and the default used without a word",
        fix=f"check the spelling; {describe}",
    )


def _read_at_file(key: str, text: str, label: str) -> str:
    if text.startswith("@@"):
        return text[1:]
    if not text.startswith("@"):
        return text
    path = os.path.expanduser(text[1:])
    try:
        with open(path, encoding="utf-8") as handle:
            content = handle.read()
    except OSError as exc:
        raise ConfigurationError(
            f"cannot read the value of {key!r} for {label} from the file {path!r} ({exc.strerror})",
            why="a value written @path is read from that file",
            fix="check the path, or write @@text for a value that itself starts with '@'",
        ) from None
    return content[:-1] if content.endswith("\n") else content


def _validate_field(config_class: type[BaseModel], key: str, value: Any) -> tuple[Any, list[Any]]:
    """``value`` validated as field ``key`` of ``config_class`` (its type, constraints and field
    validators): ``(coerced JSON-compatible value, [])`` or ``(None, pydantic's errors for key)``."""
    try:
        model = config_class.model_validate({key: value})
    except ValidationError as exc:
        errors = [error for error in exc.errors() if error["loc"][:1] == (key,)]
        if errors:
            return None, errors
        # Only other fields failed (a required field not given here): this value is fine, and
        # its coerced form comes from the field's own type and constraints.
        field = config_class.model_fields.get(key)
        if field is None:  # an extra key of a model that allows them: nothing to coerce by
            return value, []
        annotation = typing.Annotated[(field.annotation, *field.metadata)] if field.metadata else field.annotation
        adapter: TypeAdapter[Any] = TypeAdapter(annotation)
        return adapter.dump_python(adapter.validate_python(value), mode="json"), []
    return model.model_dump(mode="json", include={key})[key], []


def _invalid(
    config_class: type[BaseModel], key: str, shown: str, errors: list[Any], label: str, describe: str, where: str = ""
) -> ConfigurationError:
    field = config_class.model_fields.get(key)
    expected = _type_text(field.annotation) if field is not None else "any"
    if is_secret_key(key):
        # A field validator's message may quote the value: only pydantic's own type messages.
        reasons = [e["msg"] if e["type"] not in ("value_error", "assertion_error") else "rejected by the field's validator" for e in errors]
        what = f"invalid value for {key!r} of {label}{where} (not shown: the key looks like a secret): {'; '.join(reasons)}"
    else:
        what = f"invalid value {shown} for {key!r} of {label}{where}: {'; '.join(e['msg'] for e in errors)}"
    return ConfigurationError(what, fix=f"give {key} a value of type {expected} ({_FORMAT_HINT}); {describe}")


def _shown(value: Any, limit: int = 200) -> Any:
    """A value as an error may quote it: URL passwords hidden, long text cut."""
    value = redact(value)
    if isinstance(value, str) and len(value) > limit:
        return value[:limit] + "..."
    return value


def _type_text(annotation: Any) -> str:
    if isinstance(annotation, type) and not typing.get_args(annotation):
        return annotation.__name__
    return repr(annotation).replace("typing.", "").replace("NoneType", "None")
