"""What counts as a secret, and how it is hidden (SPEC SEC-1). One definition for errors, the
CLI, the run store's messages and the conformance reports."""

from __future__ import annotations

import re
from typing import Any

#: A key containing one of these (any case) names a secret: its value is never shown.
SECRET_KEY_MARKERS = ("password", "secret", "token", "key", "credential")
REDACTED = "********"
_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^/:@\s]*:)(?P<password>[^@/\s]+)(?P<tail>@)")


def is_secret_key(key: str) -> bool:
    lowered = key.lower()
    return any(marker in lowered for marker in SECRET_KEY_MARKERS)


def redact(value: Any, key: str = "") -> Any:
    """``value`` with secret-looking entries replaced by :data:`REDACTED`, recursively; URLs
    with an embedded password (``scheme://user:pass@host``) keep everything but the password."""
    if key and is_secret_key(key) and value not in (None, "", {}, []):
        return REDACTED
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return _URL_PASSWORD.sub(lambda m: f"{m['head']}{REDACTED}{m['tail']}", value)
    return value
