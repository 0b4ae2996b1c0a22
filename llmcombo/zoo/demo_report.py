"""The demo's results as text: the accuracy table (with the share of each specialist's skill a
product keeps), the sample answers frame, and ``report.md`` with its figures and small tables.

Pure functions of the frames :mod:`llmcombo.zoo.demo` measured; nothing here runs a model.
"""

from __future__ import annotations

import math

from llmcombo.zoo.demo_config import PARENTS, SCALING_TEMPERATURE, TABLE_ORDER

# ---------------------------------------------------------------------------------------------
# tables
# ---------------------------------------------------------------------------------------------


def _fmt_acc(r) -> str:
    return f"{r['value']:.1%} [{r['ci_low']:.0%}-{r['ci_high']:.0%}]"


def accuracy_pivot(results):
    """``product x task`` accuracy frame in the demo's product order."""
    acc = results[results["metric"] == "accuracy"]
    piv = acc.pivot_table(index="product", columns="task", values="value", sort=False)
    order = [p for p in TABLE_ORDER if p in piv.index] + [p for p in piv.index
                                                          if p not in TABLE_ORDER]
    return piv.loc[order]


def skills_kept(results) -> dict[str, dict[str, float]]:
    """For each product: its accuracy on each task as a fraction of the specialist's accuracy on
    that task (``domotica`` for the domotica task, ``tiempo`` for tiempo)."""
    piv = accuracy_pivot(results)
    out: dict[str, dict[str, float]] = {}
    for prod in piv.index:
        out[prod] = {}
        for task in piv.columns:
            ref = piv.loc[task, task] if task in piv.index else math.nan
            out[prod][task] = float(piv.loc[prod, task] / ref) if ref and ref > 0 else math.nan
    return out


def accuracy_table(results, markdown: bool = False) -> str:
    """The results table: accuracy [95 % CI] per task, and the share of each specialist's skill
    kept (the smaller of the two ratios)."""
    acc = results[results["metric"] == "accuracy"]
    piv = accuracy_pivot(results)
    kept = skills_kept(results)
    tasks = list(piv.columns)
    header = ["product"] + [f"{t} acc [95% CI]" for t in tasks] + ["n/task", "skill kept (min)"]
    lines = []
    for prod in piv.index:
        cells = [prod]
        n = ""
        for t in tasks:
            sel = acc[(acc["product"] == prod) & (acc["task"] == t)]
            cells.append(_fmt_acc(sel.iloc[-1]) if len(sel) else "-")
            n = str(int(sel.iloc[-1]["n"])) if len(sel) else n
        k = min(kept[prod].values()) if kept[prod] else math.nan
        cells += [n, "-" if prod in PARENTS or math.isnan(k) else f"{k:.0%}"]
        lines.append(cells)
    if markdown:
        out = ["| " + " | ".join(header) + " |",
               "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
        out += ["| " + " | ".join(c) + " |" for c in lines]
        return "\n".join(out)
    widths = [max(len(r[i]) for r in [header] + lines) for i in range(len(header))]
    fmt = lambda r: "  ".join(c.ljust(w) if i == 0 else c.rjust(w)  # noqa: E731
                              for i, (c, w) in enumerate(zip(r, widths)))
    return "\n".join([fmt(header), fmt(["-" * w for w in widths])] + [fmt(r) for r in lines])


# ---------------------------------------------------------------------------------------------
# report.md
# ---------------------------------------------------------------------------------------------


def samples_frame(datasets, shown, k: int):
    """The first ``k`` held-out prompts of each task with every product's answer (one column each)."""
    import pandas as pd

    rows = []
    names = list(dict.fromkeys(n for n, _ in shown))
    for task, ds in datasets.items():
        for i, e in enumerate(ds.examples[:k]):
            r = {"task": task, "prompt": e.prompt, "expected": e.expected}
            r.update({n: shown[(n, task)][i] for n in names})
            rows.append(r)
    return pd.DataFrame(rows)


def report_markdown(results, sweep, votes, routing, samples, meta, figures) -> str:
    """The text of ``report.md`` (the figures are the PNG files named in ``figures``)."""
    kept = skills_kept(results)
    m = meta["machine"]
    mode = "quick (CI sizes)" if meta["quick"] else "full"
    n = int(results[results["metric"] == "accuracy"]["n"].iloc[0])
    lines = [
        "# llmcombo demo",
        "",
        f"{meta['date']}, {mode} run: {meta['timings_s']['total']:.0f} s on {m['cpu']} "
        f"({m['cpu_count']} CPU cores visible, torch {m['torch']}, {m['platform']}).",
        "",
        "Two specialists fine-tuned from one base (the llmcombo zoo) are combined by weight-space "
        "merges, a mixture of experts and two runtime ensembles; every product, both parents and "
        f"the base answer {_first(meta, 'limit', n)} of each task (exact match of the "
        "normalised command; 95 % Wilson intervals).",
        "",
        "## Accuracy",
        "",
        accuracy_table(results, markdown=True),
        "",
        "*skill kept (min)*: the product's accuracy on each task divided by that task's "
        "specialist's accuracy, the smaller of the two.",
        "",
        "![accuracy](accuracy.png)",
        "",
        "## Which combinations keep both skills",
        "",
    ]
    for prod, k in kept.items():
        if prod in PARENTS:
            continue
        vals = ", ".join(f"{t} {v:.0%}" for t, v in k.items())
        verdict = ("keeps both (>= 90 % of each specialist)" if min(k.values()) >= 0.9 else
                   "loses part of a skill" if min(k.values()) >= 0.5 else "loses a skill")
        lines.append(f"- **{prod}**: {vals} of the specialists' accuracy: {verdict}.")
    if meta.get("search"):
        from llmcombo.zoo.experiments import search_section

        lines += ["", *search_section(meta["search"])]
    lines += [
        "",
        "## Slerp sweep between the specialists",
        "",
        f"Slerp merges of the two specialists at weight t (0 = domotica, 1 = tiempo), each run "
        f"and cached by configuration hash, on {_first(meta, 'sweep_limit')} of each task.",
        "",
        "![sweep](sweep.png)",
        "",
        _small_table(sweep, "t"),
        "",
        "## Perplexity of the single models",
        "",
        "Perplexity of each single model on the same held-out examples, written out in full "
        "(`[ORDEN] prompt [COMANDO] command`), every token after the first counted. The zoo "
        "specialists were fine-tuned with the loss on the command only, so this number mostly "
        "measures the prompt words and is no proxy for task accuracy.",
        "",
        _small_table(results[results["metric"] == "perplexity"], "product", fmt="{:.1f}",
                     order=[p for p in TABLE_ORDER if p in set(results["product"])]),
        "",
        "## What fine-tuning changed",
        "",
        "Relative norm of each specialist's task vector (fine-tuned minus base weights) per layer "
        "and tensor kind.",
        "",
        "![task vectors](task_vectors.png)",
        "",
        "## Mixture of experts: which expert the gates choose",
        "",
        "Share of the held-out prompts' tokens routed to each expert (expert 0 is the domotica "
        f"specialist, expert 1 tiempo), per layer, on {_first(meta, 'routing_limit')} of each "
        "task. mergekit's MoE builder takes only the MLPs from the experts; attention, "
        "embeddings, norms and the output head come from the MoE's base model (the configured "
        "`base_model`).",
        "",
        "![moe routing](moe_routing.png)",
        "",
        "## Vote accuracy as N grows",
        "",
        f"Each specialist answers its own task N times (temperature {SCALING_TEMPERATURE:g}, "
        "seed 0: one sample is often wrong); the most frequent command wins, ties go to the "
        f"higher mean log-probability; {_first(meta, 'vote_limit')} of each task.",
        "",
        "![vote scaling](vote_scaling.png)",
        "",
        _small_table(votes, "N"),
        "",
        "## Sample answers",
        "",
        _samples_markdown(samples),
        "",
        "## Timings (s)",
        "",
        "| step | seconds |",
        "|---|---:|",
    ]
    lines += [f"| {k} | {v:.1f} |" for k, v in meta["timings_s"].items()]
    lines += ["", "Files: results.csv (tidy: product, task, metric, value, n, ci_low, ci_high), "
                  "sweep.csv, vote_scaling.csv, task_vectors.csv, moe_routing.csv, samples.csv, "
                  "demo.json.", ""]
    return "\n".join(lines)


def _first(meta, key: str, n: int | None = None) -> str:
    """'the first 100 held-out prompts' / 'all held-out prompts' for a settings limit."""
    limit = meta["settings"].get(key)
    if limit is None:
        return f"all {n} held-out prompts" if n else "all held-out prompts"
    return f"the first {limit} held-out prompts"


def _small_table(df, key: str, fmt: str = "{:.1%}", order=None) -> str:
    piv = df.pivot_table(index=key, columns="task", values="value", sort=True)
    if order is not None:
        piv = piv.loc[[o for o in order if o in piv.index]]
    head = f"| {key} | " + " | ".join(piv.columns) + " |"
    sep = "|---:|" + "---:|" * len(piv.columns)
    label = lambda idx: f"{idx:g}" if isinstance(idx, (int, float)) else str(idx)  # noqa: E731
    body = [f"| {label(idx)} | " + " | ".join(fmt.format(v) for v in r) + " |"
            for idx, r in zip(piv.index, piv.values)]
    return "\n".join([head, sep] + body)


def _samples_markdown(samples) -> str:
    cols = list(samples.columns)
    esc = lambda s: str(s).replace("|", "\\|")  # noqa: E731
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    out += ["| " + " | ".join(esc(v) for v in r) + " |" for r in samples.itertuples(index=False)]
    return "\n".join(out)


__all__ = ["accuracy_pivot", "accuracy_table", "report_markdown", "samples_frame", "skills_kept"]
