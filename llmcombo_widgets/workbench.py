"""View-models of the Run, Evaluate, Ensembles and Publish panels (plain Python, no ipywidgets).

Each holds its panel's state and actions; long work goes through a :class:`~llmcombo_widgets.jobs.Job`
(a thread) so the UI stays responsive. Tests drive these objects directly.

One module per tab: :mod:`.run_model`, :mod:`.evaluate_model`, :mod:`.playground_model`
(the Ensembles tab), :mod:`.publish_model`; :mod:`.content` keys the caches by content. Every
public name is importable from here.
"""

from __future__ import annotations

from llmcombo_widgets.content import ZOO_PRODUCTS, content_key
from llmcombo_widgets.evaluate_model import (
    EvaluateModel,
    accuracy_figure,
    evaluate_products,
    figure_png,
)
from llmcombo_widgets.playground_model import (
    ENSEMBLE_EXAMPLES,
    FORM_SOURCE,
    ROUTES,
    EnsembleExample,
    PlaygroundModel,
    ensemble_examples,
    example_ensembles,
    trace_rows,
)
from llmcombo_widgets.publish_model import PublishModel
from llmcombo_widgets.run_model import PreflightSummary, RunModel

__all__ = [
    "ENSEMBLE_EXAMPLES", "FORM_SOURCE", "ROUTES", "ZOO_PRODUCTS", "EnsembleExample",
    "EvaluateModel", "PlaygroundModel", "PreflightSummary", "PublishModel", "RunModel",
    "accuracy_figure", "content_key", "ensemble_examples", "evaluate_products",
    "example_ensembles", "figure_png", "trace_rows",
]
