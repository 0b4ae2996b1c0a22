"""View-model of the Evaluate panel (plain Python, no ipywidgets): products and tasks, the
evaluation in a thread, the accuracy table, the plot and what they say; downloads."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

from llmcombo_widgets.content import ZOO_PRODUCTS, content_key
from llmcombo_widgets.downloads import Download, text_download
from llmcombo_widgets.jobs import DONE, Job
from llmcombo_widgets.run_model import RunModel
from llmcombo_widgets.session import RunRecord


def evaluate_products(products: dict[str, Any], tasks: Sequence[str], limit: int | None = 40,
                      job: Job | None = None, cache: dict | None = None):
    """Accuracy of each product on each zoo task's held-out prompts, as the core's tidy frame
    (:func:`llmcombo.evaluate.evaluate_accuracy`: product, task, metric, value, n, ci_low,
    ci_high). A product is anything :func:`llmcombo.ensemble.load_product` accepts.

    ``cache`` (a dict) keeps each (product content, task, limit)'s row: a product whose folder a
    new run replaced has new content (:func:`content_key`) and is evaluated again."""
    import pandas as pd

    from llmcombo.evaluate import evaluate_accuracy

    frames = []
    if job is not None:
        job.start(len(products) * len(tasks), "evaluate")
    try:
        for name, ref in products.items():
            key = content_key(ref) if cache is not None else None
            for task in tasks:
                if job is not None:
                    job.cancel_token.raise_if_cancelled()
                    job.log(f"{name} on {task} …")
                hit = cache.get((key, task, limit)) if cache is not None else None
                if hit is None:
                    hit = evaluate_accuracy(ref, task, name=name, limit=limit, progress=False)
                    if cache is not None:
                        cache[(key, task, limit)] = hit
                frames.append(hit.assign(product=name))
                if job is not None:
                    job.update(1)
    finally:
        if job is not None:
            job.close()
    return pd.concat(frames, ignore_index=True)


def accuracy_figure(frame, title: str = "accuracy on held-out prompts"):
    """The core's grouped bars with 95 % intervals (:func:`llmcombo.plots.plot_accuracy`);
    zoo models are drawn as parents (hatched)."""
    from llmcombo.plots import plot_accuracy

    if frame is None or len(frame) == 0:
        from matplotlib.figure import Figure

        fig = Figure(figsize=(6.4, 3.2), dpi=100)
        fig.add_subplot(1, 1, 1).text(0.5, 0.5, "no results", ha="center", va="center")
        return fig
    parents = [p for p in dict.fromkeys(frame["product"]) if p in ZOO_PRODUCTS]
    return plot_accuracy(frame, parents=parents, title=title)


def figure_png(fig, dpi: int = 100) -> bytes:
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


class EvaluateModel:
    """Pick products (the zoo's models and every run) and tasks, evaluate them in a thread, show
    the table, the plot and what they say; download or save them."""

    def __init__(self, run: RunModel | None = None, limit: int = 40):
        self.run_model = run
        self.limit = limit
        self.extra: dict[str, str] = {}  # name -> reference, added by the user
        self.job = Job("evaluate")
        self.cache: dict = {}  # (content key, task, limit) -> result rows
        self.evaluated: dict[str, str] = {}  # name -> reference, of the last evaluation
        self._figure = None

    def runs(self) -> list[RunRecord]:
        return self.run_model.history() if self.run_model is not None else []

    def products(self) -> dict[str, str]:
        """Available products, name -> reference: the zoo models, every run, added references."""
        out = {name: f"zoo:{name}" for name in ZOO_PRODUCTS}
        for rec in self.runs():
            name = rec.name
            if name in out and out[name] != str(rec.path):
                name = f"{rec.name} ({rec.path.parent.name})"
            out.setdefault(name, str(rec.path))
        out.update(self.extra)
        return out

    def labels(self) -> list[tuple[str, str]]:
        """(what the picker shows, product name) for every product."""
        runs = {str(r.path): r for r in self.runs()}
        out = []
        for name, ref in self.products().items():
            if ref in runs:
                out.append((runs[ref].label().replace(runs[ref].name, name, 1), name))
            elif ref.startswith("zoo:"):
                from llmcombo_widgets.words import model_words

                out.append((f"{name}: {model_words(ref).split(' (')[0]} (zoo)", name))
            else:
                out.append((f"{name}: {ref}", name))
        return out

    def with_parents(self, folder: str | os.PathLike) -> list[str]:
        """The product names of a run's output ``folder`` and of the products it was made from
        (the models and base of its configuration that the picker offers), so that a finished
        run is evaluated beside its parents."""
        from llmcombo.productline import model_slots

        by_ref = {r: n for n, r in self.products().items()}
        name = by_ref.get(str(folder))
        record = next((r for r in self.runs() if str(r.path) == str(folder)), None)
        if name is None or record is None:
            return []
        parents = [by_ref[slot.ref] for slot in model_slots(record.configuration)
                   if slot.role != "tokenizer" and slot.ref in by_ref]
        return [name, *dict.fromkeys(p for p in parents if p != name)]

    def add_product(self, name: str, ref: str) -> None:
        self.extra[name or Path(ref).name] = ref

    @staticmethod
    def tasks() -> list[str]:
        from llmcombo.zoo.tasks import TASK_NAMES

        return list(TASK_NAMES)

    def start(self, products: Sequence[str], tasks: Sequence[str], background: bool = True,
              extra_progress: Any = None) -> Job:
        available = self.products()
        chosen = {p: available[p] for p in products if p in available}
        if not chosen or not tasks:
            from llmcombo.errors import UserError

            raise UserError("Choose at least one product and one task.")
        self.job.extra = extra_progress
        self._figure = None
        self.evaluated = dict(chosen)
        return self.job.run(lambda job: evaluate_products(chosen, list(tasks), self.limit, job,
                                                          self.cache),
                            background=background)

    @property
    def frame(self):
        return self.job.result if self.job.status == DONE else None

    def figure(self):
        if self._figure is None:
            self._figure = accuracy_figure(self.frame)
        return self._figure

    def explanation(self) -> list[str]:
        """What the results say about each combination, and what to change when a skill was lost
        (:func:`llmcombo_widgets.words.explain_results`)."""
        from llmcombo_widgets.words import explain_results

        runs = {str(r.path): r for r in self.runs()}
        meta = {name: {"kind": runs[ref].kind, "method": runs[ref].method,
                       "configuration": runs[ref].configuration}
                for name, ref in self.evaluated.items() if ref in runs}
        return explain_results(self.frame, meta)

    def sources(self) -> list[tuple[str, str]]:
        """(name, what was evaluated: a folder with its run id, or a reference)."""
        runs = {str(r.path): r for r in self.runs()}
        out = []
        for name, ref in self.evaluated.items():
            rec = runs.get(ref)
            out.append((name, f"{ref} (run {rec.run_id[:8]}, finished {rec.finished_at})"
                        if rec is not None and rec.run_id else ref))
        return out

    def downloads(self) -> list[Download]:
        """The results as CSV and the plot as PNG (nothing before an evaluation)."""
        df = self.frame
        if df is None:
            return []
        return [text_download("results.csv", df.to_csv(index=False), "results CSV"),
                Download("accuracy.png", figure_png(self.figure(), dpi=110), "plot PNG")]

    def save(self, folder: str | os.PathLike) -> list[Path]:
        """Write results.csv and accuracy.png into ``folder``; returns the full paths."""
        from llmcombo.errors import UserError
        from llmcombo_widgets.downloads import save_files

        files = self.downloads()
        if not files:
            raise UserError("Evaluate first: there are no results to save yet.")
        try:
            return save_files(folder, files)
        except OSError as exc:
            raise UserError(f"could not write to {folder}: {exc.strerror or exc}",
                            hint="Choose a folder you can write to.") from None
