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
