"""The zoo: what it contains, that it is honest about accuracy, and how it is cached and rebuilt."""

from __future__ import annotations

import json
from pathlib import Path

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


# -- zoo v2: shipped, llama.cpp-shaped tokenizer, natural prompts --------------------------------

NATURAL = Path(__file__).resolve().parent / "data" / "natural"


def test_the_zoo_ships_with_llmcombo(monkeypatch):
    monkeypatch.delenv(zoo_mod.ENV_DIR, raising=False)
    assert zoo_mod.is_complete(zoo_mod.SHIPPED_DIR)
    assert zoo_mod.default_dir() == zoo_mod.SHIPPED_DIR
    manifest = json.loads((zoo_mod.SHIPPED_DIR / zoo_mod.MANIFEST).read_text())
    assert manifest["zoo_version"] == zoo_mod.ZOO_VERSION == 2
    size = sum(f.stat().st_size for f in zoo_mod.SHIPPED_DIR.rglob("*") if f.is_file())
    assert size < 25 * 2**20  # a few MB per model


def test_train_test_and_validation_splits_are_disjoint():
    for name in tasks.TASK_NAMES:
        t = tasks.get_task(name)
        assert (len(t.train), len(t.validation), len(t.test)) == (3000, 300, 300)
        seen = {tasks.prompt_key(e.prompt) for e in t.train + t.test}
        assert not seen & {tasks.prompt_key(e.prompt) for e in t.validation}


def test_natural_sets_are_well_formed():
    from llmcombo.zoo.measure import load_natural

    rows = load_natural(NATURAL)
    for name, label in tasks.SELECTOR_LABELS.items():
        data = rows[name]
        assert len(data) >= 120
        assert len({r["prompt"] for r in data}) == len(data)
        commands = set(tasks.get_task(name).commands)
        for r in data:
            assert set(r) <= {"prompt", "route", "expected"} and r["route"] == label
            if "expected" in r:
                assert r["expected"] in commands, r


def test_augmentation_names_never_occur_in_the_hand_written_prompts():
    """The selector is trained with out-of-grammar names; the hand-written set must not contain
    them, or its routing accuracy would not measure generalisation."""
    import re

    from llmcombo.zoo import natural as N
    from llmcombo.zoo.measure import load_natural

    prompts = [tasks.prompt_key(r["prompt"]) for rows in load_natural(NATURAL).values() for r in rows]
    names = (N.AUG_CITIES + [d for d, _ in N.AUG_DEVICES] + [r for r, _ in N.AUG_ROOMS]
             + N.AUG_DAYS + N.AUG_WEATHER)
    for name in names:
        pat = re.compile(r"(?<!\w)" + re.escape(tasks.prompt_key(name)) + r"(?!\w)")
        assert not [p for p in prompts if pat.search(p)], name


@pytest.fixture(scope="module")
def tok(zoo):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(zoo.path("base"))


def test_tokenizer_is_shaped_like_llama2_for_llama_cpp(zoo, tok):
    tj = json.loads((zoo.path("base") / "tokenizer.json").read_text())
    assert tj["model"]["type"] == "BPE" and tj["model"]["byte_fallback"] is True
    assert tj["pre_tokenizer"] is None
    assert [n["type"] for n in tj["normalizer"]["normalizers"]] == ["Prepend", "Replace"]
    assert [d["type"] for d in tj["decoder"]["decoders"]] == ["Replace", "ByteFallback", "Fuse", "Strip"]
    ids = {t: tok.convert_tokens_to_ids(t) for t in ("<unk>", "<s>", "</s>", "<0x00>", "<0xFF>")}
    assert ids == {"<unk>": 0, "<s>": 1, "</s>": 2, "<0x00>": 3, "<0xFF>": 258}
    for name in zoo_mod.MODEL_NAMES:  # llama.cpp reads tokenizer.model first
        assert (zoo.path(name) / "tokenizer.model").is_file()


def test_markers_prefix_round_trip_and_left_padding(tok):
    for e in [x for t in tasks.TASK_NAMES for x in tasks.get_task(t).test[:100]]:
        p = tok(tasks.format_prompt(e.prompt))["input_ids"]
        f = tok(tasks.format_example(e))["input_ids"]
        assert f[: len(p)] == p
        assert tok.decode(f[len(p):], skip_special_tokens=True) == e.expected
    toks = tok.convert_ids_to_tokens(tok("[ORDEN] apaga la luz [COMANDO] LUZ_SL OFF")["input_ids"])
    assert toks[:3] == ["<s>", "[ORDEN]", "▁apaga"] and toks[-4:] == ["[COMANDO]", "▁LUZ", "_SL", "▁OFF"]
    enc = tok(["[ORDEN] x [COMANDO]", "[ORDEN] que tiempo hace hoy en madrid [COMANDO]"], padding=True)
    assert enc["input_ids"][0][0] == tok.pad_token_id and enc["attention_mask"][0][0] == 0
    assert tok.padding_side == "left"


def test_the_selector_routes_hand_written_prompts(zoo):
    """Natural prompts typed as people type them (accents, capitals, ¿?, unknown cities and
    devices): the selector's argmax over the route labels sends nearly all to the right model."""
    from llmcombo.zoo.measure import load_natural, route

    model, tok_ = zoo.load("selector")
    rows = [r for rs in load_natural(NATURAL).values() for r in rs]
    routes = route(model, tok_, [r["prompt"] for r in rows])
    accuracy = sum(a == r["route"] for a, r in zip(routes, rows)) / len(rows)
    assert accuracy >= 0.95, accuracy


@pytest.mark.slow
def test_a_fresh_build_matches_the_shipped_manifest(tmp_path, monkeypatch):
    """`llmcombo zoo build` retrains the zoo from scratch: its accuracies are the shipped ones."""
    monkeypatch.setenv("LLMCOMBO_ZOO_THREADS", "1")
    fresh = zoo_mod.build(tmp_path / "zoo", progress=lambda stage, fraction: None)
    shipped = zoo_mod.Zoo(zoo_mod.SHIPPED_DIR)
    for name in zoo_mod.MODEL_NAMES:
        for key, value in shipped.accuracy[name].items():
            assert abs(fresh.accuracy[name][key] - value) <= 0.02, (name, key)
