"""Searches that build and measure real products on the zoo: in-memory merges equal mergekit's
merges on disk, a small search end to end (CLI, outputs, best.yaml runs), failing trials, a
search killed and resumed, and the same study on Ray as on the local pool."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from llmcombo.cli import main

pytestmark = pytest.mark.slow

PARENTS = ["zoo:domotica", "zoo:tiempo"]


def spec(**search):
    body = {"models": [{"model": m} for m in PARENTS], "base_model": "zoo:base",
            "tasks": [{"task": "domotica"}, {"task": "tiempo"}], "trials": 5,
            "evaluation": {"limit": 12, "test_limit": 12}}
    body.update(search)
    return {"name": "t", "search": body}


def _weights(folder: Path) -> dict:
    from safetensors.torch import load_file

    out = {}
    for f in sorted(folder.glob("*.safetensors")):
        out.update(load_file(str(f)))
    return out


@pytest.mark.parametrize("merge", [
    {"method": "ties", "base_model": "zoo:base",
     "models": [{"model": "zoo:domotica", "parameters": {
         "weight": [{"filter": "self_attn", "value": [0.2, 0.9]}, {"value": 0.7}],
         "density": 0.6}},
                {"model": "zoo:tiempo", "parameters": {"weight": 0.8, "density": [0.3, 0.9]}}]},
    {"method": "dare_ties", "base_model": "zoo:base",
     "models": [{"model": "zoo:domotica", "parameters": {"weight": 1.0, "density": 0.5}},
                {"model": "zoo:tiempo", "parameters": {"weight": 1.0, "density": 0.5}}]},
    {"method": "slerp", "base_model": "zoo:domotica",
     "models": [{"model": "zoo:domotica"}, {"model": "zoo:tiempo"}], "parameters": {"t": 0.35}},
], ids=["ties-gradient-filters", "dare_ties-seeded", "slerp"])
def test_in_memory_merges_equal_mergekits_merge_on_disk(merge, zoo, tmp_path):
    import torch

    from llmcombo.engine.inmemory import InMemoryTarget, NotInMemory
    from llmcombo.generate import merge_document
    from llmcombo.run import RunOptions, run
    from llmcombo.search.worker import Worker

    config = {"merge": {**merge, "dtype": "float32"}}
    run(config, tmp_path / "disk", options=RunOptions(device="cpu"), progress=False)
    on_disk = _weights(tmp_path / "disk")
    _kind, doc = merge_document(config, None, True)
    if merge["method"] == "dare_ties":  # random masks: the search merges it on disk
        with pytest.raises(NotInMemory, match="random"):
            InMemoryTarget.for_document(doc, RunOptions(device="cpu").merge_options())
        worker = Worker({"doc": {"device": "cpu", "evaluation": {
            "template": "[ORDEN] {input} [COMANDO]", "output": "command", "max_new_tokens": 8,
            "batch_size": 8}}, "tasks": {}})
        scratch: list = []
        _product, _s, in_memory = worker._product({"kind": "merge", "config": config}, scratch)
        assert in_memory is False
        assert all(torch.equal(t, _weights(Path(scratch[0]) / "model")[n])
                   for n, t in on_disk.items())
        shutil.rmtree(scratch[0])
        return
    target = InMemoryTarget.for_document(doc, RunOptions(device="cpu").merge_options())
    target.merge(doc)
    target.merge(doc)  # twice: a second merge into the same model gives the same weights
    mem = dict(target.model.named_parameters())
    assert set(on_disk) == set(mem)
    for name, t in on_disk.items():
        assert torch.equal(t, mem[name].detach()), name


def test_a_search_on_the_zoo_end_to_end(zoo, tmp_path, capsys):
    spec_file = tmp_path / "search.yaml"
    spec_file.write_text(yaml.safe_dump(spec(space={"methods": ["ties", "linear"],
                                                    "ensembles": ["vote"]})), encoding="utf-8")
    out = tmp_path / "out"
    assert main(["search", str(spec_file), "--out", str(out), "--trials", "4"]) == 0
    printed = capsys.readouterr().out
    assert "| best | best |" in printed and "parent zoo:domotica" in printed
    for name in ("study.csv", "results.csv", "best.yaml", "report.md", "pareto.png",
                 "history.png", "importances.png", "cost.png", "search.json"):
        assert (out / name).is_file(), name
    import pandas as pd

    trials = pd.read_csv(out / "study.csv")
    assert (trials["state"] == "complete").sum() == 4
    merged = trials[trials["kind"] == "merge"]
    assert merged["in_memory"].astype(bool).all()  # merged in memory, no folder written
    assert (merged["merge_s"] > 0).all() and (trials["eval_s"] > 0).all()
    meta = json.loads((out / "search.json").read_text(encoding="utf-8"))
    assert meta["counts"]["complete"] == 4
    # the chosen merge runs with `llmcombo merge` as it is
    best_merge = out / ("best_merge.yaml" if (out / "best_merge.yaml").exists() else "best.yaml")
    if "merge" in yaml.safe_load(best_merge.read_text(encoding="utf-8")):
        assert main(["merge", str(best_merge), str(tmp_path / "model")]) == 0
        assert (tmp_path / "model" / "config.json").is_file()


def test_a_local_search_never_imports_ray(zoo, zoo_dir, tmp_path):
    code = ("import sys, llmcombo; "
            f"llmcombo.search({spec(trials=2, space={'methods': ['linear']})!r}, "
            f"{str(tmp_path / 'o')!r}, report=False); print('ray' in sys.modules)")
    env = {**os.environ, "LLMCOMBO_ZOO_DIR": str(zoo_dir)}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip().splitlines()[-1] == "False"


def test_nan_weights_and_out_of_memory_fail_their_trial_and_the_search_goes_on(zoo, tmp_path,
                                                                                monkeypatch):
    import torch
    from safetensors.torch import load_file, save_file

    from llmcombo import zoo as Z
    from llmcombo.engine import inmemory
    from llmcombo.search import search

    broken = tmp_path / "tiempo-nan"
    shutil.copytree(Z.model_path("tiempo"), broken)
    for f in broken.glob("*.safetensors"):
        tensors = load_file(str(f))
        name = next(n for n in tensors if "mlp" in n)
        tensors[name] = torch.full_like(tensors[name], float("nan"))
        save_file(tensors, str(f), metadata={"format": "pt"})
    data = spec(trials=5, models=[{"model": "zoo:domotica"}, {"model": str(broken)}],
                space={"methods": ["linear"], "ensembles": ["vote"]})
    r = search(data, tmp_path / "nan", report=False)
    merges = r.trials[r.trials["method"] == "linear"]
    assert len(merges) and (merges["state"] == "fail").all()
    assert merges["error"].str.contains("NaN").all()
    # the search went on: every trial is recorded, the greedy vote answers (sampled votes of the
    # broken model crash in generation, and are recorded as failed with torch's reason)
    assert len(r.trials) == 5 and (r.trials["state"] == "complete").any()
    failed_votes = r.trials[(r.trials["method"] == "vote") & (r.trials["state"] == "fail")]
    assert failed_votes["error"].str.contains("nan").all()

    real = inmemory.InMemoryTarget.merge
    calls = {"n": 0}

    def sometimes_oom(self, doc, cancel=None):
        calls["n"] += 1
        if calls["n"] == 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return real(self, doc, cancel)

    monkeypatch.setattr(inmemory.InMemoryTarget, "merge", sometimes_oom)
    from llmcombo.search import report

    monkeypatch.setattr(report, "preset_configs", lambda doc: {})  # only trials merge here
    r = search(spec(trials=4, space={"methods": ["linear", "ties"]}), tmp_path / "oom",
               report=False)
    states = r.trials["state"].tolist()
    assert states.count("fail") == 1 and states.count("complete") == 3
    assert "out of memory" in r.trials[r.trials["state"] == "fail"]["error"].iloc[0]


def test_a_killed_search_resumes_and_loses_at_most_the_running_trial(zoo, zoo_dir, tmp_path):
    from llmcombo.search import study as S

    spec_file = tmp_path / "search.yaml"
    data = spec(trials=8, space={"methods": ["ties", "linear", "task_arithmetic"]})
    spec_file.write_text(yaml.safe_dump(data), encoding="utf-8")
    out = tmp_path / "out"
    env = {**os.environ, "LLMCOMBO_ZOO_DIR": str(zoo_dir)}
    cmd = [sys.executable, "-m", "llmcombo.cli", "search", str(spec_file), "--out", str(out)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 600
        done = 0
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.5)
            if (out / S.STUDY_FILE).is_file():
                st = S.open_study(out, {}, create=False)
                done = sum(t.state.name == "COMPLETE" for t in st.get_trials())
                if done >= 3:
                    break
        assert done >= 3, "the search did not get going"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # as hard as a power cut: no clean-up runs
        proc.wait()
    before = {t.number: t for t in S.open_study(out, {}, create=False).get_trials()}
    measured = {n: t.values for n, t in before.items() if t.state.name == "COMPLETE"}
    running = [n for n, t in before.items() if t.state.name == "RUNNING"]
    assert len(running) <= 1
    res = subprocess.run(cmd + ["--resume"], env=env, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    after = {t.number: t for t in S.open_study(out, {}, create=False).get_trials()}
    assert all(after[n].values == v for n, v in measured.items())  # nothing measured was lost
    assert sum(t.state.name == "COMPLETE" for t in after.values()) == 8
    lost = [n for n in running if after[n].state.name != "COMPLETE"]
    assert len(lost) <= 1


def test_the_same_study_on_ray_as_on_the_local_pool(zoo, zoo_dir, tmp_path, monkeypatch):
    import ray  # in the [search] and [test] extras

    from llmcombo.search import search

    monkeypatch.setenv("LLMCOMBO_ZOO_DIR", str(zoo_dir))
    data = spec(trials=4, workers=2, space={"methods": ["ties", "slerp"], "ensembles": ["vote"]})

    def frame(r):
        cols = sorted(c for c in r.trials.columns if c.startswith("param:"))
        return r.trials[["trial", "state", "value"] + cols].round(6).astype(object).fillna(-1)

    local = search(data, tmp_path / "local", report=False)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        on_ray = search(data, tmp_path / "ray", ray="auto", report=False)
    finally:
        ray.shutdown()
    assert frame(on_ray).equals(frame(local))
    assert (on_ray.trials["state"] == "complete").all()
