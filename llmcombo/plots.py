"""Figures of results (matplotlib, safe under the Agg backend): tidy frames in, figures out.

Each ``plot_*`` function takes a tidy pandas frame and returns a :class:`matplotlib.figure.Figure`;
none calls ``show``, touches pyplot's global state or runs a model, so they work in notebooks,
scripts and tests alike. The frames come from:

==================================================  ==================================================
data                                                figure
==================================================  ==================================================
:func:`llmcombo.evaluate.evaluate`                  :func:`plot_accuracy` -- parents vs combinations
:func:`llmcombo.zoo.experiments.interpolation_sweep` :func:`plot_interpolation_sweep` -- accuracy along t
:func:`llmcombo.analysis.task_vector_norms`         :func:`plot_task_vector_norms` -- what fine-tuning changed
:func:`llmcombo.analysis.moe_routing_share`         :func:`plot_routing_share` -- which expert the gates pick
:func:`llmcombo.zoo.experiments.vote_scaling`       :func:`plot_vote_scaling` -- vote accuracy as N grows
==================================================  ==================================================
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence

from llmcombo.errors import UserError

TASK_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"]


def _figure(nrows: int = 1, ncols: int = 1, size=(7.0, 4.0)):
    """A figure with axes, independent of pyplot (no global state, no GUI backend)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def _need(df, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise UserError(f"{what}: the frame has no column(s) {', '.join(missing)}.")
    if df.empty:
        raise UserError(f"{what}: the frame is empty, nothing to plot.")


def _yerr(values, lows, highs):
    import numpy as np

    v, lo, hi = (np.asarray(x, dtype=float) for x in (values, lows, highs))
    lo = np.where(np.isnan(lo), v, lo)
    hi = np.where(np.isnan(hi), v, hi)
    return np.vstack([np.clip(v - lo, 0, None), np.clip(hi - v, 0, None)])


# ---------------------------------------------------------------------------------------------
# accuracy: parents vs combinations
# ---------------------------------------------------------------------------------------------


def plot_accuracy(df, *, products: Sequence[str] | None = None, tasks: Sequence[str] | None = None,
                  metric: str = "accuracy", parents: Sequence[str] = (),
                  title: str = "Task accuracy: parents vs combinations"):
    """Grouped bars: one group per product (in ``products`` order, default: order of appearance),
    one bar per task, 95 % interval as error bars. Products named in ``parents`` get hatched bars
    and a dashed line separates them from the combinations; a second legend says so (and what the
    error bars are)."""
    _need(df, ["product", "task", "metric", "value", "ci_low", "ci_high"], "plot_accuracy")
    d = df[df["metric"] == metric]
    if d.empty:
        raise UserError(f"plot_accuracy: no {metric!r} rows in the frame.")
    products = list(products) if products is not None else list(dict.fromkeys(d["product"]))
    tasks = list(tasks) if tasks is not None else list(dict.fromkeys(d["task"]))
    fig, axes = _figure(size=(max(6.0, 0.75 * len(products) * max(1, len(tasks)) / 2 + 3), 4.2))
    ax = axes[0, 0]
    width = 0.8 / max(1, len(tasks))
    for j, task in enumerate(tasks):
        idx, xs, vals, lows, highs = [], [], [], [], []
        for i, prod in enumerate(products):
            sel = d[(d["product"] == prod) & (d["task"] == task)]
            if sel.empty:
                continue
            r = sel.iloc[-1]
            idx.append(i)
            xs.append(i + (j - (len(tasks) - 1) / 2) * width)
            vals.append(r["value"])
            lows.append(r["ci_low"])
            highs.append(r["ci_high"])
        bars = ax.bar(xs, vals, width=width, label=task, color=TASK_COLORS[j % len(TASK_COLORS)],
                      yerr=_yerr(vals, lows, highs), capsize=2, error_kw={"elinewidth": 0.8})
        for i, bar in zip(idx, bars):
            if products[i] in parents:
                bar.set_hatch("//")
    n_par = sum(p in parents for p in products)
    if 0 < n_par < len(products):
        ax.axvline(n_par - 0.5, color="grey", linestyle="--", linewidth=0.8)
    ax.set_xticks(range(len(products)), products, rotation=30, ha="right")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel(f"{metric} (exact match)" if metric == "accuracy" else metric)
    ax.set_xlabel("product")
    ax.set_title(title)
    from matplotlib.artist import Artist
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    # one legend: the tasks' colours, then what the marks mean
    handles: list[Artist] = [Patch(facecolor=TASK_COLORS[j % len(TASK_COLORS)], label=task)
               for j, task in enumerate(tasks)]
    if n_par:
        handles.append(Patch(facecolor="white", edgecolor="black", hatch="//",
                             label="parent model"))
    if 0 < n_par < len(products):
        handles.append(Line2D([], [], color="grey", linestyle="--", linewidth=0.8,
                              label="parents | combinations"))
    handles.append(Line2D([], [], color="black", linewidth=0.8, marker="|", markersize=8,
                          linestyle="none", label="95 % interval"))
    ax.legend(handles=handles, title="task", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.grid(axis="y", alpha=0.3)
    return fig


# ---------------------------------------------------------------------------------------------
# interpolation sweep
# ---------------------------------------------------------------------------------------------


def plot_interpolation_sweep(df, *, title: str | None = None, label_a: str = "A",
                             label_b: str = "B"):
    """One line per task: accuracy against the interpolation weight ``t``, 95 % band."""
    _need(df, ["t", "task", "value", "ci_low", "ci_high"], "plot_interpolation_sweep")
    fig, axes = _figure(size=(6.4, 4.0))
    ax = axes[0, 0]
    for j, (task, g) in enumerate(df.groupby("task", sort=False)):
        g = g.sort_values("t")
        color = TASK_COLORS[j % len(TASK_COLORS)]
        ax.plot(g["t"], g["value"], marker="o", color=color, label=task)
        ax.fill_between(g["t"], g["ci_low"], g["ci_high"], color=color, alpha=0.15, linewidth=0)
    method = str(df["method"].iloc[0]) if "method" in df.columns else "interpolation"
    ax.set_xlabel(f"interpolation weight t (0 = {label_a}, 1 = {label_b})")
    ax.set_ylabel("accuracy (exact match)")
    ax.set_ylim(0, 1.05)
    ax.set_xlim(-0.02, 1.02)
    ax.set_title(title or f"{method} sweep between {label_a} and {label_b}")
    if "n" in df.columns and df["n"].notna().any():
        ns = sorted({int(x) for x in df["n"].dropna()})
        said = f"{ns[0]}" if len(ns) == 1 else f"{ns[0]} to {ns[-1]}"
        ax.annotate(f"{said} held-out prompts per task and point", xy=(0.5, 0.01),
                    xycoords="axes fraction", ha="center", va="bottom", fontsize="small",
                    color="dimgrey")
    ax.legend(title="task")
    ax.grid(alpha=0.3)
    return fig


# ---------------------------------------------------------------------------------------------
# task vectors
# ---------------------------------------------------------------------------------------------

KIND_ORDER = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj",
              "input_layernorm", "post_attention_layernorm"]


OUTSIDE_ORDER = ["embed_tokens", "norm", "lm_head"]
OUTSIDE_LABELS = {"embed_tokens": "embeddings", "norm": "final norm", "lm_head": "output head"}


def plot_task_vector_norms(df, *, value: str = "relative", base_label: str = "base",
                           title: str = "What fine-tuning changed: task-vector norms per layer"):
    """One heatmap per model: decoder layers (rows) x tensor kinds (columns), coloured by
    ``value`` (``relative``: ||ft - base|| / ||base||, or ``norm``), and under it a strip with the
    tensors outside the layers (embeddings, final norm, output head: rows with ``layer = -1``),
    each cell labelled with its value. One shared colour scale."""
    _need(df, ["model", "layer", "kind", value], "plot_task_vector_norms")
    import numpy as np

    d = df[df["layer"] >= 0]
    if d.empty:
        raise UserError("plot_task_vector_norms: no decoder-layer tensors in the frame.")
    outside = df[df["layer"] < 0]
    kinds = [k for k in KIND_ORDER if k in set(d["kind"])]
    kinds += sorted(set(d["kind"]) - set(kinds))
    layers = sorted(set(int(x) for x in d["layer"]))
    models = list(dict.fromkeys(d["model"]))
    okinds = [k for k in OUTSIDE_ORDER if k in set(outside["kind"])]
    okinds += sorted(set(outside["kind"]) - set(okinds))
    vmax = float(df[df["layer"] >= 0][value].max())
    if okinds:
        vmax = max(vmax, float(outside[value].max()))
    vmax = vmax or 1.0
    from matplotlib.figure import Figure

    rows = 2 if okinds else 1
    fig = Figure(figsize=(1.2 + 4.3 * len(models), 0.5 * len(layers) + 2.6 + (1.3 if okinds else 0)),
                 layout="constrained")
    grid_axes = fig.subplots(rows, len(models), squeeze=False,
                             gridspec_kw={"height_ratios": [max(2, len(layers)), 1][:rows]})
    im = None
    for ax, name in zip(grid_axes[0], models):
        g = d[d["model"] == name]
        grid = np.full((len(layers), len(kinds)), np.nan)
        for r in g.itertuples():
            grid[layers.index(int(r.layer)), kinds.index(r.kind)] = getattr(r, value)
        im = ax.imshow(grid, aspect="auto", cmap="viridis", vmin=0, vmax=vmax, origin="lower")
        ax.set_xticks(range(len(kinds)), kinds, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(len(layers)), [str(x) for x in layers])
        ax.set_xlabel("tensor kind")
        ax.set_ylabel("layer")
        ax.set_title(f"{name} - {base_label}")
    if okinds:
        for ax, name in zip(grid_axes[1], models):
            g = outside[outside["model"] == name]
            strip = np.full((1, len(okinds)), np.nan)
            for r in g.itertuples():
                strip[0, okinds.index(r.kind)] = getattr(r, value)
            ax.imshow(strip, aspect="auto", cmap="viridis", vmin=0, vmax=vmax)
            for j, v in enumerate(strip[0]):
                if not np.isnan(v):
                    ax.text(j, 0, f"{v:.2f}", ha="center", va="center", fontsize=8,
                            color="white" if v < 0.6 * vmax else "black")
            ax.set_xticks(range(len(okinds)), [OUTSIDE_LABELS.get(k, k) for k in okinds],
                          fontsize=8)
            ax.set_yticks([])
            ax.set_xlabel("outside the layers")
    label = "||ft - base|| / ||base||" if value == "relative" else "||ft - base||"
    assert im is not None  # d is not empty: at least one model drew its heatmap
    fig.colorbar(im, ax=list(grid_axes.ravel()), label=label)
    fig.suptitle(title)
    return fig


# ---------------------------------------------------------------------------------------------
# MoE routing
# ---------------------------------------------------------------------------------------------


def plot_routing_share(df, *, expert_names: Mapping[int, str] | Sequence[str] | None = None,
                       title: str = "MoE routing: share of tokens per expert"):
    """One panel per prompt set: stacked bars per layer, one colour per expert."""
    _need(df, ["prompt_set", "layer", "expert", "share"], "plot_routing_share")
    import numpy as np

    sets = list(dict.fromkeys(df["prompt_set"]))
    experts = sorted(set(int(e) for e in df["expert"]))
    layers = sorted(set(int(x) for x in df["layer"]))
    names: dict[int, str] = {}
    if isinstance(expert_names, Mapping):
        names = dict(expert_names)
    elif expert_names is not None:  # any sequence of names (a list, a numpy array...)
        names = dict(enumerate(expert_names))
    fig, axes = _figure(1, len(sets), size=(1.5 + 3.6 * len(sets), 3.8))
    for ax, s in zip(axes[0], sets):
        g = df[df["prompt_set"] == s]
        bottom = np.zeros(len(layers))
        for j, e in enumerate(experts):
            vals = np.array([float(g[(g["layer"] == layer) & (g["expert"] == e)]["share"].sum())
                             for layer in layers])
            ax.bar(layers, vals, bottom=bottom, color=TASK_COLORS[j % len(TASK_COLORS)],
                   label=names.get(e, f"expert {e}"))
            bottom += vals
        ax.set_xticks(layers, [str(x) for x in layers])
        ax.set_ylim(0, 1.0)
        ax.set_xlabel("layer")
        ax.set_ylabel("share of tokens")
        ax.set_title(f"{s} prompts")
    axes[0, -1].legend(title="expert", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.suptitle(title)
    return fig


# ---------------------------------------------------------------------------------------------
# vote scaling
# ---------------------------------------------------------------------------------------------


def plot_vote_scaling(df, *, title: str = "Vote accuracy as the number of answers N grows"):
    """One line per task: accuracy against N (answers per prompt), 95 % interval bars; the
    sampling temperature (a ``temperature`` column) and the number of prompts (``n``) are written
    under the title when the frame has them."""
    _need(df, ["N", "task", "value", "ci_low", "ci_high"], "plot_vote_scaling")
    fig, axes = _figure(size=(6.0, 4.0))
    ax = axes[0, 0]
    for j, (task, g) in enumerate(df.groupby("task", sort=False)):
        g = g.sort_values("N")
        ax.errorbar(g["N"], g["value"], yerr=_yerr(g["value"], g["ci_low"], g["ci_high"]),
                    marker="o", capsize=3, color=TASK_COLORS[j % len(TASK_COLORS)], label=task)
    ax.set_xticks(sorted(set(int(n) for n in df["N"])))
    ax.set_xlabel("answers per prompt N (members x samples)")
    ax.set_ylabel("accuracy (exact match)")
    ax.set_ylim(0, 1.05)
    ax.set_title(title)
    notes = []
    if "temperature" in df.columns and df["temperature"].notna().any():
        notes.append(f"sampled at temperature {float(df['temperature'].dropna().iloc[0]):g}")
    if "n" in df.columns and df["n"].notna().any():
        notes.append(f"{int(df['n'].max())} prompts per task")
    if notes:
        ax.annotate(", ".join(notes), xy=(0.5, 0.01), xycoords="axes fraction", ha="center",
                    va="bottom", fontsize="small", color="dimgrey")
    ax.legend(title="task")
    ax.grid(alpha=0.3)
    return fig


def save_figure(fig, path: str | os.PathLike, dpi: int = 110) -> Path:
    """Save a figure as PNG atomically (never a half-written file)."""
    import io

    from llmcombo.fsutil import atomic_write

    buf = io.BytesIO()
    fig.savefig(buf, dpi=dpi, format="png")
    return atomic_write(path, buf.getvalue())


__all__ = ["plot_accuracy", "plot_interpolation_sweep", "plot_routing_share",
           "plot_task_vector_norms", "plot_vote_scaling", "save_figure"]
