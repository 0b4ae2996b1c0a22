"""Every error rule of llmcombo is one mergekit also stops on, and shapes llmcombo only warns
about are ones mergekit runs: each case below is validated by llmcombo AND handed to mergekit
itself (its own pydantic models, then ``run_merge`` / the MoE builder through llmcombo.engine) on
tiny random models from tests/factory.py.

``error`` cases: llmcombo reports an error (at ``where`` when given) and mergekit refuses the
document or fails while merging. ``runs`` cases: llmcombo reports no error (the warning ``code``
when given) and mergekit writes a model.
"""

from __future__ import annotations

import pytest
from factory import make_family, make_model

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def m(tmp_path_factory):
    import transformers

    transformers.utils.logging.disable_progress_bar()
    root = tmp_path_factory.mktemp("truth")
    fam = {k: str(v) for k, v in make_family(root / "llama", ("base", "a", "b", "c")).items()}
    fam["q"] = str(make_model(root / "q", "qwen2"))
    fam["q2"] = str(make_model(root / "q2", "qwen2", like=fam["q"], seed=7))
    return fam


def ta(m, method="ties", pa=None, pb=None, glob=None, **extra):
    doc = {"merge_method": method, "base_model": m["base"], "dtype": "float32",
           "models": [{"model": m["a"], "parameters": pa if pa is not None else {"weight": 0.5}},
                      {"model": m["b"], "parameters": pb if pb is not None else {"weight": 0.5}}]}
    if glob is not None:
        doc["parameters"] = glob
    doc.update(extra)
    return {k: v for k, v in doc.items() if v is not None}


def two(m, method, glob=None, pa=None, pb=None, base=True, **extra):
    doc = {"merge_method": method, "dtype": "float32", "models": [{"model": m["a"]}, {"model": m["b"]}]}
    if base:
        doc["base_model"] = m["a"]
    if glob is not None:
        doc["parameters"] = glob
    if pa:
        doc["models"][0]["parameters"] = pa
    if pb:
        doc["models"][1]["parameters"] = pb
    doc.update(extra)
    return doc


def sl(*srcs, **kw):
    return {"sources": [{"model": mm, "layer_range": lr} for mm, lr in srcs], **kw}


def moe(m, gate, experts, **extra):
    return {"base_model": m["base"], "gate_mode": gate, "dtype": "float32", "experts": experts,
            **extra}


def E(model, prompts=None, **kw):  # noqa: N802 - reads like the YAML
    out = {"source_model": model, **kw}
    if prompts is not None:
        out["positive_prompts"] = prompts
    return out


# (id, kind, builder, verdict, where / warning code)
CASES = [
    # --- merges: errors mergekit shares -----------------------------------------------------
    ("unknown method", "merge", lambda m: {**ta(m), "merge_method": "tie"}, "error", "merge.method"),
    ("model_stock needs three", "merge",
     lambda m: {"merge_method": "model_stock", "base_model": m["base"], "models": [{"model": m["a"]}]},
     "error", "merge.models"),
    ("arcee_fusion takes two", "merge",
     lambda m: {"merge_method": "arcee_fusion", "base_model": m["base"],
                "models": [{"model": m["base"]}, {"model": m["a"]}, {"model": m["b"]}]},
     "error", "merge.models"),
    ("passthrough one model", "merge",
     lambda m: {"merge_method": "passthrough", "models": [{"model": m["a"]}, {"model": m["b"]}]},
     "error", "merge.models"),
    ("duplicate models", "merge",
     lambda m: {**ta(m), "models": [{"model": m["a"], "parameters": {"weight": 1}},
                                   {"model": m["a"], "parameters": {"weight": 1}}]},
     "error", "merge.models"),
    ("slice base not among sources", "merge",
     lambda m: {"merge_method": "slerp", "base_model": m["c"], "parameters": {"t": 0.5},
                "slices": [sl((m["a"], [0, 2]), (m["b"], [0, 2]))]},
     "error", "merge.slices[0].sources"),
    ("linear base without weight", "merge",
     lambda m: {"merge_method": "linear", "base_model": m["c"],
                "models": [{"model": m["a"], "parameters": {"weight": 1}},
                           {"model": m["b"], "parameters": {"weight": 1}}]},
     "error", "merge.parameters.weight"),
    ("missing weight", "merge", lambda m: ta(m, pa={"density": 0.5}),
     "error", "merge.models[0].parameters.weight"),
    ("filtered weight only", "merge",
     lambda m: ta(m, pa={"weight": [{"filter": "nomatch", "value": 0.2}]}), "runs?", "required"),
    ("slerp without t", "merge", lambda m: two(m, "slerp"), "error", "merge.parameters.t"),
    ("ties without base", "merge", lambda m: {k: v for k, v in ta(m).items() if k != "base_model"},
     "error", "merge.base_model"),
    ("nuslerp one model", "merge",
     lambda m: {"merge_method": "nuslerp", "models": [{"model": m["a"], "parameters": {"weight": 1}}]},
     "error", "merge.models"),
    ("model as a number", "merge", lambda m: {**ta(m), "models": [{"model": 7}]}, "error",
     "merge.models[0].model"),
    ("gradient mixing entries and numbers", "merge",
     lambda m: ta(m, pa={"weight": [{"filter": "mlp", "value": 0.2}, 0.5]}), "error",
     "merge.models[0].parameters.weight"),
    ("filtered entry without value", "merge",
     lambda m: ta(m, pa={"weight": [{"filter": "mlp"}]}), "error",
     "merge.models[0].parameters.weight[0]"),
    ("token source of an unknown kind", "merge",
     lambda m: ta(m, tokenizer={"source": "union", "tokens": {"hello": {"source": {"kind": "one"}}}}),
     "error", "merge.tokenizer.tokens.hello"),
    ("weight is text", "merge", lambda m: ta(m, pa={"weight": "heavy"}),
     "error", "merge.models[0].parameters.weight"),
    ("weight null", "merge", lambda m: ta(m, pa={"weight": None}),
     "error", "merge.models[0].parameters.weight"),
    ("bool from 2", "merge", lambda m: ta(m, glob={"normalize": 2}),
     "error", "merge.parameters.normalize"),
    ("int from 2.5", "merge", lambda m: two(m, "karcher", {"max_iter": 2.5}, base=False),
     "error", "merge.parameters.max_iter"),
    ("DARE negative density", "merge",
     lambda m: ta(m, "dare_ties", pa={"weight": 0.5, "density": -0.2}),
     "error", "merge.models[0].parameters.density"),
    ("DELLA density+epsilon", "merge",
     lambda m: ta(m, "della", pa={"weight": 0.5, "density": 0.9, "epsilon": 0.2}),
     "error", "merge.models[0].parameters.epsilon"),
    ("DELLA negative epsilon too wide", "merge",
     lambda m: ta(m, "della", pa={"weight": 0.5, "density": 0.5, "epsilon": -0.6}),
     "error", "merge.models[0].parameters.epsilon"),
    ("DELLA gradient reaches the edge", "merge",
     lambda m: ta(m, "della", pa={"weight": 0.5, "density": [0.5, 0.95], "epsilon": 0.1}),
     "error", "merge.models[0].parameters.epsilon"),
    ("dtype fp8", "merge", lambda m: ta(m, dtype="fp8"), "error", "merge.dtype"),
    ("out_dtype bf16", "merge", lambda m: ta(m, out_dtype="bf16"), "error", "merge.out_dtype"),
    ("unknown chat template", "merge",
     lambda m: ta(m, chat_template="chatmlx", tokenizer_source="base"), "error",
     "merge.chat_template"),
    ("short braces template", "merge",
     lambda m: ta(m, chat_template="{{ messages }}", tokenizer_source="base"), "error",
     "merge.chat_template"),
    ("negative pad", "merge",
     lambda m: ta(m, tokenizer={"source": "union", "pad_to_multiple_of": -8}), "error",
     "merge.tokenizer.pad_to_multiple_of"),
    ("models and slices", "merge",
     lambda m: {**ta(m), "slices": [sl((m["a"], [0, 2]))]}, "error", "merge"),
    ("tokenizer twice", "merge",
     lambda m: ta(m, tokenizer_source="union", tokenizer={"source": "union"}), "error",
     "merge.tokenizer"),
    ("three-number layer range", "merge",
     lambda m: {"merge_method": "passthrough", "slices": [sl((m["a"], [0, 2, 3]))]}, "error",
     "merge.slices[0].sources[0].layer_range"),
    ("negative layer", "merge",
     lambda m: {"merge_method": "passthrough", "slices": [sl((m["a"], [-1, 1]))]}, "error",
     "merge.slices[0].sources[0].layer_range"),
    ("empty module", "merge", lambda m: {"merge_method": "linear", "modules": {"default": {}}},
     "error", "merge.modules[0]"),
    # --- merges: shapes mergekit runs (warnings at most) -------------------------------------
    ("density 0", "merge", lambda m: ta(m, pa={"weight": 0.5, "density": 0}), "runs", None),
    ("density 1.5", "merge", lambda m: ta(m, pa={"weight": 0.5, "density": 1.5}), "runs", "range"),
    ("density -0.2 TIES", "merge", lambda m: ta(m, pa={"weight": 0.5, "density": -0.2}), "runs",
     "range"),
    ("density gradient through 0", "merge",
     lambda m: ta(m, "dare_ties", pa={"weight": 0.5, "density": [0, 0.5, 1]}), "runs", None),
    ("DELLA small negative epsilon", "merge",
     lambda m: ta(m, "della", pa={"weight": 0.5, "density": 0.5, "epsilon": -0.1}), "runs",
     "range"),
    ("slerp t 1.5", "merge", lambda m: two(m, "slerp", {"t": 1.5}), "runs", "range"),
    ("nearswap t -1", "merge", lambda m: two(m, "nearswap", {"t": -1}), "runs", "range"),
    ("karcher max_iter 0", "merge", lambda m: two(m, "karcher", {"max_iter": 0}, base=False),
     "runs", "range"),
    ("tol as YAML 1.1 text", "merge",
     lambda m: two(m, "karcher", {"max_iter": "20", "tol": "1e-5"}, base=False), "runs", "coerced"),
    ("normalize yes", "merge", lambda m: ta(m, glob={"normalize": "yes"}), "runs", "coerced"),
    ("weight true", "merge", lambda m: ta(m, "task_arithmetic", pa={"weight": True}), "runs",
     "coerced"),
    ("sce select_topk 1.5", "merge", lambda m: ta(m, "sce", {}, {}, glob={"select_topk": 1.5}),
     "runs", "range"),
    ("ram negative epsilon", "merge", lambda m: ta(m, "ram", {}, {}, glob={"epsilon": -1}),
     "runs", "range"),
    ("tokenizer base without base model", "merge",
     lambda m: two(m, "linear", None, {"weight": 1}, {"weight": 1}, base=False,
                   tokenizer_source="base"), "runs", "requires"),
    ("empty layer range", "merge",
     lambda m: {"merge_method": "passthrough", "slices": [sl((m["a"], [0, 1])), sl((m["b"], [1, 1]))]},
     "runs", "range"),
    ("old pattern key", "merge",
     lambda m: ta(m, pa={"weight": [{"pattern": "self_attn", "value": 0.2}, {"value": 0.8}]}),
     "runs", "ignored"),
    ("misspelled keys", "merge",
     lambda m: {**ta(m, glob={"nomalize": True}), "dype": "float16", "select_topk": 0.5},
     "runs", "unknown"),
    ("parameter of another method", "merge",
     lambda m: ta(m, "task_arithmetic", glob={"t": 0.5}), "runs", "ignored"),
    ("chat templates mergekit reads", "merge",
     lambda m: ta(m, chat_template="{% for m in messages %}{{ m.content }}{% endfor %}",
                  tokenizer_source="base"), "runs", None),
    ("torch dtype names", "merge", lambda m: ta(m, dtype="torch.float32", out_dtype="float16"),
     "runs", None),
    ("top-level name", "merge", lambda m: {"name": "my-merge", **ta(m)}, "runs", None),
    ("pad 0", "merge", lambda m: ta(m, tokenizer={"source": "union", "pad_to_multiple_of": 0}),
     "runs", None),
    ("empty list is unset", "merge",
     lambda m: ta(m, pa={"weight": 0.5, "density": []}), "runs", "empty"),
    ("modules default", "merge",
     lambda m: {"merge_method": "linear", "modules": {"default": {
         "models": [{"model": m["a"]}, {"model": m["b"]}], "parameters": {"weight": 0.5}}}},
     "runs", None),
    ("forty-point gradient", "merge",
     lambda m: ta(m, "task_arithmetic", pa={"weight": [i / 40 for i in range(40)]}), "runs", None),
    # --- mixtures of experts: errors ---------------------------------------------------------
    ("unknown gate", "moe", lambda m: moe(m, "smart", [E(m["a"], ["x"]), E(m["b"], ["y"])]),
     "error", "moe.gate_mode"),
    ("no prompts, hidden", "moe", lambda m: moe(m, "hidden", [E(m["a"]), E(m["b"], ["y"])]),
     "error", "moe.experts[0].positive_prompts"),
    ("empty prompt list", "moe", lambda m: moe(m, "cheap_embed", [E(m["a"], []), E(m["b"], ["y"])]),
     "error", "moe.experts[0].positive_prompts"),
    ("no prompts, uniform_random", "moe",
     lambda m: moe(m, "uniform_random", [E(m["a"]), E(m["b"])]), "error",
     "moe.experts[0].positive_prompts"),
    ("identical prompts", "moe",
     lambda m: moe(m, "hidden", [E(m["a"], ["same"]), E(m["b"], ["same"])]), "error", "moe.experts"),
    ("identical empty prompts (phixtral style)", "moe",
     lambda m: moe(m, "cheap_embed", [E(m["a"], [""]), E(m["b"], [""])]), "error", "moe.experts"),
    ("one expert, hidden", "moe",
     lambda m: moe(m, "hidden", [E(m["a"], ["x"])], experts_per_token=1), "error", "moe.experts"),
    ("prompts as one text", "moe",
     lambda m: moe(m, "hidden", [E(m["a"], "write code"), E(m["b"], ["y"])]), "error",
     "moe.experts[0].positive_prompts"),
    ("zero experts per token", "moe",
     lambda m: moe(m, "random", [E(m["a"]), E(m["b"])], experts_per_token=0), "error",
     "moe.experts_per_token"),
    ("more per token than experts", "moe",
     lambda m: moe(m, "random", [E(m["a"]), E(m["b"])], experts_per_token=3), "error",
     "moe.experts_per_token"),
    ("unknown architecture", "moe",
     lambda m: moe(m, "random", [E(m["a"]), E(m["b"])], architecture="gpt"), "error",
     "moe.architecture"),
    ("mixtral with shared", "moe",
     lambda m: moe(m, "random", [E(m["a"]), E(m["b"])], architecture="mixtral",
                   shared_experts=[E(m["base"])]), "error", "moe.shared_experts"),
    ("two shared experts", "moe",
     lambda m: moe(m, "random", [E(m["a"]), E(m["b"])], shared_experts=[E(m["base"]), E(m["a"])]),
     "error", "moe.shared_experts"),
    ("shared prompts for some", "moe",
     lambda m: moe(m, "hidden", [E(m["a"], ["a"]), E(m["b"], ["b"])],
                   shared_experts=[E(m["base"], ["s"]), E(m["a"])]), "error", "moe.shared_experts"),
    ("shared expert from elsewhere", "moe",
     lambda m: moe(m, "hidden", [E(m["a"], ["a"]), E(m["b"], ["b"])], shared_experts=[E(m["c"])]),
     "error", "moe.shared_experts[0].source_model"),
    ("qwen shared needs prompts", "moe",
     lambda m: moe(m, "hidden", [E(m["a"], ["a"]), E(m["b"], ["b"])], architecture="qwen",
                   shared_experts=[E(m["base"])]), "error", "moe.shared_experts"),
    ("moe dtype fp8", "moe", lambda m: moe(m, "random", [E(m["a"]), E(m["b"])], dtype="fp8"),
     "error", "moe.dtype"),
    # --- mixtures of experts: shapes mergekit builds -----------------------------------------
    ("sparse upcycling, random", "moe", lambda m: moe(m, "random", [E(m["a"]), E(m["a"])]),
     "runs", None),
    ("same model, hidden, allowed", "moe",
     lambda m: moe(m, "hidden", [E(m["a"], ["x"]), E(m["a"], ["y"])]), "runs+allow", "experts"),
    ("random gates ignore prompts", "moe",
     lambda m: moe(m, "random", [E(m["a"], ["same"]), E(m["b"], ["same"])]), "runs", "ignored"),
    ("one empty prompt", "moe",
     lambda m: moe(m, "cheap_embed", [E(m["a"], [""]), E(m["b"], ["x"])]), "runs", "empty"),
    ("one expert, random", "moe",
     lambda m: moe(m, "random", [E(m["a"])], experts_per_token=1), "runs", "count"),
    ("hidden_avg gates", "moe", lambda m: moe(m, "hidden_avg", [E(m["a"], ["x"]), E(m["b"], ["y"])]),
     "runs", None),
    ("architecture by prefix", "moe",
     lambda m: moe(m, "random", [E(m["a"]), E(m["b"])], architecture="Mixtral"), "runs", None),
    ("negative noise", "moe",
     lambda m: moe(m, "random", [E(m["a"], noise_scale=-1), E(m["b"])]), "runs", None),
    ("experts per token as text", "moe",
     lambda m: moe(m, "random", [E(m["a"]), E(m["b"])], experts_per_token="2"), "runs", "coerced"),
    ("deepseek shared base", "moe",
     lambda m: moe(m, "hidden", [E(m["a"], ["a"]), E(m["b"], ["b"])], shared_experts=[E(m["base"])]),
     "runs", None),
    ("qwen shared base with prompts", "moe",
     lambda m: moe(m, "hidden", [E(m["a"], ["a"]), E(m["b"], ["b"])], architecture="qwen",
                   shared_experts=[E(m["base"], ["s"])]), "runs", None),
]


def llmcombo_issues(doc):
    from llmcombo.importer import as_configuration
    from llmcombo.validation import validate_full

    return validate_full(as_configuration(doc), preflight=False)


def mergekit_outcome(kind, doc, out, allow=False) -> str | None:
    """None when mergekit writes the model, else why it did not."""
    from llmcombo.engine.execute import execute
    from llmcombo.engine.schema import parse
    from llmcombo.progress import CancelToken, NullProgress
    from llmcombo.run import RunOptions

    try:
        parsed = parse(kind, doc)
    except Exception as exc:  # noqa: BLE001 - mergekit's refusal, whatever its type
        return f"refused: {type(exc).__name__}: {exc}"
    mo = RunOptions(device="cpu").merge_options()
    try:
        execute(kind, parsed, out, mo, yaml_text="", progress=NullProgress(), cancel=CancelToken(),
                allow_same_experts=allow, write_model_card=False)
    except BaseException as exc:  # noqa: BLE001 - SystemExit, RuntimeError, AttributeError ...
        return f"failed: {type(exc).__name__}: {exc}"
    return None if (out / "config.json").is_file() else "no model written"


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_llmcombo_errors_exactly_where_mergekit_fails(case, m, tmp_path):
    _id, kind, build, verdict, where = case
    doc = build(m)
    issues = llmcombo_issues(doc)
    errors = [i for i in issues if i.is_error]
    outcome = mergekit_outcome(kind, doc, tmp_path / "out", allow=verdict == "runs+allow")
    if verdict == "error":
        assert outcome is not None, "mergekit ran it: llmcombo must not call it an error"
        assert errors, f"mergekit stops ({outcome}) but llmcombo reports no error"
        assert any(i.path == where for i in errors), [i.format() for i in errors]
    elif verdict == "runs?":  # a warning: it depends on the tensor names, which llmcombo cannot see
        assert not errors, [i.format() for i in errors]
        assert any(i.code == where for i in issues)
    else:
        assert outcome is None, outcome
        assert not errors, [i.format() for i in errors]
        if where:
            assert any(i.code == where for i in issues), [i.format() for i in issues]


def test_the_cases_cover_both_verdicts_and_every_error_code():
    verdicts = [c[3] for c in CASES]
    assert verdicts.count("error") >= 40 and verdicts.count("runs") >= 30


def test_module_names_come_from_mergekits_description_of_the_architecture(m, tmp_path):
    from llmcombo.importer import as_configuration
    from llmcombo.validation import validate_full

    def doc(name):
        return {"merge_method": "linear", "modules": {name: {"models": [
            {"model": m["a"], "parameters": {"weight": 0.5}},
            {"model": m["b"], "parameters": {"weight": 0.5}}]}}}

    wrong = validate_full(as_configuration(doc("text_decoder")))
    assert [i.path for i in wrong if i.is_error] == ["merge.modules[0].name"]
    assert "default" in wrong[0].hint
    assert mergekit_outcome("merge", doc("text_decoder"), tmp_path / "x") is not None
    assert not [i for i in validate_full(as_configuration(doc("default"))) if i.is_error]
    assert mergekit_outcome("merge", doc("default"), tmp_path / "y") is None


@pytest.mark.parametrize("docs, where", [
    ([{"name": "x", "merge_method": "linear"}, {"name": "x", "merge_method": "linear"}],
     "stages[1].name"),
    ([{"merge_method": "linear"}, {"merge_method": "linear"}], "stages[1].name"),
    ([{"name": "x", "merge_method": "linear", "other": "y"},
      {"name": "y", "merge_method": "linear", "other": "x"}], "stages[0].merge"),
], ids=["duplicate names", "two unnamed stages", "a cycle"])
def test_stage_errors_are_mergekit_multimerges_refusals(docs, where, m, tmp_path):
    """mergekit-multimerge's own load_config / make_tasks refuse what llmcombo calls an error."""
    import yaml as _yaml
    from mergekit.scripts.multimerge import load_config, make_tasks

    from llmcombo.configuration import Documents
    from llmcombo.importer import as_configuration
    from llmcombo.run import RunOptions
    from llmcombo.validation import validate_full

    full = []
    for d in docs:
        d = dict(d)
        other = d.pop("other", None)
        d["models"] = [{"model": other or m["a"], "parameters": {"weight": 0.5}},
                       {"model": m["b"], "parameters": {"weight": 0.5}}]
        full.append(d)
    errors = [i for i in validate_full(as_configuration(Documents(full)), preflight=False)
              if i.is_error]
    assert any(i.path == where for i in errors), [i.format() for i in errors]
    text = _yaml.safe_dump_all(full)
    with pytest.raises(ValueError):
        configs, deps = load_config(text, str(tmp_path))
        make_tasks(configs, deps, RunOptions(device="cpu").merge_options(), str(tmp_path),
                   str(tmp_path / "out"), True)
