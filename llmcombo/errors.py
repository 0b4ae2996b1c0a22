"""Errors that reach users.

Any mistake a user can make (bad configuration, wrong path, incompatible models, no network,
full disk) is raised as :class:`UserError` (or returned as validation issues); the CLI and the
widgets print its message without a traceback. Everything else is a bug.
"""

from __future__ import annotations


class UserError(Exception):
    """A mistake the user can fix. ``field`` names what to fix, ``hint`` says how."""

    def __init__(self, message: str, *, field: str | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        self.hint = hint

    def __str__(self) -> str:  # pragma: no cover - trivial
        text = f"{self.field}: {self.message}" if self.field else self.message
        if self.hint:
            text += f" ({self.hint})"
        return text


class OfflineError(UserError):
    """Something needed the Hugging Face Hub and could not reach it."""


class Cancelled(Exception):
    """Raised inside long work when the user pressed Cancel."""


def raise_for_errors(issues, lead: str = "the configuration is not valid") -> None:
    """Raise one :class:`UserError` listing every error among ``issues`` (validation issues:
    objects with ``is_error``, ``path``, ``message``, ``hint`` and ``format()``); do nothing when
    there is none. One error reads ``LEAD: PATH: MESSAGE Hint: HINT``; several read
    ``LEAD, N problems:`` and one line each (as :meth:`Issue.format` writes them)."""
    errors = [i for i in issues if i.is_error]
    if not errors:
        return
    if len(errors) == 1:
        e = errors[0]
        raise UserError(f"{lead}: {e.path or '(configuration)'}: {e.message}"
                        + (f" Hint: {e.hint}" if e.hint else ""))
    lines = "\n".join("  - " + i.format() for i in errors)
    raise UserError(f"{lead}, {len(errors)} problems:\n{lines}")
