"""The dashboard: tabs Configure -> Run -> Evaluate -> Ensembles -> Publish.

Each panel renders a plain-Python view-model from :mod:`llmcombo_widgets.workbench`; long work
runs in a thread (:class:`~llmcombo_widgets.jobs.Job`) and updates the widgets as it goes, so the
page stays responsive. ``App().widget`` is what ``notebooks/dashboard.ipynb`` displays (served by
``llmcombo dashboard`` with Voila).
"""

from __future__ import annotations

import html
import time
from typing import Any

import ipywidgets as W

from llmcombo_widgets.configurator import CSS, Configurator, _set, issues_html
from llmcombo_widgets.jobs import CANCELLED, DONE, FAILED, RUNNING, Job
from llmcombo_widgets.viewmodel import FormModel, preload
from llmcombo_widgets.workbench import (EvaluateModel, PlaygroundModel, PublishModel, RunModel,
                                        figure_png, trace_rows)


def _process_started() -> float | None:
    """When this process (the kernel, under Voila) started, in seconds since the epoch."""
    try:
        import psutil

        return psutil.Process().create_time()
    except Exception:  # psutil comes with ipykernel; a missing stamp only loses a figure
        return None


def _table(rows, cls: str = "") -> str:
    body = "".join(f"<tr><th style='text-align:left;padding-right:12px'>{html.escape(str(k))}</th>"
                   f"<td>{html.escape(str(v))}</td></tr>" for k, v in rows)
    return f"<table class='{cls}'>{body}</table>"


class WidgetProgress:
    """llmcombo's ``Progress`` protocol (start/update/log/close) on ipywidgets: a progress bar,
    the current phase and a log. Usable on its own: ``run(config, out, progress=WidgetProgress())``
    in a notebook, then display ``.widget``."""

    def __init__(self, log_lines: int = 12):
        self.bar = W.FloatProgress(value=0.0, min=0.0, max=1.0, description="",
                                   layout=W.Layout(width="420px"))
        self.bar.add_class("llmcombo-progress")
        self.label = W.HTML()
        self.label.add_class("llmcombo-progress-label")
        self.log_view = W.HTML()
        self.log_view.add_class("llmcombo-log")
        self.widget = W.VBox([W.HBox([self.bar, self.label]), self.log_view])
        self._phases: list[list] = []
        self._log: list[str] = []
        self._keep = log_lines
        self._last = 0.0

    def _show(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < 0.1:
            return
        self._last = now
        if self._phases:
            outer = next((p for p in self._phases if p[1]), self._phases[-1])
            desc, total, done = outer
            if total:
                self.bar.value = min(1.0, done / total)
                self.label.value = f"{html.escape(self._phases[-1][0])}: {done}/{total}"
            else:
                self.label.value = html.escape(self._phases[-1][0])

    def start(self, total: int | None, desc: str) -> None:
        self._phases.append([desc, total, 0])
        if len(self._phases) == 1:
            self.bar.bar_style = ""
            self.bar.value = 0.0
        self._show(force=True)

    def update(self, n: int = 1) -> None:
        if self._phases:
            self._phases[-1][2] += n
        self._show()

    def log(self, msg: str) -> None:
        self._log.append(str(msg))
        self._log = self._log[-self._keep:]
        self.log_view.value = ("<pre style='font-size:11px;max-height:180px;overflow:auto;margin:0'>"
                               + html.escape("\n".join(self._log)) + "</pre>")

    def close(self) -> None:
        self._show(force=True)  # the last update may have been throttled away
        if self._phases:
            self._phases.pop()
            if self._phases:
                self._show(force=True)

    def finish(self, ok: bool) -> None:
        self._phases = []
        if ok:
            self.bar.value = 1.0
        self.bar.bar_style = "success" if ok else "danger"


class RunPanel:
    def __init__(self, model: RunModel, on_done=None):
        self.model = model
        self.on_done = on_done
        self.out = W.Text(description="Output", layout=W.Layout(width="520px"))
        self.out.add_class("llmcombo-out")
        self.out.observe(self._on_out, "value")
        self.overwrite = W.Checkbox(value=model.overwrite, description="replace an existing output",
                                    indent=False)
        self.overwrite.observe(lambda ch: setattr(model, "overwrite", ch["new"]), "value")
        self.check_btn = W.Button(description="Pre-flight", icon="search")
        self.check_btn.add_class("llmcombo-preflight-button")
        self.check_btn.on_click(lambda _b: self.show_preflight())
        self.run_btn = W.Button(description="Run", button_style="success", icon="play")
        self.run_btn.add_class("llmcombo-run")
        self.run_btn.on_click(lambda _b: self.start())
        self.cancel_btn = W.Button(description="Cancel", button_style="warning", icon="stop",
                                   disabled=True)
        self.cancel_btn.add_class("llmcombo-cancel")
        self.cancel_btn.on_click(lambda _b: model.cancel())
        self.preflight = W.HTML()
        self.preflight.add_class("llmcombo-preflight")
        self.progress = WidgetProgress()
        self.status = W.HTML()
        self.status.add_class("llmcombo-run-status")
        self.result = W.HTML()
        self.result.add_class("llmcombo-run-result")
        self.widget = W.VBox([
            W.HTML("<b>Run the merge or mixture of experts</b> <span class='llmcombo-help'>"
                   "(in the background: the page stays usable)</span>"),
            W.HBox([self.out, self.overwrite]),
            W.HBox([self.check_btn, self.run_btn, self.cancel_btn]),
            self.preflight, self.progress.widget, self.status, self.result])
        self.widget.add_class("llmcombo-run-panel")
        model.job.subscribe(self._on_job)
        self._syncing = False

    def _on_out(self, change) -> None:
        if not self._syncing:
            self.model.out_dir = change["new"].strip() or None

    def refresh(self) -> None:
        """Called when the configuration changes or the tab is shown."""
        self._syncing = True
        try:
            _set(self.out, value=self.model.out)
        finally:
            self._syncing = False
        reason = self.model.why_not_runnable()
        running = self.model.job.running
        _set(self.run_btn, disabled=bool(reason) or running)
        _set(self.check_btn, disabled=self.model.form.family not in ("merge", "moe"))
        if reason and not running:
            _set(self.status, value=f"<span class='llmcombo-status-error'>{html.escape(reason)}</span>")
        elif not running and self.model.job.status not in (DONE, FAILED, CANCELLED):
            _set(self.status, value="ready to run")

    def show_preflight(self):
        self.preflight.value = "<i>reading the models' config.json …</i>"
        try:
            s = self.model.preflight()
        except Exception as exc:  # shown, never raised into the widget machinery
            self.preflight.value = f"<span class='llmcombo-status-error'>{html.escape(str(exc))}</span>"
            return None
        text = "<b>Pre-flight</b>" + _table(s.rows(), "llmcombo-preflight-table")
        if s.issues:
            text += "<div class='llmcombo-issues'>" + issues_html(s.issues) + "</div>"
        if s.notes:
            text += "".join(f"<div class='llmcombo-help'>{html.escape(n)}</div>" for n in s.notes if n)
        self.preflight.value = text
        return s

    def start(self) -> None:
        s = self.show_preflight()
        if s is not None and not s.ok:
            self.status.value = ("<span class='llmcombo-status-error'>Pre-flight found errors: "
                                 "nothing was run.</span>")
            return
        try:
            self.model.start(extra_progress=self.progress)
        except Exception as exc:
            self.status.value = f"<span class='llmcombo-status-error'>{html.escape(getattr(exc, 'message', str(exc)))}</span>"

    def _on_job(self, job: Job) -> None:
        running = job.status == RUNNING
        _set(self.cancel_btn, disabled=not running)
        _set(self.run_btn, disabled=running or bool(self.model.why_not_runnable()))
        if running:
            _set(self.status, value=f"running … {job.fraction:.0%} {html.escape(job.phase)}")
            return
        if job.status == DONE:
            self.progress.finish(True)
            self.status.value = "<span class='llmcombo-status-ok llmcombo-run-done'>done</span>"
            self.result.value = "<b>Result</b>" + _table(self.model.result_rows(), "llmcombo-result-table")
            if self.on_done is not None:
                self.on_done(job.result)
        elif job.status in (FAILED, CANCELLED):
            self.progress.finish(False)
            hint = f" <i>{html.escape(job.hint)}</i>" if job.hint else ""
            self.status.value = (f"<span class='llmcombo-status-error llmcombo-run-{job.status}'>"
                                 f"{job.status}: {html.escape(job.error or '')}{hint}</span>")


class EvaluatePanel:
    def __init__(self, model: EvaluateModel):
        self.model = model
        self.products = W.SelectMultiple(description="Products", rows=6, layout=W.Layout(width="420px"))
        self.products.add_class("llmcombo-eval-products")
        self.tasks = W.SelectMultiple(description="Tasks", options=model.tasks(),
                                      value=tuple(model.tasks()), rows=3)
        self.tasks.add_class("llmcombo-eval-tasks")
        self.limit = W.BoundedIntText(value=model.limit, min=1, max=1000, description="Prompts/task",
                                      style={"description_width": "initial"},
                                      layout=W.Layout(width="200px"))
        self.limit.add_class("llmcombo-eval-limit")
        self.limit.observe(lambda ch: setattr(model, "limit", int(ch["new"])), "value")
        self.add_ref = W.Text(placeholder="a model folder, zoo:NAME or an ensemble YAML",
                              layout=W.Layout(width="420px"))
        self.add_btn = W.Button(description="Add product")
        self.add_btn.on_click(self._on_add)
        self.run_btn = W.Button(description="Evaluate", button_style="success", icon="play")
        self.run_btn.add_class("llmcombo-eval-run")
        self.run_btn.on_click(lambda _b: self.start())
        self.cancel_btn = W.Button(description="Cancel", disabled=True)
        self.cancel_btn.on_click(lambda _b: model.job.cancel())
        self.progress = WidgetProgress(log_lines=4)
        self.status = W.HTML()
        self.status.add_class("llmcombo-eval-status")
        self.table = W.HTML()
        self.table.add_class("llmcombo-eval-table")
        self.plot = W.Image(format="png", layout=W.Layout(width="640px", display="none"))
        self.plot.add_class("llmcombo-eval-plot")
        self.widget = W.VBox([
            W.HTML("<b>Evaluate products on the zoo tasks</b> <span class='llmcombo-help'>"
                   "(exact-match accuracy on held-out prompts)</span>"),
            W.HBox([self.products, W.VBox([self.tasks, self.limit])]),
            W.HBox([self.add_ref, self.add_btn]),
            W.HBox([self.run_btn, self.cancel_btn]), self.progress.widget, self.status,
            self.table, self.plot])
        self.widget.add_class("llmcombo-evaluate-panel")
        model.job.subscribe(self._on_job)
        self.refresh()

    def refresh(self, select: str | None = None) -> None:
        names = list(self.model.products())
        chosen = [n for n in self.products.value if n in names]
        if select and select in names and select not in chosen:
            chosen.append(select)
        _set(self.products, options=names)
        _set(self.products, value=tuple(chosen))

    def _on_add(self, _b) -> None:
        ref = self.add_ref.value.strip()
        if ref:
            from pathlib import Path

            name = Path(ref).name if not ref.startswith("zoo:") else ref
            self.model.add_product(name, ref)
            self.refresh(select=name)
            self.add_ref.value = ""

    def start(self) -> None:
        try:
            self.model.start(list(self.products.value), list(self.tasks.value),
                             extra_progress=self.progress)
        except Exception as exc:
            self.status.value = f"<span class='llmcombo-status-error'>{html.escape(getattr(exc, 'message', str(exc)))}</span>"

    def _on_job(self, job: Job) -> None:
        running = job.status == RUNNING
        _set(self.run_btn, disabled=running)
        _set(self.cancel_btn, disabled=not running)
        if running:
            _set(self.status, value=f"evaluating … {job.fraction:.0%}")
            return
        if job.status == DONE:
            self.progress.finish(True)
            frame = self.model.frame
            from llmcombo.evaluate import accuracy_table

            self.table.value = accuracy_table(frame).to_html(float_format=lambda x: f"{x:.1%}", classes="llmcombo-accuracy")
            self.plot.value = figure_png(self.model.figure())
            self.plot.layout.display = None
            self.status.value = (f"<span class='llmcombo-status-ok llmcombo-eval-done'>done in "
                                 f"{job.seconds or 0:.1f} s</span>")
        else:
            self.progress.finish(False)
            self.status.value = (f"<span class='llmcombo-status-error'>{job.status}: "
                                 f"{html.escape(job.error or '')}</span>")


class PlaygroundPanel:
    def __init__(self, model: PlaygroundModel):
        self.model = model
        self.source = W.Dropdown(options=model.sources(), value=model.source, description="Product",
                                 layout=W.Layout(width="420px"))
        self.source.add_class("llmcombo-playground-source")
        self.source.observe(lambda ch: setattr(model, "source", ch["new"]), "value")
        self.prompt = W.Text(value="apaga la luz del salon", description="Prompt",
                             layout=W.Layout(width="520px"))
        self.prompt.add_class("llmcombo-prompt")
        self.ask_btn = W.Button(description="Ask", button_style="success", icon="comment")
        self.ask_btn.add_class("llmcombo-ask")
        self.ask_btn.on_click(lambda _b: self.ask())
        self.answer = W.HTML()
        self.answer.add_class("llmcombo-answer")
        self.trace = W.HTML()
        self.trace.add_class("llmcombo-trace")
        self.widget = W.VBox([
            W.HTML("<b>Ask an ensemble</b> <span class='llmcombo-help'>(router, vote and pipeline "
                   "over the zoo's specialists, or the ensemble in Configure)</span>"),
            self.source, W.HBox([self.prompt, self.ask_btn]), self.answer, self.trace])
        self.widget.add_class("llmcombo-playground-panel")
        model.job.subscribe(self._on_job)

    def refresh(self) -> None:
        options = self.model.sources()
        _set(self.source, options=options)
        if self.source.value not in options:
            self.source.value = options[0]

    def ask(self) -> None:
        self.answer.value = "<i>thinking … (the first question loads the models)</i>"
        self.trace.value = ""
        self.model.start(self.prompt.value, self.source.value)

    def _on_job(self, job: Job) -> None:
        if job.status == RUNNING:
            _set(self.ask_btn, disabled=True)
            return
        _set(self.ask_btn, disabled=False)
        if job.status == DONE and job.result is not None:
            a = job.result
            self.answer.value = f"<b>Answer:</b> <code class='llmcombo-answer-text'>{html.escape(a.text)}</code>"
            self.trace.value = "<b>Trace</b>" + _table(trace_rows(a.trace), "llmcombo-trace-table")
        elif job.status in (FAILED, CANCELLED):
            self.answer.value = f"<span class='llmcombo-status-error'>{html.escape(job.error or '')}</span>"


class PublishPanel:
    def __init__(self, model: PublishModel):
        self.model = model
        self.folder = W.Combobox(description="Folder", ensure_option=False,
                                 placeholder="the output folder of a run",
                                 layout=W.Layout(width="520px"))
        self.folder.add_class("llmcombo-publish-folder")
        self.repo = W.Text(description="Repo id", placeholder="your-name/my-merge",
                           layout=W.Layout(width="520px"))
        self.repo.add_class("llmcombo-publish-repo")
        self.license = W.Dropdown(options=model.LICENSES, value=model.license, description="License")
        self.private = W.Checkbox(value=model.private, description="private repository", indent=False)
        self.dry_run = W.Checkbox(value=model.dry_run, description="dry run (write the model card, "
                                  "upload nothing)", indent=False)
        self.dry_run.add_class("llmcombo-publish-dry-run")
        self.token = W.Password(description="Token", placeholder="hf_… (only for a real upload)",
                                layout=W.Layout(width="520px"))
        self.token.add_class("llmcombo-token")
        self.publish_btn = W.Button(description="Publish", button_style="primary", icon="upload")
        self.publish_btn.add_class("llmcombo-publish")
        self.publish_btn.on_click(lambda _b: self.publish())
        self.status = W.HTML()
        self.status.add_class("llmcombo-publish-status")
        self.widget = W.VBox([
            W.HTML("<b>Publish to the Hugging Face Hub</b> <span class='llmcombo-help'>(the token "
                   "is used once and cleared; it is never saved or shown)</span>"),
            self.folder, self.repo, W.HBox([self.license, self.private]), self.dry_run,
            self.token, self.publish_btn, self.status])
        self.widget.add_class("llmcombo-publish-panel")
        model.job.subscribe(self._on_job)

    def refresh(self) -> None:
        folders = self.model.folders()
        _set(self.folder, options=folders)
        if not self.folder.value and folders:
            self.folder.value = folders[-1]

    def publish(self) -> None:
        token = self.token.value
        self.token.value = ""  # cleared at once: never kept in the widget or the notebook
        m = self.model
        m.folder, m.repo_id = self.folder.value.strip(), self.repo.value.strip()
        m.license, m.private, m.dry_run = self.license.value, self.private.value, self.dry_run.value
        self.status.value = "<i>publishing …</i>"
        m.start(token or None)
        del token

    def _on_job(self, job: Job) -> None:
        if job.status == RUNNING:
            _set(self.publish_btn, disabled=True)
            return
        _set(self.publish_btn, disabled=False)
        if job.status == DONE:
            r = job.result
            text = getattr(r, "summary", None)
            text = text() if callable(text) else (text or str(r))
            self.status.value = (f"<div class='llmcombo-status-ok llmcombo-publish-done'>"
                                 f"{html.escape(str(text))}</div>")
        elif job.status in (FAILED, CANCELLED):
            self.status.value = f"<span class='llmcombo-status-error'>{html.escape(job.error or '')}</span>"


class App:
    """The whole workbench: ``App().widget``.

    Only the Configure tab is built up front; the Run, Evaluate, Ensembles and Publish panels are
    built the first time their tab is shown (or their attribute is used), so the page has fewer
    widgets to create when it opens. Their view-models exist from the start."""

    TABS = ("Configure", "Run", "Evaluate", "Ensembles", "Publish", "Search")

    def __init__(self, data: dict | None = None, *, out_root: str | None = None,
                 preload_after: float | None = 10.0):
        """``preload_after``: seconds after the build (or the first edit, whichever comes first)
        to start importing mergekit's models, and with them torch, in a thread: the first valid
        form (its live mergekit YAML) and the first Run then do not wait for them, and the page
        is not slowed down while it opens. None leaves them to be imported on first use."""
        import os

        t0 = time.perf_counter()
        out_root = out_root or os.environ.get("LLMCOMBO_OUTPUTS", "outputs")
        self.form = FormModel(data)
        self.configurator = Configurator(self.form)
        self.run_model = RunModel(self.form, out_root)
        self.evaluate_model = EvaluateModel(self.run_model)
        self.playground_model = PlaygroundModel(self.form)
        self.publish_model = PublishModel(self.run_model)
        self._panels: dict[str, Any] = {}
        # one box per tab; a panel moves into its box when first shown
        self._slots = [self.configurator.widget] + [W.VBox() for _ in self.TABS[1:]]
        for name, slot in zip(self.TABS[1:], self._slots[1:]):
            slot.add_class(f"llmcombo-tab-{name.lower()}")
        self.tabs = W.Tab(children=self._slots)
        for i, title in enumerate(self.TABS):
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
                       f"{stamps}>llmcombo workbench</span>")
        ready.add_class("llmcombo-ready")
        self.widget = W.VBox([W.HTML(CSS), W.HTML("<h2 style='margin:4px 0'>llmcombo</h2>"),
                              self.tabs, ready])
        self.widget.add_class("llmcombo-app")
        self.preloading = preload(delay=preload_after) if preload_after is not None else None

    # -- panels, built on first use ------------------------------------------------------------
    def _panel(self, name: str):
        panel = self._panels.get(name)
        if panel is None:
            if name == "Run":
                panel = RunPanel(self.run_model, on_done=self._on_run_done)
            elif name == "Evaluate":
                panel = EvaluatePanel(self.evaluate_model)
            elif name == "Ensembles":
                panel = PlaygroundPanel(self.playground_model)
            elif name == "Search":  # its own module: llmcombo_widgets.search_panel
                from llmcombo_widgets.search_panel import SearchPanel
                panel = SearchPanel.for_app(self)
            else:
                panel = PublishPanel(self.publish_model)
            self._panels[name] = panel
            self._slots[self.TABS.index(name)].children = (panel.widget,)
            if name == "Run":
                panel.refresh()
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
        if "Run" in self._panels:
            self._panels["Run"].refresh()

    def _on_tab(self, change) -> None:
        i = change["new"]
        if i is None or i == 0:
            return
        self._panel(self.TABS[i]).refresh()

    def _on_run_done(self, result: Any) -> None:
        from pathlib import Path

        name = Path(str(result.path)).name
        self.evaluate_panel.refresh(select=name)
        self.publish_panel.refresh()


def dashboard(data: dict | None = None, **kw) -> App:
    return App(data, **kw)
