"""What a real API server checks before it stores an object.

- **Schema**: the official JSON schemas bundled by ``kubernetes-validate``, pinned to one
  Kubernetes line (``SCHEMA_VERSION``) and loaded once per process. The strict variant forbids
  unknown fields, which is how ``fieldValidation`` finds them. A type mismatch is a decoding
  error on a real server (400 BadRequest); a missing required field or a bad enum value is 422.
- **Semantics**: DNS-1123 names (subdomain, or label for namespaces and container names), label
  keys and values (63 characters), resource quantities (a malformed one fails decoding: 400), and
  the Job-specific rules (``restartPolicy`` Never/OnFailure, a name short enough for its label).
"""

from __future__ import annotations

import functools
import json
import re
from importlib import resources as package_files
from typing import Any

import jsonschema
import referencing

from .resources import Resource
from .status import bad_request, invalid

SCHEMA_VERSION = "1.37.0"
_SCHEMA_DIR = f"kubernetes-json-schema/v{SCHEMA_VERSION}-local-strict"

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
QUANTITY = re.compile(r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$")

LABEL_MESSAGE = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end "
                 "with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
SUBDOMAIN_MESSAGE = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and "
                     "end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
                     "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
LABEL_VALUE_MESSAGE = ("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start "
                       "and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for "
                       "validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')")
QUANTITY_MESSAGE = "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"


def _load(name: str) -> Any:
    return json.loads(package_files.files("kubernetes_validate").joinpath(f"{_SCHEMA_DIR}/{name}").read_text())


@functools.cache
def _registry() -> referencing.Registry:
    definitions = referencing.Resource.from_contents(_load("_definitions.json"))
    return definitions @ referencing.Registry()


@functools.cache
def definitions() -> dict[str, Any]:
    """The schema definitions (``$defs``), for the OpenAPI documents of ``discovery``."""
    return _load("_definitions.json")["$defs"]


@functools.cache
def _validator(resource: Resource) -> jsonschema.protocols.Validator:
    group = resource.group.split(".")[0]
    suffix = f"{group}-{resource.version}" if group else resource.version
    schema = _load(f"{resource.kind.lower()}-{suffix}.json")
    return jsonschema.Draft202012Validator(schema, registry=_registry())


def _path(parts: Any) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _unknown_fields(error: jsonschema.ValidationError) -> list[str]:
    known = set(error.schema.get("properties", {}))
    base = _path(error.absolute_path)
    return [f"{base}.{name}" if base else name for name in error.instance if name not in known]


def _drop(obj: Any, dotted: str) -> None:
    parts = re.findall(r"[^.\[\]]+", dotted)
    for part in parts[:-1]:
        obj = obj[int(part)] if isinstance(obj, list) else obj[part]
    obj.pop(parts[-1], None)


def check_schema(resource: Resource, obj: dict[str, Any], field_validation: str) -> list[str]:
    """Validate ``obj`` against its schema; returns the warnings to send (``Warn``), drops
    unknown fields (``Warn``/``Ignore``), raises 400/422 for what a real server refuses."""
    name = obj.get("metadata", {}).get("name", "")
    unknown: list[str] = []
    causes: list[dict[str, str]] = []
    for error in _validator(resource).iter_errors(obj):
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            unknown += _unknown_fields(error)
            continue
        field = _path(error.absolute_path)
        if error.validator in ("type", "oneOf"):
            raise bad_request(f'{resource.kind} in version "{resource.version}" cannot be handled as a {resource.kind}: '
                              f"json: cannot unmarshal {_json_type(error.instance)} into Go struct field {field} of type "
                              f"{'/'.join(t for t in _types(error.schema))}")
        if error.validator == "required":
            missing = error.message.split("'")[1]
            causes.append({"reason": "FieldValueRequired", "message": "Required value", "field": f"{field}.{missing}" if field else missing})
        elif error.validator == "enum":
            supported = ", ".join(f'"{v}"' for v in error.validator_value if v is not None)
            causes.append({"reason": "FieldValueNotSupported", "message": f'Unsupported value: "{error.instance}": supported values: {supported}', "field": field})
        else:
            causes.append({"reason": "FieldValueInvalid", "message": f"Invalid value: {json.dumps(error.instance)}: {error.message}", "field": field})
    if unknown and field_validation == "Strict":
        listing = ", ".join(f'unknown field "{f}"' for f in sorted(unknown))
        raise bad_request(f"strict decoding error: {listing}")
    for field in unknown:
        _drop(obj, field)
    if causes:
        raise invalid(resource.kind, resource.group, name, causes)
    return [f'unknown field "{f}"' for f in sorted(unknown)] if field_validation == "Warn" else []


def _json_type(value: Any) -> str:
    names = {str: "string", bool: "bool", int: "number", float: "number", list: "array", dict: "object"}
    return names.get(type(value), "null")


def _types(schema: dict[str, Any]) -> list[str]:
    kinds = schema.get("type", [])
    return [t for t in ([kinds] if isinstance(kinds, str) else kinds) if t != "null"] or ["value"]


def _invalid_cause(field: str, value: Any, message: str) -> dict[str, str]:
    return {"reason": "FieldValueInvalid", "message": f"Invalid value: {json.dumps(value)}: {message}", "field": field}


def _name_causes(field: str, name: str, label: bool) -> list[dict[str, str]]:
    limit, pattern, message = (63, DNS1123_LABEL, LABEL_MESSAGE) if label else (253, DNS1123_SUBDOMAIN, SUBDOMAIN_MESSAGE)
    causes = []
    if len(name) > limit:
        causes.append(_invalid_cause(field, name, f"must be no more than {limit} characters"))
    if not pattern.match(name):
        causes.append(_invalid_cause(field, name, message))
    return causes


def _label_causes(labels: dict[str, Any], field: str) -> list[dict[str, str]]:
    causes = []
    for key, value in labels.items():
        prefix, _, name = key.rpartition("/")
        if (prefix and not DNS1123_SUBDOMAIN.match(prefix)) or not name or len(name) > 63 or not LABEL_VALUE.match(name):
            causes.append(_invalid_cause(field, key, "name part " + LABEL_VALUE_MESSAGE.replace("a valid label must be an empty string or", "must")))
        if not isinstance(value, str):
            continue
        if len(value) > 63:
            causes.append(_invalid_cause(field, value, "must be no more than 63 characters"))
        if not LABEL_VALUE.match(value):
            causes.append(_invalid_cause(field, value, LABEL_VALUE_MESSAGE))
    return causes


def _pod_spec_causes(spec: dict[str, Any], field: str) -> list[dict[str, str]]:
    causes = []
    seen: set[str] = set()
    for index, container in enumerate(spec.get("containers") or []):
        where = f"{field}.containers[{index}]"
        name = container.get("name", "")
        causes += _name_causes(f"{where}.name", name, label=True)
        if name in seen:
            causes.append({"reason": "FieldValueDuplicate", "message": f"Duplicate value: {json.dumps(name)}", "field": f"{where}.name"})
        seen.add(name)
        if not container.get("image"):
            causes.append({"reason": "FieldValueRequired", "message": "Required value", "field": f"{where}.image"})
        for kind in ("limits", "requests"):
            for quantity in ((container.get("resources") or {}).get(kind) or {}).values():
                if not QUANTITY.match(str(quantity)):
                    raise bad_request(f"cannot be handled: {QUANTITY_MESSAGE}")
    if spec.get("restartPolicy") not in (None, "Always", "OnFailure", "Never"):
        causes.append({"reason": "FieldValueNotSupported", "field": f"{field}.restartPolicy",
                       "message": f'Unsupported value: "{spec["restartPolicy"]}": supported values: "Always", "OnFailure", "Never"'})
    if not spec.get("containers"):
        causes.append({"reason": "FieldValueRequired", "message": "Required value", "field": f"{field}.containers"})
    return causes


def check_semantics(resource: Resource, obj: dict[str, Any]) -> None:
    meta = obj.get("metadata", {})
    name = meta.get("name", "")
    causes = _name_causes("metadata.name", name, label=resource.label_name)
    causes += _label_causes(meta.get("labels") or {}, "metadata.labels")
    spec = obj.get("spec") or {}
    if resource.kind == "Pod":
        causes += _pod_spec_causes(spec, "spec")
    elif resource.kind == "Job":
        template = spec.get("template") or {}
        causes += _pod_spec_causes(template.get("spec") or {}, "spec.template.spec")
        causes += _label_causes((template.get("metadata") or {}).get("labels") or {}, "spec.template.labels")
        if (template.get("spec") or {}).get("restartPolicy") not in ("Never", "OnFailure"):
            causes.append({"reason": "FieldValueNotSupported", "field": "spec.template.spec.restartPolicy",
                           "message": f'Unsupported value: "{(template.get("spec") or {}).get("restartPolicy", "Always")}": supported values: "OnFailure", "Never"'})
    elif resource.kind == "CronJob":
        template = ((spec.get("jobTemplate") or {}).get("spec") or {}).get("template") or {}
        causes += _pod_spec_causes(template.get("spec") or {}, "spec.jobTemplate.spec.template.spec")
        if len(name) > 52:
            causes.append(_invalid_cause("metadata.name", name, "must be no more than 52 characters"))
    if causes:
        raise invalid(resource.kind, resource.group, name, causes)


def validate(resource: Resource, obj: dict[str, Any], field_validation: str) -> list[str]:
    """All checks, in the order a real server makes them; returns the warnings to send."""
    if field_validation not in ("Strict", "Warn", "Ignore"):
        raise bad_request(f'fieldValidation must be one of "Ignore", "Warn", or "Strict", got "{field_validation}"')
    warnings = check_schema(resource, obj, field_validation)
    check_semantics(resource, obj)
    return warnings
