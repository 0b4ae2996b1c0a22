"""Every plot returns a Figure with the expected axes, series and labels; the data functions behind
them (task-vector norms, MoE routing shares) agree with hand computations on tiny inputs."""

from __future__ import annotations

import collections
import math

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.container import BarContainer  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from llmcombo import analysis, plots  # noqa: E402
from llmcombo import evaluate as ev  # noqa: E402
from llmcombo.errors import UserError  # noqa: E402
from llmcombo.zoo import experiments  # noqa: E402


def _acc_frame():
    rows = []
    values = {"base": (0.1, 0.05), "domotica": (0.9, 0.1), "tiempo": (0.2, 0.95),
              "ties": (0.6, 0.7), "router": (0.88, 0.93)}
    for prod, (a, b) in values.items():
        for task, v in (("domotica", a), ("tiempo", b)):
            lo, hi = ev.wilson_interval(round(v * 100), 100)
            rows.append(ev.row(prod, task, "accuracy", v, 100, lo, hi))
    rows.append(ev.row("ties", "domotica", "perplexity", 3.0, 100))  # other metrics are ignored
    return ev.frame(rows)


class CharTokenizer:
    """a -> 1, b -> 2, c -> 3, with bos 0 in front; pad id 9."""

    pad_token_id = 9

    def __call__(self, texts, add_special_tokens=True):
        return {"input_ids": [([0] if add_special_tokens else []) + [" abc".index(ch) for ch in t]
                              for t in texts]}


def _legend_labels(ax):
    return [t.get_text() for t in ax.get_legend().get_texts()]


def test_plot_accuracy_grouped_bars_with_error_bars():
    df = _acc_frame()
    fig = plots.plot_accuracy(df, parents=["base", "domotica", "tiempo"])
    assert isinstance(fig, Figure)
    (ax,) = fig.axes
    assert ax.get_title() == "Task accuracy: parents vs combinations"
    assert ax.get_ylabel() == "accuracy (exact match)"
    assert ax.get_xlabel() == "product"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["base", "domotica", "tiempo", "ties",
                                                             "router"]
    containers = [c for c in ax.containers if isinstance(c, BarContainer)]
    assert len(containers) == 2  # one series per task
    assert [len(c.patches) for c in containers] == [5, 5]
    assert [p.get_height() for p in containers[1].patches] == [0.05, 0.1, 0.95, 0.7, 0.93]
    # the legend gives the tasks' colours, then what the hatching, the dashed separator and the
    # error bars mean
    assert _legend_labels(ax) == ["domotica", "tiempo", "parent model", "parents | combinations",
                                  "95 % interval"]
    swatches = ax.get_legend().legend_handles
    assert [bool(h.get_hatch()) for h in swatches[:3]] == [False, False, True]
    assert [ln.get_linestyle() for ln in ax.lines if ln.get_linestyle() == "--"] == ["--"]
    # parents hatched, combinations not; error bars drawn for every bar
    assert [bool(p.get_hatch()) for p in containers[0].patches] == [True] * 3 + [False] * 2
    assert all(c.errorbar is not None for c in containers)
    segs = containers[0].errorbar.lines[2][0].get_segments()
    lo, hi = ev.wilson_interval(90, 100)
    assert segs[1][0][1] == pytest.approx(lo) and segs[1][1][1] == pytest.approx(hi)
    fig.savefig(__import__("io").BytesIO(), format="png")  # renders under Agg


def test_plot_accuracy_order_and_errors():
    fig = plots.plot_accuracy(_acc_frame(), products=["router", "ties"], tasks=["tiempo"])
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["router", "ties"]
    (bars,) = [c for c in ax.containers if isinstance(c, BarContainer)]
    assert [p.get_height() for p in bars.patches] == [0.93, 0.7]
    with pytest.raises(UserError, match="no column"):
        plots.plot_accuracy(pd.DataFrame({"x": [1]}))
    with pytest.raises(UserError, match="no 'bleu' rows"):
        plots.plot_accuracy(_acc_frame(), metric="bleu")


def test_plot_interpolation_sweep_two_curves():
    rows = []
    for t, a, b in ((0.0, 0.9, 0.1), (0.5, 0.5, 0.6), (1.0, 0.1, 0.95)):
        for task, v in (("domotica", a), ("tiempo", b)):
            rows.append({**ev.row(f"slerp t={t}", task, "accuracy", v, 50, v - 0.1, v + 0.05),
                         "t": t, "method": "slerp"})
    fig = plots.plot_interpolation_sweep(pd.DataFrame(rows), label_a="domotica",
                                         label_b="tiempo")
    (ax,) = fig.axes
    assert ax.get_title() == "slerp sweep between domotica and tiempo"
    assert ax.get_xlabel() == "interpolation weight t (0 = domotica, 1 = tiempo)"
    assert ax.get_ylabel() == "accuracy (exact match)"
    assert len(ax.lines) == 2
    assert _legend_labels(ax) == ["domotica", "tiempo"]
    assert list(ax.lines[0].get_xdata()) == [0.0, 0.5, 1.0]
    assert list(ax.lines[1].get_ydata()) == [0.1, 0.6, 0.95]
    assert len(ax.collections) == 2  # one CI band per task
    # the number of prompts behind each point is written on the figure
    assert [t.get_text() for t in ax.texts] == ["50 held-out prompts per task and point"]


def test_sweep_config_endpoints():
    s = experiments.sweep_config("zoo:domotica", "zoo:tiempo", 0.25)
    assert s["merge"]["method"] == "slerp" and s["merge"]["parameters"] == {"t": 0.25}
    lin = experiments.sweep_config("a", "b", 0.25, method="linear")
    assert [m["parameters"]["weight"] for m in lin["merge"]["models"]] == [0.75, 0.25]
    with pytest.raises(UserError):
        experiments.sweep_config("a", "b", 0.5, method="ties")


def _write_model(folder, tensors):
    from safetensors.torch import save_file

    folder.mkdir()
    save_file(tensors, str(folder / "model.safetensors"))
    return folder


def test_task_vector_norms_hand_computed_and_heatmap(tmp_path):
    z = torch.zeros
    base = {"model.embed_tokens.weight": torch.ones(4, 2),
            "model.layers.0.self_attn.q_proj.weight": torch.ones(2, 2),
            "model.layers.0.mlp.up_proj.weight": torch.full((2, 2), 2.0),
            "model.layers.1.self_attn.q_proj.weight": torch.ones(2, 2),
            "model.layers.1.mlp.up_proj.weight": torch.full((2, 2), 2.0)}
    ft = {k: v.clone() for k, v in base.items()}
    ft["model.layers.0.self_attn.q_proj.weight"] += torch.tensor([[3.0, 0], [0, 4.0]])  # norm 5
    ft["model.layers.1.mlp.up_proj.weight"] += 1.0  # norm 2
    ft["model.embed_tokens.weight"] = z(4, 2)  # norm sqrt(8)
    _write_model(tmp_path / "base", base)
    _write_model(tmp_path / "ft", ft)
    df = analysis.task_vector_norms(tmp_path / "base", {"ft": tmp_path / "ft"})
    got = {(r.layer, r.kind): (r.norm, r.relative) for r in df.itertuples()}
    assert got[(0, "q_proj")] == pytest.approx((5.0, 5.0 / 2.0))
    assert got[(0, "up_proj")] == (0.0, 0.0)
    assert got[(1, "up_proj")] == pytest.approx((2.0, 2.0 / 4.0))
    assert got[(-1, "embed_tokens")] == pytest.approx((math.sqrt(8), 1.0))
    fig = plots.plot_task_vector_norms(pd.concat([df, df.assign(model="ft2")]))
    heat = [ax for ax in fig.axes if ax.get_title()]
    # the tensors outside the layers (here the embeddings) get a strip under each heatmap
    strips = [ax for ax in fig.axes if ax.get_xlabel() == "outside the layers"]
    assert len(strips) == 2
    assert [t.get_text() for t in strips[0].get_xticklabels()] == ["embeddings"]
    assert strips[0].images[0].get_array()[0, 0] == pytest.approx(1.0)
    assert [t.get_text() for t in strips[0].texts] == ["1.00"]
    assert [ax.get_title() for ax in heat] == ["ft - base", "ft2 - base"]
    ax = heat[0]
    assert ax.get_xlabel() == "tensor kind" and ax.get_ylabel() == "layer"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["q_proj", "up_proj"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["0", "1"]
    grid = ax.images[0].get_array()
    assert grid[0, 0] == pytest.approx(2.5) and grid[1, 1] == pytest.approx(0.5)
    assert len(fig.axes) == 5  # two heatmaps, two strips and the colour bar
    with pytest.raises(UserError, match="no .safetensors"):
        analysis.task_vector_norms(tmp_path, {"x": tmp_path / "base"})


def test_plot_routing_share_stacked_bars():
    rows = []
    for s, share0 in (("domotica", [0.9, 0.8]), ("tiempo", [0.2, 0.3])):
        for layer, p in enumerate(share0):
            rows += [{"prompt_set": s, "layer": layer, "expert": 0, "tokens": 1, "share": p},
                     {"prompt_set": s, "layer": layer, "expert": 1, "tokens": 1, "share": 1 - p}]
    fig = plots.plot_routing_share(pd.DataFrame(rows), expert_names=["domotica", "tiempo"])
    axes = fig.axes
    assert [ax.get_title() for ax in axes] == ["domotica prompts", "tiempo prompts"]
    assert all(ax.get_xlabel() == "layer" and ax.get_ylabel() == "share of tokens" for ax in axes)
    assert _legend_labels(axes[1]) == ["domotica", "tiempo"]
    bars = axes[1].containers
    assert len(bars) == 2 and [len(b.patches) for b in bars] == [2, 2]
    assert [p.get_height() for p in bars[0].patches] == pytest.approx([0.2, 0.3])
    assert [p.get_y() for p in bars[1].patches] == pytest.approx([0.2, 0.3])  # stacked


@pytest.mark.parametrize("names", [
    np.array(["domotica", "tiempo"]),  # e.g. a column's unique values
    collections.UserList(["domotica", "tiempo"]),  # any sequence, as the signature says
    {0: "domotica", 1: "tiempo"},
])
def test_plot_routing_share_expert_names_of_any_sequence_or_mapping(names):
    rows = [{"prompt_set": "domotica", "layer": 0, "expert": e, "tokens": 1, "share": 0.5}
            for e in (0, 1)]
    fig = plots.plot_routing_share(pd.DataFrame(rows), expert_names=names)
    assert _legend_labels(fig.axes[0]) == ["domotica", "tiempo"]


def test_moe_routing_share_counts_real_tokens_only():
    from transformers import MixtralConfig, MixtralForCausalLM

    torch.manual_seed(0)
    cfg = MixtralConfig(vocab_size=10, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                        num_attention_heads=2, num_key_value_heads=2, num_local_experts=3,
                        num_experts_per_tok=2, max_position_embeddings=32, pad_token_id=9)
    model = MixtralForCausalLM(cfg).eval()
    sets = {"short": ["ab", "c"], "long": ["abcabc"]}
    df = analysis.moe_routing_share((model, CharTokenizer()), sets, template=None)
    assert set(df["layer"]) == {0, 1} and set(df["expert"]) == {0, 1, 2}
    tokens = df.groupby(["prompt_set", "layer"])["tokens"].sum()
    # real tokens (bos + characters) x top-2; padding never counted
    assert tokens[("short", 0)] == (3 + 2) * 2 and tokens[("long", 1)] == 7 * 2
    shares = df.groupby(["prompt_set", "layer"])["share"].sum()
    assert shares.tolist() == pytest.approx([1.0] * 4)
    # a prompt alone gives the same counts as in a padded batch
    alone = analysis.moe_routing_share((model, CharTokenizer()), {"c": ["c"]}, template=None)
    both = analysis.moe_routing_share((model, CharTokenizer()), {"c": ["c", "abcabc"]}, template=None)
    long = analysis.moe_routing_share((model, CharTokenizer()), {"c": ["abcabc"]}, template=None)
    assert (both["tokens"].values == alone["tokens"].values + long["tokens"].values).all()


def test_moe_routing_share_needs_an_moe(tmp_path):
    with pytest.raises(UserError, match="no mixture-of-experts gates"):
        analysis.moe_routing_share((torch.nn.Linear(2, 2), CharTokenizer()), {"x": ["a"]})


def test_plot_vote_scaling_lines():
    rows = []
    for n, a, b in ((2, 0.5, 0.55), (4, 0.6, 0.62), (6, 0.7, 0.66)):
        for task, v in (("domotica", a), ("tiempo", b)):
            rows.append({**ev.row(f"vote N={n}", task, "accuracy", v, 40, v - 0.1, v + 0.1),
                         "N": n, "samples": n // 2})
    fig = plots.plot_vote_scaling(pd.DataFrame(rows))
    (ax,) = fig.axes
    assert ax.get_title() == "Vote accuracy as the number of answers N grows"
    assert ax.get_xlabel() == "answers per prompt N (members x samples)"
    assert ax.get_ylabel() == "accuracy (exact match)"
    assert _legend_labels(ax) == ["domotica", "tiempo"]
    assert len(ax.containers) == 2  # one errorbar series per task
    assert list(ax.containers[0].lines[0].get_xdata()) == [2, 4, 6]
    assert list(ax.containers[1].lines[0].get_ydata()) == [0.55, 0.62, 0.66]
    assert [t for t in ax.get_xticks()] == [2, 4, 6]


def test_plot_vote_scaling_from_one_noisy_sample():
    rows = []
    for n, v in ((1, 0.62), (3, 0.8), (5, 0.9)):
        for task in ("domotica", "tiempo"):
            rows.append({**ev.row(f"vote N={n}", task, "accuracy", v, 40, v - 0.1, v + 0.1),
                         "N": n, "samples": n, "temperature": 1.5})
    ax = plots.plot_vote_scaling(pd.DataFrame(rows)).axes[0]
    assert [t for t in ax.get_xticks()] == [1, 3, 5]
    assert [t.get_text() for t in ax.texts] == ["sampled at temperature 1.5, 40 prompts per task"]


def test_vote_scaling_each_task_by_its_own_specialist(monkeypatch):
    """With {task: model} every task is answered by its own model: N = samples, from 1."""
    made = []

    class Echo:
        def __init__(self, cfg):
            made.append(cfg)

        def answer_batch(self, prompts):
            from llmcombo.ensemble import Answer

            return [Answer("x") for _ in prompts]

    monkeypatch.setattr("llmcombo.ensemble.load_product",
                        lambda cfg: cfg if isinstance(cfg, Echo) else Echo(cfg))
    df = experiments.vote_scaling({"domotica": "zoo:domotica", "tiempo": "zoo:tiempo"}, (1, 3),
                                  limit=2, temperature=1.5)
    assert list(df["N"]) == [1, 1, 3, 3] and list(df["task"]) == ["domotica", "tiempo"] * 2
    assert set(df["temperature"]) == {1.5}
    voters = [[m["model"] for m in (c["members"] if "kind" in c else c["ensemble"]["vote"]["members"])]
              for c in made]
    assert voters == [["zoo:domotica"], ["zoo:tiempo"]] * 2
    assert [c.get("samples", c.get("ensemble", {}).get("vote", {}).get("samples")) for c in made] \
        == [1, 1, 3, 3]
    assert made[0]["sampling"]["temperature"] == 1.5  # N = 1 is one sampled answer, not greedy


def test_vote_config_is_a_valid_ensemble():
    from llmcombo.productline import feature_model

    cfg = experiments.vote_config(["zoo:domotica", "zoo:tiempo"], 2, temperature=0.7, seed=3)
    assert cfg["ensemble"]["vote"]["samples"] == 2
    errors = [i for i in feature_model().validate(cfg) if i.is_error]
    assert errors == []


def test_save_figure_atomic(tmp_path):
    fig = plots.plot_accuracy(_acc_frame())
    p = plots.save_figure(fig, tmp_path / "a.png")
    assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [f.name for f in tmp_path.iterdir()] == ["a.png"]


def test_no_plot_function_shows_or_registers_with_pyplot(monkeypatch):
    import matplotlib.pyplot as plt

    def no_show(*a, **k):
        raise AssertionError("a plot function called show()")

    monkeypatch.setattr(plt, "show", no_show)
    monkeypatch.setattr(Figure, "show", no_show)
    plt.close("all")
    sweep = pd.DataFrame([{**ev.row("s", task, "accuracy", 0.5, 10, 0.4, 0.6), "t": t}
                          for t in (0.0, 1.0) for task in ("a", "b")])
    votes = sweep.rename(columns={"t": "N"}).assign(N=lambda d: d["N"] * 2 + 2)
    tv = pd.DataFrame([{"model": "m", "layer": 0, "kind": "q_proj", "norm": 1.0,
                        "relative": 0.1}])
    routing = pd.DataFrame([{"prompt_set": "a", "layer": 0, "expert": 0, "share": 1.0}])
    figs = [plots.plot_accuracy(_acc_frame()), plots.plot_interpolation_sweep(sweep),
            plots.plot_task_vector_norms(tv), plots.plot_routing_share(routing),
            plots.plot_vote_scaling(votes)]
    assert all(isinstance(f, Figure) for f in figs)
    assert plt.get_fignums() == []  # nothing left open in pyplot's global state
