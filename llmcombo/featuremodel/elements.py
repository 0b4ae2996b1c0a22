"""The leaf elements of a feature model, written with expressions over the selection: attributes
(typed values a feature carries, with the conditions under which they are required, mean something,
default to a value or take a narrower domain) and cross-tree constraints. They refer to no feature
or model, only to expressions and domains; :mod:`llmcombo.featuremodel.model` builds features and
models from them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from llmcombo.featuremodel.expr import Expr, Selection
from llmcombo.featuremodel.types import AttrType


@dataclass
class Attribute:
    """A typed value a feature carries.

    ``required`` / ``required_when``: must be set (always / when the expression holds).
    ``when``: the attribute only means something when the expression holds; setting it otherwise
    is a warning (``ignored_hint`` explains). ``defaults`` / ``domains``: conditional defaults and
    domains, first match wins, falling back to ``default`` / ``type``.
    """

    name: str
    type: AttrType
    default: Any = None
    required: bool = False
    required_when: Expr | None = None
    when: Expr | None = None
    label: str | None = None
    description: str | None = None
    defaults: list[tuple[Expr, Any]] = field(default_factory=list)
    ignored_hint: str | None = None
    advanced: bool = False
    domains: list[tuple[Expr, AttrType]] = field(default_factory=list)
    path: str = ""

    @property
    def title(self) -> str:
        return self.label or self.name.replace("_", " ")

    def default_for(self, sel: Selection | None) -> Any:
        if sel is not None:
            for cond, value in self.defaults:
                if cond.evaluate(sel):
                    return value
        return self.default

    def type_for(self, sel: Selection | None) -> AttrType:
        """The domain in force: the first conditional domain whose condition holds, else ``type``."""
        if sel is not None:
            for cond, domain in self.domains:
                if cond.evaluate(sel):
                    return domain
        return self.type

    def is_required(self, sel: Selection | None) -> bool:
        if self.required:
            return True
        return bool(self.required_when is not None and sel is not None and self.required_when.evaluate(sel))

    def is_relevant(self, sel: Selection | None) -> bool:
        return self.when is None or sel is None or self.when.evaluate(sel)


@dataclass
class Constraint:
    """A cross-tree constraint: ``expr`` must hold. Reported at ``path`` with ``message``."""

    expr: Expr
    message: str
    path: str = ""
    severity: str = "error"
    hint: str | None = None
    code: str = "constraint"

    @classmethod
    def requires(cls, a: Expr, b: Expr, message: str, path: str = "", hint: str | None = None):
        return cls(a.implies(b), message, path, hint=hint, code="requires")

    @classmethod
    def excludes(cls, a: Expr, b: Expr, message: str, path: str = "", hint: str | None = None):
        return cls(a.implies(~b), message, path, hint=hint, code="excludes")


__all__ = ["Attribute", "Constraint"]
