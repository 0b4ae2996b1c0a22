"""Product-line search: find the best combination of the parents.

::

    import llmcombo
    result = llmcombo.search("search.yaml", out="runs/s1", trials=40)   # or a dict
    result.best            # the configuration chosen on the validation split (best.yaml)
    result.results         # the test split: best beside parents, presets and ensembles
    result.trials          # the study, one row per trial (study.csv)

    llmcombo search search.yaml --out runs/s1 --trials 40 [--ray auto] [--resume]

The wing, top to bottom:

* :mod:`~llmcombo.search.spec` -- the ``search`` family of the feature model (validation, form,
  YAML); registered as a plugin like the ensembles;
* :mod:`~llmcombo.search.space` -- the space, read from the feature model: merge methods that
  apply to the parents, their parameters over their domains, gradients and filters, ensembles;
* :mod:`~llmcombo.search.data` -- validation / test splits of the tasks;
* :mod:`~llmcombo.search.study` -- Optuna: the study on disk, samplers, the trials frame, the best;
* :mod:`~llmcombo.search.loading` -- reading the specification: the validated plan, model
  references any worker can load, the hash that identifies a study;
* :mod:`~llmcombo.search.driver` -- the loop (:func:`search`); :mod:`~llmcombo.search.cache`
  -- the products it measured, by configuration hash (``OUT/trials``);
* :mod:`~llmcombo.search.worker`, :mod:`~llmcombo.search.executors` -- building and measuring
  products in memory, in this process, a local pool or on Ray (imported only for ``ray=``);
* :mod:`~llmcombo.search.report`, :mod:`~llmcombo.search.plots` -- outputs and figures.

``llmcombo.search`` is this package and is also callable: ``llmcombo.search(spec, ...)`` is
:func:`llmcombo.search.search` (importing the package is cheap: Optuna, torch and mergekit load
when a search starts).
"""

from __future__ import annotations

import sys
import types
from typing import Any


def search(spec: Any, out: Any = None, **kwargs: Any):
    """Run a search (see :func:`llmcombo.search.driver.search`)."""
    from llmcombo.search.driver import search as _search

    return _search(spec, out, **kwargs)



class _CallableModule(types.ModuleType):
    """``llmcombo.search`` is both this package and the function :func:`search`."""

    def __call__(self, spec: Any, out: Any = None, **kwargs: Any):
        return search(spec, out, **kwargs)


sys.modules[__name__].__class__ = _CallableModule

__all__ = ["search"]
