"""Propositional and counting expressions over a configuration's selection.

Expressions refer to features and attributes by their *model path* (dots, no clone indices):
``merge.method.ties`` is the feature "ties" under "method" under "merge"; ``merge.base_model`` an
attribute. They are evaluated on a :class:`Selection` (what a configuration selected) and can be
written as UVL constraints.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Selection:
    """What a configuration selected: feature paths, set attribute paths with their values (a list
    per path, one per clone instance) and the number of instances of each feature path."""

    features: set[str] = field(default_factory=set)
    attributes: dict[str, list[Any]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    # choices assumed for a misspelled shorthand value (feature path -> what was written)
    assumed: dict[str, str] = field(default_factory=dict)
    # the selection of each instance of a scoped feature, by data path (``stages[1]``); the
    # fields above hold the union of all of them
    scopes: dict[str, Selection] = field(default_factory=dict)

    def add_feature(self, path: str) -> None:
        self.features.add(path)
        self.counts[path] = self.counts.get(path, 0) + 1

    def set_attribute(self, path: str, value: Any) -> None:
        self.attributes.setdefault(path, []).append(value)

    def selected(self, path: str) -> bool:
        return path in self.features

    def is_set(self, path: str) -> bool:
        return path in self.attributes

    def value(self, path: str, default: Any = None) -> Any:
        vals = self.attributes.get(path)
        return vals[0] if vals else default


class Expr:
    def evaluate(self, sel: Selection) -> bool:  # pragma: no cover
        raise NotImplementedError

    def to_uvl(self, name=None) -> str | None:  # None: not expressible in UVL
        return None

    def to_json(self) -> dict:  # pragma: no cover
        raise NotImplementedError

    def refs(self) -> set[str]:
        return set()

    # operators for readable constraint definitions
    def __and__(self, other: "Expr") -> "Expr":
        return And((self, other))

    def __or__(self, other: "Expr") -> "Expr":
        return Or((self, other))

    def __invert__(self) -> "Expr":
        return Not(self)

    def implies(self, other: "Expr") -> "Expr":
        return Implies(self, other)


def _q(path: str) -> str:
    return f'"{path}"'


@dataclass(frozen=True)
class Sel(Expr):
    """A feature is selected (any instance of it)."""

    path: str

    def evaluate(self, sel):
        return sel.selected(self.path)

    def to_uvl(self, name=_q):
        return name(self.path)

    def to_json(self):
        return {"op": "selected", "path": self.path}

    def refs(self):
        return {self.path}


@dataclass(frozen=True)
class IsSet(Expr):
    """An attribute has a value."""

    path: str

    def evaluate(self, sel):
        return sel.is_set(self.path)

    def to_uvl(self, name=_q):
        return name(self.path)

    def to_json(self):
        return {"op": "set", "path": self.path}

    def refs(self):
        return {self.path}


@dataclass(frozen=True)
class Eq(Expr):
    """An attribute equals a value (any instance, for attributes of cloned features)."""

    path: str
    value: Any

    def evaluate(self, sel):
        return any(v == self.value for v in sel.attributes.get(self.path, []))

    def to_uvl(self, name=_q):
        v = f"'{self.value}'" if isinstance(self.value, str) else str(self.value).lower()
        return f"{name(self.path)} == {v}"

    def to_json(self):
        return {"op": "eq", "path": self.path, "value": self.value}

    def refs(self):
        return {self.path}


@dataclass(frozen=True)
class CountCmp(Expr):
    """The number of instances of a (cloneable) feature compared with a number."""

    path: str
    op: str
    n: int

    def evaluate(self, sel):
        c = sel.counts.get(self.path, 0)
        return {"<": c < self.n, "<=": c <= self.n, "==": c == self.n,
                ">=": c >= self.n, ">": c > self.n, "!=": c != self.n}[self.op]

    def to_json(self):
        return {"op": "count", "path": self.path, "cmp": self.op, "n": self.n}

    def refs(self):
        return {self.path}


@dataclass(frozen=True)
class Not(Expr):
    e: Expr

    def evaluate(self, sel):
        return not self.e.evaluate(sel)

    def to_uvl(self, name=_q):
        inner = self.e.to_uvl(name)
        return None if inner is None else f"!({inner})"

    def to_json(self):
        return {"op": "not", "args": [self.e.to_json()]}

    def refs(self):
        return self.e.refs()


@dataclass(frozen=True)
class And(Expr):
    args: tuple

    def evaluate(self, sel):
        return all(a.evaluate(sel) for a in self.args)

    def to_uvl(self, name=_q):
        parts = [a.to_uvl(name) for a in self.args]
        return None if None in parts else "(" + " & ".join(parts) + ")"

    def to_json(self):
        return {"op": "and", "args": [a.to_json() for a in self.args]}

    def refs(self):
        return set().union(*(a.refs() for a in self.args))


@dataclass(frozen=True)
class Or(Expr):
    args: tuple

    def evaluate(self, sel):
        return any(a.evaluate(sel) for a in self.args)

    def to_uvl(self, name=_q):
        parts = [a.to_uvl(name) for a in self.args]
        return None if None in parts else "(" + " | ".join(parts) + ")"

    def to_json(self):
        return {"op": "or", "args": [a.to_json() for a in self.args]}

    def refs(self):
        return set().union(*(a.refs() for a in self.args))


@dataclass(frozen=True)
class Implies(Expr):
    a: Expr
    b: Expr

    def evaluate(self, sel):
        return (not self.a.evaluate(sel)) or self.b.evaluate(sel)

    def to_uvl(self, name=_q):
        x, y = self.a.to_uvl(name), self.b.to_uvl(name)
        return None if x is None or y is None else f"{x} => {y}"

    def to_json(self):
        return {"op": "implies", "args": [self.a.to_json(), self.b.to_json()]}

    def refs(self):
        return self.a.refs() | self.b.refs()


def any_selected(paths) -> Expr:
    paths = list(paths)
    if len(paths) == 1:
        return Sel(paths[0])
    return Or(tuple(Sel(p) for p in paths))
