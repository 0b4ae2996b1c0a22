"""What issue 10 asked for, sentence by sentence: values read as mergekit reads them (and the
value as read shown at the field), keys mergekit ignores reported with "did you mean", a
misspelled method that hides nothing, MoE gates judged as mergekit's builder judges them."""

from __future__ import annotations

import yaml

from llmcombo.importer import as_configuration
from llmcombo.validation import validate_full
from llmcombo_widgets.viewmodel import FormModel


def issues(doc):
    return validate_full(as_configuration(doc), preflight=False)


def at(doc):
    return {i.path: i for i in issues(doc)}


def ties(**params):
    return {"merge_method": "ties", "base_model": "org/base",
            "models": [{"model": "org/a", "parameters": {"weight": 0.5, "density": 0.5}},
                       {"model": "org/b", "parameters": {"weight": 0.5, "density": 0.5}}],
            **params}


def test_yaml_11_text_numbers_are_read_as_mergekit_reads_them_and_the_form_shows_it():
    doc = {"merge_method": "karcher", "models": [{"model": "org/a"}, {"model": "org/b"}],
           "parameters": {"tol": "1e-5", "max_iter": 20.0}}
    found = at(doc)
    assert not [i for i in found.values() if i.is_error]
    assert found["merge.parameters.tol"].code == "coerced"
    assert "read as 1e-05" in found["merge.parameters.tol"].message
    assert "read as 20" in found["merge.parameters.max_iter"].message
    vm = FormModel()
    assert vm.import_mergekit(yaml.safe_dump(doc))
    assert any("read as 1e-05" in m for m in vm.messages_at("merge.parameters.tol"))
    assert vm.field("merge.parameters.tol").text == "1e-5"  # what was written stays as written


def test_a_top_level_name_is_the_products_name():
    cfg = as_configuration({"name": "my-merge", **ties()})
    assert cfg["name"] == "my-merge" and "name" not in cfg["merge"]
    assert issues({"name": "my-merge", **ties()}) == []


def test_keys_mergekit_ignores_are_warnings_with_did_you_mean():
    found = at(ties(parameters={"nomalize": True}, dype="bfloat16", select_topk=0.3))
    assert found["merge.parameters.nomalize"].hint == "Did you mean normalize?"
    assert found["merge.dype"].hint == "Did you mean dtype?"
    assert "parameters: {select_topk: ...}" in found["merge.select_topk"].hint
    assert all(not i.is_error for i in found.values())
    ta = {"merge_method": "task_arithmetic", "base_model": "org/base",
          "models": [{"model": "org/a", "parameters": {"weight": 1}}], "parameters": {"t": 0.5}}
    t = at(ta)["merge.parameters.t"]
    assert t.severity == "warning" and "slerp" in t.hint


def test_the_old_pattern_key_is_reported_with_its_new_name():
    doc = ties()
    doc["models"][0]["parameters"]["weight"] = [{"pattern": "self_attn", "value": 0.2},
                                                {"value": 0.8}]
    issue = at(doc)["merge.models[0].parameters.weight[0].pattern"]
    assert issue.severity == "warning" and issue.hint == "Did you mean filter?"
    assert "applies to every tensor" in issue.message


def test_prompts_written_as_one_text_are_refused_as_mergekit_refuses_them():
    doc = {"base_model": "org/base", "gate_mode": "hidden", "experts": [
        {"source_model": "org/a", "positive_prompts": "write code"},
        {"source_model": "org/b", "positive_prompts": ["tell a story"]}]}
    issue = at(doc)["moe.experts[0].positive_prompts"]
    assert issue.is_error and "not one text" in issue.message
    assert issue.hint == "Write it as a list: ['write code']."


def test_a_misspelled_method_hides_no_other_error_and_adds_no_warning_of_its_own():
    doc = ties(merge_method="tie")
    doc["models"][1]["parameters"] = {"density": 0.5}  # no weight: an error for TIES
    doc["models"][0]["parameters"]["density"] = 1.5   # outside the usual range: a warning
    found = issues(doc)
    errors = sorted(i.path for i in found if i.is_error)
    assert errors == ["merge.method", "merge.models[1].parameters.weight"]
    assert "Did you mean ties?" in next(i.hint for i in found if i.path == "merge.method")
    # density and weight are judged as TIES parameters: nothing is "not used by this method"
    assert not [i for i in found if i.code == "ignored"]
    assert [i.code for i in found if not i.is_error] == ["range"]


def test_sparse_upcycling_is_a_note_and_none_with_random_gates():
    same = {"base_model": "org/base", "experts": [{"source_model": "org/a"},
                                                  {"source_model": "org/a"}]}
    assert issues({**same, "gate_mode": "random"}) == []
    hidden = {**same, "gate_mode": "hidden",
              "experts": [{"source_model": "org/a", "positive_prompts": ["x"]},
                          {"source_model": "org/a", "positive_prompts": ["y"]}]}
    [note] = issues(hidden)
    assert note.severity == "warning" and "--allow-same-experts" in note.hint


def test_empty_prompts_with_cheap_or_random_gates():
    experts = [{"source_model": "org/a", "positive_prompts": [""]},
               {"source_model": "org/b", "positive_prompts": ["y"]}]
    found = issues({"base_model": "org/base", "gate_mode": "cheap_embed", "experts": experts})
    assert [(i.severity, i.code) for i in found] == [("warning", "empty")]
    # random gates read no prompt at all: [] and [""] are only "not used"
    for prompts in ([], [""]):
        experts = [{"source_model": "org/a", "positive_prompts": prompts},
                   {"source_model": "org/b", "positive_prompts": prompts}]
        found = issues({"base_model": "org/base", "gate_mode": "random", "experts": experts})
        assert not [i for i in found if i.is_error], [i.format() for i in found]


def test_a_density_of_zero_at_one_point_of_a_gradient_is_fine():
    doc = ties()
    doc["models"][0]["parameters"]["density"] = [0, 0.5, 1]
    assert issues(doc) == []


def test_what_mergekit_would_refuse_in_the_file_as_written_is_an_error():
    # llmcombo's own format lets one model be written without a list; mergekit's does not
    doc = {"merge_method": "linear", "models": {"model": "org/a", "parameters": {"weight": 1}}}
    cfg = as_configuration(doc)
    found = validate_full(cfg, preflight=False)
    assert [(i.path, i.code) for i in found if i.is_error] == [("merge.models", "mergekit")]
    # once edited, the configuration is judged as it is now
    cfg["merge"]["models"] = [cfg["merge"]["models"]]
    assert validate_full(cfg, preflight=False) == []


def test_layer_ranges_written_as_text_are_read_as_whole_numbers():
    doc = {"merge_method": "passthrough",
           "slices": [{"sources": [{"model": "org/a", "layer_range": ["0", 2.0]}]}]}
    [issue] = issues(doc)
    assert issue.code == "coerced" and "read as [0, 2]" in issue.message
