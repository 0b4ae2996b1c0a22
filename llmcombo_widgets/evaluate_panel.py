"""The Evaluate tab: products and tasks on the left; the accuracy table, what it says, the plot
and the files on the right."""

from __future__ import annotations

import html
from typing import Sequence

import ipywidgets as W

from llmcombo_widgets.downloads import links
from llmcombo_widgets.jobs import DONE, RUNNING, Job
from llmcombo_widgets.panelkit import SaveBox, WidgetProgress, error_text
from llmcombo_widgets.theme import card, columns, disclosure, grow, status
from llmcombo_widgets.theme import set_traits as _set
from llmcombo_widgets.evaluate_model import EvaluateModel, figure_png


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
        model.job.subscribe(self._on_job)
        self.refresh()

    def refresh(self, select: str | Sequence[str] | None = None) -> None:
        """Offer every product again, keeping the choice; ``select`` adds products to it."""
        labels = self.model.labels()
        names = [n for _l, n in labels]
        chosen = [n for n in self.products.value if n in names]
        for extra in [select] if isinstance(select, str) else (select or []):
            if extra in names and extra not in chosen:
                chosen.append(extra)
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
            self.status.value = status(error_text(exc), "error")

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
            self.save.clear()  # a new result: the last save was of the one before
            self.save.button.disabled = False
            self.status.value = (f"<span class='llmcombo-status-ok llmcombo-eval-done'>done in "
                                 f"{job.seconds or 0:.1f} s</span>")
        else:
            self.progress.finish(False)
            self.status.value = (f"<span class='llmcombo-status-error'>{job.status}: "
                                 f"{html.escape(job.error or '')}</span>")
