"""The search loop: validate the specification, measure the parents, then ask Optuna for trials,
run them (this process, a local pool or Ray), tell Optuna what they scored, and write the report.

Honest by construction: trials and every choice see only the *validation* split; the test split
is read once, by the report, for the chosen product and the products it is compared with.

Batches: ``workers`` trials are asked, run together and told in trial order, so the same seed and
sampler give the same study on one process, on a local pool and on Ray. A candidate that breaks a
rule of the feature model is told ``PRUNED`` (infeasible) without running and another is asked;
the same product twice (same configuration hash) is measured once (``OUT/trials/HASH.json``).
Killed, a search resumes with ``resume=True``: trials finished are kept, the trial that was
running is run again.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from llmcombo.errors import UserError
from llmcombo.fsutil import config_hash
from llmcombo.progress import CancelToken, as_progress
from llmcombo.search import study as S
from llmcombo.search.cache import CACHE_DIR, ResultCache
from llmcombo.search.loading import load_spec, resolution, spec_hash, substitute
from llmcombo.search.space import Candidate, Space

MAX_INFEASIBLE_STREAK = 200


@dataclass
class SearchResult:
    """What :func:`llmcombo.search.search` returns. ``trials``: the study as a tidy frame (one row
    per trial, validation split); ``references``: parents, presets and ensembles on the validation
    split; ``results``: the test split (tidy accuracy rows: the best product beside parents,
    presets and ensembles); ``best``: the best configuration (``best.yaml``)."""

    out: Path
    doc: dict
    trials: Any
    references: Any
    results: Any = None
    best: dict | None = None
    best_trial: int | None = None
    best_merge: dict | None = None
    counts: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)
    files: list = field(default_factory=list)

    def table(self) -> str:
        """The test table as text (the report's)."""
        from llmcombo.search.report import results_table

        return results_table(self.results) if self.results is not None else "(no report)"

    def __repr__(self) -> str:
        return (f"SearchResult({self.out}, {self.counts.get('complete', 0)} trials measured, "
                f"best trial {self.best_trial})")


# ---------------------------------------------------------------------------------------------
# the search
# ---------------------------------------------------------------------------------------------


class SearchRun:
    """A search in progress (what ``on_trial`` receives): ``study`` (Optuna), ``doc`` (the
    specification, defaults filled), ``reference`` (each task's best parent accuracy on the
    validation split), ``reference_frame`` (parents, presets, ensembles on validation), ``counts``
    and :meth:`trials` (the tidy frame so far)."""

    def __init__(self, plan, out: Path, *, ray: str | None, resume: bool, progress: Any,
                 cancel: CancelToken, on_trial: Callable | None, log: Callable[[str], None]):
        self.plan = plan
        self.doc = plan.document
        self.out = out
        self.ray = ray
        self.resume = resume
        self.progress = progress
        self.cancel = cancel
        self.on_trial = on_trial
        self.log = log
        self.mapping = resolution(plan)
        self.cache = ResultCache(out / CACHE_DIR)
        self.timings: dict[str, float] = {}
        self.counts = {"complete": 0, "failed": 0, "infeasible": 0, "cached": 0}
        self.executor: Any = None

    # -- running products -------------------------------------------------------------------------
    def job(self, kind: str, config: dict, split: str, name: str = "") -> dict:
        return {"kind": kind, "config": self.portable(config), "split": split,
                "name": name, "hash": config_hash(config)}

    def measure(self, items: list[tuple[str, str, dict]], split: str) -> dict[str, dict]:
        """``{name: result}`` for ``(name, kind, config)`` items, from the cache or the
        executor (in batches of ``workers``)."""
        out: dict[str, dict] = {}
        todo = []
        for name, kind, config in items:
            key = self.cache.key(config, split)
            hit = self.cache.get(key)
            if hit is not None:
                out[name] = hit
            else:
                todo.append((name, key, self.job(kind, config, split, name)))
        w = max(1, self.executor.workers)
        for i in range(0, len(todo), w):
            self.cancel.raise_if_cancelled()
            chunk = todo[i: i + w]
            for (name, key, _job), res in zip(chunk, self.executor.run([j for _, _, j in chunk])):
                self.cache.put(key, res)
                out[name] = res
                if res["status"] != "ok":
                    self.log(f"  {name}: failed on {split}: {res['error']}")
        return out

    # -- setting up -------------------------------------------------------------------------------
    def open(self):
        from llmcombo.search.data import load_tasks
        from llmcombo.search.executors import make_executor

        doc = self.doc
        exists = S.has_study(self.out)
        if exists and not self.resume:
            raise UserError(f"{self.out} already holds a search.",
                            hint="Add --resume (resume=True) to continue it, or choose another "
                                 "--out.")
        if self.resume and not exists:
            raise UserError(f"there is no search to resume in {self.out}.",
                            hint="Run it without --resume first.")
        if exists:
            self.study = S.open_study(self.out, doc, create=False)
            saved = self.study.user_attrs.get("spec_hash")
            if saved != spec_hash(doc):
                raise UserError(f"{self.out} holds a search of another specification (models, "
                                "tasks, objective, space, sampler or seed differ).",
                                hint="Resume it with the specification it was started with, or "
                                     "choose another --out. (trials, minutes and workers may "
                                     "change.)")
        else:
            self.out.mkdir(parents=True, exist_ok=True)
            self.study = S.open_study(self.out, doc, create=True)
            self.study.set_user_attr("spec_hash", spec_hash(doc))
            self.study.set_user_attr("spec", json.loads(json.dumps(doc, default=str)))
        self.tasks = load_tasks(doc)
        payload = {"doc": self.portable(doc), "threads": 1,
                   "tasks": {t.name: {"validation": [(e.prompt, e.expected) for e in t.validation],
                                      "test": [(e.prompt, e.expected) for e in t.test]}
                             for t in self.tasks}}
        t0 = time.perf_counter()
        self.executor = make_executor(payload, doc["workers"], self.ray)
        self.timings["start_workers_s"] = round(time.perf_counter() - t0, 2)
        self.log(f"{doc['workers']} worker(s) on "
                 f"{'Ray' if self.executor.kind == 'ray' else 'this machine'}; tasks: "
                 + ", ".join(f"{t.name} ({len(t.validation)} validation / {len(t.test)} test, "
                             f"{t.source})" for t in self.tasks))

    def references(self):
        """Parents, presets and the default ensembles on the validation split: each task's best
        parent is the reference of the share kept; all of them are drawn on the plots."""
        from llmcombo.search.report import preset_configs

        doc = self.doc
        t0 = time.perf_counter()
        items = [(f"parent {r}", "model", {"model": r}) for r in doc["models"]]
        res = self.measure(items, "validation")
        self.reference: dict[str, float] = {}
        self.specialists: dict[str, str] = {}
        for t in self.tasks:
            best, best_acc = None, -1.0
            for r in doc["models"]:
                acc = res[f"parent {r}"].get("acc", {}).get(t.name)
                if acc is not None and acc > best_acc:
                    best, best_acc = r, acc
            if best is None:
                raise UserError(f"no parent could be measured on {t.name}: "
                                + res[f"parent {doc['models'][0]}"].get("error", ""),
                                hint="Check that the parents load and answer (llmcombo ask).")
            self.reference[t.name] = best_acc
            self.specialists[t.name] = best
        for task, v in self.reference.items():
            if v <= 0:
                self.log(f"no parent answers {task} (0 % on its validation split): it cannot "
                         "count in the share of skill kept")
        if all(v <= 0 for v in self.reference.values()):
            raise UserError("every parent scores 0 on every task's validation split, so there is "
                            "no skill to keep.",
                            hint="Check the tasks' prompt template and answer format "
                                 "(evaluation.template / output).")
        self.space = Space(doc, specialists=self.specialists,
                           route_examples={t.name: [e.prompt for e in (t.train or t.validation)]
                                           for t in self.tasks})
        if self.space.is_empty():  # pragma: no cover - validation refuses an empty space
            raise UserError("the search space is empty: nothing to try.", field="search.space")
        if not self.study.get_trials(deepcopy=False):
            self.warm_start(preset_configs(doc))
        refs = [(f"parent {r}", "parent", "model", {"model": r}) for r in doc["models"]]
        refs += [(f"preset {n}", "preset", "merge", c) for n, c in preset_configs(doc).items()]
        refs += [("vote", "ensemble", "ensemble", self.space.vote_config()),
                 ("router", "ensemble", "ensemble", self.space.router_config())]
        self.reference_items = refs
        res.update(self.measure([(n, k, c) for n, _r, k, c in refs], "validation"))
        rows = []
        for name, role, kind, config in refs:
            r = res[name]
            row = {"product": name, "role": role, "kind": kind, "status": r["status"],
                   "error": r.get("error"), "models": 1 if kind != "ensemble" else
                   self.space.models_count(Candidate("ensemble", name, config)),
                   "latency_s": r.get("latency_s")}
            for task, acc in (r.get("acc") or {}).items():
                row[f"acc:{task}"] = acc
            kept = S.kept(r.get("acc") or {}, self.reference)
            for task, v in kept.items():
                row[f"kept:{task}"] = v
            row["worst_kept"] = S.scalar(r.get("acc") or {}, self.reference, "worst") \
                if r["status"] == "ok" else math.nan
            rows.append(row)
        import pandas as pd

        self.reference_frame = pd.DataFrame(rows)
        self.timings["references_s"] = round(time.perf_counter() - t0, 2)
        self.log("reference (best parent per task, validation): "
                 + ", ".join(f"{t} {v:.1%} ({self.specialists[t]})"
                             for t, v in self.reference.items()))

    def warm_start(self, presets: dict[str, dict]) -> None:
        """The first trials: the shipped presets that are in the space (so the search starts
        from them and can only improve on them on the validation split), then every other
        product of the space once, its parameters sampled (TPE alone can settle on the first
        method that scores and never look at the others)."""
        seen = set()
        for config in presets.values():
            params = self.space.params_for(config)
            if params is not None:
                self.study.enqueue_trial(params, skip_if_exists=True)
                seen.add(params["product"])
        for choice in self.space.choices:
            if choice not in seen:
                self.study.enqueue_trial({"product": choice})

    def recover(self) -> None:
        """Trials left running by a killed search are marked failed without a reason (shown as
        *interrupted*, not counted against the budget) and queued again with the same
        parameters: when their product had been measured, the cache answers at once."""
        from optuna.trial import TrialState

        for t in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            self.study.tell(t.number, state=TrialState.FAIL)
            self.study.enqueue_trial(dict(t.params), skip_if_exists=False)
            self.counts["interrupted"] = self.counts.get("interrupted", 0) + 1
            self.log(f"trial {t.number} was running when the search stopped: it is run again")

    # -- the loop ---------------------------------------------------------------------------------
    def _tell(self, trial: Any, config: dict, result: dict, *, driver_s: float, batch_s: float,
              cached: bool) -> None:
        from optuna.trial import TrialState

        attrs = {"merge_s": round(result.get("merge_s") or 0.0, 4),
                 "eval_s": round(result.get("eval_s") or 0.0, 4),
                 "worker_s": round(result.get("worker_s") or 0.0, 4),
                 "driver_s": round(driver_s, 4), "batch_s": round(batch_s, 4), "cached": cached,
                 "latency_s": result.get("latency_s"), "in_memory": result.get("in_memory")}
        if result["status"] != "ok":
            attrs["error"] = result.get("error") or "failed"
            trial.set_user_attr("result", attrs)
            self.study.tell(trial, state=TrialState.FAIL)
            self.counts["failed"] += 1
            return
        acc = result["acc"]
        kept = S.kept(acc, self.reference)
        attrs.update(acc=acc, kept=kept, n=result.get("n"),
                     worst_kept=S.scalar(acc, self.reference, "worst"),
                     mean_kept=S.scalar(acc, self.reference, "mean"))
        models = self.space.models_count(Candidate(
            "merge" if "merge" in config else "ensemble", "", config))
        attrs["models"] = models
        cost = {"models": models, "latency": result.get("latency_s")}.get(self.doc["cost"])
        trial.set_user_attr("result", attrs)
        self.study.tell(trial, S.values_of(result, self.doc, self.reference, cost))
        self.counts["complete"] += 1
        self.counts["cached"] += int(cached)

    def _ask(self) -> tuple[Any, Candidate, float]:
        from optuna.trial import TrialState

        streak = 0
        while True:
            t0 = time.perf_counter()
            n = len(self.study.get_trials(deepcopy=False))
            self.study.sampler = S.make_sampler(self.doc, n)
            trial = self.study.ask()
            cand = self.space.suggest(trial)
            problems = self.space.problems(cand)
            about = {"kind": cand.kind if cand.kind == "merge" else cand.method,
                     "method": cand.label, "hash": cand.hash, "config": cand.config}
            if not problems:
                trial.set_user_attr("candidate", about)
                return trial, cand, time.perf_counter() - t0
            about["infeasible"] = problems[0].format()
            trial.set_user_attr("candidate", about)
            self.study.tell(trial, state=TrialState.PRUNED)
            self.counts["infeasible"] += 1
            streak += 1
            if streak >= MAX_INFEASIBLE_STREAK:
                raise UserError(f"{streak} candidates in a row broke a rule of the feature model "
                                f"(the last: {problems[0].format()}); the space has (almost) no "
                                "valid product.", field="search.space",
                                hint="Narrow the ranges or the methods of the space.")

    def loop(self, minutes: float | None) -> None:
        doc = self.doc
        target = int(doc["trials"])
        t_start = time.perf_counter()
        deadline = t_start + 60 * minutes if minutes else math.inf
        done0 = S.counted(self.study)
        # with a time budget the number of trials is not known in advance: a count, no estimate
        self.progress.start(None if minutes else target,
                            f"search ({minutes:g} min)" if minutes else "search")
        self.progress.update(min(done0, target))
        try:
            while True:
                self.cancel.raise_if_cancelled()
                done = S.counted(self.study)
                if done >= target or time.perf_counter() >= deadline:
                    break
                batch = [self._ask() for _ in range(min(self.executor.workers, target - done))]
                keys = [self.cache.key(cand.config, "validation") for _t, cand, _d in batch]
                need: dict[str, dict] = {}
                for (trial, cand, _d), key in zip(batch, keys):
                    if key not in need and self.cache.get(key) is None:
                        need[key] = self.job("merge" if cand.kind == "merge" else "ensemble",
                                             cand.config, "validation", f"trial {trial.number}")
                t0 = time.perf_counter()
                results = dict(zip(need, self.executor.run(list(need.values())) if need else []))
                batch_s = time.perf_counter() - t0
                for key, res in results.items():
                    self.cache.put(key, res)
                fresh = set(results)
                for (trial, cand, drive), key in zip(batch, keys):
                    t1 = time.perf_counter()
                    was_cached = key not in fresh
                    fresh.discard(key)  # the same product twice in a batch: measured once
                    res = results.get(key) or self.cache.get(key)
                    assert res is not None  # measured in this batch, or cached before it
                    self._tell(trial, cand.config, res, driver_s=drive, batch_s=batch_s,
                               cached=was_cached)
                    self._report_trial(trial.number, cand, res, drive + time.perf_counter() - t1)
                    self.progress.update(1)
        finally:
            self.progress.close()
            self.timings["search_s"] = round(time.perf_counter() - t_start, 2)

    def _report_trial(self, number: int, cand: Candidate, res: dict, driver_s: float) -> None:
        if res["status"] != "ok":
            line = f"trial {number}: {cand.label} failed: {res.get('error')}"
        else:
            kept = S.kept(res["acc"], self.reference)
            line = (f"trial {number}: {cand.label} "
                    + " ".join(f"{t} {a:.1%}" for t, a in res["acc"].items())
                    + f"  worst kept {min(kept.values()):.0%}")
        self.log(line)
        if self.on_trial is not None:
            try:
                self.on_trial(self, number)
            except Exception as exc:  # a broken listener must not stop the search
                self.log(f"(a progress listener failed: {exc})")

    def portable(self, config: dict) -> dict:
        """``config`` with local model folders written absolute (zoo: and hub ids as written):
        what loads from any folder, any process, any machine that has the same paths."""
        return substitute(config, self.mapping)

    def trials(self):
        """The study so far as a tidy frame (:func:`llmcombo.search.study.trials_frame`)."""
        return S.trials_frame(self.study, self.doc)

    def close(self) -> None:
        if self.executor is not None:
            self.executor.close()
            self.executor = None


def search(spec: Any, out: str | Path | None = None, *, trials: int | None = None,
           minutes: float | None = None, workers: int | None = None, ray: str | None = None,
           resume: bool = False, report: bool = True, progress: Any = None,
           cancel: CancelToken | None = None, log: Callable[[str], None] | None = None,
           on_trial: Callable | None = None) -> SearchResult:
    """Search the product line for the best combination of the parents of ``spec`` (a search
    specification: a YAML path, a dict or a Configuration; see :mod:`llmcombo.search.spec`).

    ``out``: the folder for the study, ``study.csv``, ``best.yaml``, the plots and ``report.md``
    (default ``./llmcombo-search/NAME``); ``trials`` / ``minutes`` / ``workers`` override the
    specification's; ``ray``: run the trials on Ray (``auto``, an address, or ``local`` to start
    one here) instead of this machine; ``resume``: continue the search in ``out``;
    ``report=False``: stop after the trials (no test split read, no figures, no report.md: the
    study, ``best.yaml`` and ``search.json`` only). ``on_trial(search, number)``
    is called after every trial (the dashboard draws its live plot from it).

    Every mistake in the specification raises :class:`~llmcombo.errors.UserError` before any
    trial; a trial that fails is recorded with its reason and the search goes on.
    """
    log = log or (lambda msg: None)
    plan = load_spec(spec, trials=trials, minutes=minutes, workers=workers)
    doc = plan.document
    out = Path(out if out is not None else Path("llmcombo-search") / str(doc["name"]))
    out = out.expanduser().absolute()
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; a search needs a folder.",
                        hint="Give a new or existing folder.")
    progress = as_progress(progress)
    run = SearchRun(plan, out, ray=ray, resume=resume, progress=progress,
                  cancel=cancel or CancelToken(), on_trial=on_trial, log=log)
    started = _dt.datetime.now(_dt.timezone.utc)
    t0 = time.perf_counter()
    try:
        run.open()
        run.references()
        run.recover()
        run.loop(doc.get("minutes"))
        result = SearchResult(out, doc, S.trials_frame(run.study, doc), run.reference_frame,
                              counts=dict(run.counts), timings=dict(run.timings))
        best = S.best_trial(run.study)
        if best is not None:
            result.best, result.best_trial = S.info(best)["config"], best.number
            bm = S.best_trial(run.study, kind="merge")
            result.best_merge = S.info(bm)["config"] if bm is not None else None
        from llmcombo.search.report import write_outputs

        write_outputs(run, result, started=started, report=report)
        result.timings["total_s"] = round(time.perf_counter() - t0, 2)
        return result
    finally:
        run.close()


__all__ = ["ResultCache", "SearchResult", "SearchRun", "load_spec", "search", "spec_hash"]
