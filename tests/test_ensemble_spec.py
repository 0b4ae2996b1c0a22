"""The ensemble branch of the feature model: validation issues with paths, generation of the
ensemble spec, model-existence checks, loading errors. No model is loaded here."""

import pytest

from llmcombo.cli import main
from llmcombo.errors import OfflineError, UserError
from llmcombo.generate import to_document
from llmcombo.productline import family_of, feature_model


def router(**over):
    cfg = {"selector": {"kind": "label_model", "model": "zoo:selector", "threshold": 0.6},
           "routes": [{"label": "LLM1", "model": "zoo:domotica", "keywords": ["luz"]},
                      {"label": "LLM2", "model": "zoo:tiempo", "keywords": ["tiempo"]}],
           "fallback": "LLM1"}
    cfg.update(over)
    return {"ensemble": {"router": cfg}}


def vote(**over):
    cfg = {"members": [{"model": "zoo:domotica"}], "samples": 3,
           "sampling": {"temperature": 1.0, "seed": 0}}
    cfg.update(over)
    return {"ensemble": {"vote": cfg}}


def pipeline(*stages):
    stages = stages or ({"model": "zoo:domotica"},
                        {"model": "zoo:base", "template": "{input} es", "output": "text"})
    return {"ensemble": {"pipeline": {"stages": list(stages)}}}


def errors(data):
    return {i.path: i for i in feature_model().validate(data) if i.is_error}


@pytest.mark.parametrize("data", [router(), vote(), pipeline(),
                                  vote(members=[{"model": "zoo:domotica"}, {"model": "zoo:tiempo"},
                                                {"model": "zoo:base"}], samples=1),
                                  router(selector={"kind": "keywords"}),
                                  vote(decide="judge", judge={"kind": "function",
                                                              "function": "known_command"})])
def test_valid_ensembles_have_no_errors(data):
    assert errors(data) == {}
    assert family_of(data) == "ensemble"


def test_template_without_input_is_an_error_at_its_path():
    errs = errors(pipeline({"model": "zoo:domotica"}, {"model": "zoo:base", "template": "hola"}))
    assert list(errs) == ["ensemble.pipeline.stages[1].template"]
    assert "{input}" in errs["ensemble.pipeline.stages[1].template"].message


def test_router_with_one_route():
    errs = errors(router(routes=[{"label": "LLM1", "model": "zoo:domotica"}]))
    assert "ensemble.router.routes" in errs
    assert "at least 2" in errs["ensemble.router.routes"].message


def test_unknown_zoo_member_is_an_error_with_a_suggestion():
    errs = errors(vote(members=[{"model": "zoo:domotika"}]))
    issue = errs["ensemble.vote.members[0].model"]
    assert "domotika" in issue.message and "zoo:domotica" in issue.hint


def test_fallback_must_name_a_route():
    errs = errors(router(fallback="LLM3"))
    issue = errs["ensemble.router.fallback"]
    assert "LLM3" in issue.message and "LLM1" in issue.message


def test_duplicate_route_labels():
    data = router(routes=[{"label": "LLM1", "model": "zoo:domotica"},
                          {"label": "LLM1", "model": "zoo:tiempo"}])
    assert "ensemble.router.routes[1].label" in errors(data)


def test_even_number_of_votes_needs_a_tie_rule():
    two = vote(members=[{"model": "zoo:domotica"}, {"model": "zoo:tiempo"}], samples=1)
    errs = errors(two)
    assert list(errs) == ["ensemble.vote.tie_break"]
    assert "tie" in errs["ensemble.vote.tie_break"].message
    assert errors(vote(samples=4)).keys() == {"ensemble.vote.tie_break"}
    two["ensemble"]["vote"]["tie_break"] = "likelihood"
    assert errors(two) == {}
    assert errors(vote(samples=5)) == {}


def test_a_vote_needs_two_answers():
    errs = errors(vote(samples=1))
    assert "ensemble.vote.samples" in errs
    # one member and no samples given: three answers by default
    data = vote()
    del data["ensemble"]["vote"]["samples"]
    assert errors(data) == {}
    assert to_document(data, resolve=False)[1]["samples"] == 3


def test_judge_needed_when_the_judge_decides():
    assert "ensemble.vote.judge" in errors(vote(decide="judge"))
    assert "ensemble.vote.judge" in errors(vote(samples=4, tie_break="judge"))
    errs = errors(vote(decide="judge", judge={"kind": "model"}))
    assert "ensemble.vote.judge.model" in errs


def test_selector_kinds_need_their_route_data():
    emb = router(selector={"kind": "embedding", "model": "zoo:base"},
                 routes=[{"label": "LLM1", "model": "zoo:domotica", "examples": ["apaga la luz"]},
                         {"label": "LLM2", "model": "zoo:tiempo"}])
    errs = errors(emb)
    assert list(errs) == ["ensemble.router.routes[1].examples"]
    assert "example prompts" in errs["ensemble.router.routes[1].examples"].message
    kw = router(selector={"kind": "keywords"},
                routes=[{"label": "LLM1", "model": "zoo:domotica", "keywords": ["luz"]},
                        {"label": "LLM2", "model": "zoo:tiempo"}])
    assert list(errors(kw)) == ["ensemble.router.routes[1].keywords"]
    assert "ensemble.router.selector.model" in errors(router(selector={"kind": "label_model"}))


def test_ignored_and_suspicious_settings_are_warnings():
    issues = feature_model().validate(router(selector={"kind": "keywords", "model": "zoo:base"}))
    assert [(i.severity, i.path) for i in issues] == [("warning", "ensemble.router.selector.model")]
    greedy = feature_model().validate(vote(sampling={"temperature": 0.0}))
    assert [(i.severity, i.path) for i in greedy] == [("warning", "ensemble.vote.sampling.temperature")]


@pytest.mark.parametrize("data", [
    {"ensemble": "router"}, {"ensemble": {"router": "x"}}, {"ensemble": {"vote": {"members": "a"}}},
    {"ensemble": {"router": {"routes": [1, None, "x"], "fallback": 3, "selector": []}}},
    {"ensemble": {"vote": {"members": [{"model": 3}], "samples": "many", "sampling": 2}}},
    {"ensemble": {"pipeline": {"stages": [{"model": "zoo:base", "template": 5}]}, "vote": {}}},
])
def test_garbage_gives_issues_not_exceptions(data):
    issues = feature_model().validate(data)
    assert any(i.is_error for i in issues)


def test_generated_spec_fills_defaults_and_keeps_the_user_choices():
    kind, spec = to_document(router(), resolve=False)
    assert kind == "router"
    assert spec["llmcombo_ensemble"] == 1 and spec["kind"] == "router"
    assert spec["selector"] == {"kind": "label_model", "threshold": 0.6, "model": "zoo:selector",
                                "ref": "zoo:selector", "template": "[ORDEN] {input} [COMANDO]",
                                "backend": "transformers"}
    assert [r["label"] for r in spec["routes"]] == ["LLM1", "LLM2"]
    assert spec["routes"][0]["output"] == "command" and spec["fallback"] == "LLM1"
    kind, spec = to_document(vote(samples=4, tie_break="random"), resolve=False)
    assert (kind, spec["samples"], spec["tie_break"], spec["decide"]) == ("vote", 4, "random",
                                                                           "majority")
    assert spec["sampling"] == {"temperature": 1.0, "top_k": 0, "top_p": 1.0, "seed": 0}


def test_generate_refuses_an_invalid_ensemble():
    with pytest.raises(UserError) as exc:
        to_document(router(fallback="nope"), resolve=False)
    assert "ensemble.router.fallback" in str(exc.value)


def test_cli_generate_writes_the_spec(tmp_path, capsys):
    from llmcombo.configuration import dump_yaml

    cfg = tmp_path / "router.yaml"
    cfg.write_text(dump_yaml(router(selector={"kind": "keywords"})))
    assert main(["generate", str(cfg), "-o", str(tmp_path / "spec.yaml")]) == 0
    import yaml

    spec = yaml.safe_load((tmp_path / "spec.yaml").read_text())
    assert spec["kind"] == "router" and spec["selector"] == {"kind": "keywords", "threshold": 0.5}
    assert all(r["model"].startswith("/") for r in spec["routes"])  # zoo refs resolved


def test_missing_local_model_and_offline_hub_model(tmp_path, monkeypatch):
    from llmcombo import preflight
    from llmcombo.ensemble.spec import check_models

    monkeypatch.setattr(preflight.models, "hub_reachable", lambda *a, **k: False)
    data = vote(members=[{"model": str(tmp_path / "nope")}, {"model": "someone/some-model"},
                         {"model": "zoo:domotica"}], samples=1)
    assert errors(data) == {}  # the feature model does not read folders
    found = {(i.severity, i.path) for i in check_models(data)}
    assert ("error", "ensemble.vote.members[0].model") in found
    assert ("warning", "ensemble.vote.members[1].model") in found
    assert not any(p == "ensemble.vote.members[2].model" and s == "error" for s, p in found)


def test_loading_bad_products_raises_user_errors(tmp_path, monkeypatch):
    from llmcombo import preflight
    from llmcombo.ensemble import load_product

    with pytest.raises(UserError) as exc:
        load_product(router(fallback="nope"))
    assert "ensemble.router.fallback" in str(exc.value)
    with pytest.raises(UserError, match="not found"):
        load_product(str(tmp_path / "no-model")).answer("hola")
    monkeypatch.setattr(preflight.models, "hub_reachable", lambda *a, **k: False)
    with pytest.raises(OfflineError, match="Hugging Face Hub"):
        load_product("someone/some-model").answer("hola")
    with pytest.raises(UserError, match="merge"):
        load_product({"merge": {"method": "linear"}})


def test_keyword_selector_ignores_case_and_accents_and_matches_word_starts():
    from llmcombo.ensemble.selectors import KeywordSelector

    sel = KeywordSelector([{"label": "LLM1", "keywords": ["luz", "persiana", "aire acond"]},
                           {"label": "LLM2", "keywords": ["llov", "tiempo", "calor"]}])
    got = sel.select(["Apaga la LUZ del salón", "¿Lloverá mañana?", "hola", "pon el aire acondicionado",
                      "luz y tiempo"])
    assert [c.label for c in got] == ["LLM1", "LLM2", None, "LLM1", None]
    assert got[0].confidence == 1.0 and "no keyword" in got[2].reason and "equally" in got[4].reason
