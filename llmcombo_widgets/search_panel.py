"""The Search tab: pick the parents, the tasks and a budget, run a product-line search in the
background, watch its progress and Pareto plot grow, and open the best product in Configure.

:class:`SearchModel` holds the state and the actions (plain Python: tests drive it directly);
:class:`SearchPanel` renders it with ipywidgets. The search itself is
:func:`llmcombo.search.search`: the specification the panel builds is an ordinary ``search:``
configuration (shown as YAML, validated by the feature model like any other).
"""

from __future__ import annotations

import html
import os
import re
import time
from pathlib import Path
from typing import Any, Callable

import ipywidgets as W

from llmcombo_widgets.jobs import CANCELLED, DONE, FAILED, RUNNING, Job

DEFAULT_PARENTS = ("zoo:domotica", "zoo:tiempo")
OBJECTIVES = ("worst", "mean", "pareto")
PLOT_EVERY = 2.0  # seconds between two redraws of the live plot


def _lines(text: str) -> list[str]:
    return [line.strip() for line in str(text).splitlines() if line.strip()]


class SearchModel:
    """State and actions of the Search tab. ``on_open(config)`` is called by
    :meth:`open_best` (the dashboard loads the configuration into Configure)."""

    def __init__(self, out_root: str | os.PathLike = "outputs",
                 on_open: Callable[[dict], Any] | None = None):
        from llmcombo.datasets import task_names

        self.out_root = Path(out_root)
        self.on_open = on_open
        self.parents: list[str] = list(DEFAULT_PARENTS)
        self.base: str | None = "zoo:base"
        self.tasks: list[str] = [t for t in ("domotica", "tiempo") if t in task_names()]
        self.trials = 20
        self.minutes: float | None = None
        self.objective = "worst"
        self.ensembles: list[str] = []
        self.limit: int | None = 60
        self.seed = 0
        self.name = "search"
        self.job = Job("search")
        self.trials_frame: Any = None
        self.references: Any = None
        self.result: Any = None

    # -- the specification ------------------------------------------------------------------------
    def spec(self) -> dict:
        """The search configuration the panel describes (``search:``, YAML-ready)."""
        tasks = [{"file": t} if re.search(r"\.(jsonl|ndjson|csv|tsv)$", t, re.I) else {"task": t}
                 for t in self.tasks]
        body: dict[str, Any] = {"models": [{"model": p} for p in self.parents], "tasks": tasks,
                                "objective": self.objective, "trials": int(self.trials),
                                "seed": int(self.seed)}
        if self.base:
            body["base_model"] = self.base
        if self.minutes:
            body["minutes"] = float(self.minutes)
        if self.ensembles:
            body["space"] = {"ensembles": list(self.ensembles)}
        if self.limit:
            body["evaluation"] = {"limit": int(self.limit), "test_limit": int(self.limit) * 2}
        return {"name": self.name, "search": body}

    def issues(self) -> list:
        """The feature model's issues of :meth:`spec` (errors block Start)."""
        from llmcombo.productline import feature_model

        return feature_model().validate(self.spec())

    @property
    def out(self) -> Path:
        return self.out_root / "search" / re.sub(r"[^A-Za-z0-9_.-]+", "-", self.name)

    # -- running ------------------------------------------------------------------------------------
    def start(self, background: bool = True, extra_progress: Any = None) -> Job:
        """Run the search in a thread (a fresh output folder each time)."""
        from llmcombo.search import search

        spec = self.spec()
        out = self.out
        if out.exists():
            stamp = time.strftime("%Y%m%d-%H%M%S")
            out = out.with_name(f"{out.name}-{stamp}")
        self.trials_frame = self.references = self.result = None
        self.job.extra = extra_progress

        def work(job: Job):
            self.result = search(spec, out, progress=job, log=job.log, cancel=job.cancel_token,
                                 on_trial=self._on_trial)
            self.trials_frame, self.references = self.result.trials, self.result.references
            return self.result

        return self.job.run(work, background=background)

    def _on_trial(self, run: Any, number: int) -> None:
        self.trials_frame = run.trials()
        self.references = run.reference_frame

    def cancel(self) -> None:
        self.job.cancel()

    # -- what the panel shows --------------------------------------------------------------------
    def best_so_far(self) -> dict | None:
        """The best measured trial so far (validation): trial, product, accuracies."""
        df = self.trials_frame
        if df is None or df.empty or "worst_kept" not in df:
            return None
        done = df[df["state"] == "complete"].dropna(subset=["worst_kept"])
        if done.empty:
            return None
        r = done.sort_values(["worst_kept", "trial"], ascending=[False, True]).iloc[0]
        return {"trial": int(r["trial"]), "product": r["method"],
                "worst_kept": float(r["worst_kept"]),
                "acc": {c[4:]: float(r[c]) for c in r.index if str(c).startswith("acc:")}}

    def figure(self):
        """The live figure: the Pareto plot of the first two tasks (the history with one task)."""
        from llmcombo.search import plots

        if self.trials_frame is None or self.trials_frame.empty:
            return None
        tasks = [c[4:] for c in self.trials_frame.columns if str(c).startswith("acc:")]
        if len(tasks) >= 2:
            return plots.plot_pareto(self.trials_frame, self.references, task_a=tasks[0],
                                     task_b=tasks[1], title="Trials so far (validation)")
        return plots.plot_history(self.trials_frame)

    @property
    def best(self) -> dict | None:
        return self.result.best if self.result is not None else None

    def open_best(self) -> bool:
        """Hand the best configuration (``best.yaml``, as written: name, description saying
        where it comes from, local folders absolute) to ``on_open`` (Configure); False when
        there is none."""
        if self.best is None or self.on_open is None:
            return False
        from llmcombo.configuration import read_yaml_file

        self.on_open(dict(read_yaml_file(self.result.out / "best.yaml")))  # what was written
        return True


class SearchPanel:
    """The Search tab's widgets over a :class:`SearchModel`."""

    def __init__(self, model: SearchModel):
        self.model = model
        lay = W.Layout(width="300px")
        self.parents = W.Textarea(value="\n".join(model.parents), description="Parents",
                                  placeholder="one model per line", rows=3, layout=lay)
        self.base = W.Text(value=model.base or "", description="Base", layout=lay,
                           placeholder="their common ancestor (optional)")
        self.tasks = W.Textarea(value="\n".join(model.tasks), description="Tasks", rows=2,
                                placeholder="zoo task names or .jsonl/.csv files", layout=lay)
        self.trials = W.BoundedIntText(value=model.trials, min=0, max=100000,
                                       description="Trials", layout=W.Layout(width="180px"))
        self.minutes = W.FloatText(value=model.minutes or 0.0, description="Minutes",
                                   layout=W.Layout(width="180px"))
        self.limit = W.BoundedIntText(value=model.limit or 0, min=0, max=100000,
                                      description="Prompts/task", style={"description_width":
                                                                         "initial"},
                                      layout=W.Layout(width="180px"))
        self.objective = W.Dropdown(options=OBJECTIVES, value=model.objective,
                                    description="Objective", layout=W.Layout(width="220px"))
        self.vote = W.Checkbox(value="vote" in model.ensembles, description="vote", indent=False,
                               layout=W.Layout(width="auto"))
        self.router = W.Checkbox(value="router" in model.ensembles, description="router",
                                 indent=False, layout=W.Layout(width="auto"))
        for w, cls in ((self.parents, "parents"), (self.base, "base"), (self.tasks, "tasks"),
                       (self.trials, "trials"), (self.minutes, "minutes"),
                       (self.limit, "limit"), (self.objective, "objective")):
            w.add_class(f"llmcombo-search-{cls}")
            w.observe(self._on_change, "value")
        for w in (self.vote, self.router):
            w.observe(self._on_change, "value")
        self.issues = W.HTML()
        self.issues.add_class("llmcombo-search-issues")
        self.start_btn = W.Button(description="Start", button_style="success", icon="play")
        self.start_btn.add_class("llmcombo-search-start")
        self.start_btn.on_click(lambda _b: self.start())
        self.cancel_btn = W.Button(description="Cancel", button_style="warning", icon="stop",
                                   disabled=True)
        self.cancel_btn.on_click(lambda _b: model.cancel())
        self.open_btn = W.Button(description="Open the best in Configure", icon="folder-open",
                                 disabled=True, layout=W.Layout(width="240px"))
        self.open_btn.add_class("llmcombo-search-open")
        self.open_btn.on_click(lambda _b: self.model.open_best())
        self.bar = W.FloatProgress(value=0.0, min=0.0, max=1.0, layout=W.Layout(width="420px"))
        self.status = W.HTML()
        self.status.add_class("llmcombo-search-status")
        self.log = W.HTML()
        self.best = W.HTML()
        self.best.add_class("llmcombo-search-best")
        self.plot = W.Image(format="png", layout=W.Layout(width="520px", display="none"))
        self.plot.add_class("llmcombo-search-plot")
        self.table = W.HTML()
        self.table.add_class("llmcombo-search-table")
        self.widget = W.VBox([
            W.HTML("<b>Find the best combination</b> <span class='llmcombo-help'>(merges of the "
                   "parents sampled from the feature model and searched with Optuna, chosen on "
                   "validation prompts, reported on test prompts)</span>"),
            W.HBox([W.VBox([self.parents, self.base, self.tasks]),
                    W.VBox([self.trials, self.minutes, self.limit, self.objective,
                            W.HBox([W.HTML("also ensembles:&nbsp;"), self.vote, self.router])])]),
            self.issues, W.HBox([self.start_btn, self.cancel_btn, self.open_btn]),
            W.HBox([self.bar, self.status]), self.best, self.plot, self.table, self.log])
        self.widget.add_class("llmcombo-search-panel")
        self._last_plot = 0.0
        model.job.subscribe(self._on_job)
        self._on_change(None)

    @classmethod
    def for_app(cls, app: Any) -> SearchPanel:
        """The panel of the dashboard ``app``: results under its output folder; "Open the best in
        Configure" loads the configuration into its form and shows the Configure tab."""

        def open_in_configure(config: dict) -> None:
            app.form.load_data(config, "the best product of the search")
            app.tabs.selected_index = 0

        return cls(SearchModel(app.run_model.out_root, on_open=open_in_configure))

    def refresh(self) -> None:
        self._on_change(None)

    # -- events -----------------------------------------------------------------------------------
    def _on_change(self, _change) -> None:
        m = self.model
        m.parents = _lines(self.parents.value)
        m.base = self.base.value.strip() or None
        m.tasks = _lines(self.tasks.value)
        m.trials = int(self.trials.value)
        m.minutes = float(self.minutes.value) or None
        m.limit = int(self.limit.value) or None
        m.objective = self.objective.value
        m.ensembles = [n for n, w in (("vote", self.vote), ("router", self.router)) if w.value]
        errors = [i for i in m.issues() if i.is_error]
        if errors:
            items = "".join(f"<li><code>{html.escape(i.path)}</code>: {html.escape(i.message)}"
                            + (f" <i>{html.escape(i.hint)}</i>" if i.hint else "") + "</li>"
                            for i in errors)
            self.issues.value = f"<ul class='llmcombo-status-error'>{items}</ul>"
        else:
            self.issues.value = ""
        self.start_btn.disabled = bool(errors) or m.job.running

    def start(self) -> None:
        try:
            self.model.start()
        except Exception as exc:  # shown, never raised into the widget machinery
            self.status.value = ("<span class='llmcombo-status-error'>"
                                 f"{html.escape(getattr(exc, 'message', str(exc)))}</span>")

    def _draw(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_plot < PLOT_EVERY:
            return
        self._last_plot = now
        fig = self.model.figure()
        if fig is not None:
            from llmcombo_widgets.workbench import figure_png

            self.plot.value = figure_png(fig)
            self.plot.layout.display = None
        best = self.model.best_so_far()
        if best:
            accs = ", ".join(f"{t} {a:.1%}" for t, a in best["acc"].items())
            self.best.value = (f"best so far: trial {best['trial']}, {html.escape(best['product'])}"
                               f" &mdash; {accs}; worst-case skill kept "
                               f"<b>{best['worst_kept']:.1%}</b> (validation)")

    def _on_job(self, job: Job) -> None:
        running = job.status == RUNNING
        self.cancel_btn.disabled = not running
        self.start_btn.disabled = running or bool([i for i in self.model.issues() if i.is_error])
        self.bar.value = job.fraction
        tail = job.log_lines[-4:]
        self.log.value = ("<pre style='font-size:11px;margin:0'>" + html.escape("\n".join(tail))
                          + "</pre>") if tail else ""
        if running:
            self.status.value = f"searching … {job.fraction:.0%}"
            self._draw()
            return
        if job.status == DONE:
            self._draw(force=True)
            self.bar.bar_style = "success"
            r = self.model.result
            self.status.value = (f"<span class='llmcombo-status-ok llmcombo-search-done'>done in "
                                 f"{job.seconds or 0:.0f} s: {r.counts.get('complete', 0)} "
                                 f"trials measured; results in {html.escape(str(r.out))}</span>")
            if r.results is not None:
                from llmcombo.search.report import results_rows

                header, rows = results_rows(r.results)
                head = "".join(f"<th style='padding:0 8px'>{html.escape(h)}</th>" for h in header)
                body = "".join("<tr>" + "".join(f"<td style='padding:0 8px'>{html.escape(c)}</td>"
                                                for c in row) + "</tr>" for row in rows)
                self.table.value = ("<b>On the test split</b> <span class='llmcombo-help'>(read "
                                    "once, after the search)</span><table style='font-size:12px'>"
                                    f"<tr>{head}</tr>{body}</table>")
            self.open_btn.disabled = self.model.best is None
        elif job.status in (FAILED, CANCELLED):
            self.bar.bar_style = "danger"
            hint = f" <i>{html.escape(job.hint)}</i>" if job.hint else ""
            self.status.value = (f"<span class='llmcombo-status-error'>{job.status}: "
                                 f"{html.escape(job.error or '')}{hint}</span>")


__all__ = ["SearchModel", "SearchPanel"]
