"""View-models of the Run, Evaluate, Ensembles and Publish panels (plain Python, no ipywidgets).

Each holds its panel's state and actions; long work goes through a :class:`~llmcombo_widgets.jobs.Job`
(a thread) so the UI stays responsive. Tests drive these objects directly.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from llmcombo_widgets.jobs import DONE, Job
from llmcombo_widgets.viewmodel import FormModel

ZOO_PRODUCTS = ("base", "domotica", "tiempo")


def _safe_name(text: str) -> str:
    s = re.sub(r"[^A-Za-z0-9_.-]+", "-", text.strip()).strip("-.")
    return s or "product"


# ---------------------------------------------------------------------------------------------
# Run
# ---------------------------------------------------------------------------------------------


@dataclass
class PreflightSummary:
    """What the Run panel shows before running."""

    kind: str
    inputs: list[dict] = field(default_factory=list)  # ref, resolved, where, size, params
    device: str = ""
    output_bytes: int | None = None
    output_params: int | None = None
    ram_bytes: int | None = None
    ram_available: int | None = None
    disk_needed: int | None = None
    disk_free: int | None = None
    out_dir: str = ""
    issues: list = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def errors(self) -> list:
        return [i for i in self.issues if i.is_error]

    @property
    def ok(self) -> bool:
        return not self.errors

    def rows(self) -> list[tuple[str, str]]:
        from llmcombo.preflight import fmt_bytes

        rows = [("kind", self.kind), ("device", self.device)]
        for inp in self.inputs:
            params = f", {inp['params'] / 1e6:.2f}M parameters" if inp.get("params") else ""
            rows.append((f"input {inp['ref']}", f"{fmt_bytes(inp.get('size'))} ({inp['where']}{params})"))
        rows += [("estimated output size", fmt_bytes(self.output_bytes)),
                 ("estimated memory", fmt_bytes(self.ram_bytes)),
                 ("memory available", fmt_bytes(self.ram_available)),
                 ("output folder", self.out_dir),
                 ("disk needed / free", f"{fmt_bytes(self.disk_needed)} / {fmt_bytes(self.disk_free)}")]
        return rows


class RunModel:
    """Pre-flight, run (in a thread, with progress and cancel) and the result of a merge / MoE."""

    def __init__(self, form: FormModel, out_root: str | os.PathLike = "outputs"):
        self.form = form
        self.out_root = Path(out_root)
        self.out_dir: str | None = None  # None: derived from the configuration
        self.overwrite = True
        self.job = Job("run")
        self.gguf_job = Job("gguf")
        self.results: list[Any] = []  # RunResult of every finished run (newest last)
        self.summary: PreflightSummary | None = None

    def default_out(self) -> str:
        data = self.form.data
        name = data.get("name") if isinstance(data.get("name"), str) else None
        if not name:
            fam = self.form.family or "product"
            method = None
            if fam == "merge":
                m = (data.get("merge") or {}).get("method")
                method = m if isinstance(m, str) else (next(iter(m)) if isinstance(m, dict) and m else None)
            name = f"{fam}-{method}" if method else fam
        return str(self.out_root / _safe_name(name))

    @property
    def out(self) -> str:
        return self.out_dir or self.default_out()

    @property
    def runnable(self) -> bool:
        return self.form.can_generate and self.form.family in ("merge", "moe")

    def why_not_runnable(self) -> str | None:
        if self.form.family not in ("merge", "moe"):
            return "Ensembles are not built: try them in the Ensembles tab."
        if not self.form.can_generate:
            return f"The configuration has {len(self.form.errors)} error(s): fix them in Configure."
        return None

    def preflight(self) -> PreflightSummary:
        """Inputs, sizes, device and the disk / memory estimate (config.json and headers only)."""
        from llmcombo import preflight
        from llmcombo.productline import family_of

        cfg = self.form.configuration()
        kind = family_of(cfg) or (self.form.family or "unknown")
        summary = PreflightSummary(kind=kind, out_dir=self.out)
        try:
            from llmcombo.run import RunOptions

            summary.device = RunOptions().resolved_device()
        except Exception:  # pragma: no cover - torch missing
            summary.device = "cpu"
        if kind not in ("merge", "moe"):
            summary.notes.append(self.why_not_runnable() or "")
            self.summary = summary
            return summary
        base_dir = self.form.base_dir
        summary.issues = list(preflight.check_models(dict(cfg), base_dir=base_dir))
        est = preflight.estimate(dict(cfg), base_dir, out_path=self.out)
        summary.inputs = [{"ref": i.ref, "resolved": i.resolved, "where": i.where,
                           "size": i.bytes_on_disk, "params": i.params} for i in est.inputs]
        summary.output_bytes, summary.output_params = est.output_bytes, est.output_params
        summary.ram_bytes, summary.ram_available = est.ram_bytes, est.ram_available
        summary.disk_needed, summary.disk_free = est.disk_needed, est.disk_free
        summary.notes = list(est.notes)
        summary.issues += preflight.check_resources(dict(cfg), self.out, base_dir, est=est)
        self.summary = summary
        return summary

    def start(self, extra_progress: Any = None, background: bool = True) -> Job:
        """Run the configuration into :attr:`out` in a thread; returns the job."""
        reason = self.why_not_runnable()
        if reason:
            from llmcombo.errors import UserError

            raise UserError(reason)
        from llmcombo.run import run

        cfg = self.form.configuration()
        out = self.out
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        self.job.extra = extra_progress

        def work(job: Job):
            result = run(cfg, out, progress=job, cancel=job.cancel_token, overwrite=self.overwrite,
                         base_dir=self.form.base_dir)
            self.results.append(result)
            return result

        return self.job.run(work, background=background)

    def cancel(self) -> None:
        self.job.cancel()

    # -- export to GGUF (llama.cpp) after a merge ------------------------------------------
    gguf_quant = "q8_0"  # what "export to GGUF" writes (llmcombo.gguf.QUANT_TYPES)

    def can_export_gguf(self) -> bool:
        return bool(self.results) and not self.gguf_job.running

    def export_gguf(self, quant: str | None = None, background: bool = True) -> Job:
        """Write the last run's model as ``OUT/NAME-QUANT.gguf`` (beside its safetensors, so
        Publish uploads it too) with :func:`llmcombo.gguf.export_gguf`; returns the job (its
        result is the :class:`~llmcombo.gguf.ExportResult`)."""
        from llmcombo.errors import UserError

        if not self.results:
            raise UserError("Run a merge first: its output folder is what gets exported.")
        folder = Path(self.results[-1].path)
        q = quant or self.gguf_quant

        def work(job: Job):
            from llmcombo.gguf import export_gguf

            return export_gguf(folder, folder / f"{folder.name}-{q}.gguf", q, overwrite=True,
                               progress=job, cancel=job.cancel_token)

        return self.gguf_job.run(work, background=background)

    def result_rows(self) -> list[tuple[str, str]]:
        r = self.job.result
        if r is None:
            return []
        mem = f"{r.peak_rss_bytes / 2**20:.0f} MiB" if r.peak_rss_bytes else "unknown"
        rows = [("output", str(r.path)), ("kind", f"{r.kind} ({r.method})"),
                ("time", f"{r.seconds:.1f} s on {r.device}"), ("peak memory", mem)]
        rows += [("warning", w) for w in r.warnings]
        return rows


# ---------------------------------------------------------------------------------------------
# Evaluate
# ---------------------------------------------------------------------------------------------


def evaluate_products(products: dict[str, Any], tasks: Sequence[str], limit: int | None = 40,
                      job: Job | None = None):
    """Accuracy of each product on each zoo task's held-out prompts, as the core's tidy frame
    (:func:`llmcombo.evaluate.evaluate_accuracy`: product, task, metric, value, n, ci_low,
    ci_high). A product is anything :func:`llmcombo.ensemble.load_product` accepts."""
    import pandas as pd

    from llmcombo.evaluate import evaluate_accuracy

    frames = []
    if job is not None:
        job.start(len(products) * len(tasks), "evaluate")
    try:
        for name, ref in products.items():
            for task in tasks:
                if job is not None:
                    job.cancel_token.raise_if_cancelled()
                    job.log(f"{name} on {task} …")
                frames.append(evaluate_accuracy(ref, task, name=name, limit=limit, progress=False))
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


def figure_png(fig) -> bytes:
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


class EvaluateModel:
    """Pick products and tasks, evaluate them (in a thread), show the table and the plot."""

    def __init__(self, run: RunModel | None = None, limit: int = 40):
        self.run_model = run
        self.limit = limit
        self.extra: dict[str, str] = {}  # name -> reference, added by the user
        self.job = Job("evaluate")

    def products(self) -> dict[str, str]:
        """Available products: the zoo models, every finished run, and added references."""
        out = {name: f"zoo:{name}" for name in ZOO_PRODUCTS}
        if self.run_model is not None:
            for r in self.run_model.results:
                out[Path(str(r.path)).name] = str(r.path)
        out.update(self.extra)
        return out

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
        return self.job.run(lambda job: evaluate_products(chosen, list(tasks), self.limit, job),
                            background=background)

    @property
    def frame(self):
        return self.job.result if self.job.status == DONE else None

    def figure(self):
        return accuracy_figure(self.frame)


# ---------------------------------------------------------------------------------------------
# Ensembles playground
# ---------------------------------------------------------------------------------------------

ENSEMBLE_EXAMPLES = ("zoo-router", "zoo-vote", "zoo-pipeline")


def example_ensembles() -> dict[str, dict]:
    """The seed's home-automation example: two specialists and a selector from the zoo."""
    routes = [{"label": "LLM1", "model": "zoo:domotica"}, {"label": "LLM2", "model": "zoo:tiempo"}]
    return {
        "zoo-router": {"name": "zoo-router", "ensemble": {"router": {
            "selector": {"kind": "label_model", "model": "zoo:selector"}, "routes": routes}}},
        "zoo-vote": {"name": "zoo-vote", "ensemble": {"vote": {
            "members": [{"model": "zoo:domotica"}, {"model": "zoo:tiempo"}, {"model": "zoo:base"}]}}},
        # the specialist's command, then the base model continues it as free text
        "zoo-pipeline": {"name": "zoo-pipeline", "ensemble": {"pipeline": {"stages": [
            {"model": "zoo:domotica"},
            {"model": "zoo:base", "template": "{input} es", "output": "text"}]}}},
    }


class PlaygroundModel:
    """Ask a product a prompt; see the answer and its trace (votes, route, timings)."""

    def __init__(self, form: FormModel | None = None):
        self.form = form
        self.source: str = "zoo-router"
        self.answer = None
        self.error: str | None = None
        self._products: dict[str, Any] = {}
        self.job = Job("ask")

    def sources(self) -> list[str]:
        out = list(example_ensembles())
        if self.form is not None and self.form.family == "ensemble":
            out.insert(0, "(the configuration in Configure)")
        return out + [f"zoo:{n}" for n in ZOO_PRODUCTS]

    def product(self, source: str | None = None):
        from llmcombo.ensemble import load_product

        source = source or self.source
        if source.startswith("(") and self.form is not None:
            return load_product(self.form.configuration())  # not cached: the form changes
        if source not in self._products:
            examples = example_ensembles()
            self._products[source] = load_product(examples.get(source, source))
        return self._products[source]

    def ask(self, prompt: str, source: str | None = None):
        """The answer to ``prompt`` (an :class:`llmcombo.ensemble.Answer`), synchronously."""
        from llmcombo.errors import UserError

        self.error = None
        try:
            self.answer = self.product(source).answer(prompt)
        except UserError as exc:
            self.answer, self.error = None, exc.message
        return self.answer

    def start(self, prompt: str, source: str | None = None, background: bool = True) -> Job:
        return self.job.run(lambda job: self.product(source).answer(prompt), background=background)


def trace_rows(trace: dict) -> list[tuple[str, str]]:
    """A readable flat view of an answer's trace."""
    import json

    rows = []
    for k, v in (trace or {}).items():
        if isinstance(v, (dict, list)):
            text = json.dumps(v, ensure_ascii=False, default=str)
            if len(text) > 400:
                text = text[:397] + "..."
        else:
            text = str(v)
        rows.append((str(k), text))
    return rows


# ---------------------------------------------------------------------------------------------
# Publish
# ---------------------------------------------------------------------------------------------


class PublishModel:
    """Repo id, license, private, dry run; :meth:`publish` takes the token as an argument and
    never keeps it."""

    LICENSES = ("apache-2.0", "mit", "cc-by-4.0", "cc-by-sa-4.0", "llama3", "other")

    def __init__(self, run: RunModel | None = None):
        self.run_model = run
        self.folder: str = ""
        self.repo_id: str = ""
        self.license: str = "apache-2.0"
        self.private: bool = True
        self.dry_run: bool = True
        self.result: Any = None
        self.error: str | None = None
        self.job = Job("publish")

    def folders(self) -> list[str]:
        if self.run_model is None:
            return []
        return [str(r.path) for r in self.run_model.results]

    def publish(self, token: str | None = None) -> Any:
        """Publish :attr:`folder` (a dry run unless :attr:`dry_run` is False)."""
        from llmcombo.errors import UserError
        from llmcombo.hub import publish

        self.error = None
        try:
            self.result = publish(self.folder, self.repo_id, private=self.private,
                                  license=self.license, dry_run=self.dry_run,
                                  token=token or None)
        except UserError as exc:
            self.result, self.error = None, exc.message + (f" {exc.hint}" if exc.hint else "")
        finally:
            token = None  # noqa: F841 - drop our reference at once
        return self.result

    def start(self, token: str | None = None, background: bool = True) -> Job:
        def work(job: Job, _token=token):
            result = self.publish(_token)
            if self.error:
                from llmcombo.errors import UserError

                raise UserError(self.error)
            return result

        token = None  # noqa: F841
        return self.job.run(work, background=background)
