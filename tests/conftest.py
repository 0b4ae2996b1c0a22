"""Shared fixtures: the zoo is built once (or reused from its cache) for the whole test session."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def zoo():
    """The zoo in its default cache folder (``$LLMCOMBO_ZOO_DIR`` or ``~/.cache/llmcombo/zoo``):
    trained on first use, then reused by every test and every later session."""
    from llmcombo import zoo as _zoo

    return _zoo.build()


@pytest.fixture(scope="session")
def zoo_dir(zoo) -> Path:
    """The folder of the session's zoo (for LLMCOMBO_ZOO_DIR in subprocesses and kernels)."""
    return Path(zoo.dir)
