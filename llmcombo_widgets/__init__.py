"""ipywidgets user interface of llmcombo (installed as ``llmcombo_widgets``).

The widgets are derived from llmcombo's feature model and depend on the core package;
the core never imports this package.
"""
