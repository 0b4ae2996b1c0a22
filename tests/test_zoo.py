"""The zoo: what it contains, that it is honest about accuracy, and how it is cached and rebuilt."""

from __future__ import annotations

import json

import pytest

from llmcombo import cli
from llmcombo import zoo as zoo_mod
from llmcombo.zoo import models as zoo_models
from llmcombo.zoo import tasks
from llmcombo.errors import UserError


def test_every_zoo_model_loads_with_auto_classes_and_generates(zoo):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    for name in zoo_mod.MODEL_NAMES:
        folder = zoo.path(name)
        assert (folder / "tokenizer.json").is_file()
        config = json.loads((folder / "config.json").read_text())
        assert config["architectures"] == ["LlamaForCausalLM"]
        assert config["tie_word_embeddings"] is False
        model = AutoModelForCausalLM.from_pretrained(folder)
        tok = AutoTokenizer.from_pretrained(folder)
        enc = tok(tasks.format_prompt("apaga la luz del salon"), return_tensors="pt")
        out = model.generate(**enc, max_new_tokens=4, do_sample=False)
        assert out.shape[1] > enc["input_ids"].shape[1]


def test_specialists_share_the_base_as_common_ancestor(zoo):
    from safetensors.torch import load_file

    weights = {n: load_file(zoo.path(n) / "model.safetensors") for n in ("base", "domotica",
                                                                          "tiempo")}
    assert weights["base"].keys() == weights["domotica"].keys() == weights["tiempo"].keys()
    name = "model.layers.0.mlp.down_proj.weight"
    base = weights["base"][name]
    for spec in ("domotica", "tiempo"):
        delta = (weights[spec][name] - base).norm() / base.norm()
        assert 0 < delta < 1, (spec, float(delta))  # fine-tuned from base, not trained apart
    apart = (weights["domotica"][name] - weights["tiempo"][name]).norm() / base.norm()
    assert apart > 0


def test_base_is_weak_and_each_specialist_strong_on_its_own_task(zoo):
    acc = zoo.accuracy
    assert acc["base"]["domotica"] < 0.2 and acc["base"]["tiempo"] < 0.2
    assert acc["domotica"]["domotica"] > 0.8 and acc["domotica"]["tiempo"] < 0.2
    assert acc["tiempo"]["tiempo"] > 0.8 and acc["tiempo"]["domotica"] < 0.2
    assert acc["selector"]["routing"] > 0.9


@pytest.mark.parametrize("name, task", [("domotica", "domotica"), ("tiempo", "tiempo"),
                                        ("base", "domotica")])
def test_the_manifest_accuracies_are_reproducible(zoo, name, task):
    """Re-measure a slice of the held-out set: the numbers in zoo.json are not made up."""
    model, tok = zoo.load(name)
    test = tasks.get_task(task).test[:60]
    answers = zoo_mod.generate_commands(model, tok, [e.prompt for e in test])
    measured = zoo_mod.accuracy(answers, [e.expected for e in test])
    assert abs(measured - zoo.accuracy[name][task]) < 0.1, (measured, zoo.accuracy[name][task])


def test_the_selector_answers_llm1_or_llm2(zoo):
    model, tok = zoo.load("selector")
    ex = tasks.selector_examples("test")[:20]
    answers = zoo_mod.generate_commands(model, tok, [e.prompt for e in ex], max_new_tokens=4)
    assert set(answers) <= {"LLM1", "LLM2"}
    assert zoo_mod.accuracy(answers, [e.expected for e in ex]) >= 0.9


# -- caching, versions and atomic builds (training replaced by a fast fake) --------------------


@pytest.fixture
def fake_training(monkeypatch):
    calls = []

    def train(out, progress, *a, **k):
        calls.append(out)
        for name in zoo_mod.MODEL_NAMES:
            folder = out / name
            folder.mkdir(parents=True)
            for f in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"):
                (folder / f).write_text("{}")
        manifest = {"zoo_version": zoo_mod.ZOO_VERSION, "build_seconds": 0.0,
                    "models": {n: {"accuracy": {"domotica": 0, "tiempo": 0, "routing": 0},
                                   "parameters": 1, "size_bytes": 1} for n in zoo_mod.MODEL_NAMES}}
        (out / zoo_mod.MANIFEST).write_text(json.dumps(manifest))
        return manifest

    monkeypatch.setattr(zoo_models, "_train_zoo", train)
    return calls


def test_a_complete_zoo_is_reused_and_a_stale_version_rebuilt(tmp_path, fake_training):
    target = tmp_path / "zoo"
    built = zoo_mod.build(target)
    assert len(fake_training) == 1 and zoo_mod.is_complete(target)
    assert zoo_mod.build(target).dir == built.dir and len(fake_training) == 1  # cached
    manifest = json.loads((target / zoo_mod.MANIFEST).read_text())
    manifest["zoo_version"] = zoo_mod.ZOO_VERSION - 1
    (target / zoo_mod.MANIFEST).write_text(json.dumps(manifest))
    assert not zoo_mod.is_complete(target)
    zoo_mod.build(target)
    assert len(fake_training) == 2 and zoo_mod.is_complete(target)
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) == ["zoo"]


def test_a_failed_build_leaves_nothing_behind(tmp_path, monkeypatch):
    def boom(out, progress, *a, **k):
        (out / "base").mkdir()
        raise KeyboardInterrupt

    monkeypatch.setattr(zoo_models, "_train_zoo", boom)
    with pytest.raises(KeyboardInterrupt):
        zoo_mod.build(tmp_path / "zoo")
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) == []


def test_a_foreign_folder_is_never_replaced(tmp_path, fake_training):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(UserError, match="does not hold a zoo"):
        zoo_mod.build(tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me" and not fake_training


def test_env_var_chooses_the_folder_and_zoo_refs_resolve(tmp_path, monkeypatch, fake_training):
    from llmcombo.modelref import resolve

    monkeypatch.setenv(zoo_mod.ENV_DIR, str(tmp_path / "z"))
    assert zoo_mod.default_dir() == tmp_path / "z"
    assert zoo_mod.model_path("tiempo") == tmp_path / "z" / "tiempo"
    with pytest.raises(UserError, match="llmcombo zoo build"):  # never trains to resolve
        resolve("zoo:tiempo")
    assert not fake_training and not (tmp_path / "z").exists()
    zoo_mod.build()  # an explicit build trains into $LLMCOMBO_ZOO_DIR
    assert len(fake_training) == 1
    assert str(resolve("zoo:tiempo")) == str(tmp_path / "z" / "tiempo")
    with pytest.raises(UserError, match="no zoo model called 'tiempos'"):
        zoo_mod.model_path("tiempos")


def test_cli_zoo_list_and_build(tmp_path, capsys, fake_training):
    assert cli.main(["zoo", "list", str(tmp_path / "z")]) == 1
    err = capsys.readouterr().err
    assert "no built zoo" in err and "llmcombo zoo build" in err and "Traceback" not in err
    assert cli.main(["zoo", "build", str(tmp_path / "z")]) == 0
    out = capsys.readouterr().out
    assert "zoo:NAME" in out and "domotica" in out and "selector" in out
    assert cli.main(["zoo", "list", str(tmp_path / "z")]) == 0 and len(fake_training) == 1
