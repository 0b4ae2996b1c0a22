"""Validation issues: what validation returns instead of raising, and how a list of them is
tidied (:func:`dedupe`) or completed when a rule itself fails (:func:`internal_error`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Issue:
    """One problem found in a configuration.

    ``path`` names the offending feature or attribute, e.g. ``merge.models[1].parameters.density``;
    ``message`` is a sentence a non-coder understands; ``hint`` says what to do, when we know.
    Errors block generation; warnings don't.
    """

    severity: Severity
    path: str
    message: str
    hint: str | None = None
    code: str = field(default="", compare=False)

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    def format(self) -> str:
        text = f"{self.severity}: {self.path or '(configuration)'}: {self.message}"
        if self.hint:
            text += f" Hint: {self.hint}"
        return text

    def to_dict(self) -> dict:
        return {"severity": self.severity, "path": self.path, "message": self.message,
                "hint": self.hint, "code": self.code}


def error(path: str, message: str, hint: str | None = None, code: str = "") -> Issue:
    return Issue("error", path, message, hint, code)


def warning(path: str, message: str, hint: str | None = None, code: str = "") -> Issue:
    return Issue("warning", path, message, hint, code)


def has_errors(issues) -> bool:
    return any(i.severity == "error" for i in issues)


def dedupe(issues: list[Issue]) -> list[Issue]:
    """Drop repeats, a generic "required" error where a constraint explains the same field, and
    a generic "ignored" warning where a check says more precisely what happens to the field."""
    explained = {i.path for i in issues if i.code == "requires"}
    specific = {i.path for i in issues if i.code != "ignored"}
    seen, out = set(), []
    for i in issues:
        key = (i.severity, i.path, i.message)
        if key in seen or (i.code == "required" and i.path in explained) \
                or (i.code == "ignored" and i.path in specific):
            continue
        seen.add(key)
        out.append(i)
    return out


def internal_error(path: str, what: str, exc: BaseException) -> Issue:
    """An error issue for a rule that failed to run: a bug in llmcombo, reported as an error so
    the configuration is not accepted unchecked."""
    return Issue("error", path, f"{what} could not be checked because of a bug in llmcombo "
                 f"({type(exc).__name__}: {exc}).",
                 "Please report it; meanwhile check this part of the configuration by hand.",
                 "internal")
