"""The plumbing shared by the modules that define ``llmcombo`` commands (:mod:`llmcombo.cli`, the
core's, and :mod:`llmcombo.cli_apps`, the apps'): a list of commands filled by a decorator, and
how a command speaks to the user on stderr. Light on purpose: ``llmcombo --help`` imports it.
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable

Handler = Callable[[argparse.Namespace], int]
Configure = Callable[[argparse.ArgumentParser], None]


class Commands(list[tuple[str, str, Configure, Handler]]):
    """``(name, help, configure, handler)`` of each command, in the order they were registered
    (the order of ``llmcombo --help``)."""

    def command(self, name: str, help: str, configure: Configure):
        """Register ``fn`` as ``llmcombo NAME``; ``configure`` adds its arguments."""

        def wrap(fn: Handler) -> Handler:
            self.append((name, help, configure, fn))
            return fn

        return wrap


def err(text: str) -> None:
    print(text, file=sys.stderr)


__all__ = ["Commands", "Configure", "Handler", "err"]
