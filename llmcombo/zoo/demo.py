"""``llmcombo demo``: the whole flow, offline, on the zoo.

1. build (or reuse) the zoo: ``base``, the two specialists ``domotica`` and ``tiempo``, ``selector``;
2. run five merges of the two specialists (linear, slerp, task arithmetic, TIES, DARE-TIES) and a
   mixture of experts (hidden-state gates from prompts of each task) with :func:`llmcombo.run.run`,
   cached in ``OUT/models`` by configuration hash;
   then a product-line search (:func:`llmcombo.search.search`, chosen on the tasks' validation
   splits; its study is kept in ``OUT/models/search-study-HASH`` and resumed, so a second run costs
   nothing): its best merge joins the table as ``search``;
3. build a vote (both specialists, sampled) and a router (the zoo selector picks the specialist);
4. evaluate every product, both parents and the base on the held-out split of both tasks
   (accuracy with Wilson intervals; perplexity of the single models on the held-out texts);
5. the extras: a slerp sweep between the specialists, task-vector norms, the MoE's routing shares,
   vote accuracy as N grows;
6. write ``results.csv`` (tidy), the other frames as CSV, the figures as PNG, ``report.md`` that
   embeds them, ``demo.json`` (timings, machine, settings); print the results table.

Every result file is written into a staging folder inside OUT and moved into place only when the
whole run succeeded, so a failed run leaves the previous results untouched (and no half-written
file); the merged models are placed atomically by :func:`llmcombo.run.run`.

``quick=True`` (CI) evaluates on the first 40 held-out prompts of each task and uses fewer sweep
and vote points; every product and both tasks are still there.

What the demo runs (product names, sizes, configurations) is in :mod:`llmcombo.zoo.demo_config`;
its tables and ``report.md`` are written by :mod:`llmcombo.zoo.demo_report`. This module runs the
steps and re-exports both modules' public names.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from llmcombo.errors import UserError
from llmcombo.zoo.demo_config import (MERGES, PARENTS, PRODUCTS, SCALING_TEMPERATURE, SEARCH,
                                      TABLE_ORDER, TASKS, VOTE_SAMPLES, VOTE_TEMPERATURE,
                                      Settings, ensemble_configs, merge_configs)
from llmcombo.zoo.demo_report import (accuracy_pivot, accuracy_table, report_markdown,
                                      samples_frame, skills_kept)

DEFAULT_OUT = "llmcombo-demo"


@dataclass
class DemoResult:
    out: Path
    results: Any  # pandas DataFrame (tidy)
    files: list[Path] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    def table(self) -> str:
        return accuracy_table(self.results)


# ---------------------------------------------------------------------------------------------
# the run
# ---------------------------------------------------------------------------------------------


class _Steps:
    """Step headers and timings on stderr; tqdm bars below them when stderr is a terminal."""

    def __init__(self, total: int, log: Callable[[str], None]):
        self.total, self.log, self.i = total, log, 0
        self.timings: dict[str, float] = {}
        self._t0 = time.perf_counter()
        self._name: str | None = None
        self._start = 0.0

    def __call__(self, name: str, what: str) -> None:
        self.done()
        self.i += 1
        self._name, self._start = name, time.perf_counter()
        self.log(f"[{self.i}/{self.total}] {what}")

    def done(self) -> None:
        if self._name is not None:
            dt = time.perf_counter() - self._start
            self.timings[self._name] = round(dt, 1)
            self.log(f"      {self._name}: {dt:.1f} s")
            self._name = None

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self._t0


def demo_threads() -> int:
    """Torch threads for the demo: 1 unless ``$LLMCOMBO_DEMO_THREADS`` says otherwise. The zoo
    models are so small (hidden size 128) that intra-op parallelism mostly adds synchronisation;
    on 2 CPU cores shared with other jobs, one thread generated about 10x faster than two."""
    raw = os.environ.get("LLMCOMBO_DEMO_THREADS", "").strip()
    if not raw:
        return 1
    try:
        n = int(raw)
    except ValueError:
        n = 0
    if n < 1:
        raise UserError(f"LLMCOMBO_DEMO_THREADS must be a whole number >= 1, not {raw!r}.",
                        hint="Unset it to use one thread (fastest for the zoo models).")
    return n


def run_demo(out: str | os.PathLike = DEFAULT_OUT, *, quick: bool = False,
             log: Callable[[str], None] | None = None, progress: Any = None) -> DemoResult:
    """Run the demo into ``out`` (see the module docstring). ``progress`` is passed to the
    evaluation loops (None: tqdm bars on a terminal); ``log`` receives the step lines.
    Torch runs on :func:`demo_threads` threads meanwhile (restored afterwards)."""
    import torch

    from transformers.utils import logging as hf_logging

    threads = demo_threads()
    before = torch.get_num_threads()
    bars = hf_logging.is_progress_bar_enabled()
    torch.set_num_threads(threads)
    hf_logging.disable_progress_bar()  # one "Loading weights" bar per model load is noise here
    try:
        return _run_demo(out, quick=quick, log=log, progress=progress)
    finally:
        torch.set_num_threads(before)
        if bars:
            hf_logging.enable_progress_bar()


def _run_demo(out: str | os.PathLike, *, quick: bool, log: Callable[[str], None] | None,
              progress: Any) -> DemoResult:
    from llmcombo import analysis, plots, zoo
    from llmcombo import evaluate as ev
    from llmcombo.ensemble import load_product
    from llmcombo.progress import LogProgress, TqdmProgress, stderr_is_terminal
    from llmcombo.run import run_cached
    from llmcombo.sysinfo import machine
    from llmcombo.zoo import experiments
    from llmcombo.zoo.tasks import format_prompt

    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    settings = Settings.make(quick)
    if not str(out).strip():
        raise UserError("--out is empty; the demo needs a folder to write its results to.",
                        hint=f"Give a folder, e.g. --out {DEFAULT_OUT}.")
    out = Path(out).expanduser().absolute()
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; the demo needs a folder.",
                        hint="Give a new or existing folder, e.g. --out llmcombo-demo.")
    models_dir = out / "models"
    try:
        out.mkdir(parents=True, exist_ok=True)
        _ignored_by_git(models_dir)
        for stale in out.glob(".staging-*"):  # left by a killed run
            shutil.rmtree(stale, ignore_errors=True)
        stage = Path(tempfile.mkdtemp(prefix=".staging-", dir=out))
    except OSError as exc:
        raise UserError(f"--out: cannot write the demo folder {out}: "
                        f"{exc.strerror or exc} ({exc.filename or out})",
                        hint="Give a folder you can write to, e.g. --out llmcombo-demo.") from None
    started = _dt.datetime.now(_dt.timezone.utc)
    steps = _Steps(10, log)
    tty = stderr_is_terminal()
    run_progress = TqdmProgress() if tty else LogProgress(print_fn=log)
    files: list[Path] = []
    try:
        # 1. zoo -------------------------------------------------------------------------------
        steps("zoo", "zoo: build or reuse the tiny models (base, domotica, tiempo, selector)")
        last: dict[str, str | None] = {"stage": None}

        def zoo_progress(stage_name: str, fraction: float) -> None:
            if stage_name != last["stage"]:
                last["stage"] = stage_name
                log(f"      zoo: {stage_name}")

        z = zoo.build(progress=None if tty else zoo_progress)
        log(f"      zoo at {z.dir}")

        # 2. merges and MoE ----------------------------------------------------------------------
        steps("merges", "merges: linear, slerp, task arithmetic, TIES, DARE-TIES and the MoE "
                        f"(cached in {models_dir})")
        folders: dict[str, Path] = {}
        for name, cfg in merge_configs().items():
            t0 = time.perf_counter()
            folders[name] = run_cached(cfg, models_dir, name=name, progress=run_progress)
            log(f"      {name}: {folders[name].name} ({time.perf_counter() - t0:.1f} s)")

        # 3. search ------------------------------------------------------------------------------
        steps("search", f"search: {settings.search_trials} trials of "
                        f"{', '.join(experiments.SEARCH_METHODS)} (Optuna TPE, chosen on the "
                        "validation splits, never on the test prompts)")
        found = experiments.demo_search(settings.search_trials, settings.search_limit,
                                        models_dir, log)
        best = found.best_merge or found.best
        folders[SEARCH] = run_cached({"name": "search-best", **best}, models_dir, name=SEARCH,
                                     progress=run_progress)
        log(f"      best: trial {found.best_trial}, {best['merge']['method']} "
            f"({found.counts.get('complete', 0)} trials measured)")

        # 4. products --------------------------------------------------------------------------
        steps("products", "products: parents, merges, search, MoE, vote and router")
        products: dict[str, Any] = {n: load_product(f"zoo:{n}") for n in PARENTS}
        products.update({n: load_product(str(folders[n])) for n in MERGES + (SEARCH, "moe")})
        products.update({n: load_product(c) for n, c in ensemble_configs().items()})

        # 5. evaluation ----------------------------------------------------------------------
        steps("evaluate", f"evaluate {len(products)} products on {', '.join(TASKS)} "
                          f"({settings.limit or 'all'} held-out prompts per task)")
        rows, shown = [], {}
        datasets = {t: ev.dataset(t, limit=settings.limit) for t in TASKS}
        for name, prod in products.items():
            t0 = time.perf_counter()
            for task, ds in datasets.items():
                answers = ev.answer_examples(prod, ds.examples, progress=progress,
                                             desc=f"{name} on {task}")
                rows.append(ev.accuracy_row(name, task, answers,
                                            [e.expected for e in ds.examples]))
                shown[(name, task)] = answers[: settings.samples_shown]
            if name in PARENTS + MERGES + (SEARCH, "moe"):
                from llmcombo.zoo.tasks import format_example

                for task, ds in datasets.items():
                    pf = ev.evaluate_perplexity(prod, [format_example(e) for e in ds.examples],
                                                name=name, task=task, progress=False)
                    rows += pf.to_dict("records")
            acc = {r["task"]: r["value"] for r in rows if r["product"] == name
                   and r["metric"] == "accuracy"}
            log(f"      {name:16s} " + "  ".join(f"{t} {v:.1%}" for t, v in acc.items())
                + f"  ({time.perf_counter() - t0:.1f} s)")
        results = ev.frame(rows)
        samples = samples_frame(datasets, shown, settings.samples_shown)

        # 6. sweep -----------------------------------------------------------------------------
        steps("sweep", f"slerp sweep domotica -> tiempo at t = "
                       f"{', '.join(f'{t:g}' for t in settings.sweep_ts)}")
        sweep = experiments.interpolation_sweep("zoo:domotica", "zoo:tiempo", method="slerp",
                                          ts=settings.sweep_ts, limit=settings.sweep_limit,
                                          cache_dir=models_dir, progress=progress)

        # 7. task vectors and routing ----------------------------------------------------------
        steps("analysis", "task-vector norms of the specialists; MoE routing shares")
        tv = analysis.task_vector_norms("zoo:base", {"domotica": "zoo:domotica",
                                                  "tiempo": "zoo:tiempo"})
        routing = analysis.moe_routing_share(
            str(folders["moe"]),
            {t: [e.prompt for e in ev.dataset(t, limit=settings.routing_limit).examples]
             for t in TASKS}, template=format_prompt)

        # 8. vote scaling ----------------------------------------------------------------------
        steps("vote_scaling", "vote accuracy as N grows (each specialist on its own task at "
                              f"temperature {SCALING_TEMPERATURE:g}, N = "
                              f"{', '.join(map(str, settings.vote_samples))})")
        votes = experiments.vote_scaling({"domotica": "zoo:domotica", "tiempo": "zoo:tiempo"},
                                         settings.vote_samples, limit=settings.vote_limit,
                                         temperature=SCALING_TEMPERATURE, seed=0,
                                         tie_break="likelihood", progress=progress)

        # 9. figures and files -------------------------------------------------------------------
        steps("write", f"write results, figures and report to {out}")
        figures = {
            "accuracy.png": plots.plot_accuracy(results, products=list(products),
                                                parents=PARENTS),
            "sweep.png": plots.plot_interpolation_sweep(sweep, label_a="domotica",
                                                        label_b="tiempo"),
            "task_vectors.png": plots.plot_task_vector_norms(tv),
            "moe_routing.png": plots.plot_routing_share(routing,
                                                        expert_names=["domotica", "tiempo"]),
            "vote_scaling.png": plots.plot_vote_scaling(votes),
        }
        for fname, fig in figures.items():
            plots.save_figure(fig, stage / fname)
        ev.save_results(results, stage / "results.csv")
        for fname, df in (("sweep.csv", sweep), ("task_vectors.csv", tv),
                          ("moe_routing.csv", routing), ("vote_scaling.csv", votes),
                          ("samples.csv", samples)):
            ev.save_results(df, stage / fname)
        steps.done()
        timings = dict(steps.timings)
        timings["total"] = round(steps.elapsed, 1)
        meta = {"date": started.strftime("%Y-%m-%d %H:%M UTC"), "quick": quick,
                "settings": settings.__dict__, "timings_s": timings, "machine": machine(),
                "zoo": {"dir": str(z.dir), "created": z.manifest.get("created"),
                        "build_seconds": z.manifest.get("build_seconds")},
                "models": {n: str(f) for n, f in folders.items()},
                "search": experiments.search_meta(found, settings.search_limit),
                "ensembles": ensemble_configs()}
        (stage / "demo.json").write_text(json.dumps(meta, indent=2, default=str) + "\n",
                                         encoding="utf-8")
        (stage / "report.md").write_text(report_markdown(results, sweep, votes, routing, samples,
                                                         meta, list(figures)), encoding="utf-8")
        # 10. publish the staged files --------------------------------------------------------------
        steps("publish", "move the finished files into place")
        for f in sorted(stage.iterdir()):
            os.replace(f, out / f.name)
            files.append(out / f.name)
        steps.done()
    except BaseException as exc:
        shutil.rmtree(stage, ignore_errors=True)
        if isinstance(exc, (UserError, KeyboardInterrupt)):
            raise
        raise UserError(f"the demo failed during '{steps._name or 'setup'}': "
                        f"{type(exc).__name__}: {exc}",
                        hint=f"nothing in {out} was replaced; cached models in {models_dir} "
                             "are complete and will be reused") from exc
    shutil.rmtree(stage, ignore_errors=True)
    timings = dict(steps.timings)
    timings["total"] = round(steps.elapsed, 1)
    return DemoResult(out, results, files, timings)


def _ignored_by_git(folder: Path) -> None:
    """Create ``folder`` with a ``.gitignore`` of ``*``: the merged models (megabytes each) are a
    cache, never something to commit, even when OUT is inside a repository (docs/demo)."""
    folder.mkdir(parents=True, exist_ok=True)
    ignore = folder / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# llmcombo demo: cached merged models, not for version control\n*\n",
                          encoding="utf-8")


__all__ = ["DEFAULT_OUT", "DemoResult", "MERGES", "PARENTS", "PRODUCTS", "SCALING_TEMPERATURE",
           "SEARCH", "Settings", "TABLE_ORDER", "TASKS", "VOTE_SAMPLES", "VOTE_TEMPERATURE",
           "accuracy_pivot", "accuracy_table", "ensemble_configs",
           "merge_configs", "run_demo", "skills_kept"]
