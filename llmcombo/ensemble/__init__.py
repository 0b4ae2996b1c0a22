"""Runtime ensembles: pipeline, vote and router, and one interface for every product.

::

    from llmcombo.ensemble import load_product
    p = load_product("router.yaml")          # or "zoo:domotica", a model folder, a dict
    a = p.answer("apaga la luz del salon")   # Answer(text="LUZ_SL OFF", trace={...})
    p.answer_batch(["...", "..."])           # batched: one generate call per model

The configuration branch is registered with the product line by :mod:`llmcombo.ensemble.spec`
(its features in :mod:`llmcombo.ensemble.branch`, its checks in :mod:`llmcombo.ensemble.rules`);
models are loaded once and shared (:mod:`llmcombo.ensemble.loading`) and asked to generate, embed
and score (:mod:`llmcombo.ensemble.members`); selectors and :func:`train_selector` are in
:mod:`llmcombo.ensemble.selectors`. Importing this package is cheap: torch and transformers load on
first use.
"""

from __future__ import annotations

_LAZY = {
    "Answer": "products", "Product": "products", "SingleModel": "products",
    "Pipeline": "products", "Vote": "products", "Router": "products", "Member": "products",
    "load_product": "products", "from_spec": "products", "accuracy": "products",
    "train_selector": "selectors", "SelectorReport": "selectors", "Choice": "selectors",
    "load_model": "loading", "clear_cache": "loading", "cached_models": "loading",
    "to_spec": "spec", "check_models": "spec",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"llmcombo.ensemble.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
