"""The llama_cpp backend of ensemble members against the transformers one, on tiny models taught
the seed's commands here (tests/llama_factory.py: markers that swallow spaces and a padded
vocabulary, like the zoo's), plus the rules about backends.

Equality is checked on an f32 GGUF (the same numbers as transformers up to float rounding);
members that name a folder get the cached f16 conversion."""

from __future__ import annotations

import json

import pytest

import llama_factory as F
from llmcombo.cli import main
from llmcombo.ensemble import load_product
from llmcombo.ensemble import members as M
from llmcombo.errors import UserError
from llmcombo.gguf import export as gx
from llmcombo.productline import feature_model

NATURAL = ["apaga la luz del salon", "Apaga la luz del salón, por favor", "¿qué tiempo hace?",
           "enciende la calefaccion del baño", "QUE TIEMPO HARA MAÑANA EN MADRID",
           "sube la persiana  del dormitorio", "pon música"]


@pytest.fixture(scope="module")
def models(tmp_path_factory, llama_cpp, gguf_cache):
    """Folders (taught the seed's commands / the LLM1-LLM2 selector) and the f32 GGUF of the
    first."""
    root = tmp_path_factory.mktemp("llama-models")
    seed = F.model_folder(root / "domotica", train=F.SEED_PAIRS, strip_markers=True,
                          pad_vocab=True, seed=1)
    selector = F.model_folder(root / "selector", train=F.SELECTOR_PAIRS, strip_markers=True,
                              pad_vocab=True, seed=2)
    f32 = gx.export_gguf(seed, root / "domotica-f32.gguf", "f32").path
    return {"seed": seed, "selector": selector, "f32": f32}


@pytest.fixture(scope="module")
def pair(models):
    """The same model on both backends."""
    return M.load_model(str(models["seed"])), M.load_model(str(models["f32"]))


def prompts():
    return [F.prompt(t) for t in NATURAL]


# ---------------------------------------------------------------------------------------------
# the three capabilities, against transformers
# ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_greedy_answers_are_transformers_answers(pair):
    hf, ll = pair
    assert ll.backend == "llama_cpp" and ll.threads == 1  # a tiny model: one thread
    a = M.generate(hf, prompts(), output="command")
    b = M.generate(ll, prompts(), output="command")
    for x, y in zip(a, b):
        assert (x[0].text, x[0].answer, x[0].tokens) == (y[0].text, y[0].answer, y[0].tokens)
        assert y[0].logprob == pytest.approx(x[0].logprob, abs=5e-3)
    assert a[0][0].answer == "LUZ_SL OFF"  # it learned the seed's command


@pytest.mark.slow
def test_scores_match_transformers(pair):
    hf, ll = pair
    options = ["LUZ_SL OFF", "LUZ_SL ON", "TIEMPO HOY"]
    for many in (prompts()[:2], prompts()):  # below and above SHARED_CACHE_FROM
        a, b = M.score_options(hf, many, options), M.score_options(ll, many, options)
        for row_a, row_b in zip(a, b):
            for x, y in zip(row_a, row_b):
                assert y.logprobs == pytest.approx(x.logprobs, abs=5e-3)  # float rounding
                assert y.greedy == x.greedy
    conts = ["LUZ_SL OFF"] * len(prompts())
    assert M.score(ll, prompts(), conts) == pytest.approx(M.score(hf, prompts(), conts), abs=5e-3)


@pytest.mark.slow
@pytest.mark.parametrize("layer", [0, 1, 2, -1, -2])
def test_embeddings_of_every_layer_match_transformers(pair, layer):
    hf, ll = pair
    a, b = M.embed(hf, prompts(), layer), M.embed(ll, prompts(), layer)
    assert a.shape == b.shape
    assert float((a * b).sum(-1).min()) > 0.9999


@pytest.mark.slow
def test_a_layer_that_does_not_exist_is_the_same_error(pair):
    for lm in pair:
        with pytest.raises(UserError, match="layer 7 does not exist: the model has 2 layers"):
            M.embed(lm, prompts(), 7)


# ---------------------------------------------------------------------------------------------
# the vote: N answers of one model as N sequences of one decode loop
# ---------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("n", [3, 5])
def test_vote_samples_n_answers_in_one_decode_loop_not_n(pair, n):
    _, ll = pair
    prompt, max_new = F.prompt("apaga la luz del salon"), 4
    ll.decode_calls = 0
    gens = M.generate(ll, [prompt], n=n, max_new_tokens=max_new, temperature=3.0, seed=7)[0]
    longest = max(g.tokens for g in gens)
    batched = ll.decode_calls
    assert len(gens) == n
    assert batched == 1 + min(longest, max_new - 1)  # the prompt once, then one per step
    ll.decode_calls = 0
    expected = 0
    for i in range(n):  # what sampling them one by one costs: a loop each
        g = M.generate(ll, [prompt], n=1, max_new_tokens=max_new, temperature=3.0,
                       seed=100 + i)[0][0]
        expected += 1 + min(g.tokens, max_new - 1)
    assert ll.decode_calls == expected >= 2 * n > max_new >= batched  # N loops against one


@pytest.mark.slow
def test_the_vote_product_uses_one_decode_loop(models):
    vote = load_product({"ensemble": {"vote": {
        "members": [{"model": str(models["f32"])}], "samples": 5,
        "sampling": {"temperature": 3.0, "seed": 0}}}})
    lm = vote.voters[0].lm
    lm.decode_calls = 0
    answer = vote.answer("apaga la luz del salon")
    assert answer.trace["n"] == 5 and len(answer.trace["samples"]) == 5
    assert lm.decode_calls <= 1 + vote.voters[0].max_new_tokens  # not 5 loops
    assert {s["backend"] for s in answer.trace["samples"]} == {"llama_cpp"}


@pytest.mark.slow
def test_seeds_make_samples_reproducible_and_distinct(pair):
    _, ll = pair
    p = [F.prompt("apaga la luz del salon")]

    def draw(seed):
        return [g.text for g in M.generate(ll, p, n=16, max_new_tokens=6, temperature=3.0,
                                           seed=seed)[0]]

    assert draw(1) == draw(1)
    assert draw(1) != draw(2)


# ---------------------------------------------------------------------------------------------
# products: same answers and traces on both backends
# ---------------------------------------------------------------------------------------------


def _configs(models, backend):
    seed, sel = str(models["seed"]), str(models["selector"])
    m = {"model": seed, "backend": backend}
    return {
        "pipeline": {"ensemble": {"pipeline": {"stages": [
            m, {**m, "template": "[ORDEN] {input} [COMANDO]", "output": "line"}]}}},
        "vote": {"ensemble": {"vote": {"members": [m, m, {**m, "template": "[ORDEN] {input} "
                                                                          "[COMANDO]"}],
                                       "sampling": {"temperature": 0.0}}}},
        "router": {"ensemble": {"router": {
            "selector": {"kind": "label_model", "model": sel, "backend": backend},
            "routes": [{"label": "LLM1", **m}, {"label": "LLM2", **m}]}}},
        "fallback": {"ensemble": {"router": {  # a selector that writes commands, not labels:
            # it still ranks the labels, but never surely enough for this threshold
            "selector": {"kind": "label_model", "model": seed, "backend": backend,
                         "threshold": 0.9999},
            "routes": [{"label": "LLM1", **m}, {"label": "LLM2", **m}]}}},
        "embedding": {"ensemble": {"router": {
            "selector": {"kind": "embedding", "model": seed, "backend": backend, "layer": 0},
            "routes": [{"label": "LLM1", **m, "examples": ["apaga la luz", "enciende la luz"]},
                       {"label": "LLM2", **m, "examples": ["que tiempo hace", "va a llover"]}]}}},
    }


def _shape(trace):
    """The trace without values that may differ (timings, log-probabilities, confidences)."""
    skip = {"timings", "logprob", "confidence", "scores", "tie_scores", "judge_scores"}
    if isinstance(trace, dict):
        return {k: _shape(v) for k, v in trace.items() if k not in skip}
    if isinstance(trace, list):
        return [_shape(v) for v in trace]
    return trace


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["pipeline", "vote", "router", "fallback", "embedding"])
def test_products_answer_and_trace_as_on_transformers(models, kind):
    hf = load_product(_configs(models, "transformers")[kind])
    ll = load_product(_configs(models, "llama_cpp")[kind])
    a, b = hf.answer_batch(NATURAL), ll.answer_batch(NATURAL)
    assert [x.text for x in a] == [y.text for y in b]
    if kind == "fallback":  # where the selector is unsure the fallback answers, on both backends
        fell = [y for y in b if y.trace["fallback"]]
        assert fell and all("unsure" in y.trace["reason"] for y in fell)
    for x, y in zip(a, b):
        assert y.trace["backend"] == "llama_cpp" and x.trace["backend"] == "transformers"
        shape_a = json.loads(json.dumps(_shape(x.trace)).replace("transformers", "llama_cpp"))
        assert shape_a == _shape(y.trace)
        assert set(y.trace["timings"]) == set(x.trace["timings"])


@pytest.mark.slow
def test_the_seed_router_on_llama_cpp(models):
    """LLM1 answers home automation, LLM2 the weather: the seed's selector, on llama.cpp."""
    router = load_product(_configs(models, "llama_cpp")["router"])
    dom, wea = router.answer("apaga la luz del salon"), router.answer("que tiempo hace")
    assert (dom.trace["route"], wea.trace["route"]) == ("LLM1", "LLM2")
    assert dom.trace["selector"]["backend"] == "llama_cpp"
    assert dom.text == "LUZ_SL OFF" and wea.text == "TIEMPO HOY"


@pytest.mark.slow
def test_backends_mix_in_one_vote(models):
    vote = load_product({"ensemble": {"vote": {"members": [
        {"model": str(models["seed"])}, {"model": str(models["f32"])},
        {"model": str(models["seed"]), "backend": "llama_cpp", "threads": 2}],
        "sampling": {"temperature": 0.0}}}})
    a = vote.answer("apaga la luz del salon")
    assert a.text == "LUZ_SL OFF" and a.trace["votes"] == {"LUZ_SL OFF": 3}
    assert [s["backend"] for s in a.trace["samples"]] == ["transformers", "llama_cpp", "llama_cpp"]
    assert vote.voters[2].lm.threads == 2 and vote.voters[1].lm.threads == 1


@pytest.mark.slow
def test_ask_answers_with_a_gguf_file(models, capsys):
    assert main(["ask", str(models["f32"]), "apaga", "la", "luz", "del", "salon", "--trace"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "LUZ_SL OFF"
    assert json.loads(out.split("\n", 1)[1])["backend"] == "llama_cpp"


# ---------------------------------------------------------------------------------------------
# the conversion cache
# ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_folder_is_converted_once_and_again_after_a_rerun(tmp_path, llama_cpp, gguf_cache):
    from llmcombo.gguf.cache import cached_gguf

    folder = F.model_folder(tmp_path / "m", seed=3)
    first = cached_gguf(folder)
    assert first.parent == gguf_cache and first.name.endswith("-f16.gguf")
    stamp = first.stat().st_mtime_ns
    lm = M.load_model(str(folder), backend="llama_cpp")
    assert cached_gguf(folder) == first and first.stat().st_mtime_ns == stamp
    assert M.load_model(str(folder), backend="llama_cpp") is lm
    F.model_folder(folder, seed=4)  # a new run writes other weights into the same folder
    second = cached_gguf(folder)
    assert second != first and not first.exists() and second.is_file()
    assert M.load_model(str(folder), backend="llama_cpp") is not lm
    info = json.loads(second.with_suffix(".json").read_text())
    assert info["source"] == str(folder.resolve()) and info["tokenizer_check"]["differ"] == 0


# ---------------------------------------------------------------------------------------------
# rules: one clear message each, and the engine fails on the same shape
# ---------------------------------------------------------------------------------------------


def _errors(cfg, base_dir=None):
    from llmcombo.ensemble.spec import check_models

    issues = feature_model().validate(cfg) + check_models(cfg, base_dir)
    return [(i.severity, i.path, i.message) for i in issues]


def test_a_gguf_file_on_transformers_is_an_error(tmp_path):
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF" + (3).to_bytes(4, "little") + b"\0" * 32)
    cfg = {"ensemble": {"vote": {"members": [{"model": str(gguf), "backend": "transformers"},
                                             {"model": str(gguf)}], "samples": 1,
                                 "tie_break": "first"}}}
    errs = [e for e in feature_model().validate(cfg) if e.is_error]
    assert [(e.path, e.message) for e in errs] == [
        ("ensemble.vote.members[0].backend",
         f"{gguf} is a GGUF file, which the transformers backend cannot load.")]
    assert "backend: llama_cpp" in errs[0].hint
    with pytest.raises(UserError, match="GGUF file, which the transformers backend cannot load"):
        M.load_model(str(gguf), backend="transformers")


@pytest.mark.slow
def test_transformers_itself_cannot_load_a_gguf_file(models):
    from transformers import AutoModelForCausalLM

    with pytest.raises((OSError, ValueError)):
        AutoModelForCausalLM.from_pretrained(str(models["f32"]))


def test_llama_settings_on_transformers_and_cuda_for_llama_are_warnings(tmp_path):
    cfg = {"ensemble": {"device": "cuda", "pipeline": {"stages": [
        {"model": "zoo:domotica", "threads": 2, "quant": "q8_0"},
        {"model": "zoo:tiempo", "backend": "llama_cpp"}]}}}
    issues = feature_model().validate(cfg)
    assert all(not i.is_error for i in issues)
    assert {i.path for i in issues} == {"ensemble.pipeline.stages[0].threads",
                                        "ensemble.pipeline.stages[0].quant", "ensemble.device"}
    bad = feature_model().validate({"ensemble": {"pipeline": {"stages": [
        {"model": "zoo:domotica", "backend": "llama_cpp", "quant": "q9"},
        {"model": "zoo:tiempo", "backend": "llamacpp"}]}}})
    assert {i.path for i in bad if i.is_error} == {"ensemble.pipeline.stages[0].quant",
                                                   "ensemble.pipeline.stages[1].backend"}


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    """A random tiny model folder (no conversion)."""
    return F.model_folder(tmp_path_factory.mktemp("plain") / "plain")


def test_without_llama_cpp_python_the_backend_says_how_to_install_it(plain, monkeypatch):
    monkeypatch.setattr(gx, "llama_cpp_installed", lambda: False)
    cfg = {"ensemble": {"router": {
        "selector": {"kind": "keywords"},
        "routes": [{"label": "LLM1", "model": str(plain), "keywords": ["luz"]},
                   {"label": "LLM2", "model": str(plain), "backend": "llama_cpp",
                    "keywords": ["tiempo"]}]}}}
    with pytest.raises(UserError) as exc:
        load_product(cfg)
    assert exc.value.field == "ensemble.router.routes[1].backend"
    assert "needs llama-cpp-python" in exc.value.message
    assert "pip install 'llmcombo[llama]'" in exc.value.hint and "10 minutes" in exc.value.hint
    with pytest.raises(UserError, match="needs llama-cpp-python"):
        M.load_model("x.gguf")


def test_an_architecture_llama_cpp_cannot_convert_is_an_error_for_llama_members(tmp_path,
                                                                                llama_cpp):
    folder = tmp_path / "foo"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"architectures": ["FooForCausalLM"],
                                                    "model_type": "foo"}))
    cfg = {"ensemble": {"pipeline": {"stages": [{"model": str(folder), "backend": "llama_cpp"},
                                                {"model": str(folder), "backend": "llama_cpp"}]}}}
    errs = [e for e in _errors(cfg) if e[0] == "error" and "FooForCausalLM" in e[2]]
    assert ("error", "ensemble.pipeline.stages[0].model",
            f"llama.cpp cannot convert the architecture FooForCausalLM of {folder}.") in errs


def test_a_member_file_that_is_not_gguf_is_an_error(tmp_path, llama_cpp):
    bad = tmp_path / "model.gguf"
    bad.write_bytes(b"PK\x03\x04 a zip")
    cfg = {"ensemble": {"vote": {"members": [{"model": str(bad)}], "samples": 3}}}
    with pytest.raises(UserError, match=r"model.gguf is not a GGUF file \(it starts with b'PK"):
        load_product(cfg)
    with pytest.raises(UserError, match="is not a GGUF file"):
        M.load_model(str(bad))


def test_training_and_perplexity_refuse_gguf_files_clearly():
    from llmcombo.ensemble.selectors import train_selector
    from llmcombo.evaluate import model_and_tokenizer

    with pytest.raises(UserError, match="a GGUF file cannot be its base"):
        train_selector({"LLM1": ["a"], "LLM2": ["b"]}, base="x.gguf", out="unused")
    with pytest.raises(UserError, match="perplexity is measured with transformers"):
        model_and_tokenizer("model.gguf")
