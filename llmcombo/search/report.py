"""The outputs of a search, written into its folder (each file atomically):

* ``study.csv`` -- every trial, tidy (one row per trial; :func:`llmcombo.search.study.trials_frame`);
* ``references.csv`` -- parents, presets and ensembles on the validation split;
* ``best.yaml`` -- the configuration chosen on the validation split (opens in the form, runs with
  ``llmcombo merge best.yaml OUT`` or, for an ensemble, ``llmcombo ask best.yaml ...``);
  ``best_merge.yaml`` too when the best product is an ensemble;
* ``results.csv`` -- the *test* split, read here for the first time: the chosen product beside the
  parents, the shipped presets and the ensembles (tidy accuracy rows with Wilson intervals);
* ``history.png``, ``pareto.png``, ``importances.png``, ``cost.png``, ``report.md``,
  ``search.json`` (timings, counts, machine, versions).
"""

from __future__ import annotations

import copy
import datetime as _dt
import json
import math
from typing import Any

from llmcombo.fsutil import atomic_write
from llmcombo.search import study as S


def preset_configs(doc: dict) -> dict[str, dict]:
    """The shipped merge presets retargeted to the search's parents (preset model i -> parent
    i, the preset's base -> the search's base), those that are valid for them, by preset name."""
    from llmcombo.configuration import list_presets, load_preset
    from llmcombo.productline import feature_model

    refs, base = list(doc["models"]), doc["base_model"]
    out = {}
    for name in list_presets():
        cfg = dict(load_preset(name))
        merge = copy.deepcopy(cfg.get("merge"))
        if not isinstance(merge, dict) or not isinstance(merge.get("models"), list):
            continue
        written = [m["model"] for m in merge["models"]]
        mapping = {w: refs[min(i, len(refs) - 1)] for i, w in enumerate(written)}
        models = []
        for i, ref in enumerate(refs):
            entry = copy.deepcopy(merge["models"][min(i, len(written) - 1)])
            entry["model"] = ref
            models.append(entry)
        merge["models"] = models
        if merge.get("base_model") is not None:
            b = merge["base_model"]
            merge["base_model"] = mapping.get(b, base)
            if merge["base_model"] is None:
                continue
        merge["dtype"] = doc["dtype"]
        config = {"merge": merge}
        if not [i for i in feature_model().validate(config) if i.is_error]:
            out[name] = config
    return out


def _pct(v: Any) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.1%}"


def results_rows(results) -> tuple[list[str], list[list[str]]]:
    """``(header, rows)`` of the test table: one row per product, accuracy [95 % CI] per task,
    the smallest share of a parent's skill kept, models per answer."""
    tasks = list(dict.fromkeys(results["task"]))
    header = ["product", "role"] + [f"{t} [95% CI]" for t in tasks] + ["n/task", "skill kept (min)",
                                                                       "models"]
    lines = []
    for prod, g in results.groupby("product", sort=False):
        cells = [str(prod), str(g["role"].iloc[0])]
        for t in tasks:
            r = g[g["task"] == t]
            if r.empty or math.isnan(r["value"].iloc[0]):
                cells.append("failed" if not r.empty else "-")
            else:
                r = r.iloc[0]
                cells.append(f"{r['value']:.1%} [{r['ci_low']:.0%}, {r['ci_high']:.0%}]")
        cells.append(str(int(g["n"].iloc[0])))
        kept = g["kept"].min() if "kept" in g else math.nan
        cells.append("-" if g["role"].iloc[0] == "parent" else _pct(kept))
        cells.append(str(int(g["models"].iloc[0])) if "models" in g and
                     not math.isnan(g["models"].iloc[0]) else "-")
        lines.append(cells)
    return header, lines


def results_table(results, markdown: bool = True) -> str:
    """The test results as a table (Markdown, or aligned text): see :func:`results_rows`."""
    if results is None or results.empty:
        return "(no results)"
    header, lines = results_rows(results)
    if markdown:
        out = ["| " + " | ".join(header) + " |",
               "|" + "|".join(["---", "---"] + ["---:"] * (len(header) - 2)) + "|"]
        return "\n".join(out + ["| " + " | ".join(c) + " |" for c in lines])
    widths = [max(len(r[i]) for r in [header] + lines) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in [header] + lines)


def _test_products(run, result) -> list[tuple[str, str, str, dict]]:
    items = [(n, role, kind, c) for n, role, kind, c in run.reference_items]
    if result.best is not None:
        kind = "merge" if "merge" in result.best else "ensemble"
        items.append(("best", "best", kind, result.best))
        if result.best_merge is not None and result.best_merge != result.best:
            items.append(("best merge", "best", "merge", result.best_merge))
    return items


def _test_frame(run, items):
    from llmcombo.tidy import frame, row
    from llmcombo.search.space import Candidate

    measured = run.measure([(n, k, c) for n, _role, k, c in items], "test")
    ref = {}
    for t in run.tasks:  # the share kept is against each task's best parent, on test too
        ref[t.name] = max((measured[n]["acc"].get(t.name, 0.0) for n, role, _k, _c in items
                           if role == "parent" and measured[n]["status"] == "ok"), default=0.0)
    rows = []
    for name, role, kind, config in items:
        r = measured[name]
        models = 1 if kind != "ensemble" else run.space.models_count(
            Candidate("ensemble", name, config))
        for t in run.tasks:
            acc = r.get("acc", {}).get(t.name)
            n = r.get("n", {}).get(t.name, len(t.test))
            kept = acc / ref[t.name] if acc is not None and ref[t.name] > 0 else math.nan
            rows.append(row(name, t.name, "accuracy", acc if acc is not None else math.nan, n,
                            r.get("ci_low", {}).get(t.name, math.nan),
                            r.get("ci_high", {}).get(t.name, math.nan), role=role, kind=kind,
                            kept=kept, models=models, status=r["status"],
                            error=r.get("error")))
    return frame(rows), ref


def _spread(trials) -> dict:
    done = trials[trials["state"] == "complete"]["worst_kept"].dropna()
    if done.empty:
        return {}
    q = done.quantile([0.1, 0.5, 0.9])
    return {"n": int(len(done)), "mean": float(done.mean()), "sd": float(done.std(ddof=1))
            if len(done) > 1 else 0.0, "min": float(done.min()), "p10": float(q[0.1]),
            "median": float(q[0.5]), "p90": float(q[0.9]), "max": float(done.max())}


def _describe(config: dict) -> str:
    if "merge" in config:
        m = config["merge"]
        return f"{m['method']} merge" + (f" on {m['base_model']}" if m.get("base_model") else "")
    kind = next(k for k in ("vote", "router") if k in config["ensemble"])
    return f"{kind} ensemble"


def write_outputs(run, result, *, started: _dt.datetime, report: bool = True) -> None:
    """Write every output of a finished search into ``result.out``; fills ``result.results`` and
    ``result.files`` (see the module docstring). ``report=False``: the study, the references,
    ``best.yaml`` and ``search.json`` only (no test split read, no figures)."""
    import time

    from llmcombo.configuration import dump_yaml
    from llmcombo.tidy import save_results
    from llmcombo.plots import save_figure
    from llmcombo.search import plots as P
    from llmcombo.sysinfo import machine, versions

    t0 = time.perf_counter()
    out, doc = result.out, result.doc
    files = []
    save_results(result.trials, out / "study.csv")
    save_results(result.references, out / "references.csv")
    files += [out / "study.csv", out / "references.csv"]
    spread = _spread(result.trials)
    meta: dict[str, Any] = {
        "name": doc["name"], "date": started.strftime("%Y-%m-%d %H:%M UTC"),
        "spec": doc, "counts": result.counts, "timings_s": result.timings,
        "reference": run.reference, "specialists": run.specialists,
        "best_trial": result.best_trial, "spread_worst_kept": spread,
        "executor": run.executor.kind if run.executor is not None else None,
        "machine": machine(), "versions": versions(("mergekit", "torch", "transformers",
                                                     "optuna")),
    }
    if result.best is not None:
        best = S.best_trial(run.study)
        summary = (f"Found by llmcombo search {doc['name']!r}: trial {best.number} of "
                   f"{len(result.trials)}, sampler {doc['sampler']}, seed {doc['seed']}; "
                   f"validation: worst-case skill kept {S.info(best)['worst_kept']:.1%} ("
                   + ", ".join(f"{t} {a:.1%}" for t, a in S.info(best)["acc"].items()) + ").")
        for fname, config in (("best.yaml", result.best), ("best_merge.yaml", result.best_merge)):
            if config is None or (fname == "best_merge.yaml" and config == result.best):
                continue
            data = {"name": f"{doc['name']}-{fname[:-5].replace('_', '-')}",
                    "description": summary, **run.portable(config)}
            atomic_write(out / fname, dump_yaml(data))
            files.append(out / fname)
    if not report:  # the study and the choice only: no test split, no figures
        result.timings["report_s"] = round(time.perf_counter() - t0, 2)
        meta["timings_s"] = result.timings
        atomic_write(out / "search.json", json.dumps(meta, indent=2, default=str) + "\n")
        result.files = files + [out / "search.json"]
        return
    figures = {"history.png": P.plot_history(result.trials)}
    tasks = [t["name"] for t in doc["tasks"]]
    refs = result.references.copy()
    if result.best_trial is not None:
        bt = result.trials[result.trials["trial"] == result.best_trial].iloc[0]
        best_row = {"product": "best", "role": "best", "kind": bt["kind"],
                    "worst_kept": bt["worst_kept"], "latency_s": bt["latency_s"],
                    "models": bt["models"]}
        best_row.update({c: bt[c] for c in bt.index if str(c).startswith(("acc:", "kept:"))})
        import pandas as pd

        refs = pd.concat([refs, pd.DataFrame([best_row])], ignore_index=True)
    if len(tasks) >= 2:
        figures["pareto.png"] = P.plot_pareto(result.trials, refs, task_a=tasks[0],
                                              task_b=tasks[1])
    imp = S.importances(run.study, doc)
    save_results(imp, out / "importances.csv")
    files.append(out / "importances.csv")
    figures["importances.png"] = P.plot_importances(imp)
    figures["cost.png"] = P.plot_cost(result.trials, refs,
                                      cost="models" if doc["cost"] == "models" else "latency_s")
    for fname, fig in figures.items():
        save_figure(fig, out / fname)
        files.append(out / fname)
    test_ref = None
    if result.best is not None:
        run.log("the test split, read once: the best product beside the parents, presets and "
                "ensembles")
        result.results, test_ref = _test_frame(run, _test_products(run, result))
        save_results(result.results, out / "results.csv")
        files.append(out / "results.csv")
        meta["test_reference"] = test_ref
    result.timings["report_s"] = round(time.perf_counter() - t0, 2)
    meta["timings_s"] = result.timings
    atomic_write(out / "search.json", json.dumps(meta, indent=2, default=str) + "\n")
    files.append(out / "search.json")
    atomic_write(out / "report.md", _report_md(run, result, meta, list(figures)))
    files.append(out / "report.md")
    result.files = files


def _report_md(run, result, meta, figures) -> str:
    doc, c = result.doc, result.counts
    m = meta["machine"]
    trials = result.trials
    n_all = int((trials["state"] != "infeasible").sum()) if not trials.empty else 0
    lines = [
        f"# llmcombo search: {doc['name']}",
        "",
        f"{meta['date']}. Parents: {', '.join(doc['refs'])}"
        + (f" (base {doc['base_ref']})" if doc.get("base_ref") else "") + ". Tasks: "
        + ", ".join(f"{t.name} ({len(t.validation)} validation / {len(t.test)} test prompts, "
                    f"{t.source})" for t in run.tasks) + ".",
        "",
        f"**{n_all} trials** ({c.get('complete', 0)} measured, {c.get('failed', 0)} failed, "
        f"{c.get('cached', 0)} answered from the cache; {c.get('infeasible', 0)} infeasible "
        "candidates were never run) in "
        f"**{result.timings.get('search_s', 0):.0f} s** of search "
        f"({doc['workers']} worker(s), {meta['executor']}; sampler {doc['sampler']}, seed "
        f"{doc['seed']}, objective {doc['objective']}"
        + (f" + {doc['cost']}" if doc['cost'] != "none" else "") + f") on {m['cpu']} "
        f"({m['cpu_count']} CPU cores visible).",
        "",
        "Every trial and every choice used only the **validation** split; the **test** split "
        "was read once, below, for the chosen product and the products it is compared with.",
        "",
    ]
    sp = meta.get("spread_worst_kept") or {}
    if sp:
        lines += [f"Spread of the worst-case skill kept over the {sp['n']} measured trials "
                  f"(validation): mean {sp['mean']:.1%} (sd {sp['sd']:.1%}), min {sp['min']:.1%}, "
                  f"10th percentile {sp['p10']:.1%}, median {sp['median']:.1%}, 90th percentile "
                  f"{sp['p90']:.1%}, max {sp['max']:.1%}.", ""]
    if result.best is not None:
        best = S.best_trial(run.study)
        lines += [f"## The best product: trial {best.number}, {_describe(result.best)}", "",
                  "Chosen on the validation split: worst-case skill kept "
                  f"{S.info(best)['worst_kept']:.1%} ("
                  + ", ".join(f"{t} {a:.1%}" for t, a in S.info(best)['acc'].items())
                  + "). `best.yaml`:", "", "```yaml",
                  (result.out / "best.yaml").read_text(encoding="utf-8").rstrip(), "```", ""]
    if result.results is not None:
        lines += ["## On the test split", "", results_table(result.results), "",
                  "*skill kept (min)*: the product's test accuracy on each task divided by the "
                  "best parent's on that task; the smaller one. *models*: models answering each "
                  "prompt.", ""]
        b = result.results[result.results["product"] == "best"]
        if not b.empty:
            lines += [f"The best product keeps **{b['kept'].min():.1%}** of each task's best "
                      "parent on the test split (worst case).", ""]
    names = {"history.png": "Optimisation history", "pareto.png": "Pareto front",
             "importances.png": "Parameter importances", "cost.png": "Accuracy vs cost"}
    for f in figures:
        lines += [f"## {names.get(f, f)}", "", f"![{names.get(f, f)}]({f})", ""]
    lines += ["## Timings (s)", "", "| step | seconds |", "|---|---:|"]
    lines += [f"| {k} | {v} |" for k, v in result.timings.items()]
    done = trials[trials["state"] == "complete"] if not trials.empty else trials
    if not done.empty:
        fresh = done[~done["cached"].astype(bool)]
        if not fresh.empty:
            lines += ["", f"Per measured trial (median): merge {fresh['merge_s'].median():.3f} s, "
                          f"evaluation {fresh['eval_s'].median():.3f} s, in the worker "
                          f"{fresh['worker_s'].median():.3f} s, sampling and bookkeeping "
                          f"{fresh['driver_s'].median():.3f} s."]
    lines += ["", "Files: study.csv (one row per trial), references.csv, results.csv (test), "
                  "importances.csv, best.yaml, search.json; the Optuna study is study.journal "
                  "(`llmcombo search SPEC --out DIR --resume` continues it).", ""]
    return "\n".join(lines)


__all__ = ["preset_configs", "results_rows", "results_table", "write_outputs"]
