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

from llmcombo_widgets.downloads import Download, text_download
from llmcombo_widgets.jobs import DONE, Job
from llmcombo_widgets.session import RunRecord, Session, find_runs
from llmcombo_widgets.viewmodel import FormModel

ZOO_PRODUCTS = ("base", "domotica", "tiempo")


def _mtime(path: str) -> int | None:
    try:
        return Path(path).parent.stat().st_mtime_ns
    except OSError:
        return None


def content_key(ref: Any, base_dir: Any = None) -> str:
    """What identifies a product's content, for caches: a model folder by its path and
    :func:`llmcombo.outputs.model_fingerprint` (the run id of the run that wrote it), an ensemble
    configuration by its text and the fingerprints of every model it names. A folder replaced by
    a new run gets a new key, so nothing is served from a stale cache."""
    import json

    from llmcombo import modelref
    from llmcombo.errors import UserError
    from llmcombo.fsutil import config_hash
    from llmcombo.outputs import model_fingerprint

    def folder_key(r: str) -> str:
        try:
            path = modelref.resolve(r, base_dir)
        except UserError:
            return f"ref:{r}"
        if os.path.isdir(path):
            return f"{os.path.abspath(path)}|{model_fingerprint(path)}"
        return f"ref:{path}"

    if isinstance(ref, (str, os.PathLike)):
        text = str(ref)
        p = Path(text).expanduser()
        if p.is_file() and p.suffix.lower() in (".yaml", ".yml", ".json"):
            from llmcombo.configuration import read_yaml_file
            from llmcombo.errors import UserError as _UE

            try:
                data = read_yaml_file(p)
            except _UE:
                return f"file:{p}|{p.stat().st_mtime_ns}"
            return content_key(data, p.resolve().parent)
        return folder_key(text)
    if isinstance(ref, dict):
        from llmcombo.productline import model_slots

        try:
            slots = model_slots(ref)
        except Exception:
            slots = []
        parts = sorted({folder_key(sl.ref) for sl in slots})
        return "config:" + config_hash(json.loads(json.dumps(ref, default=str)), parts)
    return f"object:{id(ref)}"


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
    """Pre-flight, run (in a thread, with progress and cancel) and the result of a merge / MoE;
    the runs made before (found on disk, see :mod:`llmcombo_widgets.session`)."""

    def __init__(self, form: FormModel, out_root: str | os.PathLike = "outputs",
                 session: Session | None = None):
        self.form = form
        self.out_root = Path(out_root)
        self.session = session
        self.out_dir: str | None = None  # None: derived from the configuration
        self.overwrite = True
        self.job = Job("run")
        self.gguf_job = Job("gguf")
        self.results: list[Any] = []  # RunResult of every finished run (newest last)
        self.summary: PreflightSummary | None = None

    def history(self) -> list[RunRecord]:
        """Every run folder: under the outputs folder, those this session made elsewhere, and
        this page's runs; newest first. Read again only when the outputs folder changed (a run
        adds or replaces a folder there by renaming it into place) or a run finished."""
        extra = [str(r.path) for r in self.results]
        if self.session is not None:
            extra += list(self.session.get("runs", []))
        try:
            stamp = self.out_root.stat().st_mtime_ns
        except OSError:
            stamp = None
        key = (stamp, tuple(extra), tuple(_mtime(x) for x in extra))
        if getattr(self, "_history_key", None) != key:
            self._history = find_runs(self.out_root, extra)
            self._history_key = key
        return list(self._history)

    def record(self, folder: str | os.PathLike) -> RunRecord | None:
        return RunRecord.read(folder)

    @staticmethod
    def downloads(folder: str | os.PathLike) -> list[Download]:
        """The small files of a run: its configuration (as written in the form), the mergekit
        YAML it ran and the model card (no local paths). The model itself is
        :meth:`model_download` (it takes a moment)."""
        from llmcombo.configuration import dump_yaml

        folder = Path(folder)
        out: list[Download] = []
        rec = RunRecord.read(folder)
        if rec is not None and rec.configuration:
            out.append(text_download(f"{folder.name}.yaml", dump_yaml(rec.configuration),
                                     "configuration YAML"))
        for name in ("mergekit_config.yml", "mergekit_moe_config.yml"):
            if (folder / name).is_file():
                out.append(Download(name, (folder / name).read_bytes(), "mergekit YAML"))
        try:
            from llmcombo.hub import build_card

            out.append(text_download("README.md", str(build_card(folder)), "model card"))
        except Exception:  # a folder the card cannot be made for: no card link
            pass
        return out

    @staticmethod
    def model_download(folder: str | os.PathLike) -> Download:
        """The model folder as a zip (raises ValueError when too large for a browser)."""
        from llmcombo_widgets.downloads import zip_folder

        folder = Path(folder)
        return Download(f"{folder.name}.zip", zip_folder(folder), "model (zip)")

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
            red, todo = len(self.form.shown_errors), len(self.form.todo)
            if red:
                return f"The configuration has {red} error(s): fix them in Configure."
            return (f"The configuration is not complete yet ({todo} thing{'s' if todo != 1 else ''}"
                    " to fill in): finish it in Configure.")
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
            if self.session is not None:
                self.session.remember_run(result.path)
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
                ("time", f"{r.seconds:.1f} s on {r.device}"), ("peak memory", mem),
                ("run id", str(r.run_id or ""))]
        rows += [("warning", w) for w in r.warnings]
        return rows


# ---------------------------------------------------------------------------------------------
# Evaluate
# ---------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------
# Ensembles playground
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class EnsembleExample:
    """A built-in ensemble of the zoo's models, with questions it answers (and their answers:
    a test checks that it does)."""

    name: str
    title: str
    description: str
    config: dict
    questions: tuple[tuple[str, str], ...]


ROUTES = [{"label": "LLM1", "model": "zoo:domotica"}, {"label": "LLM2", "model": "zoo:tiempo"}]


def _examples() -> tuple[EnsembleExample, ...]:
    from llmcombo.zoo.experiments import vote_config

    vote = vote_config(["zoo:domotica", "zoo:tiempo"], 3, temperature=0.7, seed=0,
                       tie_break="likelihood")
    return (
        EnsembleExample(
            "zoo-router", "Router: a selector picks the specialist",
            "The selector model reads the question and answers LLM1 (home automation) or LLM2 "
            "(weather); that specialist answers. Below 60 % confidence the home-automation model "
            "answers (the fallback).",
            {"name": "zoo-router", "ensemble": {"router": {
                "selector": {"kind": "label_model", "model": "zoo:selector", "threshold": 0.6},
                "fallback": "LLM1", "routes": [dict(r) for r in ROUTES]}}},
            (("apaga la luz del salon", "LUZ_SL OFF"),
             ("que tiempo hace mañana en madrid", "TIEMPO MADRID MANANA"),
             ("sube la persiana de la cocina", "PERSIANA_CO UP"),
             ("va a llover el sabado en sevilla", "LLUVIA SEVILLA SABADO"))),
        EnsembleExample(
            "zoo-vote", "Vote: both specialists answer, the majority wins",
            "Each specialist answers three times (sampled at temperature 0.7); the most frequent "
            "command wins. A specialist asked outside its task scatters its answers or repeats "
            "a wrong one; a tie goes to the answer the models found more likely.",
            dict(vote, name="zoo-vote"),
            (("apaga la luz del salon", "LUZ_SL OFF"),
             ("que tiempo hace mañana en madrid", "TIEMPO MADRID MANANA"),
             ("enciende la tele del comedor", "TV_CM ON"),
             ("hara viento en bilbao el domingo", "VIENTO BILBAO DOMINGO"))),
        EnsembleExample(
            "zoo-pipeline", "Pipeline: draft, then check (home automation)",
            "A pipeline passes one model's answer on to the next. Here the home-automation model "
            "drafts a command, then reads its draft next to the order and writes the final "
            "command. (The zoo has no model that rewrites free text, so both stages are the same "
            "specialist; a real pipeline would chain, say, speech-to-text and then commands.)",
            {"name": "zoo-pipeline", "ensemble": {"pipeline": {"stages": [
                {"model": "zoo:domotica"},
                {"model": "zoo:domotica", "template": "{input} [ORDEN] {prompt} [COMANDO]"}]}}},
            (("apaga la luz del salon", "LUZ_SL OFF"),
             ("sube la persiana de la cocina", "PERSIANA_CO UP"),
             ("pon la calefaccion del dormitorio a 21", "CALEF_DO SET 21"),
             ("enciende la tele del comedor", "TV_CM ON"))),
    )


EXAMPLES: tuple[EnsembleExample, ...] = ()


def ensemble_examples() -> dict[str, EnsembleExample]:
    global EXAMPLES
    if not EXAMPLES:
        EXAMPLES = _examples()
    return {e.name: e for e in EXAMPLES}


ENSEMBLE_EXAMPLES = ("zoo-router", "zoo-vote", "zoo-pipeline")
FORM_SOURCE = "(the ensemble in Configure)"


def example_ensembles() -> dict[str, dict]:
    """The seed's home-automation example: two specialists and a selector from the zoo."""
    return {name: e.config for name, e in ensemble_examples().items()}


class PlaygroundModel:
    """Ask a product a prompt; see the answer, how it was reached in words, and the raw trace.
    Products are cached by content (:func:`content_key`): a model folder that a new run replaced
    is loaded again."""

    def __init__(self, form: FormModel | None = None, run: RunModel | None = None):
        self.form = form
        self.run_model = run
        self.source: str = "zoo-router"
        self.answer = None
        self.error: str | None = None
        self._products: dict[tuple[str, str], Any] = {}
        self.job = Job("ask")

    def sources(self) -> list[str]:
        out = list(example_ensembles())
        if self.form is not None and self.form.family == "ensemble":
            out.insert(0, FORM_SOURCE)
        out += [f"zoo:{n}" for n in ZOO_PRODUCTS]
        if self.run_model is not None:
            out += [str(r.path) for r in self.run_model.history()]
        return out

    def labels(self) -> list[tuple[str, str]]:
        """(what the picker shows, source) for every source."""
        from llmcombo_widgets.words import model_words

        ex = ensemble_examples()
        runs = {str(r.path): r for r in self.run_model.history()} if self.run_model else {}
        out = []
        for src in self.sources():
            if src in ex:
                out.append((f"{ex[src].title}", src))
            elif src in runs:
                out.append((f"your model: {runs[src].label()}", src))
            elif src.startswith("zoo:"):
                out.append((f"one model: {model_words(src)}", src))
            else:
                out.append((src, src))
        return out

    def example(self, source: str | None = None) -> EnsembleExample | None:
        return ensemble_examples().get(source or self.source)

    def questions(self, source: str | None = None) -> list[str]:
        ex = self.example(source)
        return [q for q, _ in ex.questions] if ex else []

    def config(self, source: str | None = None) -> Any:
        """What the product is made from: a configuration dict, or a model reference."""
        source = source or self.source
        if source == FORM_SOURCE and self.form is not None:
            return self.form.configuration()
        ex = self.example(source)
        return ex.config if ex else source

    def spec_yaml(self, source: str | None = None) -> str:
        """The ensemble's own configuration as YAML (or the model it is)."""
        from llmcombo.configuration import dump_yaml

        cfg = self.config(source)
        return dump_yaml(dict(cfg)) if isinstance(cfg, dict) else f"model: {cfg}\n"

    def product(self, source: str | None = None):
        from llmcombo.ensemble import load_product

        source = source or self.source
        cfg = self.config(source)
        if source == FORM_SOURCE:
            return load_product(cfg)  # not cached: the form changes
        key = (source, content_key(cfg))
        if key not in self._products:
            for old in [k for k in self._products if k[0] == source]:
                del self._products[old]  # the folder was replaced: forget the old copy
            self._products[key] = load_product(cfg)
        return self._products[key]

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
        """Every run's folder, newest first (earlier sessions' too)."""
        if self.run_model is None:
            return []
        return [str(r.path) for r in self.run_model.history()]

    def labels(self) -> list[tuple[str, str]]:
        if self.run_model is None:
            return []
        return [(r.label(), str(r.path)) for r in self.run_model.history()]

    @staticmethod
    def card(folder: str | os.PathLike, repo_id: str | None = None,
             license: str | None = None) -> str:
        """The model card that Publish would write (no local paths in it)."""
        from llmcombo.hub import build_card

        return str(build_card(Path(folder), repo_id=repo_id or None, license=license))

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
