"""Validation issues: what validation returns instead of raising."""

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
