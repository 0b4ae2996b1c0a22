"""Figures of a search: tidy frames in, matplotlib figures out (like :mod:`llmcombo.plots`: no
pyplot state, nothing run). The frames come from :func:`llmcombo.search.search`
(``result.trials``, ``result.references``) or are read back from ``study.csv`` /
``references.csv``.

* :func:`plot_history` -- the objective of every trial and the best so far;
* :func:`plot_pareto` -- task A vs task B accuracy of every trial, its Pareto front, with the
  parents, presets and ensembles on the same axes;
* :func:`plot_importances` -- which parameters mattered (Optuna's PED-ANOVA);
* :func:`plot_cost` -- accuracy against cost (models per answer, or seconds per answer).
"""

from __future__ import annotations

import math

from llmcombo.plots import TASK_COLORS, _figure, _need

REF_STYLE = {"parent": ("s", "#444444"), "preset": ("^", "#9467bd"),
             "ensemble": ("D", "#d62728"), "best": ("*", "#2ca02c")}


def _measured(trials):
    return trials[trials["state"] == "complete"]


def plot_history(trials, *, value: str = "worst_kept", title: str | None = None):
    """One dot per measured trial (colour: merge or ensemble), the best value so far as a
    line, failed trials as crosses at the bottom."""
    _need(trials, ["trial", "state", value], "plot_history")
    fig, axes = _figure(size=(7.0, 4.0))
    ax = axes[0, 0]
    done = _measured(trials).sort_values("trial")
    if not done.empty:
        merges = done[done["kind"] == "merge"]
        others = done[done["kind"] != "merge"]
        ax.scatter(merges["trial"], merges[value], s=14, color=TASK_COLORS[0], label="merge",
                   alpha=0.8)
        if not others.empty:
            ax.scatter(others["trial"], others[value], s=18, marker="D", color="#d62728",
                       label="ensemble", alpha=0.8)
        ax.step(done["trial"], done[value].cummax(), where="post", color="black", linewidth=1.2,
                label="best so far")
    failed = trials[trials["state"] == "fail"]
    if not failed.empty:
        ax.scatter(failed["trial"], [0.0] * len(failed), marker="x", color="grey", s=20,
                   label="failed")
    ax.set_xlabel("trial")
    ax.set_ylabel(value.replace("_", " ") + " (validation)")
    top = max(1.05, float(done[value].max()) * 1.05) if not done.empty else 1.05
    ax.set_ylim(0, top)
    ax.set_title(title or "Optimisation history")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return fig


def plot_pareto(trials, references=None, *, task_a: str, task_b: str,
                title: str | None = None):
    """Accuracy on ``task_a`` (x) against ``task_b`` (y), validation split: every measured
    trial, the Pareto front of the trials, and the reference products (parents, presets,
    ensembles; the chosen product as a star when ``references`` has a ``best`` row)."""
    from llmcombo.search.study import pareto_mask

    xa, xb = f"acc:{task_a}", f"acc:{task_b}"
    _need(trials, ["state", xa, xb], "plot_pareto")
    fig, axes = _figure(size=(6.4, 5.2))
    ax = axes[0, 0]
    done = _measured(trials).dropna(subset=[xa, xb])
    if not done.empty:
        merges = done[done["kind"] == "merge"]
        ax.scatter(merges[xa], merges[xb], s=14, alpha=0.55, color=TASK_COLORS[0],
                   label="trial: merge")
        ens = done[done["kind"] != "merge"]
        if not ens.empty:
            ax.scatter(ens[xa], ens[xb], s=16, alpha=0.55, marker="D", color="#ff9896",
                       label="trial: ensemble")
        pts = list(zip(done[xa], done[xb]))
        front = sorted(p for p, keep in zip(pts, pareto_mask(pts)) if keep)
        if front:
            ax.plot([p[0] for p in front], [p[1] for p in front], color="black", linewidth=1.2,
                    marker="o", markersize=3, label="Pareto front (trials)")
    if references is not None and not references.empty and xa in references:
        for role, (marker, color) in REF_STYLE.items():
            sel = references[(references["role"] == role)].dropna(subset=[xa, xb])
            if sel.empty:
                continue
            ax.scatter(sel[xa], sel[xb], marker=marker, s=140 if role == "best" else 60,
                       color=color, edgecolor="black", linewidth=0.6, zorder=5, label=role)
            for _i, r in sel.iterrows():
                ax.annotate(str(r["product"]).replace("parent ", "").replace("preset ", ""),
                            (r[xa], r[xb]), textcoords="offset points", xytext=(4, 4),
                            fontsize=7)
    ax.set_xlim(-0.02, 1.05)
    ax.set_ylim(-0.02, 1.05)
    ax.set_xlabel(f"accuracy on {task_a} (validation)")
    ax.set_ylabel(f"accuracy on {task_b} (validation)")
    ax.set_title(title or f"Pareto front: {task_a} vs {task_b}")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=7)
    return fig


def plot_importances(importances, *, top: int = 15,
                     title: str = "Parameter importance (PED-ANOVA, worst-case skill kept)"):
    """Horizontal bars of the ``top`` most important parameters (``param, importance``)."""
    fig, axes = _figure(size=(6.8, 0.32 * max(3, min(top, len(importances))) + 1.6))
    ax = axes[0, 0]
    if importances is None or importances.empty:
        ax.text(0.5, 0.5, "too few measured trials to estimate importances", ha="center",
                va="center", transform=ax.transAxes)
        ax.set_axis_off()
        ax.set_title(title)
        return fig
    _need(importances, ["param", "importance"], "plot_importances")
    d = importances.sort_values("importance", ascending=False).head(top).iloc[::-1]
    ax.barh(d["param"], d["importance"], color=TASK_COLORS[0])
    ax.set_xlabel("importance (sums to 1)")
    ax.set_title(title)
    ax.tick_params(axis="y", labelsize=8)
    ax.grid(axis="x", alpha=0.3)
    return fig


def plot_cost(trials, references=None, *, cost: str = "latency_s", value: str = "worst_kept",
              title: str | None = None):
    """``value`` (validation) against ``cost`` (``latency_s``: seconds per answer, or
    ``models``: models answering each prompt) for the trials and the reference products."""
    _need(trials, ["state", value], "plot_cost")
    fig, axes = _figure(size=(6.4, 4.2))
    ax = axes[0, 0]
    done = _measured(trials)
    if cost in done and not done.empty:
        d = done.dropna(subset=[cost, value])
        ax.scatter(d[cost], d[value], s=14, alpha=0.55, color=TASK_COLORS[0], label="trials")
    if references is not None and cost in references and not references.empty:
        for role, (marker, color) in REF_STYLE.items():
            sel = references[references["role"] == role].dropna(subset=[cost, value])
            if sel.empty:
                continue
            ax.scatter(sel[cost], sel[value], marker=marker, s=60, color=color, edgecolor="black",
                       linewidth=0.6, label=role, zorder=5)
            for _i, r in sel.iterrows():
                ax.annotate(str(r["product"]).replace("parent ", "").replace("preset ", ""),
                            (r[cost], r[value]), textcoords="offset points", xytext=(4, 4),
                            fontsize=7)
    label = {"latency_s": "seconds per answer (validation)",
             "models": "models answering each prompt"}.get(cost, cost)
    ax.set_xlabel(label)
    ax.set_ylabel(value.replace("_", " ") + " (validation)")
    if cost == "latency_s":
        ax.set_xscale("log")
    ys = list(done[value].dropna()) if value in done else []
    if references is not None and value in references:
        ys += list(references[value].dropna())
    ax.set_ylim(0, max([1.05] + [y * 1.05 for y in ys if math.isfinite(y)]))
    ax.set_title(title or "Accuracy vs cost")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=7)
    return fig


__all__ = ["plot_cost", "plot_history", "plot_importances", "plot_pareto"]
