"""The view-model of the configurator: form state, validation and actions in plain Python.

The state is the configuration dict (shaped like the YAML files) plus its selection. For any
state, :meth:`FormModel.view` walks the feature model and the data together and returns a tree of
plain objects describing what the form shows:

* :class:`SectionView` -- one feature instance: its visible attribute fields and its parts;
* :class:`ToggleView` -- an optional feature (on/off, and its section when on);
* :class:`ChoiceView` -- a group of alternatives (one choice) or an or-group (several);
* :class:`ListView` -- a cloneable feature: its instances, with add/remove within cardinality;
* :class:`FieldView` -- one attribute: the domain in force, default, required flag, the text
  shown, the issues that point at it.

Nothing here is written for a particular merge parameter: a feature added to the model shows up
in the tree. Validation runs on every change (it takes well under a millisecond); every issue is
attached to the nearest visible node of its path. Widgets (``llmcombo_widgets.configurator``)
render this tree and forward user events to the actions; tests drive the actions directly.
This package's view-model never imports ipywidgets.

:class:`FormModel` is assembled from its parts, each in its module:

* :mod:`.formstate` -- the state, validation, listeners, messages and previews;
* :mod:`.formview` -- the view tree of the state (the dataclasses are in :mod:`.viewtree`);
* :mod:`.formedit` -- the editing actions (set, toggle, choose, add, remove);
* :mod:`.formfiles` -- load, save, import, presets, generate, model checks
  (:mod:`.modelcheck`);

with the typed text <-> value helpers in :mod:`.fieldtext` and the background import of
mergekit in :mod:`.preload`. Every public name is importable from here.
"""

from __future__ import annotations

from llmcombo_widgets.fieldtext import (
    describe_domain,
    domain_words,
    field_kind,
    format_value,
    number_words,
    parse_text,
)
from llmcombo_widgets.formedit import FormEditing
from llmcombo_widgets.formfiles import FormFiles
from llmcombo_widgets.formstate import Listener
from llmcombo_widgets.modelcheck import ModelSummary, check_model_ref
from llmcombo_widgets.preload import PRELOAD_MODULES, Preload, preload
from llmcombo_widgets.viewtree import (
    ChoiceView,
    FieldView,
    ListView,
    SectionView,
    ToggleView,
    walk_views,
)


class FormModel(FormEditing, FormFiles):
    """Form state + validation + actions. ``data`` is the configuration dict."""


__all__ = [
    "ChoiceView", "FieldView", "FormModel", "ListView", "Listener", "ModelSummary",
    "PRELOAD_MODULES", "Preload", "SectionView", "ToggleView", "check_model_ref",
    "describe_domain", "domain_words", "field_kind", "format_value", "number_words", "parse_text",
    "preload", "walk_views",
]
