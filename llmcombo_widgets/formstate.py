"""The configurator's state: the configuration dict, its validation and selection, listeners, the
messages of the last action and the previews (YAML, generated document).

:class:`FormState` is the base of :class:`llmcombo_widgets.viewmodel.FormModel`; its view
(:mod:`.formview`), editing actions (:mod:`.formedit`) and file actions (:mod:`.formfiles`) build
on it. Plain Python: never imports ipywidgets.
"""

from __future__ import annotations

import copy
import os
from typing import Any, Callable

from llmcombo.featuremodel import Feature, FeatureModel, Issue, Selection
from llmcombo.featuremodel import paths as P
from llmcombo_widgets.viewtree import SectionView

Listener = Callable[["FormState"], None]


class FormState:
    """State + validation of the form. ``data`` is the configuration dict."""

    def __init__(self, data: dict | None = None, *, model: FeatureModel | None = None,
                 base_dir: str | os.PathLike | None = None, show_advanced: bool = False):
        if model is None:
            from llmcombo.productline import feature_model

            model = feature_model()
        self.model = model
        self.base_dir = base_dir
        self.show_advanced = show_advanced
        self.data: dict = {}
        self.issues: list[Issue] = []
        self.selection = Selection()
        self.message: str = ""  # the outcome of the last action (load, save, generate ...)
        self.message_is_error = False
        self.generated: str | None = None
        # where the user has been: errors elsewhere are shown as "to do", not in red, until the
        # user edits that field, loads a configuration or asks to generate
        self.touched: set[str] = set()
        self.reveal_all = data is not None  # a configuration given to the form is "loaded"
        self._stash: dict[Any, Any] = {}
        self._listeners: list[Listener] = []
        self._view: SectionView | None = None
        self._index: dict[str, Any] = {}
        self._previews: dict[str, str] = {}  # yaml / mergekit text of the current state
        self._set(data if data is not None else self.initial_data())

    # -- state ------------------------------------------------------------------------------
    def initial_data(self) -> dict:
        """A new configuration: the first family with its mandatory parts, nothing filled."""
        root = self.model.root
        first = root.groups[0].children[0] if root.groups and root.groups[0].children else None
        return {first.name: self.default_instance(first)} if first else {}

    def default_instance(self, f: Feature) -> Any:
        """A fresh instance of ``f``: its mandatory lists with their minimum number of items."""
        if f.card is not None:  # cloneable: a list
            return [self.default_instance_item(f) for _ in range(f.card[0])]
        return self.default_instance_item(f)

    def default_instance_item(self, f: Feature) -> Any:
        inst: dict = {}
        for c in f.children:
            if c.card is not None and not c.optional and c.card[0] > 0:  # a mandatory list
                inst[c.name] = [self.default_instance_item(c) for _ in range(c.card[0])]
        for g in f.groups:
            if g.min >= 1 and g.max == 1 and len(g.children) <= 4:
                # a small alternative group starts on its first choice (models vs slices)
                first = g.children[0]
                if first.cloneable or first.attributes or first.children or first.groups:
                    inst[first.name] = self.default_instance(first)
        return inst

    def subscribe(self, fn: Listener) -> Callable[[], None]:
        """Call ``fn(self)`` after every change; returns an unsubscribe function."""
        self._listeners.append(fn)
        return lambda: self._listeners.remove(fn) if fn in self._listeners else None

    def _set(self, data: dict, *, keep_stash: bool = False) -> None:
        self.data = data
        if not keep_stash:
            self._stash = {}
        self._revalidate()

    def _revalidate(self) -> None:
        self.issues, self.selection = self.model.analyse(self.data)
        self.issues = self.issues + self._model_name_hints()
        self._view = None
        self._index = {}
        self._previews = {}

    def _changed(self) -> None:
        self._revalidate()
        self._notify()

    def _notify(self) -> None:
        """Tell the listeners that the form changed (the view, a message ...)."""
        for fn in list(self._listeners):
            fn(self)

    def _model_name_hints(self) -> list[Issue]:
        """A model written without its scheme (``domotica``) that is no folder here and close
        to a known reference: "did you mean zoo:domotica?" (a warning: the engine would take it
        for a Hub id or a folder). Reads no weights."""
        from llmcombo import modelref
        from llmcombo.featuremodel import warning
        from llmcombo.productline import model_slots

        try:
            slots = model_slots(self.data)
        except Exception:  # a half-typed configuration: the feature model reports it
            return []
        if not slots:
            return []
        known = modelref.known_refs()
        bare = {r.split(":", 1)[1]: r for r in known}
        out = []
        for slot in slots:
            ref = slot.ref.strip()
            if not ref or modelref.split_scheme(ref) is not None or "/" in ref or "\\" in ref:
                continue
            if os.path.exists(os.path.join(str(self.base_dir or "."), ref)):
                continue
            import difflib

            close = difflib.get_close_matches(ref.lower(), list(bare), n=1, cutoff=0.6)
            if close:
                out.append(warning(slot.path, f"{ref} is not a folder here, and a Hub id is "
                                              f"written owner/name: did you mean {bare[close[0]]}?",
                                   f"Known models: {', '.join(known)}.", "model_name"))
        return out

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self.issues if i.is_error]

    @property
    def warnings(self) -> list[Issue]:
        return [i for i in self.issues if not i.is_error]

    def touch(self, key: str) -> None:
        """The user edited ``key``: its messages are shown in full from now on."""
        if key:
            self.touched.add(key)

    def revealed(self, issue: Issue) -> bool:
        """Whether an error is shown as an error (red) or still as something to do: errors show
        once the user edited the field (or a field inside it, or the part it belongs to), loaded
        a configuration, or asked to generate."""
        if self.reveal_all or not issue.is_error:
            return True
        path = issue.path
        for key in self.touched:
            k = key
            if path == k or path.startswith((k + ".", k + "[")) or k.startswith((path + ".", path + "[")):
                return True
        return False

    @property
    def shown_errors(self) -> list[Issue]:
        """The errors shown in red."""
        return [i for i in self.errors if self.revealed(i)]

    @property
    def todo(self) -> list[Issue]:
        """The errors not shown in red yet: things still to fill in."""
        return [i for i in self.errors if not self.revealed(i)]

    @property
    def can_generate(self) -> bool:
        return not self.errors

    @property
    def family(self) -> str | None:
        names = [c.name for c in self.model.root.groups[0].children]
        found = [n for n in names if n in self.data]
        return found[0] if len(found) == 1 else None

    def configuration(self):
        """The configuration as an :class:`llmcombo.configuration.Configuration` (a dict)."""
        from llmcombo.configuration import Configuration

        return Configuration(copy.deepcopy(self.data), base_dir=self.base_dir)

    @property
    def yaml_preview(self) -> str:
        """The configuration as YAML (what Save writes)."""
        text = self._previews.get("yaml")
        if text is None:
            from llmcombo.configuration import dump_yaml

            text = self._previews["yaml"] = dump_yaml(self.data)
        return text

    @property
    def mergekit_preview(self) -> str:
        """The generated mergekit YAML / ensemble spec, or why it cannot be generated yet."""
        if not self.can_generate:
            n = len(self.errors)
            return f"# fix {n} error{'s' if n != 1 else ''} to see the generated configuration"
        text = self._previews.get("mergekit")
        if text is None:
            try:
                text = self._generate_valid()
            except Exception as exc:  # a UserError from mergekit's own schema
                text = f"# {getattr(exc, 'message', exc)}"
            self._previews["mergekit"] = text
        return text

    def _generate_valid(self, resolve: bool = False) -> str:
        """The core's generator on a state already known to have no errors (the feature model's
        validation has run on this state: it is not repeated)."""
        from llmcombo.configuration import dump_yaml
        from llmcombo.generate import to_document

        _kind, doc = to_document(self.configuration(), self.base_dir, resolve=resolve,
                                 validate=False)
        return dump_yaml(doc)

    def get(self, key: str, default: Any = None) -> Any:
        return P.get(self.data, key, default)

    def _say(self, text: str, error: bool = False) -> None:
        self.message = text
        self.message_is_error = error

    def _report(self, text: str, error: bool = False) -> None:
        """Say the outcome of an action and tell the listeners."""
        self._say(text, error)
        self._notify()
