"""`llmcombo demo --quick` end to end on the zoo: the files it writes and what is in them."""

from __future__ import annotations

import json
import math
import re

import pandas as pd
import pytest

from llmcombo import cli
from llmcombo import demo as D

pytestmark = pytest.mark.slow

FIGURES = {"accuracy.png", "sweep.png", "task_vectors.png", "moe_routing.png", "vote_scaling.png"}


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "out"
    captured = {}

    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = cli.main(["demo", "--quick", "--out", str(out)])
    captured["stdout"] = buf.getvalue()
    captured["code"] = code
    return out, captured


def test_quick_demo_results_have_every_product_and_both_tasks(demo_run):
    out, cap = demo_run
    assert cap["code"] == 0
    df = pd.read_csv(out / "results.csv")
    assert list(df.columns[:7]) == ["product", "task", "metric", "value", "n", "ci_low", "ci_high"]
    acc = df[df["metric"] == "accuracy"]
    assert sorted(acc["product"].unique()) == sorted(D.PRODUCTS)
    assert len(D.PRODUCTS) == 11
    assert set(acc.groupby("product")["task"].apply(frozenset)) == {frozenset(D.TASKS)}
    assert len(acc) == 22
    assert (acc["n"] == 40).all()
    assert acc["value"].between(0, 1).all()
    assert ((acc["ci_low"] <= acc["value"]) & (acc["value"] <= acc["ci_high"])).all()
    assert (acc["correct"] == (acc["value"] * acc["n"]).round()).all()
    # the specialists are specialists: each beats the other one on its own task
    v = acc.set_index(["product", "task"])["value"]
    assert v[("domotica", "domotica")] > v[("tiempo", "domotica")]
    assert v[("tiempo", "tiempo")] > v[("domotica", "tiempo")]
    # perplexity of every single model (not of the ensembles), finite and > 1
    ppl = df[df["metric"] == "perplexity"]
    assert sorted(ppl["product"].unique()) == sorted(set(D.PRODUCTS) - {"vote", "router"})
    assert ppl["value"].map(math.isfinite).all() and (ppl["value"] > 1).all()


def test_quick_demo_figures_and_report(demo_run):
    out, cap = demo_run
    for name in FIGURES:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    report = (out / "report.md").read_text(encoding="utf-8")
    referenced = set(re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report))
    assert referenced == FIGURES
    assert all((out / f).is_file() for f in referenced)
    table = [line for line in report.splitlines() if line.startswith("| ")]
    for prod in D.PRODUCTS:
        assert any(line.startswith(f"| {prod} |") for line in table), prod
    acc = pd.read_csv(out / "results.csv").query("metric == 'accuracy'")
    r = acc[(acc["product"] == "router") & (acc["task"] == "tiempo")].iloc[0]
    assert f"{r['value']:.1%}" in report  # the report shows the measured numbers
    # the printed table has every product
    for prod in D.PRODUCTS:
        assert re.search(rf"^{prod}\s", cap["stdout"], re.M), prod
    meta = json.loads((out / "demo.json").read_text())
    assert meta["quick"] is True and meta["timings_s"]["total"] > 0
    assert not list(out.glob(".staging-*"))


def test_quick_demo_side_frames(demo_run):
    out, _ = demo_run
    sweep = pd.read_csv(out / "sweep.csv")
    assert sorted(sweep["t"].unique()) == [0.0, 0.5, 1.0]
    assert set(sweep["task"]) == set(D.TASKS)
    votes = pd.read_csv(out / "vote_scaling.csv")
    assert sorted(votes["N"].unique()) == [2, 6]
    routing = pd.read_csv(out / "moe_routing.csv")
    sums = routing.groupby(["prompt_set", "layer"])["share"].sum()
    assert sums.tolist() == pytest.approx([1.0] * len(sums))
    tv = pd.read_csv(out / "task_vectors.csv")
    assert set(tv["model"]) == {"domotica", "tiempo"} and (tv["norm"] >= 0).all()
    assert (tv[tv["layer"] >= 0]["norm"] > 0).any()
    samples = pd.read_csv(out / "samples.csv", keep_default_na=False)
    assert {"task", "prompt", "expected", *D.PRODUCTS} <= set(samples.columns)


def test_failed_demo_leaves_previous_results_untouched(demo_run, monkeypatch, capsys):
    out, _ = demo_run
    before = {f.name: f.read_bytes() for f in out.iterdir() if f.is_file()}

    def broken(*a, **k):
        raise RuntimeError("simulated failure while building the ensembles")

    monkeypatch.setattr(D, "ensemble_configs", broken)
    code = cli.main(["demo", "--quick", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 1
    assert "the demo failed during 'products'" in err and "simulated failure" in err
    assert "nothing in" in err
    after = {f.name: f.read_bytes() for f in out.iterdir() if f.is_file()}
    assert after == before
    assert not list(out.glob(".staging-*"))
