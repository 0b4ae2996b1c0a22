"""Typed attribute domains.

Each domain checks a value and returns a list of :class:`Issue` (never raises for a user's value),
describes itself as JSON for the widgets, and names its UVL type. The domains know nothing about
language models; ``ModelRefType`` only says "a reference to something external".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from llmcombo.featuremodel.issues import Issue, error, warning

# A coercer reads a value the way the engine behind the model does: ``fn(value) -> (ok, value
# as read, why not)``. Types that have one accept what it accepts (with a warning that shows the
# value as read, code ``coerced``) instead of requiring the exact Python type.
Coercer = Callable[[Any], "tuple[bool, Any, str]"]


def _coerced(path: str, label: str, written: Any, read: Any) -> Issue:
    return warning(path, f"{label} is written as {_show(written)}, which is read as {_show(read)}.",
                   f"Write {_show(read)} to say so plainly.", "coerced")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class AttrType:
    """Base class of attribute domains."""

    kind: str = "any"
    uvl_type: str = "String"

    def check(self, value: Any, path: str, label: str) -> list[Issue]:  # pragma: no cover
        raise NotImplementedError

    def describe(self) -> str:
        return self.kind

    def to_json(self) -> dict:
        return {"kind": self.kind}


@dataclass
class BoolType(AttrType):
    kind = "bool"
    uvl_type = "Boolean"
    coerce: Coercer | None = field(default=None, repr=False, compare=False)

    def check(self, value, path, label):
        if isinstance(value, bool):
            return []
        if self.coerce is not None:
            ok, read, _why = self.coerce(value)
            if ok:
                return [_coerced(path, label, value, read)]
        return [error(path, f"{label} must be true or false, not {_show(value)}.",
                      "Use true or false.", "type")]

    def describe(self) -> str:
        return "true/false"


@dataclass
class NumberType(AttrType):
    """An int or float with optional bounds; each bound can be open or closed.

    ``severity``: what a value outside the bounds is (``"warning"``: the bounds are advice, the
    engine takes any number); ``limits``: a second, wider domain whose violation is an error
    whatever ``severity`` says; ``coerce``: read values the engine's way (text "1e-5" as a
    number ...); ``finite``: what a NaN or infinity is (an error, or a warning)."""

    integer: bool = False
    minimum: float | None = None
    maximum: float | None = None
    min_open: bool = False
    max_open: bool = False
    nullable: bool = False
    severity: str = "error"
    limits: NumberType | None = None
    coerce: Coercer | None = field(default=None, repr=False, compare=False)
    finite: str = "error"

    @property
    def kind(self) -> str:  # type: ignore[override]
        return "int" if self.integer else "float"

    @property
    def uvl_type(self) -> str:  # type: ignore[override]
        return "Integer" if self.integer else "Real"

    def interval(self) -> str:
        if self.minimum is None and self.maximum is None:
            return "any number"
        lo = "(" if self.min_open or self.minimum is None else "["
        hi = ")" if self.max_open or self.maximum is None else "]"
        lo_v = "-inf" if self.minimum is None else _fmt(self.minimum)
        hi_v = "inf" if self.maximum is None else _fmt(self.maximum)
        return f"{lo}{lo_v}, {hi_v}{hi}"

    def describe(self) -> str:
        what = "a whole number" if self.integer else "a number"
        if self.minimum is None and self.maximum is None:
            return what
        return f"{what} in {self.interval()}"

    def in_range(self, value: float) -> bool:
        if self.minimum is not None:
            if value < self.minimum or (self.min_open and value == self.minimum):
                return False
        if self.maximum is not None:
            if value > self.maximum or (self.max_open and value == self.maximum):
                return False
        return True

    def range_sentence(self) -> str:
        parts = []
        if self.minimum is not None:
            parts.append(f"greater than {_fmt(self.minimum)}" if self.min_open
                         else f"at least {_fmt(self.minimum)}")
        if self.maximum is not None:
            parts.append(f"less than {_fmt(self.maximum)}" if self.max_open
                         else f"at most {_fmt(self.maximum)}")
        return " and ".join(parts)

    def check(self, value: Any, path: str, label: str) -> list[Issue]:
        if value is None and self.nullable:
            return []
        if self.integer:
            ok = isinstance(value, int) and not isinstance(value, bool)
        else:
            ok = _is_number(value)
        issues: list[Issue] = []
        if not ok and self.coerce is not None:
            ok, read, _why = self.coerce(value)
            if ok and read is None:
                return [_coerced(path, label, value, read)]
            if ok:
                issues.append(_coerced(path, label, value, read))
                value = read
        if not ok:
            return [error(path, f"{label} must be {self.describe()}, not {_show(value)}.",
                          f"Type {self.describe()}.", "type")]
        if isinstance(value, float) and not math.isfinite(value):
            make = warning if self.finite == "warning" else error
            return issues + [make(path, f"{label} must be a finite number, not {value}.",
                                  code="range")]
        if self.limits is not None and not self.limits.in_range(value):
            return issues + [error(path, f"{label} must be {self.limits.range_sentence()}; "
                                         f"{_fmt(value)} is out of range {self.limits.interval()}.",
                                   f"Pick a value in {self.limits.interval()}.", "range")]
        if not self.in_range(value):
            if self.severity == "warning":
                return issues + [warning(path, f"{label} {_fmt(value)} is outside the usual range "
                                               f"{self.interval()} ({self.range_sentence()}); it "
                                               "is accepted, but check that it is what you meant.",
                                         f"Values in {self.interval()} are the usual ones.",
                                         "range")]
            return issues + [error(path, f"{label} must be {self.range_sentence()}; {_fmt(value)} "
                                         f"is out of range {self.interval()}.",
                                   f"Pick a value in {self.interval()}.", "range")]
        return issues

    def to_json(self) -> dict:
        return {"kind": self.kind, "minimum": self.minimum, "maximum": self.maximum,
                "min_open": self.min_open, "max_open": self.max_open, "nullable": self.nullable}


def IntType(minimum=None, maximum=None, **kw) -> NumberType:  # noqa: N802 - reads like a type
    return NumberType(integer=True, minimum=minimum, maximum=maximum, **kw)


def FloatType(minimum=None, maximum=None, **kw) -> NumberType:  # noqa: N802
    return NumberType(integer=False, minimum=minimum, maximum=maximum, **kw)


def _fmt(x: float) -> str:
    if isinstance(x, float) and x.is_integer():
        return str(int(x)) if abs(x) < 1e15 else str(x)
    return f"{x:g}"


@dataclass
class StringType(AttrType):
    kind = "string"
    uvl_type = "String"
    nonempty: bool = True
    must_contain: str | None = None
    multiline: bool = False

    def check(self, value, path, label):
        if not isinstance(value, str):
            return [error(path, f"{label} must be text, not {_show(value)}.", code="type")]
        if self.nonempty and not value.strip():
            return [error(path, f"{label} is empty.", "Type some text.", "empty")]
        if self.must_contain and self.must_contain not in value:
            return [error(path, f"{label} must contain {self.must_contain} (where the input goes).",
                          f"Add {self.must_contain} to the text.", "placeholder")]
        return []

    def to_json(self) -> dict:
        return {"kind": self.kind, "nonempty": self.nonempty, "must_contain": self.must_contain,
                "multiline": self.multiline}


@dataclass
class EnumType(AttrType):
    """One of a fixed list of choices (``open=True`` also accepts other text, e.g. a model id)."""

    choices: Sequence[Any] = ()
    open: bool = False
    open_type: AttrType | None = None
    labels: dict = field(default_factory=dict)
    kind = "enum"
    uvl_type = "String"

    def check(self, value, path, label):
        if value in list(self.choices):
            return []
        if self.open and self.open_type is not None:
            return self.open_type.check(value, path, label)
        shown = ", ".join(str(c) for c in self.choices)
        return [error(path, f"{label} must be one of {shown}; got {_show(value)}.",
                      _did_you_mean(value, self.choices) or f"Choose one of: {shown}.", "choice")]

    def describe(self) -> str:
        text = "one of " + ", ".join(str(c) for c in self.choices)
        if self.open and self.open_type is not None:
            text += ", or " + self.open_type.describe()
        return text

    def to_json(self) -> dict:
        return {"kind": self.kind, "choices": list(self.choices), "open": self.open,
                "open_type": self.open_type.to_json() if self.open_type else None,
                "labels": dict(self.labels)}


@dataclass
class ModelRefType(AttrType):
    """A reference to a model: a local folder, a hub id, or a named local model (``zoo:NAME``)."""

    kind = "model"
    uvl_type = "String"

    def check(self, value, path, label):
        if not isinstance(value, str) or not value.strip():
            return [error(path, f"{label} must name a model (a local folder or a Hugging Face id "
                                f"like owner/name), not {_show(value)}.",
                          "Type a folder path, a hub id, or zoo:NAME for a zoo model.", "model")]
        if value != value.strip():
            return [error(path, f"{label} has leading or trailing spaces.", "Remove the spaces.",
                          "model")]
        return []

    def describe(self) -> str:
        return "a model (folder, hub id or zoo:NAME)"


@dataclass
class StringListType(AttrType):
    """A list of texts. ``single``: one text is accepted as a list of one (when false it is an
    error, as for engines that require a list); ``empty_items``: what an empty text in the list
    is (an error, or a warning)."""

    kind = "string_list"
    uvl_type = "String"
    min_items: int = 0
    single: bool = True
    empty_items: str = "error"

    def check(self, value, path, label):
        if isinstance(value, str):
            if not self.single:
                return [error(path, f"{label} must be a list of texts, not one text "
                                    f"{_show(value)}.",
                              f"Write it as a list: [{_show(value)}].", "type")]
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            return [error(path, f"{label} must be a list of texts, not {_show(value)}.",
                          "Write one text per line.", "type")]
        if len(value) < self.min_items:
            return [error(path, f"{label} needs at least {self.min_items} item(s).", code="count")]
        if any(not v.strip() for v in value):
            make = warning if self.empty_items == "warning" else error
            return [make(path, f"{label} contains an empty text.", "Remove the empty line.",
                         "empty")]
        return []

    def describe(self) -> str:
        return "a list of texts"

    def to_json(self) -> dict:
        return {"kind": self.kind, "min_items": self.min_items}


@dataclass
class RangeType(AttrType):
    """A half-open integer range ``[start, end)`` with ``start < end`` (e.g. a layer range)."""

    kind = "range"
    uvl_type = "String"
    minimum: int = 0
    empty: str = "error"  # what an empty range (start >= end) is: an error, or a warning
    coerce: Coercer | None = field(default=None, repr=False, compare=False)  # for each bound

    def check(self, value, path, label):
        ok = (isinstance(value, (list, tuple)) and len(value) == 2
              and all(isinstance(v, int) and not isinstance(v, bool) for v in value))
        if not ok and self.coerce is not None and isinstance(value, (list, tuple)) \
                and len(value) == 2:
            read = [self.coerce(v) for v in value]
            if all(r[0] for r in read):
                values = [r[1] for r in read]
                return [_coerced(path, label, list(value), values)] + self.check(values, path, label)
        if not ok:
            return [error(path, f"{label} must be two whole numbers [start, end], not {_show(value)}.",
                          "Write it like [0, 4].", "type")]
        start, end = value
        if start < self.minimum:
            return [error(path, f"{label} starts at {start}; it cannot start below {self.minimum}.",
                          code="range")]
        if start >= end:
            make = warning if self.empty == "warning" else error
            return [make(path, f"{label} is [{start}, {end}]: the start must be smaller than the end "
                               f"(the end is not included)"
                               + (", so it takes nothing." if self.empty == "warning" else "."),
                         f"For example [{start}, {start + 1}] takes one layer.", "range")]
        return []

    def describe(self) -> str:
        return "[start, end) with start < end"


@dataclass
class GradientType(AttrType):
    """A scalar, a per-layer gradient (list of scalars interpolated over layers), or a list of
    ``{filter, value}`` entries that apply different values to tensors whose name contains the
    filter. ``element`` checks each scalar.

    ``lenient``: the engine ignores what it does not read -- an empty list (no value set here)
    and unknown keys in a filtered entry are warnings, not errors; ``renamed`` maps old key
    names of an entry to their new spelling (``{"pattern": "filter"}``) for the hint."""

    element: AttrType = field(default_factory=lambda: FloatType())
    lenient: bool = False
    renamed: dict = field(default_factory=dict)
    kind = "gradient"

    @property
    def uvl_type(self) -> str:  # type: ignore[override]
        return self.element.uvl_type

    def _extra_keys(self, entry: dict, sub: str, label: str, i: int) -> list[Issue]:
        extra = sorted(map(str, set(entry) - {"filter", "value"}))
        if not extra:
            return []
        if not self.lenient:
            return [error(sub, f"{label} entry {i + 1} has unknown key(s) {', '.join(extra)}.",
                          "Only filter and value are allowed.", "type")]
        import difflib

        issues = []
        for key in extra:
            new = self.renamed.get(key) or next(iter(difflib.get_close_matches(
                key, ["filter", "value"], n=1, cutoff=0.6)), None)
            what = (f"{key} is the old name of {new}" if key in self.renamed else f"{key} is not "
                    "a key of a filtered entry") + ", so it is ignored"
            if key in self.renamed and "filter" not in entry:
                what += " and this value applies to every tensor"
            issues.append(warning(f"{sub}.{key}", f"{label} entry {i + 1}: {what}.",
                                  f"Did you mean {new}?" if new else
                                  "Only filter and value are read.", "ignored"))
        return issues

    def check(self, value: Any, path: str, label: str) -> list[Issue]:
        if isinstance(value, list):
            if not value:
                if self.lenient:
                    return [warning(path, f"{label} is an empty list, which sets nothing here.",
                                    "Give one value, a list of values for a gradient, or remove it.",
                                    "empty")]
                return [error(path, f"{label} is an empty list.",
                              "Give one value, or a list of values for a gradient.", "type")]
            if all(isinstance(v, dict) for v in value):
                issues: list[Issue] = []
                for i, entry in enumerate(value):
                    sub = f"{path}[{i}]"
                    if "value" not in entry:
                        issues.append(error(sub, f"{label} entry {i + 1} has no value.",
                                            "Write it as {filter: self_attn, value: 0.5}.", "type"))
                        issues += self._extra_keys(entry, sub, label, i) if self.lenient else []
                        continue
                    issues += self._extra_keys(entry, sub, label, i)
                    if "filter" in entry and entry["filter"] is not None and not isinstance(entry["filter"], str):
                        issues.append(error(f"{sub}.filter", f"{label} filter must be text "
                                                             f"like self_attn or mlp.", code="type"))
                    if isinstance(entry["value"], list):
                        issues += self._check_list(entry["value"], f"{sub}.value", label)
                    else:
                        issues += self.element.check(entry["value"], f"{sub}.value", label)
                return issues
            if any(isinstance(v, dict) for v in value):
                return [error(path, f"{label} mixes filtered entries and plain values.",
                              "Use either a list of numbers or a list of {filter, value}.", "type")]
            return self._check_list(value, path, label)
        if isinstance(value, dict):
            if "value" in value and (self.lenient or set(value) <= {"filter", "value"}):
                return self.check([value], path, label)
            return [error(path, f"{label} must be a value, a list of values, or filtered entries.",
                          code="type")]
        return self.element.check(value, path, label)

    def _check_list(self, values, path, label):
        issues = []
        for i, v in enumerate(values):
            issues += self.element.check(v, f"{path}[{i}]", f"{label} (gradient point {i + 1})")
        return issues

    def describe(self) -> str:
        return f"{self.element.describe()}, or a per-layer list of them"

    def to_json(self) -> dict:
        return {"kind": self.kind, "element": self.element.to_json()}


@dataclass
class MappingType(AttrType):
    """A free-form mapping checked by a callable (used for structures a library validates)."""

    kind = "mapping"
    uvl_type = "String"
    checker: Any = None

    def check(self, value, path, label):
        if not isinstance(value, dict):
            return [error(path, f"{label} must be a mapping of names to settings.", code="type")]
        if self.checker is not None:
            return list(self.checker(value, path, label))
        return []


def scalars_of(value: Any) -> list[Any]:
    """Every scalar inside a gradient/filtered value (for cross-field checks)."""
    if isinstance(value, dict):
        return scalars_of(value.get("value"))
    if isinstance(value, list):
        out: list[Any] = []
        for v in value:
            out += scalars_of(v)
        return out
    return [value]


def _did_you_mean(value: Any, choices: Sequence[Any]) -> str | None:
    import difflib

    if not isinstance(value, str):
        return None
    match = difflib.get_close_matches(value, [str(c) for c in choices], n=1, cutoff=0.6)
    return f"Did you mean {match[0]}?" if match else None
