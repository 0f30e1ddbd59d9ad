"""``application/vnd.kubernetes.protobuf``: the bodies kubectl's typed clients send and accept.

The wire form is apimachinery's protobuf serializer (``runtime/serializer/protobuf``): the magic
``k8s\\x00`` followed by a ``runtime.Unknown`` message whose ``typeMeta`` names the apiVersion and
kind and whose ``raw`` is the object's own message. The messages are those of the Kubernetes
``generated.proto`` files, loaded at run time from the descriptor set in ``proto/`` (see
``proto/regenerate.sh`` for where it comes from).

The JSON form of a message follows the Go types' JSON encoding, which the proto field names
mirror (go-to-protobuf names each field after its ``json`` tag), with the types whose wire form
differs: ``Time``/``MicroTime`` (seconds, nanos → RFC 3339), ``Duration`` (nanoseconds → Go's
duration text), ``Quantity`` (its string), ``IntOrString``, ``RawExtension``/``FieldsV1`` (raw
JSON bytes), ``bytes`` fields (base64, as Go's JSON encodes ``[]byte``) and the ``items``
wrappers of named string lists (``ExtraValue``). Go marshals every non-pointer field, so a zero
scalar on the wire usually means "unset"; it is dropped, except for the pointer fields where zero
or false is a choice (``backoffLimit: 0``, ``automountServiceAccountToken: false``, ...).
"""

from __future__ import annotations

import base64
import functools
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.descriptor import FieldDescriptor

from .status import bad_request

MEDIA_TYPE = "application/vnd.kubernetes.protobuf"
MAGIC = b"k8s\x00"
_DESCRIPTORS = Path(__file__).parent / "proto" / "kubernetes.desc"
_META = "k8s.io.apimachinery.pkg.apis.meta.v1"
# apiVersion -> the proto package of its messages
_PACKAGES = {
    "v1": "k8s.io.api.core.v1", "batch/v1": "k8s.io.api.batch.v1", "rbac.authorization.k8s.io/v1": "k8s.io.api.rbac.v1",
    "authorization.k8s.io/v1": "k8s.io.api.authorization.v1", "authentication.k8s.io/v1": "k8s.io.api.authentication.v1", "events.k8s.io/v1": "k8s.io.api.events.v1",
    "meta.k8s.io/v1": _META,
}
# pointer fields (``*int32``, ``*bool``, ...) whose zero value is a choice the JSON form keeps
KEEP_ZERO = frozenset({
    "backoffLimit", "backoffLimitPerIndex", "maxFailedIndexes", "completions", "parallelism", "activeDeadlineSeconds",
    "ttlSecondsAfterFinished", "suspend", "manualSelector", "startingDeadlineSeconds", "successfulJobsHistoryLimit",
    "failedJobsHistoryLimit", "terminationGracePeriodSeconds", "automountServiceAccountToken", "shareProcessNamespace",
    "hostUsers", "optional", "immutable", "privileged", "runAsNonRoot", "runAsUser", "runAsGroup", "fsGroup",
    "readOnlyRootFilesystem", "allowPrivilegeEscalation", "defaultMode", "gracePeriodSeconds", "orphanDependents",
    "allowed", "denied", "priority", "started",
    # non-pointer fields Go's JSON always writes (no omitempty)
    "restartCount", "exitCode", "ready",
})
# embedded Go structs (``json:""``): their own message on the wire, their fields inline in JSON
INLINE = frozenset({"volumeSource", "persistentVolumeSource", "localObjectReference", "handler", "ephemeralContainerCommon"})
_ZERO_GO_TIME = -62135596800  # time.Time{}.Unix(): what a Go zero time would say if it were sent


@functools.cache
def _pool() -> descriptor_pool.DescriptorPool:
    files = descriptor_pb2.FileDescriptorSet.FromString(_DESCRIPTORS.read_bytes())
    pool = descriptor_pool.DescriptorPool()
    for file in files.file:
        pool.Add(file)
    return pool


def _class(full_name: str) -> Any:
    return message_factory.GetMessageClass(_pool().FindMessageTypeByName(full_name))


def message_name(api_version: str, kind: str) -> str | None:
    if kind == "Status" and api_version == "v1":
        return f"{_META}.Status"  # errors and delete answers: meta/v1 Status, sent as "v1"
    package = _PACKAGES.get(api_version)
    if package is None:
        return None
    try:
        _pool().FindMessageTypeByName(f"{package}.{kind}")
    except KeyError:
        return None
    return f"{package}.{kind}"


# decoding: protobuf -> the JSON form -------------------------------------------------------
def decode(body: bytes) -> dict[str, Any]:
    """The object a ``k8s\\x00`` body carries, as its JSON form (with apiVersion and kind)."""
    if not body.startswith(MAGIC):
        raise bad_request("provided protobuf data does not have the expected prefix k8s\\x00 (magic bytes)")
    unknown = _class("k8s.io.apimachinery.pkg.runtime.Unknown").FromString(body[len(MAGIC):])
    api_version, kind = unknown.typeMeta.apiVersion, unknown.typeMeta.kind
    name = message_name(api_version, kind)
    if name is None:
        # what the server's protobuf serializer says for a kind it has no message for
        raise bad_request(f'no kind "{kind}" is registered for version "{api_version}" in scheme "pkg/runtime/scheme.go:100"')
    obj = to_json(_class(name).FromString(unknown.raw))
    return {"apiVersion": api_version, "kind": kind, **obj}


def _rfc3339(seconds: int, nanos: int, micro: bool) -> str | None:
    if not seconds and not nanos or seconds == _ZERO_GO_TIME:
        return None
    stamp = datetime.fromtimestamp(seconds + nanos / 1e9, timezone.utc)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ" if micro else "%Y-%m-%dT%H:%M:%SZ")


def _go_duration(nanoseconds: int) -> str:
    if nanoseconds == 0:
        return "0s"
    seconds, rest = divmod(abs(nanoseconds), 10**9)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    text = (f"{hours}h" if hours else "") + (f"{minutes}m" if hours or minutes else "")
    text += f"{seconds}.{rest:09d}".rstrip("0").rstrip(".") + "s"
    return ("-" if nanoseconds < 0 else "") + text


def _special(message: Any) -> tuple[bool, Any]:
    name = message.DESCRIPTOR.full_name
    if name in (f"{_META}.Time", f"{_META}.MicroTime"):
        return True, _rfc3339(message.seconds, message.nanos, name.endswith("MicroTime"))
    if name == f"{_META}.Duration":
        return True, _go_duration(message.duration)
    if name == "k8s.io.apimachinery.pkg.api.resource.Quantity":
        return True, message.string
    if name == "k8s.io.apimachinery.pkg.util.intstr.IntOrString":
        return True, message.strVal if message.type == 1 else message.intVal
    if name == "k8s.io.apimachinery.pkg.runtime.RawExtension":
        return True, _raw_json(message.raw)
    if name == f"{_META}.FieldsV1":
        return True, _raw_json(message.Raw)
    fields = message.DESCRIPTOR.fields
    if len(fields) == 1 and fields[0].name == "items" and _repeated(fields[0]):
        return True, list(message.items)  # a named []string (ExtraValue, Verbs, ...)
    return False, None


def _raw_json(raw: bytes) -> Any:
    return json.loads(raw) if raw else None


def _value(field: FieldDescriptor, value: Any) -> Any:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return to_json(value)
    if field.type == FieldDescriptor.TYPE_BYTES:
        return base64.b64encode(value).decode()
    return value


def _repeated(field: FieldDescriptor) -> bool:
    # protobuf 7 dropped ``label`` for ``is_repeated``; older runtimes have only ``label``
    repeated = getattr(field, "is_repeated", None)
    return bool(repeated) if repeated is not None else field.label == FieldDescriptor.LABEL_REPEATED


def _is_map(field: FieldDescriptor) -> bool:
    return field.type == FieldDescriptor.TYPE_MESSAGE and field.message_type.GetOptions().map_entry


def to_json(message: Any) -> Any:
    special, value = _special(message)
    if special:
        return value
    obj: dict[str, Any] = {}
    for field, value in message.ListFields():
        if field.name in INLINE and field.type == FieldDescriptor.TYPE_MESSAGE:
            obj.update(to_json(value) or {})
        elif _is_map(field):
            value_field = field.message_type.fields_by_name["value"]
            obj[field.name] = {k: _value(value_field, v) for k, v in value.items()}
        elif _repeated(field):
            obj[field.name] = [_value(field, item) for item in value]
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            converted = to_json(value)
            if converted is not None:
                obj[field.name] = converted
        elif value or field.name in KEEP_ZERO:
            obj[field.name] = _value(field, value)
    return obj


# encoding: the JSON form -> protobuf -------------------------------------------------------
def encode(obj: dict[str, Any]) -> bytes | None:
    """``obj`` as a ``k8s\\x00`` body, or None when no message describes its kind (the caller
    answers JSON then, which the client also accepts)."""
    api_version, kind = obj.get("apiVersion", ""), obj.get("kind", "")
    name = message_name(api_version, kind)
    if name is None:
        return None
    raw = from_json(_class(name), {k: v for k, v in obj.items() if k not in ("apiVersion", "kind")}).SerializeToString()
    unknown = _class("k8s.io.apimachinery.pkg.runtime.Unknown")()
    unknown.typeMeta.apiVersion, unknown.typeMeta.kind = api_version, kind
    unknown.raw = raw
    return MAGIC + unknown.SerializeToString()


def _parse_time(text: str) -> tuple[int, int]:
    stamp = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return int(stamp.timestamp()), stamp.microsecond * 1000


def _set_special(message: Any, value: Any) -> bool:
    name = message.DESCRIPTOR.full_name
    if name in (f"{_META}.Time", f"{_META}.MicroTime"):
        message.seconds, message.nanos = _parse_time(value)
    elif name == "k8s.io.apimachinery.pkg.api.resource.Quantity":
        message.string = str(value)
    elif name == "k8s.io.apimachinery.pkg.util.intstr.IntOrString":
        if isinstance(value, int):
            message.type, message.intVal = 0, value
        else:
            message.type, message.strVal = 1, str(value)
    elif name == "k8s.io.apimachinery.pkg.runtime.RawExtension":
        message.raw = json.dumps(value).encode()
    elif name == f"{_META}.FieldsV1":
        message.Raw = json.dumps(value).encode()
    elif len(message.DESCRIPTOR.fields) == 1 and message.DESCRIPTOR.fields[0].name == "items" and isinstance(value, list):
        message.items.extend(value)
    else:
        return False
    return True


def _scalar(field: FieldDescriptor, value: Any) -> Any:
    if field.type == FieldDescriptor.TYPE_BYTES:
        return base64.b64decode(value)
    return value


def from_json(cls_or_message: Any, obj: Any) -> Any:
    message = cls_or_message() if isinstance(cls_or_message, type) else cls_or_message
    if _set_special(message, obj) or not isinstance(obj, dict):
        return message
    fields = message.DESCRIPTOR.fields_by_name
    obj = dict(obj)
    for name in INLINE & set(fields):
        inlined = {k: obj.pop(k) for k in list(obj) if k in fields[name].message_type.fields_by_name}
        if inlined:
            from_json(getattr(message, name), inlined)
            getattr(message, name).SetInParent()
    for key, value in obj.items():
        field = fields.get(key)
        if field is None or value is None:
            continue  # a field the proto does not know (never the case for the served kinds' own fields)
        target = getattr(message, key)
        if _is_map(field):
            value_field = field.message_type.fields_by_name["value"]
            for k, v in value.items():
                if value_field.type == FieldDescriptor.TYPE_MESSAGE:
                    from_json(target[k], v)
                else:
                    target[k] = _scalar(value_field, v)
        elif _repeated(field):
            for item in value:
                if field.type == FieldDescriptor.TYPE_MESSAGE:
                    from_json(target.add(), item)
                else:
                    target.append(_scalar(field, item))
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            from_json(target, value)
            getattr(message, key).SetInParent()
        else:
            setattr(message, key, _scalar(field, value))
    return message
