"""Generation and import: lossless round trips under mergekit's own config models."""

import textwrap

import pytest
import yaml

from llmcombo.configuration import dump_yaml, list_presets, load_preset
from llmcombo.importer import as_configuration
from llmcombo.errors import UserError
from llmcombo.engine.schema import parse as parse_mergekit
from llmcombo.generate import generate_yaml, to_document
from llmcombo.importer import import_mergekit
from llmcombo.validation import validate

MERGEKIT_CONFIGS = {
    "linear": """
        models:
          - model: org/a
            parameters: {weight: 0.7}
          - model: org/b
            parameters: {weight: 0.3}
        merge_method: linear
        dtype: float16
    """,
    "linear_normalize_off_gradient": """
        models:
          - model: org/a
            parameters:
              weight: [0, 0.25, 0.5, 1]
          - model: org/b
            parameters:
              weight: [1, 0.75, 0.5, 0]
        merge_method: linear
        parameters: {normalize: false}
    """,
    "slerp_filters": """
        slices:
          - sources:
              - model: org/a
                layer_range: [0, 32]
              - model: org/b
                layer_range: [0, 32]
        merge_method: slerp
        base_model: org/a
        parameters:
          t:
            - filter: self_attn
              value: [0, 0.5, 0.3, 0.7, 1]
            - filter: mlp
              value: [1, 0.5, 0.7, 0.3, 0]
            - value: 0.5
        dtype: bfloat16
    """,
    "nuslerp": """
        models:
          - model: org/a
            parameters: {weight: 0.4}
          - model: org/b
            parameters: {weight: 0.6}
        merge_method: nuslerp
        parameters: {nuslerp_row_wise: true}
    """,
    "task_arithmetic_lambda": """
        base_model: org/base
        models:
          - model: org/a
            parameters: {weight: 1.0}
          - model: org/b
            parameters: {weight: -0.5}
        merge_method: task_arithmetic
        parameters: {lambda: 0.8}
        out_dtype: float16
    """,
    "ties": """
        models:
          - model: org/base
          - model: org/a
            parameters: {density: [1, 0.7, 0.1], weight: 1.0}
          - model: org/b
            parameters: {density: 0.5, weight: [0, 0.3, 0.7, 1]}
        merge_method: ties
        base_model: org/base
        parameters: {normalize: true, int8_mask: true}
        dtype: float16
    """,
    "dare_ties_union_tokenizer": """
        base_model: org/base
        models:
          - model: org/a
            parameters: {density: 0.53, weight: 0.4}
          - model: org/b
            parameters: {density: 0.53, weight: 0.3}
        merge_method: dare_ties
        tokenizer_source: union
        dtype: bfloat16
    """,
    "dare_linear": """
        base_model: org/base
        models:
          - model: org/a
            parameters: {density: 0.3, weight: 0.5}
          - model: org/b
            parameters: {density: 0.3, weight: 0.5}
        merge_method: dare_linear
    """,
    "della": """
        base_model: org/base
        models:
          - model: org/a
            parameters: {density: 0.5, epsilon: 0.1, weight: 0.5}
          - model: org/b
            parameters: {density: 0.5, epsilon: 0.1, weight: 0.5}
        merge_method: della
        parameters: {lambda: 1.0}
    """,
    "breadcrumbs_ties": """
        base_model: org/base
        models:
          - model: org/a
            parameters: {density: 0.9, gamma: 0.01, weight: 0.5}
          - model: org/b
            parameters: {density: 0.9, gamma: 0.01, weight: 0.5}
        merge_method: breadcrumbs_ties
    """,
    "model_stock": """
        base_model: org/base
        models:
          - model: org/a
          - model: org/b
          - model: org/c
        merge_method: model_stock
        parameters: {filter_wise: false}
    """,
    "sce": """
        base_model: org/base
        models:
          - model: org/a
          - model: org/b
        merge_method: sce
        parameters: {select_topk: 0.1}
    """,
    "karcher": """
        models:
          - model: org/a
          - model: org/b
        merge_method: karcher
        parameters: {max_iter: 20, tol: 1.0e-6}
    """,
    "passthrough_frankenmerge": """
        slices:
          - sources:
              - model: org/a
                layer_range: [0, 24]
          - sources:
              - model: org/b
                layer_range: [8, 32]
                parameters: {scale: [{filter: o_proj, value: 0.5}, {value: 1.0}]}
        merge_method: passthrough
        dtype: float16
        tokenizer:
          source: org/a
          pad_to_multiple_of: 64
    """,
    "tokenizer_tokens_chat_template": """
        base_model: org/base
        models:
          - model: org/a
            parameters: {weight: 1.0}
        merge_method: task_arithmetic
        tokenizer:
          source: union
          tokens:
            <|im_start|>:
              source: org/a
            <|im_end|>:
              source: {kind: model_token, model: org/a, token: </s>}
            <pad>:
              source: {kind: zero}
        chat_template: chatml
    """,
    "revision_and_lora_refs": """
        base_model: org/base@main
        models:
          - model: org/a+org/a-lora
            parameters: {weight: 0.5}
          - model:
              model: {path: org/b, revision: v2}
            parameters: {weight: 0.5}
        merge_method: task_arithmetic
    """,
    "multislerp_with_base": """
        base_model: org/base
        models:
          - model: org/a
            parameters: {weight: 0.5}
          - model: org/b
            parameters: {weight: 0.5}
        merge_method: multislerp
    """,
    "moe_hidden": """
        base_model: org/base
        gate_mode: hidden
        dtype: bfloat16
        experts_per_token: 2
        experts:
          - source_model: org/a
            positive_prompts: ["write code", "debug this"]
            negative_prompts: ["tell a story"]
          - source_model: org/b
            positive_prompts: ["tell a story"]
            noise_scale: 0.01
    """,
    "moe_shared_experts_qwen": """
        base_model: org/base
        architecture: qwen
        gate_mode: cheap_embed
        experts:
          - source_model: org/a
            positive_prompts: ["math"]
          - source_model: org/b
            positive_prompts: ["poetry"]
        shared_experts:
          - source_model: org/base
            positive_prompts: ["anything"]
            residual_scale: 0.1
    """,
    "moe_random_deepseek": """
        base_model: org/base
        architecture: deepseek
        gate_mode: random
        experts_per_token: 1
        experts:
          - source_model: org/a
          - source_model: org/b
          - source_model: org/c
        shared_experts:
          - source_model: org/base
    """,
}


def _load(text):
    return yaml.safe_load(textwrap.dedent(text))


def _kind(doc):
    return "merge" if "merge_method" in doc else "moe"


@pytest.mark.parametrize("name", sorted(MERGEKIT_CONFIGS))
def test_round_trip_is_lossless_under_mergekit(name):
    original = _load(MERGEKIT_CONFIGS[name])
    config = import_mergekit(original)
    issues = [i for i in validate(config) if i.is_error]
    assert issues == [], [i.format() for i in issues]
    generated = yaml.safe_load(generate_yaml(config, resolve=False))
    kind = _kind(original)
    assert parse_mergekit(kind, generated).model_dump() == parse_mergekit(kind, original).model_dump()
    # and the llmcombo configuration itself survives its own YAML
    again = as_configuration(yaml.safe_load(dump_yaml(config)))
    assert to_document(again, resolve=False) == to_document(config, resolve=False)


def test_at_least_fifteen_configurations_cover_every_family():
    assert len(MERGEKIT_CONFIGS) >= 15
    methods = {_load(t).get("merge_method") for t in MERGEKIT_CONFIGS.values()}
    assert {"linear", "slerp", "task_arithmetic", "ties", "dare_ties", "della", "passthrough",
            "model_stock", "breadcrumbs_ties"} <= methods
    assert any("experts" in _load(t) for t in MERGEKIT_CONFIGS.values())


def test_import_renames_merge_method_and_keeps_values():
    cfg = import_mergekit(_load(MERGEKIT_CONFIGS["ties"]))
    assert cfg.imported_from == "mergekit"
    assert cfg["merge"]["method"] == "ties"
    assert cfg["merge"]["models"][1]["parameters"]["density"] == [1, 0.7, 0.1]
    revs = import_mergekit(_load(MERGEKIT_CONFIGS["revision_and_lora_refs"]))
    assert [m["model"] for m in revs["merge"]["models"]] == ["org/a+org/a-lora", "org/b@v2"]


def test_generation_refuses_an_invalid_configuration_with_the_errors():
    cfg = import_mergekit(_load(MERGEKIT_CONFIGS["ties"]))
    cfg["merge"]["models"][1]["parameters"]["density"] = "half"  # mergekit: not a float
    with pytest.raises(UserError) as exc:
        generate_yaml(cfg)
    assert "merge.models[1].parameters.density" in str(exc.value)


def test_generation_resolves_zoo_and_relative_paths(tmp_path, monkeypatch):
    (tmp_path / "models" / "a").mkdir(parents=True)
    (tmp_path / "zoo" / "tiempo").mkdir(parents=True)
    (tmp_path / "zoo" / "tiempo" / "config.json").write_text("{}")
    monkeypatch.setenv("LLMCOMBO_ZOO_DIR", str(tmp_path / "zoo"))
    cfg = as_configuration({"merge": {"method": "linear", "models": [
        {"model": "./models/a", "parameters": {"weight": 1}},
        {"model": "zoo:tiempo", "parameters": {"weight": 1}},
        {"model": "org/hub-model", "parameters": {"weight": 1}}]}}, base_dir=tmp_path)
    _, doc = to_document(cfg)
    assert [m["model"] for m in doc["models"]] == [
        str(tmp_path / "models" / "a"), str(tmp_path / "zoo" / "tiempo"), "org/hub-model"]


def test_import_rejects_what_is_not_mergekit():
    with pytest.raises(UserError, match="not a mergekit YAML"):
        import_mergekit({"merge": {"method": "ties"}})


def test_modules_are_imported_as_a_list_of_named_modules():
    # issue 10: multi-module configurations (modules:) are products now (they used to be refused)
    cfg = import_mergekit({"merge_method": "linear", "modules": {
        "text_decoder": {"models": [{"model": "org/a", "parameters": {"weight": 1}}]},
        "vision_tower": {"models": [{"model": "org/b"}], "parameters": {"weight": 0.5}}}})
    assert [m["name"] for m in cfg["merge"]["modules"]] == ["text_decoder", "vision_tower"]
    assert cfg["merge"]["modules"][1]["parameters"] == {"weight": 0.5}


@pytest.mark.parametrize("name", list_presets())
def test_presets_are_valid_and_generate(name):
    cfg = load_preset(name)
    assert [i for i in validate(cfg) if i.is_error] == []
    kind, doc = to_document(cfg, resolve=False)
    assert kind in ("merge", "moe")
    parse_mergekit(kind, doc)


def test_presets_cover_each_family():
    names = set(list_presets())
    assert {"linear", "slerp", "ties", "dare_ties", "passthrough", "moe"} <= names
