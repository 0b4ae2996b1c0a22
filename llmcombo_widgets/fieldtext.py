"""Typed text <-> values, and what a field accepts in words.

What a field shows for a value (:func:`format_value`), the value of what was typed
(:func:`parse_text`), the widget kind of a domain (:func:`field_kind`) and the accepted values
in words (:func:`domain_words`, :func:`number_words`).
"""

from __future__ import annotations

import json
import math
from typing import Any

from llmcombo.featuremodel import (
    Attribute,
    BoolType,
    EnumType,
    GradientType,
    MappingType,
    ModelRefType,
    NumberType,
    RangeType,
    StringListType,
    StringType,
)
from llmcombo.featuremodel.types import AttrType


def field_kind(t: AttrType, attribute: Attribute) -> str:
    if isinstance(t, GradientType):
        return "gradient"
    if isinstance(t, NumberType):
        return "number"
    if isinstance(t, BoolType):
        return "bool"
    if isinstance(t, EnumType):
        return "enum_open" if t.open else "enum"
    if isinstance(t, ModelRefType):
        return "model"
    if isinstance(t, StringListType):
        return "string_list"
    if isinstance(t, RangeType):
        return "range"
    if isinstance(t, MappingType):
        return "mapping"
    if isinstance(t, StringType) and t.multiline:
        return "text"
    return "string"


def _num(x: Any) -> str:
    if isinstance(x, bool):
        return "true" if x else "false"
    if isinstance(x, float):
        if math.isfinite(x) and x.is_integer() and abs(x) < 1e15:
            return f"{x:.1f}"
        return repr(x)
    return str(x)


def format_value(kind: str, value: Any) -> str:
    """The text a field shows for a value (``""`` when unset)."""
    if value is None:
        return ""
    if kind == "string_list":
        return "\n".join(value) if isinstance(value, list) else str(value)
    if kind == "mapping":
        from llmcombo.configuration import dump_yaml

        return dump_yaml(value).rstrip("\n") if isinstance(value, dict) else str(value)
    if isinstance(value, (bool, int, float)):
        return _num(value)
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return str(value)


def _number(text: str) -> Any:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return None


def parse_text(kind: str, text: str) -> Any:
    """The value of what was typed. ``""`` means unset (None). Text that does not read as the
    field's type is kept as text, so validation explains what is wrong with it in words."""
    import yaml

    if text is None:
        return None
    if kind in ("string", "text", "model", "enum_open", "enum"):
        return text if text.strip() else None
    stripped = text.strip()
    if not stripped:
        return None
    if kind == "string_list":
        return [line for line in text.splitlines() if line.strip()]
    if kind in ("number", "gradient"):
        n = _number(stripped)
        if n is not None:
            return n
    if kind == "bool":
        low = stripped.lower()
        if low in ("true", "yes", "on"):
            return True
        if low in ("false", "no", "off"):
            return False
        return stripped
    try:
        value = yaml.safe_load(stripped)
    except yaml.YAMLError:
        return stripped
    if kind == "gradient" and isinstance(value, list):
        value = [_number(v) if isinstance(v, str) and _number(v) is not None else v for v in value]
    return value


def describe_domain(t: AttrType) -> str:
    if isinstance(t, GradientType):
        return f"{describe_domain(t.element)}, or a per-layer list like [0, 0.5, 1]"
    return t.describe()


def _n(x: float) -> str:
    return f"{x:g}"


def number_words(t: NumberType) -> str:
    """An interval in words, for people who do not read ``(0, 1]``."""
    what = "a whole number" if t.integer else "a number"
    lo, hi = t.minimum, t.maximum
    if lo is None and hi is None:
        return f"any {what[2:] if what.startswith('a ') else what}"
    if lo is not None and hi is not None:
        if not t.min_open and not t.max_open:
            return f"{what} between {_n(lo)} and {_n(hi)}"
        if t.min_open and not t.max_open:
            return f"{what} above {_n(lo)}, up to {_n(hi)}"
        if not t.min_open and t.max_open:
            return f"{what} from {_n(lo)} up to, but not, {_n(hi)}"
        return f"{what} between {_n(lo)} and {_n(hi)}, but not {_n(lo)} or {_n(hi)} themselves"
    if lo is not None:
        return f"{what} above {_n(lo)}" if t.min_open else f"{what}, {_n(lo)} or more"
    assert hi is not None  # not both are None
    return f"{what} below {_n(hi)}" if t.max_open else f"{what}, {_n(hi)} or less"


def domain_words(t: AttrType) -> str:
    """What a field accepts, in words (``describe_domain`` writes intervals as ``(0, 1]``)."""
    if isinstance(t, GradientType):
        inner = domain_words(t.element)
        if isinstance(t.element, BoolType):
            return inner
        return f"{inner} (or one value per layer, like [0, 0.5, 1])"
    if isinstance(t, NumberType):
        return number_words(t)
    if isinstance(t, BoolType):
        return "yes or no"
    if isinstance(t, ModelRefType):
        return "a model: zoo:NAME, a folder on this computer, or a Hub id like owner/name"
    if isinstance(t, StringListType):
        return "one entry per line"
    if isinstance(t, RangeType):
        return "two whole numbers [start, end], the end not included"
    if isinstance(t, EnumType) and not t.open:
        return ""  # the dropdown lists them
    return ""
