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


@pytest.fixture(scope="session")
def llama_cpp():
    """llama-cpp-python, the ``[llama]`` extra. CI (``.ci/run``) installs it and sets
    ``LLMCOMBO_REQUIRE_LLAMA=1``: there a missing llama_cpp fails every test that needs it.
    Elsewhere those tests skip, saying how to install it."""
    import importlib.util
    import os

    if importlib.util.find_spec("llama_cpp") is None:
        if os.environ.get("LLMCOMBO_REQUIRE_LLAMA"):
            pytest.fail("LLMCOMBO_REQUIRE_LLAMA is set but llama-cpp-python is not installed")
        pytest.skip("llama-cpp-python is not installed (pip install 'llmcombo[llama]'; it builds "
                    "llama.cpp from source, about 10 minutes)")
    import llama_cpp as module

    return module


@pytest.fixture(scope="session")
def gguf_cache(tmp_path_factory):
    """GGUF conversions of member models go to a temporary folder, not ~/.cache."""
    import os

    folder = tmp_path_factory.mktemp("gguf-cache")
    old = os.environ.get("LLMCOMBO_GGUF_CACHE")
    os.environ["LLMCOMBO_GGUF_CACHE"] = str(folder)
    yield folder
    if old is None:
        os.environ.pop("LLMCOMBO_GGUF_CACHE", None)
    else:
        os.environ["LLMCOMBO_GGUF_CACHE"] = old
