"""ipywidgets user interface of llmcombo (installed as ``llmcombo_widgets``).

The widgets are derived from llmcombo's feature model and depend on the core package;
the core never imports this package. The Voila page template without CDN stylesheets is
``share/voila/templates/llmcombo`` (``llmcombo dashboard`` puts ``share`` on ``JUPYTER_PATH``).
"""
