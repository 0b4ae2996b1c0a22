"""The dashboard: tabs Configure -> Run -> Evaluate -> Ensembles -> Publish.

Each panel renders a plain-Python view-model from :mod:`llmcombo_widgets.workbench`; long work
runs in a thread (:class:`~llmcombo_widgets.jobs.Job`) and updates the widgets as it goes, so the
page stays responsive. ``App().widget`` is what ``llmcombo_widgets/dashboard.ipynb`` displays
(served by ``llmcombo dashboard`` with Voila). Every panel has two columns (what you set on the
left, what comes out on the right) that stack on a narrow screen; results can be downloaded or
saved to a folder; with ``session=True`` the form and the runs survive a reload of the page.

Another module adds a tab with :func:`register_tab` (``title``, ``factory(app) -> panel`` where
the panel has ``.widget`` and ``.refresh()``), before the App is made.
"""

from __future__ import annotations

import html
import threading
import time
from typing import Any

import ipywidgets as W

from llmcombo_widgets.configurator import CSS, Configurator, _set, issues_html
from llmcombo_widgets.downloads import links
from llmcombo_widgets.jobs import CANCELLED, DONE, FAILED, RUNNING, Job
from llmcombo_widgets.session import Session
from llmcombo_widgets.theme import card, columns, disclosure, grow, status
from llmcombo_widgets.viewmodel import FormModel, preload
from llmcombo_widgets.workbench import (
    FORM_SOURCE,
    EvaluateModel,
    PlaygroundModel,
    PublishModel,
    RunModel,
    figure_png,
)


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


def _error_text(exc: BaseException) -> str:
    msg = getattr(exc, "message", None) or str(exc)
    hint = getattr(exc, "hint", None)
    return msg + (f" {hint}" if hint else "")


class SaveBox:
    """A folder the user chooses (shown in full) and a button that saves into it; the status
    line says the full path of what was written."""

    def __init__(self, default_folder: str, label: str, save, cls: str):
        self.save = save  # save(folder: Path) -> list[Path]
        self.folder = W.Text(value=str(default_folder), description="Folder", layout=grow("180px"),
                             style={"description_width": "52px"})
        self.folder.add_class(f"{cls}-folder")
        self.button = W.Button(description=label, icon="save", layout=W.Layout(width="auto"))
        self.button.add_class(cls)
        self.button.on_click(lambda _b: self.do())
        self.status = W.HTML()
        self.status.add_class(f"{cls}-status")
        self.widget = W.VBox([W.HBox([self.folder, self.button], layout=W.Layout(width="100%")),
                              self.status])

    def do(self) -> None:
        from llmcombo_widgets.downloads import resolve_folder

        folder = resolve_folder(self.folder.value, self.folder.value or ".")
        try:
            written = self.save(folder)
        except Exception as exc:  # shown, never raised into the widget machinery
            self.status.value = status(_error_text(exc), "error")
            return
        self.status.value = ("<div class='llmcombo-status-ok'>Saved: "
                             + ", ".join(f"<code>{html.escape(str(p))}</code>" for p in written)
                             + "</div>")


GETTING_STARTED = (
    ("1 Configure", "pick a preset or a method and the models; the YAML on the right is what runs"),
    ("2 Run", "build the merge or mixture of experts into a folder, with progress and Cancel"),
    ("3 Evaluate", "score it and its parents on held-out prompts: table, plot, what it means"),
    ("4 Ensembles", "ask a router, a vote or a pipeline; see how each answer was reached"),
    ("5 Publish", "write the model card and upload to the Hugging Face Hub (a dry run first)"),
)


def getting_started_html() -> str:
    steps = "".join(f"<div class='llmcombo-step'><b>{html.escape(t)}</b><br>{html.escape(d)}</div>"
                    for t, d in GETTING_STARTED)
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


_EXTRA_TABS: list[tuple[str, Any, str | None]] = []


def register_tab(title: str, factory, after: str | None = None) -> None:
    """Add a tab to every App made from now on: ``factory(app)`` returns a panel with
    ``.widget`` (and optionally ``.refresh()``), built the first time the tab is shown; the tab
    goes after the tab ``after`` (default: last)."""
    global _EXTRA_TABS
    _EXTRA_TABS = [t for t in _EXTRA_TABS if t[0] != title] + [(title, factory, after)]


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
        self._finished = False

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
            if self._finished:  # a new run: the last one's log goes
                self._log, self._finished = [], False
                self.log_view.value = ""
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
        self._finished = True
        if ok:
            self.bar.value = 1.0
        self.bar.bar_style = "success" if ok else "danger"


class RunPanel:
    def __init__(self, model: RunModel, on_done=None):
        self.model = model
        self.on_done = on_done
        self.out = W.Text(description="Output", layout=grow("200px"),
                          style={"description_width": "60px"})
        self.out.add_class("llmcombo-out")
        self.out.observe(self._on_out, "value")
        self.overwrite = W.Checkbox(value=model.overwrite, description="replace an existing output",
                                    indent=False, layout=W.Layout(width="auto"))
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
        self.gguf_btn = W.Button(description="export to GGUF", icon="download", disabled=True,
                                 tooltip=f"write OUT/NAME-{model.gguf_quant}.gguf with llama.cpp "
                                         "(needs llmcombo[llama])")
        self.gguf_btn.add_class("llmcombo-export-gguf")
        self.gguf_btn.on_click(lambda _b: self._export_gguf())
        self.preflight = W.HTML()
        self.preflight.add_class("llmcombo-preflight")
        self.progress = WidgetProgress()
        self.status = W.HTML()
        self.status.add_class("llmcombo-run-status")
        # right: the result, or an earlier run, with its files
        self.runs = W.Dropdown(description="Run", layout=grow("200px"),
                               style={"description_width": "40px"})
        self.runs.add_class("llmcombo-runs")
        self.runs.observe(lambda ch: self.show_run(), "value")
        self.result = W.HTML()
        self.result.add_class("llmcombo-run-result")
        self.files = W.HTML()
        self.files.add_class("llmcombo-run-downloads")
        self.zip_btn = W.Button(description="Prepare the model (zip)", icon="file-archive",
                                layout=W.Layout(width="auto"))
        self.zip_btn.add_class("llmcombo-zip")
        self.zip_btn.on_click(lambda _b: self.prepare_zip())
        self.zip = W.HTML()
        self.zip.add_class("llmcombo-zip-link")
        self.copy = SaveBox(str(model.out_root.expanduser().absolute().parent / "my-models"),
                            "Copy the model to this folder", self._copy, "llmcombo-copy")
        self.widget = columns(
            [W.HTML("<b>Run the merge or mixture of experts</b> <span class='llmcombo-help'>"
                    "(in the background: the page stays usable)</span>"),
             W.HBox([self.out], layout=W.Layout(width="100%")), self.overwrite,
             W.HBox([self.check_btn, self.run_btn, self.cancel_btn, self.gguf_btn],
                    layout=W.Layout(flex_flow="row wrap")),
             self.preflight, self.progress.widget, self.status],
            [W.HTML("<b>Results</b> <span class='llmcombo-help'>(this run or an earlier one)"
                    "</span>"), self.runs, self.result, self.files,
             W.HBox([self.zip_btn], layout=W.Layout(flex_flow="row wrap")), self.zip,
             self.copy.widget],
            cls="llmcombo-run-panel")
        self.widget.add_class("llmcombo-run-panel")
        model.job.subscribe(self._on_job)
        model.gguf_job.subscribe(self._on_gguf)
        self._syncing = False
        self.refresh_runs()

    def _export_gguf(self) -> None:
        try:
            self.model.export_gguf()
        except Exception as exc:
            message = html.escape(getattr(exc, "message", str(exc)))
            self.status.value = f"<span class='llmcombo-status-error'>{message}</span>"

    def _on_gguf(self, job: Job) -> None:
        _set(self.gguf_btn, disabled=not self.model.can_export_gguf())
        if job.status == RUNNING:
            _set(self.status, value=f"GGUF … {job.fraction:.0%} {html.escape(job.phase)}")
        elif job.status == DONE:
            self.status.value = ("<span class='llmcombo-status-ok llmcombo-gguf-done'>"
                                 f"{html.escape(str(job.result))}</span>")
        elif job.status in (FAILED, CANCELLED):
            hint = f" <i>{html.escape(job.hint)}</i>" if job.hint else ""
            self.status.value = (f"<span class='llmcombo-status-error'>GGUF {job.status}: "
                                 f"{html.escape(job.error or '')}{hint}</span>")

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
            kind = "info" if self.model.form.family not in ("merge", "moe") else "todo"
            _set(self.status, value=status(reason, kind, "llmcombo-run-why"))
            _set(self.preflight, value="")  # it belonged to another configuration
        elif not running and self.model.job.status not in (DONE, FAILED, CANCELLED):
            _set(self.status, value=status("ready to run", "ok"))

    def refresh_runs(self, select: str | None = None) -> None:
        options = [(r.label(), str(r.path)) for r in self.model.history()]
        keep = select or self.runs.value
        _set(self.runs, options=options)
        values = [v for _l, v in options]
        if keep in values:
            _set(self.runs, value=keep)
        elif values:
            _set(self.runs, value=values[0])
        self.show_run()

    def show_run(self) -> None:
        folder = self.runs.value
        _set(self.zip, value="")
        self.runs.layout.display = None if self.runs.options else "none"
        if not folder:
            _set(self.result, value="<div class='llmcombo-placeholder'>No run yet: the result of a "
                                    "run appears here, with its files to download.</div>")
            _set(self.files, value="")
            _set(self.zip_btn, disabled=True)
            _set(self.copy.button, disabled=True)
            return
        rec = self.model.record(folder)
        if rec is None:
            _set(self.result, value=status(f"{folder} is no longer a complete run folder.", "error"))
            _set(self.files, value="")
            return
        rows = [("folder", str(rec.path)), ("what", f"{rec.kind} ({rec.method})"),
                ("finished", rec.finished_at), ("run id", rec.run_id or "")]
        if rec.seconds is not None:
            rows.append(("time", f"{rec.seconds:.1f} s"))
        r = self.model.job.result if self.model.job.status == DONE else None
        if r is not None and str(r.path) == str(rec.path):
            rows = self.model.result_rows()
        _set(self.result, value=_table(rows, "llmcombo-result-table"))
        _set(self.files, value=links(self.model.downloads(rec.path)))
        _set(self.zip_btn, disabled=False)
        _set(self.copy.button, disabled=False)

    def prepare_zip(self) -> None:
        folder = self.runs.value
        if not folder:
            return
        self.zip.value = "<span class='llmcombo-help'>packing the model …</span>"
        _set(self.zip_btn, disabled=True)

        def work():
            try:
                d = self.model.model_download(folder)
                self.zip.value = links([d])
            except Exception as exc:
                self.zip.value = status(f"{_error_text(exc)}. Copy it to a folder instead.", "info")
            finally:
                self.zip_btn.disabled = False

        threading.Thread(target=work, daemon=True).start()

    def _copy(self, dest):
        from llmcombo_widgets.downloads import copy_folder

        if not self.runs.value:
            raise ValueError("there is no run to copy yet")
        return [copy_folder(self.runs.value, dest)]

    def show_preflight(self):
        self.preflight.value = "<i>reading the models' config.json …</i>"
        try:
            s = self.model.preflight()
        except Exception as exc:  # shown, never raised into the widget machinery
            self.preflight.value = status(_error_text(exc), "error")
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
            self.status.value = status("Pre-flight found errors: nothing was run.", "error")
            return
        try:
            self.model.start(extra_progress=self.progress)
        except Exception as exc:
            self.status.value = status(_error_text(exc), "error")

    def _on_job(self, job: Job) -> None:
        running = job.status == RUNNING
        _set(self.cancel_btn, disabled=not running)
        _set(self.run_btn, disabled=running or bool(self.model.why_not_runnable()))
        _set(self.gguf_btn, disabled=running or not self.model.can_export_gguf())
        if running:
            _set(self.status, value=f"running … {job.fraction:.0%} {html.escape(job.phase)}")
            return
        if job.status == DONE:
            self.progress.finish(True)
            self.status.value = (f"<span class='llmcombo-status-ok llmcombo-run-done'>done: the model "
                                 f"is in <code>{html.escape(str(job.result.path))}</code>.</span> "
                                 "<span class='llmcombo-help'>Next: compare it with its parents in "
                                 "Evaluate, or take its files away under Results.</span>")
            self.refresh_runs(select=str(job.result.path))
            if self.on_done is not None:
                self.on_done(job.result)
        elif job.status in (FAILED, CANCELLED):
            self.progress.finish(False)
            hint = f" <i>{html.escape(job.hint)}</i>" if job.hint else ""
            self.status.value = (f"<span class='llmcombo-status-error llmcombo-run-{job.status}'>"
                                 f"{job.status}: {html.escape(job.error or '')}{hint}</span>")


class EvaluatePanel:
    def __init__(self, model: EvaluateModel, save_folder: str = "."):
        self.model = model
        self.products = W.SelectMultiple(description="Products", rows=7, layout=grow("220px"),
                                         style={"description_width": "70px"})
        self.products.add_class("llmcombo-eval-products")
        self.tasks = W.SelectMultiple(description="Tasks", options=model.tasks(),
                                      value=tuple(model.tasks()), rows=3,
                                      layout=W.Layout(width="220px"),
                                      style={"description_width": "70px"})
        self.tasks.add_class("llmcombo-eval-tasks")
        self.limit = W.BoundedIntText(value=model.limit, min=1, max=1000, description="Prompts/task",
                                      style={"description_width": "initial"},
                                      layout=W.Layout(width="200px"))
        self.limit.add_class("llmcombo-eval-limit")
        self.limit.observe(lambda ch: setattr(model, "limit", int(ch["new"])), "value")
        self.add_ref = W.Text(placeholder="a model folder, zoo:NAME or an ensemble YAML",
                              layout=grow("200px"))
        self.add_btn = W.Button(description="Add product", layout=W.Layout(width="auto"))
        self.add_btn.on_click(self._on_add)
        add = W.Accordion(children=[W.HBox([self.add_ref, self.add_btn],
                                           layout=W.Layout(width="100%"))], selected_index=None)
        add.set_title(0, "Add another product (a folder or an ensemble YAML)")
        self.run_btn = W.Button(description="Evaluate", button_style="success", icon="play")
        self.run_btn.add_class("llmcombo-eval-run")
        self.run_btn.on_click(lambda _b: self.start())
        self.cancel_btn = W.Button(description="Cancel", icon="stop", disabled=True)
        self.cancel_btn.on_click(lambda _b: model.job.cancel())
        self.progress = WidgetProgress(log_lines=4)
        self.status = W.HTML()
        self.status.add_class("llmcombo-eval-status")
        self.table = W.HTML()
        self.table.add_class("llmcombo-eval-table")
        self.explain = W.HTML()
        self.explain.add_class("llmcombo-eval-explain")
        self.plot = W.Image(format="png", layout=W.Layout(max_width="100%", height="auto",
                                                          display="none"))
        self.plot.add_class("llmcombo-eval-plot")
        self.files = W.HTML()
        self.files.add_class("llmcombo-eval-downloads")
        self.save = SaveBox(save_folder, "Save results and plot", model.save, "llmcombo-eval-save")
        self.save.button.disabled = True  # nothing to save before an evaluation
        self.table.value = ("<div class='llmcombo-placeholder'>Results appear here: the accuracy "
                            "table, what it says, the plot, and files to download.</div>")
        self.widget = columns(
            [W.HTML("<b>Evaluate products on the zoo tasks</b> <span class='llmcombo-help'>"
                    "(exact-match accuracy on held-out prompts; hold Ctrl or Shift to pick several)"
                    "</span>"),
             self.products, W.HBox([self.tasks, self.limit], layout=W.Layout(flex_flow="row wrap")),
             add, W.HBox([self.run_btn, self.cancel_btn]), self.progress.widget, self.status],
            [self.table, self.explain, self.plot, self.files, self.save.widget],
            left_basis="460px", right_basis="460px", cls="llmcombo-evaluate-panel")
        self.widget.add_class("llmcombo-evaluate-panel")
        model.job.subscribe(self._on_job)
        self.refresh()

    def refresh(self, select: str | None = None) -> None:
        labels = self.model.labels()
        names = [n for _l, n in labels]
        chosen = [n for n in self.products.value if n in names]
        if select and select in names and select not in chosen:
            chosen.append(select)
        _set(self.products, options=labels)
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
            self.status.value = status(_error_text(exc), "error")

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

            n = sorted({int(x) for x in frame["n"]})
            prompts = f"{n[0]}" if len(n) == 1 else f"{n[0]} to {n[-1]}"
            self.table.value = (
                f"<b>Accuracy</b> <span class='llmcombo-help'>({prompts} held-out prompts per "
                "task)</span>"
                + accuracy_table(frame).to_html(float_format=lambda x: f"{x:.1%}", border=0,
                                                classes="llmcombo-accuracy")
                + disclosure("which model each row is", "\n".join(
                    f"{name}: {src}" for name, src in self.model.sources()),
                    cls="llmcombo-eval-sources"))
            said = self.model.explanation()
            self.explain.value = card("What this says", "".join(
                f"<div class='llmcombo-trace-sentence'>{html.escape(x)}</div>" for x in said),
                "llmcombo-explain-card") if said else ""
            self.plot.value = figure_png(self.model.figure())
            self.plot.layout.display = None
            self.files.value = links(self.model.downloads())
            self.save.button.disabled = False
            self.status.value = (f"<span class='llmcombo-status-ok llmcombo-eval-done'>done in "
                                 f"{job.seconds or 0:.1f} s</span>")
        else:
            self.progress.finish(False)
            self.status.value = (f"<span class='llmcombo-status-error'>{job.status}: "
                                 f"{html.escape(job.error or '')}</span>")


class PlaygroundPanel:
    def __init__(self, model: PlaygroundModel):
        self.model = model
        self.source = W.Dropdown(options=model.labels(), value=model.source, description="Ask",
                                 layout=grow("260px"), style={"description_width": "40px"})
        self.source.add_class("llmcombo-playground-source")
        self.source.observe(self._on_source, "value")
        self.about = W.HTML()
        self.about.add_class("llmcombo-playground-about")
        self.questions = W.HBox(layout=W.Layout(flex_flow="row wrap"))
        self.questions.add_class("llmcombo-questions")
        self.prompt = W.Text(value="apaga la luz del salon", description="Prompt",
                             layout=grow("200px"), style={"description_width": "52px"})
        self.prompt.add_class("llmcombo-prompt")
        self.prompt.on_submit(lambda _w: self.ask())
        self.ask_btn = W.Button(description="Ask", button_style="success", icon="comment",
                                layout=W.Layout(width="90px"))
        self.ask_btn.add_class("llmcombo-ask")
        self.ask_btn.on_click(lambda _b: self.ask())
        self.answer = W.HTML("<div class='llmcombo-placeholder'>Pick a question or type one, "
                             "then Ask: the answer and how it was reached appear here.</div>")
        self.answer.add_class("llmcombo-answer")
        self.trace = W.HTML()
        self.trace.add_class("llmcombo-trace")
        self.widget = columns(
            [W.HTML("<b>Ask an ensemble</b> <span class='llmcombo-help'>(router, vote and pipeline "
                    "over the zoo's specialists, one model, your merges, or the ensemble in "
                    "Configure)</span>"),
             self.source, self.about, self.questions,
             W.HBox([self.prompt, self.ask_btn], layout=W.Layout(width="100%"))],
            [self.answer, self.trace], cls="llmcombo-playground-panel")
        self.widget.add_class("llmcombo-playground-panel")
        model.job.subscribe(self._on_job)
        self._show_source()

    def refresh(self) -> None:
        labels = self.model.labels()
        _set(self.source, options=labels)
        values = [v for _l, v in labels]
        if self.source.value not in values:
            self.source.value = values[0]
        self._show_source()

    def _on_source(self, change) -> None:
        if change["new"] is not None:
            self.model.source = change["new"]
            self._show_source()

    def _show_source(self) -> None:
        src = self.source.value
        ex = self.model.example(src)
        text = f"<div class='llmcombo-field-help'>{html.escape(ex.description)}</div>" if ex else ""
        if src == FORM_SOURCE or ex is not None:
            try:
                text += disclosure("this ensemble's configuration (YAML)", self.model.spec_yaml(src),
                                   cls="llmcombo-ensemble-spec")
            except Exception as exc:
                text += status(_error_text(exc), "error")
        _set(self.about, value=text)
        buttons = []
        for q in self.model.questions(src):
            b = W.Button(description=q, tooltip="ask this", layout=W.Layout(width="auto"))
            b.add_class("llmcombo-question")
            b.on_click(lambda _b, q=q: self._ask_question(q))
            buttons.append(b)
        self.questions.children = tuple(buttons)

    def _ask_question(self, q: str) -> None:
        self.prompt.value = q
        self.ask()

    def ask(self) -> None:
        if self.model.job.running:
            return
        self.answer.value = "<i>thinking … (the first question loads the models)</i>"
        self.trace.value = ""
        self.model.start(self.prompt.value, self.source.value)

    def _on_job(self, job: Job) -> None:
        from llmcombo_widgets.words import trace_html

        if job.status == RUNNING:
            _set(self.ask_btn, disabled=True)
            return
        _set(self.ask_btn, disabled=False)
        if job.status == DONE and job.result is not None:
            a = job.result
            self.answer.value = card("Answer", f"<code class='llmcombo-answer-text'>"
                                               f"{html.escape(a.text) or '(empty)'}</code>")
            self.trace.value = card("How it was reached", trace_html(a.trace), "llmcombo-trace-card")
        elif job.status in (FAILED, CANCELLED):
            hint = f" {job.hint}" if job.hint else ""
            self.answer.value = status(f"{job.error or ''}{hint}", "error")


class PublishPanel:
    def __init__(self, model: PublishModel):
        self.model = model
        self.runs = W.Dropdown(description="Model", layout=grow("220px"),
                               style={"description_width": "60px"})
        self.runs.add_class("llmcombo-publish-runs")
        self.runs.observe(lambda ch: self.show_card(), "value")
        self.folder = W.Text(placeholder="or the full path of another model folder",
                             layout=grow("220px"))
        self.folder.add_class("llmcombo-publish-folder")
        other = W.Accordion(children=[self.folder], selected_index=None)
        other.set_title(0, "Another folder")
        self.repo = W.Text(description="Repo id", placeholder="your-name/my-merge",
                           layout=grow("220px"), style={"description_width": "60px"})
        self.repo.add_class("llmcombo-publish-repo")
        self.license = W.Dropdown(options=model.LICENSES, value=model.license, description="License",
                                  layout=W.Layout(width="240px"), style={"description_width": "60px"})
        self.private = W.Checkbox(value=model.private, description="private repository", indent=False,
                                  layout=W.Layout(width="auto"))
        self.dry_run = W.Checkbox(value=model.dry_run, description="dry run (write the model card, "
                                  "upload nothing)", indent=False, layout=W.Layout(width="auto"))
        self.dry_run.add_class("llmcombo-publish-dry-run")
        self.token = W.Password(description="Token", placeholder="hf_… (only for a real upload)",
                                layout=grow("220px"), style={"description_width": "60px"})
        self.token.add_class("llmcombo-token")
        self.publish_btn = W.Button(description="Publish", button_style="primary", icon="upload")
        self.publish_btn.add_class("llmcombo-publish")
        self.publish_btn.on_click(lambda _b: self.publish())
        self.status = W.HTML()
        self.status.add_class("llmcombo-publish-status")
        self.card = W.HTML()
        self.card.add_class("llmcombo-publish-card")
        self.widget = columns(
            [W.HTML("<b>Publish to the Hugging Face Hub</b> <span class='llmcombo-help'>(the token "
                    "is used once and cleared; it is never saved or shown)</span>"),
             self.runs, other, self.repo,
             W.HBox([self.license, self.private], layout=W.Layout(flex_flow="row wrap")),
             self.dry_run, self.token, self.publish_btn, self.status],
            [self.card], cls="llmcombo-publish-panel")
        self.widget.add_class("llmcombo-publish-panel")
        model.job.subscribe(self._on_job)
        for w in (self.repo, self.license):
            w.observe(lambda ch: self.show_card(), "value")

    def chosen_folder(self) -> str:
        return self.folder.value.strip() or (self.runs.value or "")

    def refresh(self) -> None:
        options = self.model.labels()
        _set(self.runs, options=options)
        values = [v for _l, v in options]
        if values and self.runs.value not in values:
            self.runs.value = values[0]
        self.show_card()

    def show_card(self) -> None:
        folder = self.chosen_folder()
        if not folder:
            _set(self.card, value=status("No model yet: run a merge first (Run tab), then "
                                         "publish it here.", "todo"))
            return
        try:
            text = self.model.card(folder, self.repo.value.strip() or None, self.license.value)
        except Exception as exc:
            _set(self.card, value=status(_error_text(exc), "error"))
            return
        from llmcombo_widgets.downloads import text_download

        _set(self.card, value=card(
            "Model card", links([text_download("README.md", text, "model card (README.md)")])
            + disclosure("read the model card", text, cls="llmcombo-card-text")))

    def publish(self) -> None:
        token = self.token.value
        self.token.value = ""  # cleared at once: never kept in the widget or the notebook
        m = self.model
        m.folder, m.repo_id = self.chosen_folder(), self.repo.value.strip()
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
            self.status.value = (f"<div class='llmcombo-status-ok llmcombo-publish-done' "
                                 f"style='white-space: pre-line'>{html.escape(str(text))}</div>")
        elif job.status in (FAILED, CANCELLED):
            self.status.value = status(job.error or "", "error")


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
        for title, factory, after in _EXTRA_TABS:
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
        intro = W.HTML(getting_started_html() + welcome
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
        from pathlib import Path

        name = Path(str(result.path)).name
        self.evaluate_panel.refresh(select=name)
        self.publish_panel.refresh()
        if "Ensembles" in self._panels:
            self._panels["Ensembles"].refresh()
        self.configurator.refresh()  # the new folder is offered in the model fields


def dashboard(data: dict | None = None, **kw) -> App:
    return App(data, **kw)
