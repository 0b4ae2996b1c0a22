"""Shared fixtures: the zoo is built once (or reused from its cache) for the whole test session."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def zoo():
    """The zoo in its default cache folder (``$LLMCOMBO_ZOO_DIR`` or ``~/.cache/llmcombo/zoo``):
    trained on first use, then reused by every test and every later session."""
    from llmcombo import zoo as _zoo

    return _zoo.build()
