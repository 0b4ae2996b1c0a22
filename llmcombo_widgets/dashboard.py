"""The dashboard: tabs Configure -> Run -> Evaluate -> Ensembles -> Publish.

Each panel renders a plain-Python view-model from :mod:`llmcombo_widgets.workbench`; long work
runs in a thread (:class:`~llmcombo_widgets.jobs.Job`) and updates the widgets as it goes, so the
page stays responsive. ``App().widget`` is what ``llmcombo_widgets/dashboard.ipynb`` displays
(served by ``llmcombo dashboard`` with Voila). Every panel has two columns (what you set on the
left, what comes out on the right) that stack on a narrow screen; results can be downloaded or
saved to a folder; with ``session=True`` the form and the runs survive a reload of the page.

One module per tab: :mod:`.run_panel`, :mod:`.evaluate_panel`, :mod:`.playground_panel`
(Ensembles), :mod:`.publish_panel`, and what they share in :mod:`.panelkit`; this module
assembles them into the :class:`App` (and re-exports them).

Another module adds a tab with :func:`register_tab` (``title``, ``factory(app) -> panel`` where
the panel has ``.widget`` and ``.refresh()``), before the App is made.
"""

from __future__ import annotations

import html
import time
from typing import Any

import ipywidgets as W

from llmcombo_widgets.configurator import CSS, Configurator
from llmcombo_widgets.evaluate_panel import EvaluatePanel
from llmcombo_widgets.panelkit import SaveBox, WidgetProgress
from llmcombo_widgets.playground_panel import PlaygroundPanel
from llmcombo_widgets.publish_panel import PublishPanel
from llmcombo_widgets.run_panel import RunPanel
from llmcombo_widgets.session import Session
from llmcombo_widgets.theme import status
from llmcombo_widgets.viewmodel import FormModel, preload
from llmcombo_widgets.workbench import EvaluateModel, PlaygroundModel, PublishModel, RunModel


def _process_started() -> float | None:
    """When this process (the kernel, under Voila) started, in seconds since the epoch."""
    try:
        import psutil

        return psutil.Process().create_time()
    except Exception:  # psutil comes with ipykernel; a missing stamp only loses a figure
        return None


GETTING_STARTED = {
    "Configure": "pick a preset or a method and the models; the YAML on the right is what runs",
    "Run": "build the merge or mixture of experts into a folder, with progress and Cancel",
    "Evaluate": "score it and its parents on held-out prompts: table, plot, what it means",
    "Ensembles": "ask a router, a vote or a pipeline; see how each answer was reached",
    "Publish": "write the model card and upload to the Hugging Face Hub (a dry run first)",
}


def getting_started_html(titles: list[str] | None = None) -> str:
    """The strip of steps above the form: one per tab, numbered in the tabs' order (a tab added
    with :func:`register_tab` and a ``step`` line has its step too)."""
    lines = {**GETTING_STARTED, **{t: step for t, _f, _a, step in _EXTRA_TABS if step}}
    titles = [t for t in (titles or list(GETTING_STARTED)) if t in lines]
    steps = "".join(f"<div class='llmcombo-step'><b>{i} {html.escape(t)}</b><br>"
                    f"{html.escape(lines[t])}</div>" for i, t in enumerate(titles, 1))
    return f"<div class='llmcombo-steps'>{steps}</div>"


def zoo_status() -> tuple[bool, str]:
    """Whether the demo's models are there, and a line that says so (information, not an
    error: the form works without them)."""
    try:
        from llmcombo import zoo

        folder = zoo.default_dir()
        if zoo.is_complete(folder):
            return True, f"The demo's small models (zoo: {', '.join(zoo.MODEL_NAMES)}) are ready."
        return False, ("The zoo (the demo's small models) is not built yet: run `llmcombo zoo "
                       "build` in a terminal (a few minutes). You can configure meanwhile; Run, "
                       "Evaluate and Ensembles need the models.")
    except Exception as exc:  # pragma: no cover - a broken zoo plugin
        return False, f"The zoo could not be checked: {exc}"


_EXTRA_TABS: list[tuple[str, Any, str | None, str | None]] = []


def register_tab(title: str, factory, after: str | None = None, step: str | None = None) -> None:
    """Add a tab to every App made from now on: ``factory(app)`` returns a panel with
    ``.widget`` (and optionally ``.refresh()``), built the first time the tab is shown; the tab
    goes after the tab ``after`` (default: last); ``step`` is its line in the getting-started
    strip."""
    global _EXTRA_TABS
    _EXTRA_TABS = [t for t in _EXTRA_TABS if t[0] != title] + [(title, factory, after, step)]


class App:
    """The whole workbench: ``App().widget``.

    Only the Configure tab is built up front; the other panels are built the first time their
    tab is shown (or their attribute is used), so the page has fewer widgets to create when it
    opens. Their view-models exist from the start. ``session=True`` keeps the form and the runs
    in ``OUTPUTS/.llmcombo-session.json`` so that a reload of the page finds them again."""

    TABS = ("Configure", "Run", "Evaluate", "Ensembles", "Publish")

    def __init__(self, data: dict | None = None, *, out_root: str | None = None,
                 preload_after: float | None = 10.0, session: bool = False):
        """``preload_after``: seconds after the build (or the first edit, whichever comes first)
        to start importing mergekit's models, and with them torch, in a thread: the first valid
        form (its live mergekit YAML) and the first Run then do not wait for them, and the page
        is not slowed down while it opens. None leaves them to be imported on first use."""
        import os

        t0 = time.perf_counter()
        out_root = out_root or os.environ.get("LLMCOMBO_OUTPUTS", "outputs")
        self.session = Session(out_root, enabled=session)
        restored = data is None and isinstance(self.session.get("form"), dict)
        self.form = FormModel(self.session.get("form") if restored else data)
        self.run_model = RunModel(self.form, out_root, self.session)
        save_folder = str(self.run_model.out_root.expanduser().absolute())
        self.configurator = Configurator(self.form, save_folder=save_folder,
                                         recent_models=self._recent_models)
        self.evaluate_model = EvaluateModel(self.run_model)
        self.playground_model = PlaygroundModel(self.form, self.run_model)
        self.publish_model = PublishModel(self.run_model)
        self._panels: dict[str, Any] = {}
        self.tab_titles = list(self.TABS)
        self._extra = {}
        for title, factory, after, _step in _EXTRA_TABS:
            at = self.tab_titles.index(after) + 1 if after in self.tab_titles else len(self.tab_titles)
            self.tab_titles.insert(at, title)
            self._extra[title] = factory
        ok, zoo_line = zoo_status()
        self.zoo_ready = ok
        welcome = ""
        if restored:
            n = len(self.run_model.history())
            welcome = status(f"Welcome back: your configuration{f' and {n} run(s)' if n else ''} "
                             "came back from the last session.", "info", "llmcombo-restored")
        if self.session.error:
            welcome += status(self.session.error, "info")
        intro = W.HTML(getting_started_html(self.tab_titles) + welcome
                       + (status(zoo_line, "info", "llmcombo-zoo-missing") if not ok else ""))
        intro.add_class("llmcombo-getting-started")
        configure = W.VBox([intro, self.configurator.widget])
        # one box per tab; a panel moves into its box when first shown
        self._slots = [configure] + [W.VBox() for _ in self.tab_titles[1:]]
        for name, slot in zip(self.tab_titles[1:], self._slots[1:]):
            slot.add_class(f"llmcombo-tab-{name.lower()}")
        self.tabs = W.Tab(children=self._slots)
        for i, title in enumerate(self.tab_titles):
            self.tabs.set_title(i, title)
        self.tabs.add_class("llmcombo-tabs")
        self.tabs.observe(self._on_tab, "selected_index")
        self.form.subscribe(self._on_form)
        self.build_seconds = time.perf_counter() - t0
        self.built_at = time.time()
        started = _process_started()
        stamps = f" data-built-at='{self.built_at:.3f}'"
        if started is not None:
            stamps += f" data-kernel-started='{started:.3f}'"
        ready = W.HTML(f"<span class='llmcombo-help' data-build-seconds='{self.build_seconds:.3f}'"
                       f"{stamps}>llmcombo workbench{' · ' + html.escape(zoo_line) if ok else ''}"
                       "</span>")
        ready.add_class("llmcombo-ready")
        header = W.HTML("<h2 class='llmcombo-title'>llmcombo</h2><div class='llmcombo-subtitle'>"
                        "Combine language models without code: merges, mixtures of experts and "
                        "ensembles, from one form.</div>")
        self.widget = W.VBox([W.HTML(CSS), header, self.tabs, ready])
        self.widget.add_class("llmcombo-app")
        self.preloading = preload(delay=preload_after) if preload_after is not None else None

    def _recent_models(self) -> list[str]:
        return [str(r.path) for r in self.run_model.history()[:8]]

    # -- panels, built on first use ------------------------------------------------------------
    def _panel(self, name: str):
        panel = self._panels.get(name)
        if panel is None:
            if name == "Run":
                panel = RunPanel(self.run_model, on_done=self._on_run_done)
            elif name == "Evaluate":
                panel = EvaluatePanel(self.evaluate_model,
                                      save_folder=str(self.run_model.out_root.expanduser()
                                                      .absolute() / "evaluation"))
            elif name == "Ensembles":
                panel = PlaygroundPanel(self.playground_model)
            elif name == "Publish":
                panel = PublishPanel(self.publish_model)
            else:
                panel = self._extra[name](self)
            self._panels[name] = panel
            self._slots[self.tab_titles.index(name)].children = (panel.widget,)
            refresh = getattr(panel, "refresh", None)
            if callable(refresh):
                refresh()
        return panel

    @property
    def run_panel(self) -> RunPanel:
        return self._panel("Run")

    @property
    def evaluate_panel(self) -> EvaluatePanel:
        return self._panel("Evaluate")

    @property
    def playground_panel(self) -> PlaygroundPanel:
        return self._panel("Ensembles")

    @property
    def publish_panel(self) -> PublishPanel:
        return self._panel("Publish")

    def _on_form(self, _form) -> None:
        if self.preloading is not None:
            self.preloading.now()  # the user is at work: the first valid form is coming
        self.session.update(form=self.form.data)
        if "Run" in self._panels:
            self._panels["Run"].refresh()

    def _on_tab(self, change) -> None:
        i = change["new"]
        if i is None or i == 0:
            return
        name = self.tab_titles[i]
        built = name in self._panels
        panel = self._panel(name)
        refresh = getattr(panel, "refresh", None)
        if built and callable(refresh):
            refresh()

    def _on_run_done(self, result: Any) -> None:

        # the new run, beside the models it was made from: Evaluate is one click away
        self.evaluate_panel.refresh(select=self.evaluate_model.with_parents(result.path))
        self.publish_panel.refresh()
        if "Ensembles" in self._panels:
            self._panels["Ensembles"].refresh()
        self.configurator.refresh()  # the new folder is offered in the model fields


def dashboard(data: dict | None = None, **kw) -> App:
    return App(data, **kw)


__all__ = [
    "GETTING_STARTED", "App", "EvaluatePanel", "PlaygroundPanel", "PublishPanel", "RunPanel",
    "SaveBox", "WidgetProgress", "dashboard", "getting_started_html", "register_tab", "zoo_status",
]


def _search_tab(app):  # its own module: llmcombo_widgets.search_panel
    from llmcombo_widgets.search_panel import SearchPanel

    return SearchPanel.for_app(app)


register_tab("Search", _search_tab,
             step="let a search try many merges of your models and keep the best, beside the presets")
