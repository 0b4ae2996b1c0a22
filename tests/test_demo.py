"""`llmcombo demo --quick` end to end on the zoo: the files it writes and what is in them."""

from __future__ import annotations

import json
import math
import re

import pandas as pd
import pytest

from llmcombo import cli
from llmcombo.zoo import demo as D

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
    assert sorted(acc["product"].unique()) == sorted(D.PRODUCTS + (D.SEARCH,))
    assert len(D.PRODUCTS) == 11
    assert set(acc.groupby("product")["task"].apply(frozenset)) == {frozenset(D.TASKS)}
    assert len(acc) == 24
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
    assert sorted(ppl["product"].unique()) == sorted(set(D.PRODUCTS + (D.SEARCH,))
                                                     - {"vote", "router"})
    assert ppl["value"].map(math.isfinite).all() and (ppl["value"] > 1).all()


def test_quick_demo_figures_and_report(demo_run):
    import matplotlib.image as mpimg
    import numpy as np

    out, cap = demo_run
    for name in FIGURES:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        img = mpimg.imread(out / name)
        assert img.shape[0] >= 300 and img.shape[1] >= 500, (name, img.shape)
        assert float(np.std(img[..., :3])) > 0.05, f"{name} looks blank"
    report = (out / "report.md").read_text(encoding="utf-8")
    referenced = set(re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report))
    assert referenced == FIGURES
    assert all((out / f).is_file() for f in referenced)
    section = report.split("## Accuracy", 1)[1].split("\n## ", 1)[0]
    table = [line for line in section.splitlines() if line.startswith("| ")]
    assert len(table) == 2 + len(D.PRODUCTS)  # header + one row per product + the search's
    for prod in D.PRODUCTS + (D.SEARCH,):
        assert any(line.startswith(f"| {prod} |") for line in table), prod
    acc = pd.read_csv(out / "results.csv").query("metric == 'accuracy'")
    printed = {line.split()[0]: line for line in cap["stdout"].splitlines() if line.strip()}
    for r in acc.itertuples():
        # the report's and the printed tables show the measured numbers on the product's row
        cell = f"{r.value:.1%} [{r.ci_low:.0%}-{r.ci_high:.0%}]"
        (row,) = [line for line in table if line.startswith(f"| {r.product} |")]
        assert cell in row, (r.product, r.task, cell, row)
        assert cell in printed[r.product], (r.product, r.task)
    ppl_section = report.split("## Perplexity", 1)[1].split("\n## ", 1)[0]
    ppl = pd.read_csv(out / "results.csv").query("metric == 'perplexity'")
    for r in ppl.itertuples():
        (row,) = [line for line in ppl_section.splitlines() if line.startswith(f"| {r.product} |")]
        assert f"{r.value:.1f}" in row, (r.product, r.task)
    # the verdict of every combination is there (and nothing is claimed for the parents)
    for prod in set(D.PRODUCTS + (D.SEARCH,)) - set(D.PARENTS):
        assert re.search(rf"^- \*\*{prod}\*\*: .*(keeps both|loses)", report, re.M), prod
    # the search's best merge: chosen on validation, its configuration in the report
    meta_search = json.loads((out / "demo.json").read_text())["search"]
    assert meta_search["trials"] == D.Settings.make(True).search_trials
    assert "## The search" in report and f"method: {meta_search['best']['merge']['method']}" \
        in report
    meta = json.loads((out / "demo.json").read_text())
    assert meta["quick"] is True and meta["timings_s"]["total"] > 0
    assert meta["machine"]["cpu_count"] >= 1 and meta["machine"]["torch"]
    assert not list(out.glob(".staging-*"))


def test_quick_demo_models_are_cached_outside_version_control(demo_run):
    out, _ = demo_run
    models = out / "models"
    folders = [p for p in models.iterdir() if p.is_dir() and "search-study" not in p.name]
    built = sorted(p.name.rsplit("-", 1)[0] for p in folders)
    # the five merges, the search's best, the MoE and the three sweep points, each a model
    assert [b for b in built if not b.startswith("sweep")] == sorted(D.MERGES + ("moe", "search"))
    assert all((p / "config.json").is_file() for p in folders)
    (study,) = models.glob("search-study-*")  # the search's study: resumed by the next run
    assert (study / "study.journal").is_file() and (study / "study.csv").is_file()
    assert (models / ".gitignore").read_text().splitlines()[-1] == "*"
    # result files are readable by others, like any file the user writes (not 0600 temp files)
    assert all((out / f).stat().st_mode & 0o044 for f in FIGURES | {"results.csv", "report.md"})


def test_quick_demo_side_frames(demo_run):
    out, _ = demo_run
    sweep = pd.read_csv(out / "sweep.csv")
    assert sorted(sweep["t"].unique()) == [0.0, 0.5, 1.0]
    assert set(sweep["task"]) == set(D.TASKS)
    votes = pd.read_csv(out / "vote_scaling.csv")
    assert sorted(votes["N"].unique()) == [1, 3]  # each specialist on its own task: N from 1
    assert set(votes["temperature"]) == {D.SCALING_TEMPERATURE}
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


@pytest.mark.parametrize("make,message", [
    (lambda tmp: tmp.joinpath("afile").write_text("x") and tmp / "afile", "is a file"),
    (lambda tmp: tmp.joinpath("f2").write_text("x") and tmp / "f2" / "sub",
     "cannot write the demo folder"),
    (lambda tmp: "", "--out is empty"),
])
def test_bad_out_is_one_clear_line(tmp_path, capsys, make, message):
    out = make(tmp_path)
    code = cli.main(["demo", "--quick", "--out", str(out)])
    cap = capsys.readouterr()
    assert code == 1
    assert cap.err.startswith("error: --out") and message in cap.err
    assert "Traceback" not in cap.err and cap.out == ""
    assert len(cap.err.strip().splitlines()) == 1


def test_bad_thread_setting_is_a_user_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LLMCOMBO_DEMO_THREADS", "two")
    assert cli.main(["demo", "--quick", "--out", str(tmp_path / "o")]) == 1
    assert "LLMCOMBO_DEMO_THREADS" in capsys.readouterr().err
    monkeypatch.setenv("LLMCOMBO_DEMO_THREADS", "3")
    assert D.demo_threads() == 3
    monkeypatch.delenv("LLMCOMBO_DEMO_THREADS")
    assert D.demo_threads() == 1


def test_committed_demo_docs_agree_with_their_results():
    """docs/demo holds a real run; the README's demo table must be that run's numbers."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    docs = root / "docs" / "demo"
    df = pd.read_csv(docs / "results.csv")
    acc = df[df["metric"] == "accuracy"].set_index(["product", "task"])
    assert list(acc.index.get_level_values(0).unique()) == list(D.TABLE_ORDER)
    readme = (root / "README.md").read_text(encoding="utf-8")
    start = readme.index("## The demo:")
    snippet = readme[start:readme.index("\n## ", start + 1)]
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
            for line in snippet.splitlines() if line.startswith("| ") and "---" not in line}
    for prod in D.TABLE_ORDER:
        cells = rows[prod]
        for task, cell in zip(D.TASKS, cells[1:3]):
            r = acc.loc[(prod, task)]
            assert cell == f"{r['value']:.1%} [{r['ci_low']:.1%}, {r['ci_high']:.1%}]", (prod, task)
        assert cells[3] == str(int(acc.loc[(prod, D.TASKS[0]), "n"]))
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", snippet)
    assert images and all((root / i).is_file() for i in images)
    report = (docs / "report.md").read_text(encoding="utf-8")
    assert set(re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report)) == FIGURES
    assert all((docs / f).is_file() for f in FIGURES)
