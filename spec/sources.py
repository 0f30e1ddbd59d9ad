"""``'module:qualname'`` references: how flavors, steps and pipelines are named across processes."""

from __future__ import annotations

import importlib
from typing import Any


def import_object(reference: str) -> Any:
    """The object ``'module:qualname'`` names; raises ImportError or AttributeError as Python
    does, for the caller to turn into an error that fits its context."""
    module_name, _, qualname = reference.partition(":")
    value: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        value = getattr(value, part)
    return value
