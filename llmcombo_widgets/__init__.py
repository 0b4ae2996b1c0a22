"""ipywidgets user interface of llmcombo (installed as ``llmcombo_widgets``).

The widgets are derived from llmcombo's feature model and depend on the core package;
the core never imports this package. The Voila page template without CDN stylesheets is
``share/voila/templates/llmcombo`` (``llmcombo dashboard`` puts ``share`` on ``JUPYTER_PATH``).

Plain Python (view-models; tests drive them without widgets):

* ``viewmodel`` -- the configurator's :class:`FormModel`, made of ``formstate`` (state,
  validation, messages), ``formview`` (the tree of ``viewtree``'s dataclasses), ``formedit``
  (editing actions) and ``formfiles`` (load / save / import / presets / generate); with
  ``fieldtext`` (typed text <-> values, domains in words), ``modelcheck`` and ``preload``;
* ``workbench`` -- the tabs' view-models: ``run_model``, ``evaluate_model``,
  ``playground_model`` (Ensembles), ``publish_model``; ``content`` keys caches by content;
* ``jobs`` (work in a thread), ``session``, ``downloads``, ``words`` (sentences).

Widgets (ipywidgets):

* ``configurator`` -- the form, rendered by ``formwidgets`` with ``render``'s helpers;
* ``dashboard`` -- the :class:`App` and ``register_tab``; one panel per tab: ``run_panel``,
  ``evaluate_panel``, ``playground_panel``, ``publish_panel``, sharing ``panelkit``;
* ``theme`` -- CSS, layouts and small HTML helpers.

``viewmodel``, ``workbench``, ``configurator`` and ``dashboard`` re-export the public names of
the modules they are made of.
"""
