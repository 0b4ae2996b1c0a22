"""The configurator's view-model, driven without widgets or a browser."""

from __future__ import annotations

import pytest

from llmcombo.configuration import dump_yaml, load_preset
from llmcombo.featuremodel import paths as P
from llmcombo.generate import generate_yaml
from llmcombo.productline import feature_model, merge_methods
from llmcombo_widgets.viewmodel import (
    ChoiceView,
    FormModel,
    ListView,
    ToggleView,
    format_value,
    parse_text,
    walk_views,
)


def ties_form() -> FormModel:
    vm = FormModel()
    vm.choose("merge.method", "ties")
    vm.set_text("merge.base_model", "zoo:base")
    vm.set_text("merge.models[0].model", "zoo:domotica")
    vm.add_item("merge.models")
    vm.set_text("merge.models[1].model", "zoo:tiempo")
    for i in (0, 1):
        vm.set_toggle(f"merge.models[{i}].parameters", True)
        vm.set_text(f"merge.models[{i}].parameters.weight", "1.0")
    return vm


def keys(vm: FormModel) -> set[str]:
    return {f.key for f in vm.visible_fields()}


def test_paths_round_trip():
    assert P.parse("merge.models[1].parameters.density") == ["merge", "models", 1, "parameters", "density"]
    assert P.fmt(["merge", "models", 1, "model"]) == "merge.models[1].model"
    assert P.model_path("merge.slices[0].sources[2].layer_range") == "merge.slices.sources.layer_range"
    assert list(P.ancestors("a.b[1]")) == ["a.b[1]", "a.b", "a", ""]
    assert P.get({"merge": {"method": "ties"}}, "merge.method.ties") == {}


def test_new_form_lists_the_tree_of_the_feature_model():
    vm = FormModel()
    root = vm.view()
    family = next(p for p in root.parts if isinstance(p, ChoiceView))
    assert [name for _label, name in family.options] == [
        c.name for c in feature_model().root.groups[0].children]
    assert family.chosen == ["merge"]
    methods = vm.choice("merge.method")
    assert {name for _l, name in methods.options} == set(merge_methods())
    assert methods.chosen == []
    # the models list starts with its minimum number of entries, each with its required field
    models = vm.node("merge.models")
    assert isinstance(models, ListView) and len(models.items) == 1 and models.can_add
    model_field = vm.field("merge.models[0].model")
    assert model_field.required and model_field.kind == "model"
    assert "merge method is missing." in vm.messages_at("merge.method")
    assert not vm.can_generate
    # optional features are toggles, off
    toggle = vm.node("merge.parameters")
    assert isinstance(toggle, ToggleView) and not toggle.on


def test_switching_method_changes_the_visible_parameters():
    vm = ties_form()
    vm.set_toggle("merge.parameters", True)
    ties_keys = keys(vm)
    assert "merge.models[0].parameters.density" in ties_keys
    assert "merge.parameters.normalize" in ties_keys
    assert "merge.parameters.t" not in ties_keys
    assert "merge.base_model" in ties_keys

    vm.choose("merge.method", "slerp")
    slerp_keys = keys(vm)
    assert "merge.parameters.t" in slerp_keys
    assert "merge.models[0].parameters.density" not in slerp_keys
    assert "merge.parameters.normalize" not in slerp_keys
    # the domain in force follows the method: t in [0, 1]; SLERP needs it
    t = vm.field("merge.parameters.t")
    assert t.kind == "gradient" and "between 0 and 1" in t.placeholder  # in words
    assert any("needs t" in m for m in vm.messages_at("merge.parameters.t"))

    vm.choose("merge.method", "linear")
    linear_keys = keys(vm)
    assert "merge.base_model" not in linear_keys  # linear uses no base model
    assert "merge.parameters.normalize" in linear_keys
    assert "merge.parameters.t" not in linear_keys


def test_each_method_shows_exactly_its_parameters():
    vm = ties_form()
    vm.set_toggle("merge.parameters", True)
    vm.set_show_advanced(True)
    for name, info in merge_methods().items():
        if name == "passthrough":
            continue
        vm.choose("merge.method", name)
        shown = {k.rsplit(".", 1)[1] for k in keys(vm) if k.startswith("merge.parameters.")}
        assert shown == {p.name for p in info.params}, name
        per_model = {k.rsplit(".", 1)[1] for k in keys(vm) if k.startswith("merge.models[0].parameters.")}
        assert per_model == {p.name for p in info.input_params}, name


def test_values_made_irrelevant_are_put_aside_and_come_back():
    vm = ties_form()
    vm.set_text("merge.models[0].parameters.density", "0.4")
    vm.choose("merge.method", "linear")
    assert "density" not in vm.data["merge"]["models"][0]["parameters"]
    assert "base_model" not in vm.data["merge"]
    assert not [i for i in vm.issues if i.code == "ignored"]
    vm.choose("merge.method", "ties")
    assert vm.data["merge"]["models"][0]["parameters"]["density"] == 0.4
    assert vm.data["merge"]["base_model"] == "zoo:base"


def test_bad_value_shows_the_fields_message_and_fixing_clears_it():
    vm = ties_form()
    key = "merge.models[0].parameters.density"
    assert vm.can_generate
    vm.set_text(key, "half")  # mergekit refuses it (density 1.5 it runs: a warning)
    messages = vm.messages_at(key)
    assert messages and "half" in messages[0] and "[0, 1]" in messages[0]
    assert vm.field(key).errors
    assert not vm.can_generate
    assert "fix" in vm.mergekit_preview
    vm.set_text(key, "0.5")
    assert vm.messages_at(key) == []
    assert vm.can_generate


def test_text_that_is_not_a_number_is_explained():
    vm = ties_form()
    key = "merge.models[1].parameters.weight"
    vm.set_text(key, "heavy")
    assert any("number" in m and "heavy" in m for m in vm.messages_at(key))
    vm.set_text(key, "[0, 0.5, 1]")  # a per-layer gradient
    assert vm.get(key) == [0, 0.5, 1] and vm.messages_at(key) == []
    vm.set_text(key, "[0, 2, x]")
    assert any("gradient point 3" in m for m in vm.messages_at(key))


def test_required_parameter_points_at_the_toggle_while_it_is_off():
    vm = FormModel()
    vm.choose("merge.method", "ties")
    vm.set_text("merge.base_model", "zoo:base")
    vm.set_text("merge.models[0].model", "zoo:domotica")
    # weight is required by TIES; the per-model parameters are still off: the toggle says so
    toggle = vm.node("merge.models[0].parameters")
    assert isinstance(toggle, ToggleView) and not toggle.on
    assert any("needs a weight" in i.message for i in toggle.issues)
    vm.set_toggle("merge.models[0].parameters", True)
    assert any("needs a weight" in m for m in vm.messages_at("merge.models[0].parameters.weight"))


def test_generated_yaml_equals_the_core_generator():
    vm = ties_form()
    vm.set_text("merge.models[0].parameters.density", "0.5")
    vm.set_value("merge.dtype", "float32")
    text = vm.generate()
    assert text is not None and vm.can_generate
    assert text == generate_yaml(vm.data, resolve=False)
    assert vm.mergekit_preview == text
    assert "merge_method: ties" in text


def test_live_previews_follow_every_change_and_equal_the_core():
    vm = ties_form()
    key = "merge.models[0].parameters.density"
    seen = set()
    for text in ("0.5", "0.7", "1.5", "0.25"):
        vm.set_text(key, text)
        assert vm.yaml_preview == dump_yaml(vm.data)
        if vm.can_generate:
            assert vm.mergekit_preview == generate_yaml(vm.data, resolve=False)
            assert f"density: {text}" in vm.mergekit_preview
        else:
            assert vm.mergekit_preview.startswith("# fix 1 error")
        seen.add(vm.mergekit_preview)
    assert len(seen) == 4
    vm.choose("merge.method", "linear")  # a switch, then back: the preview is recomputed
    assert "merge_method: linear" in vm.mergekit_preview
    assert vm.mergekit_preview == generate_yaml(vm.data, resolve=False)
    vm.choose("merge.method", "ties")
    assert vm.mergekit_preview == generate_yaml(vm.data, resolve=False)
    assert vm.load_yaml("merge:\n  method: slerp\n  base_model: zoo:base\n  models:\n"
                        "    - model: zoo:base\n    - model: zoo:tiempo\n  parameters:\n    t: 0.3\n")
    assert vm.mergekit_preview == generate_yaml(vm.data, resolve=False)
    assert "merge_method: slerp" in vm.mergekit_preview


@pytest.mark.parametrize("preset", ["ties", "slerp", "linear", "dare_ties", "moe", "passthrough"])
def test_presets_load_and_generate_like_the_core(preset):
    vm = FormModel()
    assert vm.apply_preset(preset)
    cfg = dict(load_preset(preset))
    assert vm.data == cfg
    assert vm.yaml_preview == dump_yaml(cfg)
    assert vm.can_generate, vm.errors
    assert vm.generate() == generate_yaml(cfg, resolve=False)


def test_cloneable_features_respect_cardinality():
    vm = FormModel()
    vm.choose("", "moe")
    experts = vm.node("moe.experts")
    assert isinstance(experts, ListView)
    assert len(experts.items) == 2 and experts.minimum == 2 and not experts.can_remove
    with pytest.raises(ValueError):
        vm.remove_item("moe.experts", 0)
    vm.add_item("moe.experts")
    assert vm.node("moe.experts").can_remove
    vm.remove_item("moe.experts", 2)
    assert len(vm.data["moe"]["experts"]) == 2
    # an optional list (shared experts) can go down to none and disappears from the data
    shared = vm.node("moe.shared_experts")
    assert shared.minimum == 0 and shared.items == []
    vm.add_item("moe.shared_experts")
    assert len(vm.data["moe"]["shared_experts"]) == 1
    vm.remove_item("moe.shared_experts", 0)
    assert "shared_experts" not in vm.data["moe"]


def test_family_switch_keeps_the_other_family_aside():
    vm = ties_form()
    before = dict(vm.data["merge"])
    vm.choose("", "moe")
    assert "merge" not in vm.data and "moe" in vm.data
    vm.set_text("moe.base_model", "zoo:base")
    vm.choose("", "merge")
    assert vm.data["merge"] == before


def test_string_lists_and_enums():
    vm = FormModel()
    vm.choose("", "moe")
    key = "moe.experts[0].positive_prompts"
    vm.set_text(key, "apaga la luz\n\nenciende la tele\n")
    assert vm.get(key) == ["apaga la luz", "enciende la tele"]
    gate = vm.field("moe.gate_mode")
    assert gate.kind == "enum" and gate.value is None and gate.default == "hidden"
    assert [v for _l, v in gate.choices][1:] == ["hidden", "cheap_embed", "random", "uniform_random",
                                                 "hidden_avg", "hidden_last"]
    vm.set_value("moe.gate_mode", "random")
    # random gates need no prompts: the required flag follows the selection
    assert not vm.field("moe.experts[1].positive_prompts").required


def test_import_mergekit_and_load_errors():
    vm = FormModel()
    ok = vm.import_mergekit("merge_method: slerp\nbase_model: zoo:base\nmodels:\n"
                            "  - model: zoo:base\n  - model: zoo:domotica\nparameters:\n  t: 0.3\n")
    assert ok and vm.data["merge"]["method"] == "slerp"
    assert vm.field("merge.parameters.t").value == 0.3
    assert "mergekit" in vm.message
    assert not vm.import_mergekit("merge:\n  method: ties\n")  # not a mergekit document
    assert vm.message_is_error
    assert not vm.load_yaml("merge: [unclosed")
    assert "YAML" in vm.message and vm.message_is_error
    assert vm.data["merge"]["method"] == "slerp"  # a failed load leaves the form as it was


def test_save_and_load_round_trip(tmp_path):
    vm = ties_form()
    path = tmp_path / "c.yaml"
    vm.save(path)
    other = FormModel()
    assert other.load_file(path)
    assert other.data == vm.data
    assert other.yaml_preview == vm.yaml_preview


def test_listeners_are_told_of_every_change():
    vm = FormModel()
    seen = []
    vm.subscribe(lambda m: seen.append(len(m.errors)))
    vm.choose("merge.method", "linear")
    vm.set_text("merge.models[0].model", "zoo:base")
    assert len(seen) == 2 and seen[-1] < seen[0]


def test_advanced_fields_hide_until_asked_or_set():
    vm = ties_form()
    vm.set_toggle("merge.parameters", True)
    assert "merge.parameters.int8_mask" not in keys(vm)
    vm.set_show_advanced(True)
    assert "merge.parameters.int8_mask" in keys(vm)
    vm.set_value("merge.parameters.int8_mask", True)
    vm.set_show_advanced(False)
    assert "merge.parameters.int8_mask" in keys(vm)  # set values stay visible


def test_every_issue_lands_on_a_visible_node():
    vm = FormModel()
    vm.choose("merge.method", "della")
    vm.set_text("merge.models[0].model", "zoo:domotica")
    vm.set_toggle("merge.models[0].parameters", True)
    vm.set_text("merge.models[0].parameters.density", "0.5")
    vm.set_text("merge.models[0].parameters.epsilon", "0.6")
    shown = [i for n in walk_views(vm.view()) for i in getattr(n, "issues", [])]
    assert sorted(map(repr, shown)) == sorted(map(repr, vm.issues))
    assert vm.messages_at("merge.models[0].parameters.epsilon")


@pytest.mark.parametrize("kind,text,value", [
    ("number", "3", 3), ("number", "0.25", 0.25), ("number", "1e-3", 0.001), ("number", "", None),
    ("gradient", "[0, 0.5, 1]", [0, 0.5, 1]), ("gradient", "abc", "abc"),
    ("bool", "yes", True), ("range", "[0, 4]", [0, 4]), ("string_list", "a\nb", ["a", "b"]),
    ("model", "zoo:base", "zoo:base"),
])
def test_parse_and_format_text(kind, text, value):
    assert parse_text(kind, text) == value
    if value is not None and kind not in ("bool",):
        assert parse_text(kind, format_value(kind, value)) == value
