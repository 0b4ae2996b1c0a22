"""Reading the shape of configuration data (YAML parsed into dicts and lists) without assuming
it is valid: validation reports what is wrong; these helpers only never crash on it."""

from __future__ import annotations

from typing import Any


def as_list(value: Any) -> list:
    """A list of entries: a list or tuple as it is, one mapping as a list of one, anything else
    (None, a number, text) as no entries."""
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, dict):
        return [value]
    return []


def as_dict(value: Any) -> dict:
    """A mapping as it is, anything else as an empty mapping."""
    return value if isinstance(value, dict) else {}


def params_of(entry: Any) -> dict:
    """The ``parameters`` mapping of an entry (empty when missing or not a mapping)."""
    return as_dict(as_dict(entry).get("parameters"))


def strings(value: Any) -> list[str]:
    """Text entries: one string as a list of one, the strings of a list, nothing otherwise."""
    if isinstance(value, str):
        return [value]
    return [x for x in value if isinstance(x, str)] if isinstance(value, list) else []
