"""Shared fixtures: the zoo (shipped with llmcombo, or the one ``$LLMCOMBO_ZOO_DIR`` names)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests' own helpers (importgraph, factory)


@pytest.fixture(scope="session")
def zoo():
    """The zoo in use: the one shipped with llmcombo, or ``$LLMCOMBO_ZOO_DIR`` (built first when
    that folder holds none yet)."""
    from llmcombo import zoo as _zoo

    return _zoo.build()


@pytest.fixture(scope="session")
def zoo_dir(zoo) -> Path:
    """The folder of the session's zoo (for LLMCOMBO_ZOO_DIR in subprocesses and kernels)."""
    return Path(zoo.dir)
