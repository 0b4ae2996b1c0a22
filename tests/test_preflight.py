"""Pre-flight: model-aware checks (config.json only) and the resource estimate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from llmcombo import preflight
from llmcombo.engine.moe import moe_output_architectures, select_output_architecture
from llmcombo.featuremodel.issues import has_errors
from llmcombo.preflight import check_models, check_resources, estimate

REAL_HUB_REACHABLE = preflight.hub_reachable

LLAMA = dict(architectures=["LlamaForCausalLM"], model_type="llama", hidden_size=8,
             intermediate_size=16, num_attention_heads=2, num_key_value_heads=1,
             num_hidden_layers=4, vocab_size=32, tie_word_embeddings=False, dtype="float32")
QWEN2 = dict(LLAMA, architectures=["Qwen2ForCausalLM"], model_type="qwen2")
QWEN3 = dict(LLAMA, architectures=["Qwen3ForCausalLM"], model_type="qwen3")


def llama_tensors(cfg: dict) -> dict[str, torch.Tensor]:
    h, i, v = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    hd = h // cfg["num_attention_heads"]
    kv = cfg["num_key_value_heads"] * hd
    t = {"model.embed_tokens.weight": torch.zeros(v, h), "model.norm.weight": torch.ones(h),
         "lm_head.weight": torch.zeros(v, h)}
    for n in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{n}."
        t.update({p + "self_attn.q_proj.weight": torch.zeros(h, h),
                  p + "self_attn.k_proj.weight": torch.zeros(kv, h),
                  p + "self_attn.v_proj.weight": torch.zeros(kv, h),
                  p + "self_attn.o_proj.weight": torch.zeros(h, h),
                  p + "mlp.gate_proj.weight": torch.zeros(i, h),
                  p + "mlp.up_proj.weight": torch.zeros(i, h),
                  p + "mlp.down_proj.weight": torch.zeros(h, i),
                  p + "input_layernorm.weight": torch.ones(h),
                  p + "post_attention_layernorm.weight": torch.ones(h)})
    return t


def make_model(root: Path, name: str, base: dict = LLAMA, weights: bool = True,
               tokenizer: bool = True, **overrides) -> Path:
    """A model folder with a real config.json and (tiny) safetensors; never loaded here."""
    folder = root / name
    folder.mkdir(parents=True)
    cfg = dict(base, **overrides)
    (folder / "config.json").write_text(json.dumps(cfg))
    if weights:
        save_file(llama_tensors(cfg), str(folder / "model.safetensors"))
    if tokenizer:
        (folder / "tokenizer.json").write_text("{}")
        (folder / "tokenizer_config.json").write_text("{}")
    return folder


def n_params(cfg: dict) -> int:
    return sum(t.numel() for t in llama_tensors(cfg).values())


@pytest.fixture
def models(tmp_path):
    return {
        "base": make_model(tmp_path, "base"),
        "a": make_model(tmp_path, "a"),
        "b": make_model(tmp_path, "b"),
        "wide": make_model(tmp_path, "wide", hidden_size=16),
        "deep": make_model(tmp_path, "deep", num_hidden_layers=6),
        "bigvocab": make_model(tmp_path, "bigvocab", vocab_size=40),
        "qwen": make_model(tmp_path, "qwen", QWEN2),
        "qwen_b": make_model(tmp_path, "qwen_b", QWEN2),
        "qwen3": make_model(tmp_path, "qwen3", QWEN3),
        "qwen3_b": make_model(tmp_path, "qwen3_b", QWEN3),
    }


@pytest.fixture(autouse=True)
def _never_read_weights(monkeypatch):
    """Pre-flight must never read tensors: loading them is an error here."""
    import safetensors
    import transformers.modeling_utils  # noqa: F401 - binds the real safe_open before the patch

    def boom(*a, **k):
        raise AssertionError("pre-flight read weights")

    monkeypatch.setattr(safetensors, "safe_open", boom)
    monkeypatch.setattr("safetensors.torch.load_file", boom)
    monkeypatch.setattr(torch, "load", boom)


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    """No test may reach the network; the Hub is 'unreachable' unless a test says otherwise."""
    monkeypatch.setattr(preflight.models, "hub_reachable", lambda *a, **k: False)


def merge(models, method="ties", base="base", names=("a", "b"), **extra):
    m = {"method": method, "models": [{"model": str(models[n]), "parameters": {"weight": 0.5}}
                                      for n in names], "dtype": "float32", **extra}
    if base:
        m["base_model"] = str(models[base])
    return {"merge": m}


def by_path(issues):
    return {i.path: i for i in issues}


# ---- merges ---------------------------------------------------------------------------------


def test_compatible_models_pass(models):
    assert check_models(merge(models)) == []


def test_missing_folder_is_an_error_naming_the_field(models, tmp_path):
    cfg = merge(models)
    cfg["merge"]["models"][1]["model"] = str(tmp_path / "nope")
    issues = check_models(cfg)
    issue = by_path(issues)["merge.models[1].model"]
    assert issue.is_error
    assert issue.message == f"model folder not found: {tmp_path / 'nope'}"
    assert "Check the spelling" in issue.hint


def test_relative_missing_folder_hint_names_the_config_folder(models, tmp_path):
    cfg = merge(models)
    cfg["merge"]["models"][0]["model"] = "./missing-model"
    issues = check_models(cfg, base_dir=tmp_path)
    issue = by_path(issues)["merge.models[0].model"]
    assert issue.message == f"model folder not found: {tmp_path / 'missing-model'}"
    assert str(tmp_path) in issue.hint


def test_folder_without_config_json(models, tmp_path):
    (tmp_path / "empty").mkdir()
    cfg = merge(models)
    cfg["merge"]["base_model"] = str(tmp_path / "empty")
    issue = by_path(check_models(cfg))["merge.base_model"]
    assert issue.is_error and "has no config.json" in issue.message


def test_folder_without_weights(models, tmp_path):
    make_model(tmp_path, "noweights", weights=False)
    cfg = merge(models)
    cfg["merge"]["models"][0]["model"] = str(tmp_path / "noweights")
    issue = by_path(check_models(cfg))["merge.models[0].model"]
    assert issue.is_error and "no weight files" in issue.message


def test_architecture_mismatch(models):
    issues = check_models(merge(models, names=("a", "qwen")))
    issue = by_path(issues)["merge.models[1].model"]
    assert issue.is_error and issue.code == "arch_mismatch"
    assert "Qwen2ForCausalLM" in issue.message and "LlamaForCausalLM" in issue.message
    assert "same architecture family" in issue.message


def test_hidden_size_mismatch_is_an_error(models):
    issue = by_path(check_models(merge(models, names=("a", "wide"))))["merge.models[1].model"]
    assert issue.is_error and "hidden size 16" in issue.message and "has 8" in issue.message


def test_layer_count_mismatch_is_an_error_for_whole_model_merges(models):
    issue = by_path(check_models(merge(models, names=("deep", "a"))))["merge.models[0].model"]
    assert issue.is_error and "number of layers 6" in issue.message
    assert "slices" in issue.hint


def test_vocab_mismatch_is_a_warning_suggesting_a_tokenizer(models):
    issues = check_models(merge(models, names=("a", "bigvocab")))
    issue = by_path(issues)["merge.models[1].model"]
    assert issue.severity == "warning" and issue.code == "vocab_mismatch"
    assert "tokenizer_source: union" in issue.hint and "tokenizer_source: base" in issue.hint
    assert not has_errors(issues)
    assert check_models(merge(models, names=("a", "bigvocab"), tokenizer_source="union")) == []
    assert check_models(merge(models, names=("a", "bigvocab"),
                              tokenizer={"source": "base"})) == []


def test_unknown_architecture_is_a_warning(models, tmp_path):
    make_model(tmp_path, "odd", architectures=["OddForCausalLM"])
    make_model(tmp_path, "odd2", architectures=["OddForCausalLM"])
    cfg = {"merge": {"method": "linear", "models": [
        {"model": str(tmp_path / "odd"), "parameters": {"weight": 1}},
        {"model": str(tmp_path / "odd2"), "parameters": {"weight": 1}}]}}
    issues = check_models(cfg)
    assert [i.code for i in issues] == ["arch_unknown"]
    assert issues[0].severity == "warning"


def test_config_without_architectures_is_an_error_for_merges(models, tmp_path):
    make_model(tmp_path, "noarch", architectures=None)
    cfg = merge(models)
    cfg["merge"]["models"][0]["model"] = str(tmp_path / "noarch")
    issue = by_path(check_models(cfg))["merge.models[0].model"]
    assert issue.is_error and issue.code == "no_architecture"
    assert '"architectures"' in issue.hint


def test_missing_tokenizer_in_the_donor_model(models, tmp_path):
    make_model(tmp_path, "notok", tokenizer=False)
    cfg = merge(models)
    cfg["merge"]["base_model"] = str(tmp_path / "notok")
    issue = by_path(check_models(cfg))["merge.base_model"]
    assert issue.is_error and issue.code == "no_tokenizer"


# ---- slices ---------------------------------------------------------------------------------


def slices(models, *ranges):
    return {"merge": {"method": "passthrough", "slices": [
        {"sources": [{"model": str(models[name]), "layer_range": list(lr)}]}
        for name, lr in ranges]}}


def test_slices_within_bounds_pass_even_across_depths(models):
    assert check_models(slices(models, ("a", (0, 4)), ("deep", (2, 6)))) == []


@pytest.mark.parametrize("lr, text, is_error", [
    ((0, 5), "goes past the end of", True),
    ((-1, 2), "starts before the first layer", True),
    # mergekit runs an empty range (the slice adds no layer): tests/test_engine_truth.py
    ((3, 3), "is empty", False),
])
def test_slice_layer_range_out_of_bounds(models, lr, text, is_error):
    issues = check_models(slices(models, ("a", (0, 2)), ("b", lr)))
    issue = by_path(issues)["merge.slices[1].sources[0].layer_range"]
    assert issue.is_error == is_error and text in issue.message


def test_slice_past_the_end_message(models):
    issue = check_models(slices(models, ("b", (1, 9))))[0]
    assert issue.path == "merge.slices[0].sources[0].layer_range"
    assert issue.message == (f"layer_range [1, 9] goes past the end of {models['b']}, which has "
                             "4 layers (numbered 0 to 3).")
    assert issue.hint == "Use an end of at most 4; the end is exclusive."


def test_slice_sources_must_span_the_same_number_of_layers(models):
    cfg = {"merge": {"method": "slerp", "base_model": str(models["a"]), "slices": [{"sources": [
        {"model": str(models["a"]), "layer_range": [0, 4]},
        {"model": str(models["b"]), "layer_range": [0, 3]}]}], "parameters": {"t": 0.5}}}
    issue = by_path(check_models(cfg))["merge.slices[0].sources[1].layer_range"]
    assert issue.is_error and "same number of layers" in issue.message


def test_slice_hidden_size_mismatch_is_still_an_error(models):
    issues = check_models(slices(models, ("a", (0, 2)), ("wide", (2, 4))))
    assert by_path(issues)["merge.slices[1].sources[0].model"].code == "shape_mismatch"


# ---- mixtures of experts --------------------------------------------------------------------


def moe(models, base="base", experts=("a", "b"), shared=(), **extra):
    m = {"base_model": str(models[base]), "gate_mode": "hidden", "experts": [
        {"source_model": str(models[e]), "positive_prompts": [f"prompt {i}"]}
        for i, e in enumerate(experts)], **extra}
    if shared:
        m["shared_experts"] = [{"source_model": str(models[e])} for e in shared]
    return {"moe": m}


def test_moe_of_llama_models_passes(models):
    assert check_models(moe(models)) == []


def test_moe_of_qwen2_models_without_shared_expert_is_refused(models):
    issues = check_models(moe(models, base="qwen", experts=("qwen", "qwen_b")))
    issue = by_path(issues)["moe.base_model"]
    assert issue.is_error and issue.code == "moe_unsupported"
    # mergekit's own explanations, per output architecture
    assert "Mixtral requires all input models to be Llama or Mistral models" in issue.message
    assert "Qwen MoE merge requires exactly one shared expert" in issue.message
    assert "exactly one shared expert" in issue.hint


def test_moe_of_qwen3_models_uses_qwen3_moe(models):
    cfg = moe(models, base="qwen3", experts=("qwen3", "qwen3_b"))
    assert check_models(cfg) == []
    infos = {str(models[n]): preflight.inspect_model(str(models[n]))[0]
             for n in ("qwen3", "qwen3_b")}
    chosen, _, _ = select_output_architecture(cfg["moe"], infos)
    assert chosen.name() == "Qwen3 MoE"


def test_moe_architectures_come_from_mergekit():
    from mergekit.moe import ALL_OUTPUT_ARCHITECTURES

    assert [a.name() for a in moe_output_architectures()] == \
        [a.name() for a in ALL_OUTPUT_ARCHITECTURES]


def test_moe_unknown_output_architecture(models):
    issue = by_path(check_models(moe(models, architecture="grok")))["moe.architecture"]
    assert issue.is_error and "'grok'" in issue.message and "Mixtral" in issue.hint


def test_moe_forced_architecture_that_does_not_fit(models):
    issue = by_path(check_models(moe(models, architecture="qwen3")))["moe.architecture"]
    assert issue.is_error and "Qwen3 MoE only supports Qwen3 input models" in issue.message


def test_moe_with_ungated_shared_expert_becomes_deepseek_with_a_warning(models):
    issues = check_models(moe(models, shared=("base",)))
    assert [(i.severity, i.code) for i in issues] == [("warning", "moe_remote_code")]


def test_moe_expert_shape_and_vocab(models):
    issues = by_path(check_models(moe(models, experts=("a", "wide", "bigvocab"))))
    assert issues["moe.experts[1].source_model"].is_error
    assert "hidden size 16" in issues["moe.experts[1].source_model"].message
    assert issues["moe.experts[2].source_model"].severity == "warning"


def test_moe_expert_depth_mismatch(models):
    issue = by_path(check_models(moe(models, experts=("a", "deep"))))["moe.experts[1].source_model"]
    assert issue.is_error and "number of layers 6" in issue.message


def test_moe_missing_expert(models, tmp_path):
    cfg = moe(models)
    cfg["moe"]["experts"][0]["source_model"] = str(tmp_path / "gone")
    issue = by_path(check_models(cfg))["moe.experts[0].source_model"]
    assert issue.message == f"model folder not found: {tmp_path / 'gone'}"


# ---- hub ids, zoo, LoRA ---------------------------------------------------------------------


def test_hub_id_offline_is_a_warning_and_fast(models):
    import time

    cfg = merge(models)
    cfg["merge"]["models"][0]["model"] = "someone/some-model"
    t0 = time.perf_counter()
    issues = check_models(cfg)
    assert time.perf_counter() - t0 < 5
    issue = by_path(issues)["merge.models[0].model"]
    assert issue.severity == "warning"
    assert issue.message == ("could not check someone/some-model: the Hugging Face Hub is not "
                             "reachable (offline?)")
    assert not has_errors(issues)


def test_hub_offline_env_skips_the_network(monkeypatch):
    import socket

    from huggingface_hub import constants

    def no_network(*a, **k):
        raise AssertionError("opened a connection")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert REAL_HUB_REACHABLE() is False


def test_hub_config_is_read_from_the_cache(models, monkeypatch):
    import huggingface_hub

    cached = str(models["wide"] / "config.json")
    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache",
                        lambda repo, filename, **k: cached if repo == "org/wide" else None)
    cfg = merge(models)
    cfg["merge"]["models"][0]["model"] = "org/wide"
    issue = by_path(check_models(cfg))["merge.models[0].model"]
    assert issue.is_error and "hidden size 16" in issue.message


def test_hub_repo_not_found_when_online(models, monkeypatch):
    import huggingface_hub
    from huggingface_hub import errors

    def not_found(repo, filename, **k):
        exc = errors.RepositoryNotFoundError.__new__(errors.RepositoryNotFoundError)
        Exception.__init__(exc, "404 Client Error. Repository Not Found")
        raise exc

    monkeypatch.setattr(preflight.models, "hub_reachable", lambda *a, **k: True)
    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda *a, **k: None)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", not_found)
    cfg = merge(models)
    cfg["merge"]["models"][0]["model"] = "nobody/nothing"
    issue = by_path(check_models(cfg))["merge.models[0].model"]
    assert issue.is_error and "was not found on the Hugging Face Hub" in issue.message


def test_hub_download_of_config_only(models, monkeypatch):
    import huggingface_hub

    asked = []

    def download(repo, filename, **k):
        asked.append((repo, filename, k.get("revision")))
        return str(models["a"] / "config.json")

    monkeypatch.setattr(preflight.models, "hub_reachable", lambda *a, **k: True)
    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda *a, **k: None)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
    cfg = merge(models)
    cfg["merge"]["models"][0]["model"] = "org/model@v1"
    assert check_models(cfg) == []
    assert asked == [("org/model", "config.json", "v1")]


def test_unknown_zoo_model(models):
    cfg = merge(models)
    cfg["merge"]["models"][0]["model"] = "zoo:nonexistent"
    issue = by_path(check_models(cfg))["merge.models[0].model"]
    assert issue.is_error and "zoo:nonexistent" in issue.message


def test_zoo_not_built_names_the_command_and_trains_nothing(models, tmp_path, monkeypatch):
    # the run would fail (nothing is there to merge), so it is an error, and resolving the
    # reference never trains: it says how to build the zoo instead
    monkeypatch.setenv("LLMCOMBO_ZOO_DIR", str(tmp_path / "no-zoo-here"))
    cfg = merge(models)
    cfg["merge"]["models"][0]["model"] = "zoo:domotica"
    issue = by_path(check_models(cfg))["merge.models[0].model"]
    assert issue.is_error and issue.code == "model_missing"
    assert "llmcombo zoo build" in (issue.hint or "")
    assert not (tmp_path / "no-zoo-here").exists()


def test_missing_lora_adapter(models, tmp_path):
    cfg = merge(models)
    cfg["merge"]["models"][0]["model"] = f"{models['a']}+{tmp_path / 'adapter'}"
    issue = by_path(check_models(cfg))["merge.models[0].model"]
    assert issue.is_error and "adapter" in issue.message.lower()


def test_non_model_configs_have_no_model_checks():
    assert check_models({"ensemble": {"kind": "vote"}}) == []
    assert check_models({}) == []


def test_mergekit_shaped_merge_is_accepted(models):
    cfg = {"merge": {"merge_method": "ties", "base_model": str(models["base"]),
                     "models": [{"model": str(models["a"])}, {"model": str(models["wide"])}]}}
    assert [i.code for i in check_models(cfg) if i.is_error] == ["shape_mismatch"]


# ---- resources ------------------------------------------------------------------------------


def test_estimate_of_a_merge(models, tmp_path):
    est = estimate(merge(models), out_path=tmp_path / "out")
    assert est.output_params == n_params(LLAMA)
    assert est.output_bytes == 4 * n_params(LLAMA)
    weights = sum((models[n] / "model.safetensors").stat().st_size for n in ("base", "a", "b"))
    assert est.input_bytes == weights
    assert est.disk_free and est.disk_free > 0
    assert est.ram_bytes > est.output_bytes
    assert "output:" in est.summary()


def test_estimate_of_slices_counts_the_layers(models):
    est = estimate(slices(models, ("a", (0, 4)), ("b", (1, 4))))
    one_layer = (n_params(LLAMA) - n_params(dict(LLAMA, num_hidden_layers=0))) // 4
    assert est.output_params == n_params(dict(LLAMA, num_hidden_layers=0)) + 7 * one_layer


def test_estimate_of_a_moe_and_dtype(models):
    est = estimate(moe(models, experts=("a", "b", "base"), dtype="bfloat16"))
    assert est.output_dtype == "bfloat16"
    assert est.output_bytes == 2 * est.output_params
    dense = n_params(LLAMA)
    assert est.output_params > 2 * dense  # three MLPs per layer
    assert estimate(merge(models), out_dtype="float16").output_bytes == 2 * dense


def test_estimate_from_config_when_there_are_no_safetensors(tmp_path):
    folder = make_model(tmp_path, "binonly", weights=False)
    (folder / "pytorch_model.bin").write_bytes(b"not really")
    cfg = {"merge": {"method": "passthrough", "models": [{"model": str(folder)}]}}
    assert estimate(cfg).output_params == n_params(LLAMA)


def test_full_disk_is_refused(models, tmp_path):
    issues = check_resources(merge(models), tmp_path / "out", disk_free=10)
    assert [i.code for i in issues if i.is_error] == ["disk_full"]
    issue = issues[0]
    assert issue.message.startswith("not enough free disk space for the result: it needs about ")
    assert "but only 10 B are free at" in issue.message
    assert "bigger disk" in issue.hint


def test_full_disk_through_the_environment(models, tmp_path, monkeypatch):
    monkeypatch.setenv(preflight.DISK_FREE_ENV, "1K")
    assert has_errors(check_resources(merge(models), tmp_path / "out"))
    monkeypatch.setenv(preflight.DISK_FREE_ENV, "10G")
    assert check_resources(merge(models), tmp_path / "out") == []


def test_low_memory_is_a_warning(models, tmp_path):
    issues = check_resources(merge(models), tmp_path / "out", ram_available=1000)
    assert [(i.severity, i.code) for i in issues] == [("warning", "ram")]


def test_unknown_download_size_is_a_warning(models, tmp_path):
    cfg = merge(models)
    cfg["merge"]["models"][0]["model"] = "someone/some-model"
    codes = [i.code for i in check_resources(cfg, tmp_path / "out")]
    assert "download_size" in codes


@pytest.mark.parametrize("text, value", [("10", 10), ("1K", 1000), ("2.5MB", 2_500_000),
                                         ("3G", 3 * 10**9)])
def test_parse_size(text, value):
    assert preflight.parse_size(text) == value
