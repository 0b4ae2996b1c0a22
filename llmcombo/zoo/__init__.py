"""The zoo wing: llmcombo's offline demo world.

* :mod:`~llmcombo.zoo.store` -- where the zoo is (shipped with llmcombo) and what it holds;
  ``zoo:NAME`` references resolve here, never by training;
* :mod:`~llmcombo.zoo.models` -- training the zoo from scratch (``llmcombo zoo build``);
* :mod:`~llmcombo.zoo.tasks` -- the two Spanish command tasks (home automation, weather), drawn
  from the grammars of :mod:`~llmcombo.zoo.grammars`;
* :mod:`~llmcombo.zoo.experiments` -- interpolation sweeps and vote scaling on the zoo;
* :mod:`~llmcombo.zoo.demo` -- ``llmcombo demo`` (what it runs: :mod:`~llmcombo.zoo.demo_config`;
  its tables and report: :mod:`~llmcombo.zoo.demo_report`);
* :mod:`~llmcombo.zoo.plugin` -- registers ``zoo:`` references, the tasks and their prompt format.

``from llmcombo import zoo; zoo.model_path("domotica"); zoo.build(DIR)`` -- the names below load on
first use, so importing the zoo is cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

from llmcombo.zoo.store import (ENV_DIR, MANIFEST, MODEL_NAMES, SHIPPED_DIR, ZOO_VERSION, Zoo,
                                cache_dir, default_dir, is_complete, model_path)

_LAZY = {"build": "models", "train_tokenizer": "models", "generate_commands": "models",
         "evaluate": "models", "accuracy": "models", "Recipe": "models", "RECIPE": "models",
         "SEED": "models", "generic_spanish": "models"}

__all__ = ["ENV_DIR", "MANIFEST", "MODEL_NAMES", "SHIPPED_DIR", "ZOO_VERSION", "Zoo", "cache_dir",
           "default_dir", "is_complete", "model_path", *sorted(_LAZY)]


_SUBMODULES = {"demo", "experiments", "models", "plugin", "store", "tasks"}


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"llmcombo.zoo.{name}")
    if name in _LAZY:
        return getattr(importlib.import_module(f"llmcombo.zoo.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'llmcombo.zoo' has no attribute {name!r}")
