"""llmcombo: a workbench for combining language models, built as a software product line.

The short path (see :mod:`llmcombo.api`)::

    import llmcombo
    merged = llmcombo.merge("ties", ["zoo:domotica", "zoo:tiempo"], base="zoo:base", density=0.5)
    llmcombo.compare([merged, "zoo:domotica", "zoo:tiempo"])   # table + plot

Submodules and functions load on first use, so ``import llmcombo`` stays fast.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_FUNCTIONS = {
    "configure": "llmcombo.api",
    "merge": "llmcombo.api",
    "compare": "llmcombo.api",
    "validate": "llmcombo.validation",
    "generate_yaml": "llmcombo.generate",
    "load_any": "llmcombo.importer",
    "load_preset": "llmcombo.configuration",
    "feature_model": "llmcombo.productline",
    "load_product": "llmcombo.ensemble",
    "make_plan": "llmcombo.plan",
    "export_gguf": "llmcombo.gguf",
    "search": "llmcombo.search",  # the package is callable too: llmcombo.search(spec, ...)
}
_MODULES = {"analysis", "api", "configuration", "datasets", "engine", "errors", "ensemble", "gguf",
            "evaluate", "featuremodel", "fsutil", "generate", "hub", "importer", "modelref",
            "outputs", "plan", "plots", "plugins", "preflight", "productline", "progress", "run",
            "shapes", "sysinfo", "validation", "zoo"}


def __getattr__(name: str):
    if name in _FUNCTIONS:
        return getattr(importlib.import_module(_FUNCTIONS[name]), name)
    if name in _MODULES:
        return importlib.import_module(f"llmcombo.{name}")
    raise AttributeError(f"module 'llmcombo' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_FUNCTIONS) | _MODULES)
