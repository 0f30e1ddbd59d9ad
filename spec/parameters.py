"""A pipeline's parameters, checked against its function's signature before anything runs.

``@pipeline def training(n: int = 100, lr: float = 0.1)`` declares what ``training`` accepts,
and both ways of calling it are held to that, when the snapshot compiles:

- from Python (``training(n=3)``, ``training.compile(stack, n=3)``): a name the function does not
  have, a missing required parameter, or a value of another type (``n=1.5``, ``n="3"``,
  ``n=True``) is a :class:`~orcakit.ParameterError`. A value counts as the declared type when
  pydantic accepts it in strict mode, or accepts its JSON form in strict mode (a parameter is
  stored as JSON, so ``"2024-05-01"`` is a fine ``date`` and ``[1, 2]`` a fine ``tuple``);
- from text (``orcakit run ... --param n=3``): :func:`parameters_from_text` reads each value as
  JSON when it is JSON of the declared type (``3`` for an int, ``true`` for a bool, ``[1, 2]``
  for a list, ``null`` for an optional), else as the text itself (``label=3`` stays the string
  ``"3"`` for a ``str``), strictly again: ``n=abc`` and ``n=1.5`` are refused for an ``int``.

A parameter without an annotation (or with one pydantic cannot check) takes any value, as
before. Errors name the parameter, the expected type and the fix.
"""

from __future__ import annotations

import inspect
import json
import typing
from collections.abc import Callable, Mapping
from typing import Any

from .errors import ParameterError

_NO_CHECK = object()  # "this parameter takes any value"
_P = inspect.Parameter


def bind_parameters(func: Callable, pipeline_name: str, args: tuple, kwargs: dict) -> dict[str, Any]:
    """``args``/``kwargs`` bound to ``func``'s parameters (``{name: value}`` as given, defaults
    not filled in), after checking the names and each value's type."""
    signature = inspect.signature(func)
    _check_names(signature, pipeline_name, list(kwargs))
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError as exc:
        missing = [
            name for name, p in signature.parameters.items()
            if p.default is _P.empty and p.kind not in (_P.VAR_POSITIONAL, _P.VAR_KEYWORD)
        ][len(args):]
        missing = [name for name in missing if name not in kwargs]
        if missing:
            raise ParameterError(
                f"pipeline {pipeline_name!r} called with the wrong arguments: missing required parameter(s) "
                + ", ".join(repr(name) for name in missing),
                why="a parameter without a default has no value unless the caller gives one",
                fix="pass " + " ".join(f"--param {name}=VALUE" for name in missing) + f" (in Python: {pipeline_name}({', '.join(f'{name}=...' for name in missing)}))",
            ) from None
        raise ParameterError(
            f"pipeline {pipeline_name!r} called with the wrong arguments: {exc}", fix=f"its parameters: {_signature_text(signature)}"
        ) from None
    hints = _type_hints(func)
    for name, value in bound.arguments.items():
        if signature.parameters[name].kind in (_P.VAR_POSITIONAL, _P.VAR_KEYWORD):
            continue  # *args / **kwargs: no single declared type to check against
        check_value(pipeline_name, name, value, hints.get(name, _NO_CHECK))
    return dict(bound.arguments)


def parameters_from_text(func: Callable, pipeline_name: str, raw: Mapping[str, str]) -> dict[str, Any]:
    """``{name: text}`` (``--param name=text``) as values of ``func``'s declared parameter types
    (see the module docstring); raises :class:`~orcakit.ParameterError` for a value that is not
    of its type, or a name the function does not have."""
    signature = inspect.signature(func)
    _check_names(signature, pipeline_name, list(raw))
    hints = _type_hints(func)
    values: dict[str, Any] = {}
    for name, text in raw.items():
        annotation = hints.get(name, _NO_CHECK)
        adapter = _adapter(annotation)
        if adapter is None:  # undeclared: JSON if it parses, else the text
            try:
                values[name] = json.loads(text)
            except ValueError:
                values[name] = text
            continue
        candidates = [json.dumps(text)]  # ...else the text itself, as a JSON string
        try:
            json.loads(text)
            candidates.insert(0, text)  # JSON of the declared type wins...
        except ValueError:
            pass
        first_error = None
        for candidate in candidates:
            try:
                values[name] = adapter.validate_json(candidate, strict=True)
                break
            except Exception as exc:  # pydantic's ValidationError
                first_error = first_error or exc
        else:
            raise _type_error(pipeline_name, name, text, annotation, first_error, from_text=True)
    return values


def check_value(pipeline_name: str, name: str, value: Any, annotation: Any) -> None:
    """Refuse ``value`` for parameter ``name`` unless it is of ``annotation`` (strictly, or in
    its JSON form: see the module docstring)."""
    adapter = _adapter(annotation)
    if adapter is None:
        if isinstance(annotation, type) and annotation is not Any and not isinstance(value, annotation):
            raise _type_error(pipeline_name, name, value, annotation, None)
        return
    try:
        adapter.validate_python(value, strict=True)
        return
    except Exception as exc:  # pydantic's ValidationError
        error = exc
    try:
        adapter.validate_json(json.dumps(value, allow_nan=False), strict=True)
    except Exception:  # not JSON at all, or its JSON form is not of the type either
        raise _type_error(pipeline_name, name, value, annotation, error) from None


# -- helpers ---------------------------------------------------------------------------------------


def _check_names(signature: inspect.Signature, pipeline_name: str, names: list[str]) -> None:
    parameters = signature.parameters
    if any(p.kind is _P.VAR_KEYWORD for p in parameters.values()):
        return  # **kwargs takes any name
    unknown = [n for n in names if n not in parameters or parameters[n].kind in (_P.POSITIONAL_ONLY, _P.VAR_POSITIONAL)]
    if unknown:
        raise ParameterError(
            f"pipeline {pipeline_name!r} called with the wrong arguments: it has no parameter "
            + ", ".join(repr(n) for n in unknown),
            why="a misspelt parameter would otherwise be dropped and the default used without a word",
            fix=f"use the pipeline's parameters: {_signature_text(signature)}",
        )


def _type_hints(func: Callable) -> dict[str, Any]:
    """The resolved annotations of ``func``; one that cannot be resolved (a name only imported
    under TYPE_CHECKING) is left unchecked rather than refusing every call."""
    try:
        return typing.get_type_hints(func, include_extras=True)
    except Exception:  # one bad annotation: resolve the others one by one
        hints = {}
        for name, p in inspect.signature(func).parameters.items():
            if p.annotation is _P.empty:
                continue
            try:
                hints[name] = typing.get_type_hints(_OneAnnotation(p.annotation, func), include_extras=True)["x"]
            except Exception:
                continue
        return hints


class _OneAnnotation:
    """What ``typing.get_type_hints`` reads of a function (its annotations and globals), with
    one annotation of ``func``'s, so that it is resolved alone."""

    def __init__(self, annotation: Any, func: Callable) -> None:
        self.__annotations__ = {"x": annotation}
        self.__globals__ = getattr(inspect.unwrap(func), "__globals__", {})


def _adapter(annotation: Any):
    """A strict pydantic TypeAdapter for ``annotation``, or None (no annotation, ``Any``, or a
    type pydantic cannot check)."""
    if annotation is _NO_CHECK or annotation is Any or annotation is _P.empty:
        return None
    from pydantic import TypeAdapter

    try:
        return TypeAdapter(annotation)
    except Exception:  # an arbitrary class: checked with isinstance by the caller
        return None


def _type_error(pipeline_name: str, name: str, value: Any, annotation: Any, error: Any, from_text: bool = False) -> ParameterError:
    expected = _type_text(annotation)
    detail = ""
    if error is not None and hasattr(error, "errors"):
        detail = "; ".join(e["msg"] for e in error.errors()[:3])
    given = f"{value!r}" if from_text else f"{value!r} ({type(value).__name__})"
    how = (
        "on the command line: a whole number for int, a number for float, true/false for bool, JSON for lists, "
        "mappings and models, null for none"
        if from_text
        else f"pass a value of type {expected}, or its JSON form"
    )
    return ParameterError(
        f"parameter {name!r} of pipeline {pipeline_name!r} must be {expected}, got {given}" + (f": {detail}" if detail else ""),
        why=f"the pipeline function declares `{name}: {expected}`, and a value of another type would fail, or mean something else, only once steps run",
        fix=f"give {name} a value of type {expected} ({how})",
    )


def _declaration(p: inspect.Parameter) -> str:
    """``name: type = default`` as the source says it (string annotations unquoted)."""
    text = {_P.VAR_POSITIONAL: "*", _P.VAR_KEYWORD: "**"}.get(p.kind, "") + p.name
    if p.annotation is not _P.empty:
        text += f": {_type_text(p.annotation)}"
    if p.default is not _P.empty:
        text += f" = {p.default!r}"
    return text


def _signature_text(signature: inspect.Signature) -> str:
    return ", ".join(_declaration(p) for p in signature.parameters.values()) or "none"


def _type_text(annotation: Any) -> str:
    if isinstance(annotation, str):
        return annotation
    if isinstance(annotation, type) and not typing.get_args(annotation):
        return annotation.__name__
    return repr(annotation).replace("typing.", "").replace("NoneType", "None")
