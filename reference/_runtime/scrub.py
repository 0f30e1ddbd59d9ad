"""Scrubbing a run's sealed secrets out of what a step says (SPEC SEC-1).

Sealing keeps secrets out of the stored snapshot, but a step holds them in plain text and can
say them: ``raise ConnectionError(f"cannot reach {url}")`` with a password in the URL puts it in
the exception, which becomes the step's failure reason (stored in the run store, shown by
``orcakit run`` and ``runs show``) and its traceback (in the step log). So the step process
knows every value the runtime sealed for its run (they reach it in ``ORCAKIT_SNAPSHOT_SECRETS``)
and replaces each of them by the REDACTED marker in:

* the failure reason it records, and
* everything written through ``sys.stdout``/``sys.stderr`` (prints, tracebacks, ``logging``'s
  default handler): :func:`scrub_output` wraps both streams.

What is *not* covered, and says so in the README: bytes a child process or C code writes
straight to file descriptors 1 and 2, and values shorter than :data:`MIN_SCRUBBED_LENGTH`
(replacing every ``"1"`` in a log would destroy it and hide nothing).
"""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import unquote

from orcakit.redaction import _URL_PASSWORD, REDACTED

#: Shorter secret values are not scrubbed from text (see the module's docstring).
MIN_SCRUBBED_LENGTH = 4


def secret_strings(secrets: Mapping[str, Any] | Iterable[Any]) -> set[str]:
    """Every text form a sealed value can take in a message: the value itself (each leaf of a
    structured one), the password of a URL in it (also percent-decoded), and its ``repr`` and
    JSON escapes (``f"{value!r}"`` of a value with quotes or backslashes differs from it)."""
    values = secrets.values() if isinstance(secrets, Mapping) else secrets
    found: set[str] = set()

    def add(value: Any) -> None:
        if isinstance(value, Mapping):
            for item in value.values():
                add(item)
        elif isinstance(value, (list, tuple, set)):
            for item in value:
                add(item)
        elif isinstance(value, (str, int, float)) and not isinstance(value, bool):
            text = str(value)
            forms = {text, repr(text)[1:-1], json.dumps(text)[1:-1]}
            for match in _URL_PASSWORD.finditer(text):
                forms |= {match["password"], unquote(match["password"])}
            # (a "secret" made of the marker's own characters would be re-found in every marker)
            found.update(form for form in forms if len(form) >= MIN_SCRUBBED_LENGTH and form not in REDACTED)

    for value in values:
        add(value)
    return found


class Scrubber:
    """Replaces known secret strings in text by REDACTED (longest first, so a secret that
    contains another is hidden whole)."""

    def __init__(self, secrets: Mapping[str, Any] | Iterable[Any] = ()) -> None:
        self._strings: list[str] = []
        self.add(secrets)

    def add(self, secrets: Mapping[str, Any] | Iterable[Any]) -> None:
        self._strings = sorted(set(self._strings) | secret_strings(secrets), key=len, reverse=True)

    def __bool__(self) -> bool:
        return bool(self._strings)

    def __call__(self, text: str) -> str:
        # Until nothing changes: a marker put in can complete another secret with the text
        # around it ("ab" + "********" + "cd" when a secret is "b********c"). Each round removes
        # at least one secret occurrence and adds none, so this ends.
        while True:
            before = text
            for secret in self._strings:
                if secret in text:
                    text = text.replace(secret, REDACTED)
            if text == before:
                return text


class ScrubbingStream(io.TextIOBase):
    """A text stream that scrubs each write before passing it on. Whole writes are scrubbed: a
    secret split over two ``write`` calls is not recognised (``print`` and ``traceback`` write
    each message or line in one call)."""

    def __init__(self, stream: Any, scrubber: Scrubber) -> None:
        self.stream = stream
        self.scrubber = scrubber

    def write(self, text: str) -> int:
        self.stream.write(self.scrubber(text))
        if "\n" in text:  # keep the step log current, as the line-buffered stream it replaces
            self.stream.flush()
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self.stream.fileno()

    def isatty(self) -> bool:
        return self.stream.isatty()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.stream, "encoding", "utf-8")

    @property
    def buffer(self) -> Any:
        # Bytes written here bypass scrubbing; code that asks for the buffer writes binary data.
        return self.stream.buffer


def scrub_output(*secrets: Mapping[str, Any]) -> Scrubber:
    """Scrub ``secrets`` (maps as ``orcakit.snapshot_secrets`` returns them) from this
    process's ``sys.stdout`` and ``sys.stderr`` from now on; returns the scrubber (for
    failure reasons). Calling it again adds to the same scrubber."""
    scrubber = sys.stderr.scrubber if isinstance(sys.stderr, ScrubbingStream) else Scrubber()
    for found in secrets:
        scrubber.add(found)
    if not isinstance(sys.stdout, ScrubbingStream):
        sys.stdout = ScrubbingStream(sys.stdout, scrubber)
    if not isinstance(sys.stderr, ScrubbingStream):
        sys.stderr = ScrubbingStream(sys.stderr, scrubber)
    return scrubber
