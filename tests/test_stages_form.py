"""Multi-stage merges and modules in the form: the configurator is generated from the feature
model, so the new parts appear without widget code. Driven through the view-model (no
widgets, no browser), as tests/test_viewmodel.py does."""

from __future__ import annotations

import textwrap

import yaml

from llmcombo.generate import generate_yaml
from llmcombo_widgets.viewmodel import ChoiceView, FormModel, ListView, SectionView


def two_stage_form() -> FormModel:
    vm = FormModel()
    vm.choose("", "stages")
    vm.set_text("stages[0].name", "mezcla")
    # a new stage starts with nothing chosen for its inputs (see test_a_new_stage below)
    vm.choose("stages[0].merge", "models")
    vm.choose("stages[0].merge.method", "ties")
    vm.set_text("stages[0].merge.base_model", "zoo:base")
    vm.set_text("stages[0].merge.models[0].model", "zoo:domotica")
    vm.add_item("stages[0].merge.models")
    vm.set_text("stages[0].merge.models[1].model", "zoo:tiempo")
    for i in (0, 1):
        vm.set_toggle(f"stages[0].merge.models[{i}].parameters", True)
        vm.set_text(f"stages[0].merge.models[{i}].parameters.weight", "0.5")
    vm.add_item("stages")
    vm.choose("stages[1].merge", "models")
    vm.choose("stages[1].merge.method", "slerp")
    vm.set_text("stages[1].merge.base_model", "zoo:base")
    vm.set_text("stages[1].merge.models[0].model", "zoo:base")
    vm.add_item("stages[1].merge.models")
    vm.set_text("stages[1].merge.models[1].model", "mezcla")  # the first stage's result
    vm.set_toggle("stages[1].merge.parameters", True)
    vm.set_text("stages[1].merge.parameters.t", "0.5")
    return vm


def test_stages_are_a_family_of_the_form():
    vm = FormModel()
    family = next(p for p in vm.view().parts if isinstance(p, ChoiceView))
    assert "stages" in [name for _label, name in family.options]
    vm.choose("", "stages")
    stages = vm.node("stages")
    assert isinstance(stages, ListView) and len(stages.items) == 1 and stages.can_add
    stage = stages.items[0]
    assert isinstance(stage, SectionView)
    assert vm.field("stages[0].name") is not None
    # each stage holds an ordinary merge: its method choice, its inputs (models, slices or
    # modules); the form's default instance does not descend into a stage's mandatory merge, so
    # the inputs start unchosen and the user picks them
    assert vm.choice("stages[0].merge.method") is not None
    inputs = vm.choice("stages[0].merge")
    assert [n for _l, n in inputs.options] == ["models", "slices", "modules"]
    vm.choose("stages[0].merge", "models")
    assert isinstance(vm.node("stages[0].merge.models"), ListView)


def test_a_two_stage_merge_built_in_the_form_generates_mergekit_multimerge_documents():
    vm = two_stage_form()
    assert vm.errors == [], [i.format() for i in vm.errors]
    docs = list(yaml.safe_load_all(generate_yaml(vm.configuration(), resolve=False)))
    assert [d.get("name") for d in docs] == ["mezcla", None]
    assert docs[1]["merge_method"] == "slerp"
    assert {"model": "mezcla"} in docs[1]["models"]


def test_each_stage_is_judged_by_its_own_method():
    vm = two_stage_form()
    # t belongs to SLERP (stage 2); in the TIES stage it is a parameter that method does not use
    vm.set_toggle("stages[0].merge.parameters", True)
    vm.set_text("stages[0].merge.parameters.t", "0.3")
    at = {i.path: i for i in vm.issues}
    assert at["stages[0].merge.parameters.t"].code == "ignored"
    assert "stages[1].merge.parameters.t" not in at
    # and a stage's own rules point into that stage: SLERP takes exactly two models
    vm.add_item("stages[1].merge.models")
    vm.set_text("stages[1].merge.models[2].model", "zoo:tiempo")
    messages = vm.messages_at("stages[1].merge.models")
    assert any("exactly 2" in m for m in messages), messages
    assert not vm.messages_at("stages[0].merge.models")


def test_stage_names_must_be_unique_and_the_message_is_at_the_name():
    vm = two_stage_form()
    vm.set_text("stages[1].name", "mezcla")
    assert any("mezcla" in m and "duplicate" in m for m in vm.messages_at("stages[1].name"))
    assert not vm.can_generate


def test_a_mergekit_multimerge_file_is_imported_into_the_form():
    text = textwrap.dedent("""
        name: uno
        merge_method: linear
        models:
          - model: org/a
            parameters: {weight: 0.5}
          - model: org/b
            parameters: {weight: 0.5}
        ---
        merge_method: task_arithmetic
        base_model: org/base
        models:
          - model: uno
            parameters: {weight: 1.0}
    """)
    vm = FormModel()
    assert vm.import_mergekit(text)
    assert vm.family == "stages"
    assert vm.field("stages[0].name").value == "uno"
    assert vm.field("stages[1].merge.models[0].model").value == "uno"
    assert vm.errors == []


def test_modules_are_a_list_of_named_modules_in_the_form():
    vm = FormModel()
    vm.choose("merge.method", "linear")
    vm.choose("merge", "modules")
    modules = vm.node("merge.modules")
    assert isinstance(modules, ListView) and len(modules.items) == 1
    assert vm.field("merge.modules[0].name").required
    assert vm.choice("merge.modules[0]") is not None  # models or slices, per module
    vm.set_text("merge.modules[0].name", "default")
    vm.set_text("merge.modules[0].models[0].model", "org/a")
    vm.set_toggle("merge.modules[0].models[0].parameters", True)
    vm.set_text("merge.modules[0].models[0].parameters.weight", "1")
    assert vm.errors == [], [i.format() for i in vm.errors]
    doc = yaml.safe_load(generate_yaml(vm.configuration(), resolve=False))
    assert doc["modules"] == {"default": {"models": [{"model": "org/a",
                                                      "parameters": {"weight": 1}}]}}

