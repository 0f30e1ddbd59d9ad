"""The ``Status`` bodies a kube-apiserver answers errors with, worded as it words them.

Clients match on ``reason`` and ``code`` (the python client raises ``ApiException`` with the body,
kubectl prints ``message``), so both are kept exactly as apimachinery's ``errors`` package makes
them.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An error answered as a ``Status`` object with the HTTP code it carries."""

    def __init__(self, code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def body(self) -> dict[str, Any]:
        return failure(self.code, self.reason, self.message, self.details)


def failure(code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message, "reason": reason}
    if details is not None:
        body["details"] = details
    body["code"] = code
    return body


def success(details: dict[str, Any]) -> dict[str, Any]:
    """What a delete of a resource that is removed at once (not a pod) answers."""
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}


def _qualified(plural: str, group: str) -> str:
    return f"{plural}.{group}" if group else plural


def not_found(plural: str, group: str, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{_qualified(plural, group)} "{name}" not found', _details(plural, group, name))


def already_exists(plural: str, group: str, name: str) -> ApiError:
    return ApiError(409, "AlreadyExists", f'{_qualified(plural, group)} "{name}" already exists', _details(plural, group, name))


def conflict(plural: str, group: str, name: str, why: str = "the object has been modified; please apply your changes to the latest version and try again") -> ApiError:
    return ApiError(409, "Conflict", f'Operation cannot be fulfilled on {_qualified(plural, group)} "{name}": {why}', _details(plural, group, name))


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def invalid(kind: str, group: str, name: str, causes: list[dict[str, str]]) -> ApiError:
    """422: ``Kind "name" is invalid: field: message`` (a list in brackets for several causes)."""
    texts = [f"{c['field']}: {c['message']}" for c in causes]
    summary = texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]"
    return ApiError(422, "Invalid", f'{kind} "{name}" is invalid: {summary}', {**_details(kind, group, name), "causes": causes})


def expired(requested: int, oldest: int) -> ApiError:
    """410 for a watch from a resourceVersion the history no longer holds."""
    return ApiError(410, "Expired", f"too old resource version: {requested} ({oldest})")


def method_not_allowed(message: str = "the server does not allow this method on the requested resource") -> ApiError:
    return ApiError(405, "MethodNotAllowed", message)


def unsupported_media_type(content_type: str) -> ApiError:
    return ApiError(415, "UnsupportedMediaType", f"the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json (got {content_type})")


def _details(kind: str, group: str, name: str) -> dict[str, Any]:
    """``details`` name the resource (plural, or Kind for Invalid); the core group is omitted."""
    return {"name": name, "group": group, "kind": kind} if group else {"name": name, "kind": kind}
