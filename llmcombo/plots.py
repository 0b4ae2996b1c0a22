"""Figures of evaluation results (matplotlib, safe under the Agg backend).

Each ``plot_*`` function takes a tidy pandas frame and returns a :class:`matplotlib.figure.Figure`;
none calls ``show`` or touches pyplot's global state, so they work in notebooks, scripts and
tests alike (``fig.savefig(...)``, or let Jupyter display the returned figure). Each frame comes
from a function here or in :mod:`llmcombo.evaluate`:

=====================================  =====================================================
data                                   figure
=====================================  =====================================================
:func:`llmcombo.evaluate.evaluate`     :func:`plot_accuracy` -- parents vs combinations per task
:func:`interpolation_sweep`            :func:`plot_interpolation_sweep` -- accuracy along t
:func:`task_vector_norms`              :func:`plot_task_vector_norms` -- what fine-tuning changed
:func:`moe_routing_share`              :func:`plot_routing_share` -- which expert the gates pick
:func:`vote_scaling`                   :func:`plot_vote_scaling` -- vote accuracy as N grows
=====================================  =====================================================
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

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
    and a dashed line separates them from the combinations."""
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
    ax.legend(title="task", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.grid(axis="y", alpha=0.3)
    return fig


# ---------------------------------------------------------------------------------------------
# interpolation sweep
# ---------------------------------------------------------------------------------------------


def sweep_config(model_a: str, model_b: str, t: float, method: str = "slerp",
                 dtype: str = "float32") -> dict:
    """The merge configuration of one sweep point: ``t = 0`` is model A, ``t = 1`` model B."""
    if method == "slerp":
        merge = {"method": "slerp", "base_model": model_a,
                 "models": [{"model": model_a}, {"model": model_b}],
                 "parameters": {"t": float(t)}, "dtype": dtype}
    elif method == "linear":
        merge = {"method": "linear",
                 "models": [{"model": model_a, "parameters": {"weight": round(1.0 - t, 10)}},
                            {"model": model_b, "parameters": {"weight": float(t)}}],
                 "dtype": dtype}
    else:
        raise UserError(f"an interpolation sweep uses slerp or linear, not {method!r}.")
    return {"name": f"{method}-t{t:.3f}", "merge": merge}


def interpolation_sweep(model_a: str, model_b: str, *, method: str = "slerp", k: int = 5,
                        tasks: Sequence[str] = ("domotica", "tiempo"), limit: int | None = None,
                        cache_dir: str | os.PathLike, batch_size: int = 64, progress: Any = None,
                        ts: Sequence[float] | None = None):
    """Accuracy on each task along ``t = 0, 1/(k-1), ..., 1`` between ``model_a`` and ``model_b``.
    Each point is a merge run with :func:`llmcombo.run.run` and cached in ``cache_dir`` by its
    configuration hash (a second sweep reuses them). Rows: the tidy columns plus ``t`` and
    ``method``; ``product`` is ``METHOD t=T``."""
    import pandas as pd

    from llmcombo import evaluate as ev

    if ts is None:
        if k < 2:
            raise UserError("an interpolation sweep needs at least 2 points (k >= 2).")
        ts = [i / (k - 1) for i in range(k)]
    rows = []
    for t in ts:
        folder = ev.build_cached(sweep_config(model_a, model_b, t, method), cache_dir,
                                 name=f"sweep-{method}-t{t:.3f}")
        for task in tasks:
            ds = ev.dataset(task, limit=limit)
            answers = ev.answer_examples(str(folder), ds.examples, batch_size=batch_size,
                                         progress=progress, desc=f"{method} t={t:.2f} {task}")
            r = ev.accuracy_row(f"{method} t={t:.2f}", ds.name, answers,
                                [e.expected for e in ds.examples])
            rows.append({**r, "t": float(t), "method": method})
    return pd.DataFrame(rows)


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
    ax.legend(title="task")
    ax.grid(alpha=0.3)
    return fig


# ---------------------------------------------------------------------------------------------
# task vectors
# ---------------------------------------------------------------------------------------------

_LAYER = re.compile(r"(?:^|\.)layers\.(\d+)\.(.+)$")
KIND_ORDER = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj",
              "input_layernorm", "post_attention_layernorm"]


def _kind(rest: str) -> str:
    parts = [p for p in rest.split(".") if p not in ("weight", "bias", "self_attn", "mlp")]
    return ".".join(parts) or rest


def _read_tensors(folder: str | os.PathLike) -> dict:
    from safetensors.torch import load_file

    from llmcombo import modelref

    path = Path(modelref.resolve(str(folder)))
    files = sorted(path.glob("*.safetensors")) if path.is_dir() else []
    if not files:
        raise UserError(f"no .safetensors weights in {path}",
                        hint="Task vectors are read from local safetensors model folders.")
    out = {}
    for f in files:
        out.update(load_file(str(f)))
    return out


def task_vector_norms(base: str | os.PathLike, models: Mapping[str, str | os.PathLike]):
    """Per model, layer and tensor kind: ``norm`` = ||theta_model - theta_base|| (Frobenius) and
    ``relative`` = norm / ||theta_base||, read with safetensors. Tensors outside the decoder
    layers (embeddings, final norm, lm_head) get ``layer = -1`` and their own kind."""
    import pandas as pd
    import torch

    base_t = _read_tensors(base)
    rows = []
    for name, folder in models.items():
        tensors = _read_tensors(folder)
        acc: dict[tuple[int, str], list[float]] = {}
        for key, w in tensors.items():
            if key not in base_t:
                continue
            b = base_t[key].to(torch.float64)
            if b.shape != w.shape:
                raise UserError(f"{name}: {key} has shape {tuple(w.shape)}, the base "
                                f"{tuple(b.shape)}; a task vector needs the same architecture.")
            m = _LAYER.search(key)
            layer, kind = (int(m.group(1)), _kind(m.group(2))) if m else \
                (-1, key.removeprefix("model.").removesuffix(".weight"))
            diff = float(torch.sum((w.to(torch.float64) - b) ** 2))
            ref = float(torch.sum(b ** 2))
            a = acc.setdefault((layer, kind), [0.0, 0.0])
            a[0] += diff
            a[1] += ref
        for (layer, kind), (d2, b2) in sorted(acc.items()):
            rows.append({"model": name, "layer": layer, "kind": kind, "norm": math.sqrt(d2),
                         "relative": math.sqrt(d2) / math.sqrt(b2) if b2 > 0 else math.nan})
    return pd.DataFrame(rows, columns=["model", "layer", "kind", "norm", "relative"])


def plot_task_vector_norms(df, *, value: str = "relative", base_label: str = "base",
                           title: str = "What fine-tuning changed: task-vector norms per layer"):
    """One heatmap per model: decoder layers (rows) x tensor kinds (columns), coloured by
    ``value`` (``relative``: ||ft - base|| / ||base||, or ``norm``). One shared colour scale."""
    _need(df, ["model", "layer", "kind", value], "plot_task_vector_norms")
    import numpy as np

    d = df[df["layer"] >= 0]
    if d.empty:
        raise UserError("plot_task_vector_norms: no decoder-layer tensors in the frame.")
    kinds = [k for k in KIND_ORDER if k in set(d["kind"])]
    kinds += sorted(set(d["kind"]) - set(kinds))
    layers = sorted(set(int(x) for x in d["layer"]))
    models = list(dict.fromkeys(d["model"]))
    vmax = float(d[value].max()) or 1.0
    fig, axes = _figure(1, len(models), size=(1.2 + 4.3 * len(models), 0.5 * len(layers) + 2.6))
    im = None
    for ax, name in zip(axes[0], models):
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
    label = "||ft - base|| / ||base||" if value == "relative" else "||ft - base||"
    fig.colorbar(im, ax=list(axes[0]), label=label)
    fig.suptitle(title)
    return fig


# ---------------------------------------------------------------------------------------------
# MoE routing
# ---------------------------------------------------------------------------------------------


def _gate_modules(model) -> list[tuple[int, Any]]:
    """``(layer, router module)`` for every sparse MoE block of a Mixtral-style model."""
    gates = []
    for name, module in model.named_modules():
        m = re.search(r"layers\.(\d+)\.(?:block_sparse_moe|mlp)\.gate$", name)
        if m:
            gates.append((int(m.group(1)), module))
    return sorted(gates, key=lambda x: x[0])


def moe_routing_share(model: Any, prompt_sets: Mapping[str, Sequence[str]], *,
                      template: str | None = "zoo", batch_size: int = 32):
    """Share of (real, non-padding) tokens routed to each expert, per layer and prompt set, in a
    Mixtral-style MoE (hooks on the router/gate of every layer; top-k = the model's
    ``num_experts_per_tok``). ``model`` is a folder / ``zoo:``-style reference or a
    ``(model, tokenizer)`` pair. ``template="zoo"`` formats prompts as the zoo tasks do.
    Rows: ``prompt_set, layer, expert, tokens, share``."""
    import pandas as pd
    import torch

    from llmcombo import evaluate as ev
    from llmcombo.tasks import format_prompt

    lm, tok = ev._model_and_tokenizer(model)
    gates = _gate_modules(lm)
    if not gates:
        raise UserError("this model has no mixture-of-experts gates (router modules) to read.",
                        hint="Routing shares need a Mixtral-style MoE, e.g. the output of "
                             "llmcombo merge on a moe: configuration.")
    n_experts = int(getattr(lm.config, "num_local_experts", 0) or
                    getattr(lm.config, "num_experts", 0))
    top_k = int(getattr(lm.config, "num_experts_per_tok", 1) or 1)
    captured: dict[int, torch.Tensor] = {}

    def hook(layer):
        def fn(module, inputs, output):
            logits = output[0] if isinstance(output, tuple) else output
            captured[layer] = logits.detach().float().reshape(-1, logits.shape[-1])
        return fn

    handles = [mod.register_forward_hook(hook(layer)) for layer, mod in gates]
    rows = []
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    try:
        with torch.inference_mode():
            for set_name, prompts in prompt_sets.items():
                counts = torch.zeros((len(gates), n_experts), dtype=torch.float64)
                texts = [format_prompt(p) if template == "zoo" else
                         (template.replace("{input}", p) if template else p) for p in prompts]
                for start in range(0, len(texts), batch_size):
                    ids_list = tok(texts[start: start + batch_size])["input_ids"]
                    width = max(len(x) for x in ids_list)
                    ids = torch.full((len(ids_list), width), pad, dtype=torch.long)
                    mask = torch.zeros((len(ids_list), width), dtype=torch.long)
                    for i, seq in enumerate(ids_list):  # right padding
                        ids[i, : len(seq)] = torch.tensor(seq)
                        mask[i, : len(seq)] = 1
                    captured.clear()
                    lm(input_ids=ids.to(lm.device), attention_mask=mask.to(lm.device))
                    real = mask.reshape(-1).bool()
                    for li, (layer, _) in enumerate(gates):
                        logits = captured[layer].cpu()
                        if logits.shape[0] != real.shape[0]:
                            raise RuntimeError(f"router of layer {layer} saw {logits.shape[0]} "
                                               f"tokens, expected {real.shape[0]}")
                        chosen = torch.topk(logits[real], top_k, dim=-1).indices.reshape(-1)
                        counts[li] += torch.bincount(chosen, minlength=n_experts).double()
                for li, (layer, _) in enumerate(gates):
                    total = float(counts[li].sum())
                    for e in range(n_experts):
                        rows.append({"prompt_set": set_name, "layer": layer, "expert": e,
                                     "tokens": int(counts[li, e]),
                                     "share": float(counts[li, e]) / total if total else math.nan})
    finally:
        for h in handles:
            h.remove()
    return pd.DataFrame(rows, columns=["prompt_set", "layer", "expert", "tokens", "share"])


def plot_routing_share(df, *, expert_names: Mapping[int, str] | Sequence[str] | None = None,
                       title: str = "MoE routing: share of tokens per expert"):
    """One panel per prompt set: stacked bars per layer, one colour per expert."""
    _need(df, ["prompt_set", "layer", "expert", "share"], "plot_routing_share")
    import numpy as np

    sets = list(dict.fromkeys(df["prompt_set"]))
    experts = sorted(set(int(e) for e in df["expert"]))
    layers = sorted(set(int(x) for x in df["layer"]))
    names = dict(enumerate(expert_names)) if isinstance(expert_names, (list, tuple)) else \
        dict(expert_names or {})
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


def vote_config(members: Sequence[str], samples: int, *, temperature: float = 1.0,
                seed: int = 0, tie_break: str = "likelihood") -> dict:
    """An ensemble configuration: every member answers ``samples`` times; majority wins."""
    vote: dict[str, Any] = {"members": [{"model": m} for m in members], "samples": int(samples),
                            "decide": "majority", "tie_break": tie_break}
    if samples > 1 or temperature > 0:
        vote["sampling"] = {"temperature": float(temperature), "seed": int(seed)}
    return {"ensemble": {"vote": vote}}


def vote_scaling(members: Sequence[str], samples: Sequence[int] = (1, 2, 3, 5), *,
                 tasks: Sequence[str] = ("domotica", "tiempo"), limit: int | None = None,
                 temperature: float = 1.0, seed: int = 0, tie_break: str = "likelihood",
                 batch_size: int = 64, progress: Any = None):
    """Accuracy of a vote as the number of answers grows: for each ``s`` in ``samples`` every
    member answers ``s`` times (sampled at ``temperature``, seeded). Rows: tidy columns plus
    ``samples`` and ``N`` (answers per prompt = members x samples)."""
    import pandas as pd

    from llmcombo import evaluate as ev
    from llmcombo.ensemble import load_product

    rows = []
    for s in samples:
        product = load_product(vote_config(members, s, temperature=temperature, seed=seed,
                                           tie_break=tie_break))
        n = len(members) * int(s)
        for task in tasks:
            ds = ev.dataset(task, limit=limit)
            answers = ev.answer_examples(product, ds.examples, batch_size=batch_size,
                                         progress=progress, desc=f"vote N={n} {task}")
            r = ev.accuracy_row(f"vote N={n}", ds.name, answers, [e.expected for e in ds.examples])
            rows.append({**r, "samples": int(s), "N": n})
    return pd.DataFrame(rows)


def plot_vote_scaling(df, *, title: str = "Vote accuracy as the number of answers N grows"):
    """One line per task: accuracy against N (answers per prompt), 95 % interval bars."""
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
    ax.legend(title="task")
    ax.grid(alpha=0.3)
    return fig


def save_figure(fig, path: str | os.PathLike, dpi: int = 110) -> Path:
    """Save a figure as PNG atomically (temporary file in the same folder, then rename)."""
    import tempfile

    p = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".png", dir=p.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=dpi, format="png")
        os.replace(tmp, p)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return p


__all__ = [
    "interpolation_sweep", "moe_routing_share", "plot_accuracy", "plot_interpolation_sweep",
    "plot_routing_share", "plot_task_vector_norms", "plot_vote_scaling", "save_figure",
    "sweep_config", "task_vector_norms", "vote_config", "vote_scaling",
]
