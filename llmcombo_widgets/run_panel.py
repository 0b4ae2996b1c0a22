"""The Run tab: output folder, pre-flight, Run / Cancel with progress, export to GGUF; on the
right the result of this run or an earlier one, with its files to take away."""

from __future__ import annotations

import html
import threading

import ipywidgets as W

from llmcombo_widgets.downloads import links
from llmcombo_widgets.jobs import CANCELLED, DONE, FAILED, RUNNING, Job
from llmcombo_widgets.panelkit import SaveBox, WidgetProgress, error_text
from llmcombo_widgets.render import issues_html
from llmcombo_widgets.theme import columns, grow, status, table
from llmcombo_widgets.theme import set_traits as _set
from llmcombo_widgets.run_model import RunModel


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
        if folder != getattr(self, "_shown", None):  # another run: the last copy was of another
            self.copy.clear()
            self._shown = folder
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
        _set(self.result, value=table(rows, "llmcombo-result-table"))
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
                self.zip.value = status(f"{error_text(exc)}. Copy it to a folder instead.", "info")
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
            self.preflight.value = status(error_text(exc), "error")
            return None
        text = "<b>Pre-flight</b>" + table(s.rows(), "llmcombo-preflight-table")
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
            self.status.value = status(error_text(exc), "error")

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
