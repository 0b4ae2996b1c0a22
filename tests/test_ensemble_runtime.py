"""Runtime ensembles on the zoo models: pipeline, vote, router (every selector kind), the shared
model cache, train_selector and ``llmcombo ask``.

Held-out subsets keep this fast (48 prompts per task). The figures the issue asks for (vote vs
one sample, routing accuracy per selector kind, routed accuracy vs the specialists, selector
training) are printed (``pytest -s``) and asserted against thresholds, never hard-coded.
Timings are checked for presence only; their values are measured in ``bench/``.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from llmcombo.zoo import tasks
from llmcombo.cli import main
from llmcombo.errors import UserError
from llmcombo.zoo.tasks import normalize_command

N_PROMPTS = 48
DOMOTICA, TIEMPO = "zoo:domotica", "zoo:tiempo"
ROUTES = [{"label": "LLM1", "model": DOMOTICA}, {"label": "LLM2", "model": TIEMPO}]
LABEL = {"domotica": "LLM1", "tiempo": "LLM2"}
KEYWORDS = {
    "LLM1": ["luz", "luces", "lampara", "ilumin", "led", "calef", "radiador", "aire", "clima",
             "persiana", "estor", "ventilador", "enchufe", "tele", "tv", "salon", "sala", "cocina",
             "dormitorio", "habitacion", "cuarto", "baño", "bano", "aseo", "garaje", "despacho",
             "oficina", "estudio", "pasillo", "comedor", "terraza", "entrada", "recibidor",
             "enciende", "apaga", "sube", "baja", "abre", "cierra"],
    "LLM2": ["tiempo", "llov", "lluev", "lluvia", "paraguas", "agua", "frio", "calor", "viento",
             "rachas", "sopla", "nev", "nieve", "prevision", "temperatura hace",
             "temperatura hara", "temperatura maxima", "madrid", "barcelona", "sevilla",
             "valencia", "bilbao", "malaga", "zaragoza", "granada", "cadiz", "cordoba",
             "salamanca", "toledo", "vigo", "oviedo", "murcia", "alicante", "donostia",
             "las palmas", "coruña", "leon", "santander", "valladolid", "pamplona", "burgos"],
}
FIGURES: dict = {}  # printed at the end of the module (pytest -s)


def held_out(task: str, n: int = N_PROMPTS) -> list[tasks.Example]:
    return list(tasks.get_task(task).split("test"))[:n]


def correct(answer: str, expected: str) -> bool:
    return normalize_command(answer) == normalize_command(expected)


def hit_rate(answers, examples) -> float:
    return sum(correct(a.text, e.expected) for a, e in zip(answers, examples)) / len(examples)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The CI machine has 2 cores shared by other jobs; two torch threads fighting over them are
    ~7x slower than one (measured). Restored afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
    if FIGURES:
        print("\nensemble figures:\n" + json.dumps(FIGURES, indent=2, ensure_ascii=False))


@pytest.fixture(scope="module")
def data(zoo):
    return {t: held_out(t) for t in ("domotica", "tiempo")}


@pytest.fixture(scope="module")
def specialists(data):
    """Each specialist's accuracy on each task's subset (the reference the router is held to)."""
    from llmcombo.ensemble import accuracy, load_product

    acc = {ref: {t: accuracy(load_product(ref), ex) for t, ex in data.items()}
           for ref in (DOMOTICA, TIEMPO)}
    FIGURES["specialists"] = acc
    return acc


def router_config(selector: dict, routes=None, **over) -> dict:
    cfg = {"selector": selector, "routes": routes or [dict(r) for r in ROUTES], "fallback": "LLM1"}
    cfg.update(over)
    return {"ensemble": {"router": cfg}}


def with_examples(per_route: int = 8) -> list[dict]:
    train = tasks.selector_examples("train")
    routes = [dict(r) for r in ROUTES]
    for r in routes:
        r["examples"] = [e.prompt for e in train if e.expected == r["label"]][:per_route]
    return routes


def with_keywords() -> list[dict]:
    return [dict(r, keywords=KEYWORDS[r["label"]]) for r in ROUTES]


@pytest.fixture(scope="module")
def classifier(zoo, tmp_path_factory):
    """A hidden-state classifier trained by train_selector on zoo:base (the selector kind
    ``classifier``)."""
    from llmcombo.ensemble import train_selector

    train = tasks.selector_examples("train")[:300]
    test = tasks.selector_examples("test")[:2 * N_PROMPTS]
    out = tmp_path_factory.mktemp("selectors") / "clf"
    report = train_selector(train, base="zoo:base", out=out, kind="hidden_classifier", test=test)
    FIGURES["train_selector_hidden_classifier"] = {
        "accuracy": report.accuracy, "per_label": report.per_label, "n_train": report.n_train,
        "n_test": report.n_test, "final_loss": report.final_loss}
    return report


def selector_for(kind: str, classifier_report=None) -> dict:
    if kind == "label_model":
        return router_config({"kind": "label_model", "model": "zoo:selector", "threshold": 0.6})
    if kind == "embedding":
        return router_config({"kind": "embedding", "model": "zoo:base"}, with_examples())
    if kind == "keywords":
        return router_config({"kind": "keywords"}, with_keywords())
    return router_config(classifier_report.selector_config(threshold=0.6))


# ---------------------------------------------------------------------------------------------
# pipeline
# ---------------------------------------------------------------------------------------------


def test_pipeline_puts_each_stage_output_into_the_next_template(data):
    from llmcombo.ensemble import load_product

    pipe = load_product({"ensemble": {"pipeline": {"stages": [
        {"model": DOMOTICA},
        {"model": "zoo:base", "template": "el comando {input} quiere decir", "output": "line",
         "max_new_tokens": 8},
        {"model": "zoo:selector", "template": "[ORDEN] {prompt} {input} [COMANDO]"},
    ]}}})
    examples = data["domotica"][:4]
    prompts = [e.prompt for e in examples]
    alone = load_product(DOMOTICA).answer_batch(prompts)
    answers = pipe.answer_batch(prompts)
    for prompt, a, first in zip(prompts, answers, alone):
        s1, s2, s3 = a.trace["stages"]
        assert s1["input"] == prompt and s1["prompt"] == tasks.format_prompt(prompt)
        assert s1["output"] == first.text  # stage 1 is the specialist answering the user
        assert s2["input"] == s1["output"]
        assert s2["prompt"] == f"el comando {s1['output']} quiere decir"
        assert s3["input"] == s2["output"]
        # {prompt} is the user's text, {input} the previous stage's answer
        assert s3["prompt"] == f"[ORDEN] {prompt} {s2['output']} [COMANDO]"
        assert a.text == s3["output"]
        assert [s["member"] for s in (s1, s2, s3)] == [DOMOTICA, "zoo:base", "zoo:selector"]
        assert a.trace["member"] == "zoo:selector" and a.trace["kind"] == "pipeline"
        assert set(a.trace["timings"]) >= {"stage1_s", "stage2_s", "stage3_s", "total_s"}
    # one prompt alone gives what the same prompt gives in a batch (left padding is right)
    single = pipe.answer(prompts[1])
    assert single.trace["stages"] == answers[1].trace["stages"]


# ---------------------------------------------------------------------------------------------
# vote
# ---------------------------------------------------------------------------------------------


def noisy_vote(samples: int, temperature: float = 1.0, seed: int = 0, **over) -> dict:
    vote = {"members": [{"model": DOMOTICA}], "samples": samples,
            "sampling": {"temperature": temperature, "seed": seed}}
    vote.update(over)
    return {"ensemble": {"vote": vote}}


@pytest.mark.parametrize("samples", [3, 5])
def test_majority_of_noisy_samples_beats_one_sample(data, samples):
    """The seed's vote: the specialist sampled at temperature 1.0 is often wrong; the answer most
    samples agree on is right more often than one sample."""
    from llmcombo.ensemble import load_product

    examples = data["domotica"]
    vote = load_product(noisy_vote(samples))
    answers = vote.answer_batch([e.prompt for e in examples])
    vote_acc = hit_rate(answers, examples)
    # every sample is a single-sample answer: their mean accuracy is one sample's accuracy
    per_sample = [correct(s["answer"], e.expected)
                  for a, e in zip(answers, examples) for s in a.trace["samples"]]
    single_acc = sum(per_sample) / len(per_sample)
    first_acc = sum(correct(a.trace["samples"][0]["answer"], e.expected)
                    for a, e in zip(answers, examples)) / len(examples)
    FIGURES[f"vote_N{samples}_T1.0"] = {"vote": vote_acc, "single_sample_mean": single_acc,
                                         "first_sample": first_acc, "n_prompts": len(examples),
                                         "ties": sum(a.trace["tie"] is not None for a in answers)}
    assert single_acc < 0.9, "the specialist is not noisy at this temperature: nothing to show"
    assert vote_acc > single_acc + 0.1
    assert vote_acc > first_acc
    for a in answers:  # the trace is the vote: recount it from the samples
        assert len(a.trace["samples"]) == samples == a.trace["n"]
        counts: dict[str, int] = {}
        for s in a.trace["samples"]:
            counts[normalize_command(s["answer"])] = counts.get(normalize_command(s["answer"]),
                                                                0) + 1
        assert sum(a.trace["votes"].values()) == samples
        assert a.trace["winner_count"] == max(counts.values()) == counts[normalize_command(a.text)]
        assert (a.trace["tie"] is None) == (list(counts.values()).count(max(counts.values())) == 1)


def test_vote_samples_of_one_model_come_from_one_generate_call(zoo, monkeypatch):
    from llmcombo.ensemble import load_product

    vote = load_product(noisy_vote(5)).load()
    model = vote.voters[0].lm.model
    calls = []
    real = model.generate

    def counting(*args, **kwargs):
        calls.append(kwargs.get("num_return_sequences", 1))
        return real(*args, **kwargs)

    monkeypatch.setattr(model, "generate", counting)
    a = vote.answer("apaga la luz del salon")
    assert calls == [5] and len(a.trace["samples"]) == 5
    calls.clear()
    vote.answer_batch(["apaga la luz del salon", "sube la persiana de la cocina"])
    assert calls == [5]  # both prompts' 10 answers in one call


def _generation(answer: str, logprob: float = -1.0):
    from llmcombo.ensemble.members import Generation

    return Generation(answer, answer, logprob, 3)


def test_three_answers_two_agree_that_one_wins(zoo):
    """The seed's example: LUZ_SL OFF once, LUZ_SL ON twice -> LUZ_SL ON."""
    from llmcombo.ensemble import from_spec
    from llmcombo.generate import to_document

    _, spec = to_document(noisy_vote(3), resolve=False)
    vote = from_spec(spec)
    m = vote.voters[0]
    a = vote._decide("apaga la luz del salon", [(m, _generation("LUZ_SL OFF")),
                                                (m, _generation("luz_sl on")),
                                                (m, _generation("LUZ_SL ON"))])
    assert normalize_command(a.text) == "LUZ_SL ON"
    assert a.trace["votes"] == {"luz_sl on": 2, "LUZ_SL OFF": 1}
    assert (a.trace["winner_count"], a.trace["decided_by"], a.trace["tie"]) == (2, "majority",
                                                                                 None)


@pytest.mark.parametrize("rule,expected", [("first", "LUZ_SL OFF"), ("likelihood", "LUZ_SL ON")])
def test_ties_are_broken_by_the_stated_rule(zoo, rule, expected):
    from llmcombo.ensemble import from_spec
    from llmcombo.generate import to_document

    _, spec = to_document(noisy_vote(4, tie_break=rule), resolve=False)
    vote = from_spec(spec)
    m = vote.voters[0]
    a = vote._decide("apaga la luz del salon", [
        (m, _generation("LUZ_SL OFF", -5.0)), (m, _generation("LUZ_SL ON", -0.5)),
        (m, _generation("LUZ_SL ON", -0.7)), (m, _generation("LUZ_SL OFF", -6.0))])
    assert a.text == expected
    assert a.trace["tie"] == ["LUZ_SL OFF", "LUZ_SL ON"] and a.trace["tie_rule"] == rule


def test_a_judge_function_picks_a_known_command(zoo):
    """decide: judge with known_command: the only answer that is a real command wins even when
    the garbage answers outnumber it."""
    from llmcombo.ensemble import from_spec
    from llmcombo.generate import to_document

    cfg = noisy_vote(3, decide="judge", judge={"kind": "function", "function": "known_command"})
    vote = from_spec(to_document(cfg, resolve=False)[1])
    m = vote.voters[0]
    a = vote._decide("apaga la luz del salon", [(m, _generation("LUZ_XX OF")),
                                                (m, _generation("LUZ_XX OF")),
                                                (m, _generation("LUZ_SL OFF"))])
    assert a.text == "LUZ_SL OFF" and a.trace["decided_by"] == "judge"
    assert a.trace["judge_scores"] == {"LUZ_XX OF": 0.0, "LUZ_SL OFF": 1.0}


def test_a_judge_model_picks_the_answer_it_finds_most_likely(data):
    """Three different models answer; zoo:domotica as the judge scores each distinct answer and
    picks the home-automation command on a home-automation order."""
    from llmcombo.ensemble import load_product

    vote = load_product({"ensemble": {"vote": {
        "members": [{"model": TIEMPO}, {"model": "zoo:base"}, {"model": DOMOTICA}],
        "sampling": {"temperature": 0.0}, "decide": "judge",
        "judge": {"kind": "model", "model": DOMOTICA}}}})
    examples = data["domotica"][:6]
    for a, e in zip(vote.answer_batch([x.prompt for x in examples]), examples):
        by_member = {s["member"]: s["answer"] for s in a.trace["samples"]}
        assert a.trace["decided_by"] == "judge"
        assert len(a.trace["judge_scores"]) == len(a.trace["votes"]) == 3  # three answers
        assert a.text == by_member[DOMOTICA] and correct(a.text, e.expected)
        assert a.trace["judge_scores"][a.text] == max(a.trace["judge_scores"].values())


# ---------------------------------------------------------------------------------------------
# router
# ---------------------------------------------------------------------------------------------

SELECTOR_KINDS = ["label_model", "embedding", "keywords", "classifier"]
MIN_ROUTING = {"label_model": 0.95, "embedding": 0.9, "keywords": 0.85, "classifier": 0.9}


@pytest.mark.parametrize("kind", SELECTOR_KINDS)
def test_router_sends_each_task_to_its_specialist(data, specialists, classifier, kind):
    from llmcombo.ensemble import load_product

    router = load_product(selector_for(kind, classifier))
    figures = {}
    for task, examples in data.items():
        answers = router.answer_batch([e.prompt for e in examples])
        routed = [a.trace["route"] for a in answers]
        routing = sum(r == LABEL[task] for r in routed) / len(examples)
        acc = hit_rate(answers, examples)
        own = specialists[DOMOTICA if task == "domotica" else TIEMPO][task]
        other = specialists[TIEMPO if task == "domotica" else DOMOTICA][task]
        figures[task] = {"routing": routing, "routed_accuracy": acc, "specialist": own,
                         "fallbacks": sum(a.trace["fallback"] for a in answers)}
        assert routing >= MIN_ROUTING[kind], (task, routing)
        # the routed ensemble scores close to the specialist on its own task ...
        assert acc >= own - (1 - routing) - 0.02, (task, acc, own)
        assert acc >= own - 0.15
        # ... and far above the other specialist, which cannot do this task
        assert acc > other + 0.5
        for a in answers:
            t = a.trace
            assert t["kind"] == "router" and t["selector"]["kind"] == kind
            assert t["member"] == router.routes[t["route"]].ref
            assert 0.0 <= t["confidence"] <= 1.0
            assert t["fallback"] == (t["reason"] != "selector")
            assert set(t["timings"]) >= {"selector_s", "generate_s", "total_s"}
    FIGURES[f"router_{kind}"] = figures


def test_label_model_confidence_is_over_the_route_labels(data):
    from llmcombo.ensemble import load_product

    router = load_product(selector_for("label_model"))
    decisions = router.route([e.prompt for e in data["tiempo"][:8]])
    for d in decisions:
        scores = d["selector"]["scores"]
        assert set(scores) == {"LLM1", "LLM2"} and abs(sum(scores.values()) - 1) < 1e-3
        assert d["selector"]["answer"] == d["route"] == "LLM2"
        assert d["confidence"] == pytest.approx(scores["LLM2"], abs=1e-4)
        assert d["confidence"] > 0.6  # a sure selector is confident, not "unsure"


@pytest.mark.parametrize("model", ["zoo:selector", DOMOTICA])
def test_label_model_selector_picks_the_most_probable_label(data, model):
    """The selector chooses among the route labels by their scores, never by the text the model
    would write: even a model that writes commands (the home-automation specialist) gets a label,
    the most probable one, with that probability as its confidence."""
    from llmcombo.ensemble import members as M
    from llmcombo.ensemble.selectors import LabelModelSelector

    examples = data["domotica"][:8] + data["tiempo"][:8]
    sel = LabelModelSelector({"model": model}, ["LLM1", "LLM2"])
    choices = sel.select([e.prompt for e in examples])
    rendered = [sel.member.render(e.prompt) for e in examples]
    scored = M.score_options(sel.member.lm, rendered, ["LLM1", "LLM2"])
    for c, row in zip(choices, scored):
        want = max(("LLM1", "LLM2"), key=lambda lab, r=row: r[["LLM1", "LLM2"].index(lab)].reduce("sum"))
        assert c.label == c.answer == want
        assert c.confidence == pytest.approx(max(c.scores.values())) and c.confidence >= 0.5
        assert abs(sum(c.scores.values()) - 1) < 1e-6
    if model == "zoo:selector":
        assert [c.label for c in choices] == [LABEL[t] for t in ["domotica"] * 8 + ["tiempo"] * 8]
        assert all(c.reason is None for c in choices)  # it would write the label itself
    else:  # the specialist writes commands: the labels' scores still decide, and it says so
        gens = M.generate(sel.member.lm, rendered, max_new_tokens=5, output="line")
        assert all(g[0].answer not in ("LLM1", "LLM2") for g in gens)
        assert all("scores" in c.reason for c in choices)


def test_scoring_options_on_a_shared_prompt_cache_equals_scoring_each_pair(data):
    from llmcombo.ensemble import load_model
    from llmcombo.ensemble import members as M

    lm = load_model("zoo:selector")
    prompts = [tasks.format_prompt(e.prompt) for e in data["domotica"][:5] + data["tiempo"][:5]]
    options = ["LLM1", "LLM2", "LLM10", "LUZ_SL OFF"]  # different lengths: right padding
    assert len(prompts) >= M.SHARED_CACHE_FROM
    shared = M.score_options(lm, prompts, options, batch_size=12)  # several chunks
    pairs = M.score_rows(lm, [p for p in prompts for _ in options],
                         [o for _ in prompts for o in options])
    for i, row in enumerate(shared):
        for j, got in enumerate(row):
            want = pairs[i * len(options) + j]
            assert got.logprobs == pytest.approx(want.logprobs, abs=1e-4)
            assert got.greedy == want.greedy
    assert sum(row[0].greedy for row in shared) == 5  # greedy writes LLM1 on the domotica half


def test_fallback_when_the_selector_is_unsure(data):
    from llmcombo.ensemble import load_product

    prompts = [e.prompt for e in data["tiempo"][:6]]
    # a "selector" that writes commands, not labels: the labels' scores decide; below the
    # threshold the fallback answers and the trace says which label it would have chosen
    odd = load_product(router_config({"kind": "label_model", "model": DOMOTICA, "threshold": 0.8},
                                     fallback="LLM2"))
    for a in odd.answer_batch(prompts):
        best = max(a.trace["selector"]["scores"], key=a.trace["selector"]["scores"].get)
        assert a.trace["confidence"] == pytest.approx(a.trace["selector"]["scores"][best], abs=1e-4)
        if a.trace["confidence"] < 0.8:
            assert a.trace["fallback"] and a.trace["route"] == "LLM2"
            assert "unsure" in a.trace["reason"] and f"would have chosen {best}" in a.trace["reason"]
        else:
            assert not a.trace["fallback"] and a.trace["route"] == best
    # a very soft embedding selector is never sure enough for threshold 0.9
    unsure = load_product(router_config({"kind": "embedding", "model": "zoo:base",
                                         "temperature": 10.0, "threshold": 0.9},
                                        with_examples()))
    for d in unsure.route(prompts):
        assert d["fallback"] and d["route"] == "LLM1" and "unsure" in d["reason"]
        assert d["confidence"] < 0.9
    # no keyword of any route: fallback
    kw = load_product(router_config({"kind": "keywords"}, with_keywords()))
    d = kw.route(["xyz qwerty"])[0]
    assert d["fallback"] and d["route"] == "LLM1" and "no keyword" in d["reason"]


@pytest.mark.parametrize("layer", [0, 1, 2, -1, -2])
def test_embedding_layers_match_a_full_forward_pass(zoo, layer):
    """A shallow layer stops the forward pass early; the vectors are the full pass's."""
    import torch

    from llmcombo.ensemble import load_model
    from llmcombo.ensemble.members import embed

    lm = load_model("zoo:base")
    texts = ["[ORDEN] apaga la luz del salon [COMANDO]", "[ORDEN] llueve en vigo [COMANDO]"]
    enc = lm.tokenizer(texts, return_tensors="pt", padding=True)  # left padding
    positions = (enc["attention_mask"].cumsum(-1) - 1).clamp(min=0)
    with torch.inference_mode():
        states = lm.model.base_model(**enc, position_ids=positions,
                                     output_hidden_states=True).hidden_states
    mask = enc["attention_mask"].unsqueeze(-1).float()
    want = torch.nn.functional.normalize((states[layer] * mask).sum(1) / mask.sum(1), dim=-1)
    assert torch.allclose(embed(lm, texts, layer), want, atol=1e-4)


def test_a_layer_the_model_does_not_have_is_a_user_error(zoo):
    from llmcombo.ensemble import load_product

    router = load_product(router_config({"kind": "embedding", "model": "zoo:base", "layer": 9},
                                        with_examples()))
    with pytest.raises(UserError, match="layer 9") as exc:
        router.answer("apaga la luz")
    assert exc.value.field == "ensemble.router.selector.layer"


# ---------------------------------------------------------------------------------------------
# one interface for every product
# ---------------------------------------------------------------------------------------------


def test_every_product_answers_alone_and_in_batches_with_a_trace(zoo, data):
    from llmcombo.ensemble import Answer, load_product

    prompts = [data["domotica"][0].prompt, data["tiempo"][0].prompt]
    expected = [data["domotica"][0].expected, data["tiempo"][0].expected]
    products = {
        "model": load_product(str(zoo.path("domotica"))),  # a model folder
        "pipeline": load_product({"ensemble": {"pipeline": {"stages": [
            {"model": "zoo:selector"}, {"model": "zoo:base", "template": "{input} es",
                                        "output": "text", "max_new_tokens": 6}]}}}),
        "vote": load_product(noisy_vote(3, temperature=0.3)),  # nearly greedy: samples agree
        "router": load_product(selector_for("embedding")),
    }
    for kind, product in products.items():
        batch = product.answer_batch(prompts)
        assert len(batch) == 2 and all(isinstance(a, Answer) for a in batch)
        one = product.answer(prompts[0])
        assert one.text == batch[0].text, kind  # the same answer alone and in a batch
        assert product(prompts[0]) == one.text
        for a in batch + [one]:
            t = a.trace
            assert t["kind"] == kind and isinstance(t["member"], str)
            assert t["timings"]["total_s"] >= 0
            json.dumps(t)  # JSON-ready
        assert ("batch" in batch[0].trace["timings"]) and ("batch" not in one.trace["timings"])
    assert correct(products["router"].answer(prompts[1]).text, expected[1])
    assert products["router"].answer(prompts[1]).trace["route"] == "LLM2"
    with pytest.raises(UserError, match="list of prompts"):
        products["model"].answer_batch("apaga la luz")


def test_any_causal_lm_works_not_only_llama(zoo, tmp_path):
    """A tiny randomly initialised GPT-2 (another architecture, learned positions, layers under
    ``transformer.h``) with the zoo's tokenizer: a single model, a vote and an embedding router."""
    import torch
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    from llmcombo.ensemble import load_model, load_product
    from llmcombo.ensemble.members import embed

    tok = AutoTokenizer.from_pretrained(zoo.path("base"))
    torch.manual_seed(0)
    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_positions=128, n_embd=32,
                                      n_layer=2, n_head=2, bos_token_id=tok.bos_token_id,
                                      eos_token_id=tok.eos_token_id,
                                      pad_token_id=tok.pad_token_id))
    folder = tmp_path / "gpt2"
    gpt2.save_pretrained(folder)
    tok.save_pretrained(folder)
    single = load_product(str(folder)).answer("apaga la luz")
    assert isinstance(single.text, str) and single.trace["member"] == str(folder)
    vote = load_product({"ensemble": {"vote": {"members": [{"model": str(folder),
                                                             "max_new_tokens": 4}],
                                               "samples": 3, "sampling": {"seed": 1}}}})
    assert vote.answer("apaga la luz").trace["n"] == 3
    lm = load_model(str(folder))
    texts = ["[ORDEN] apaga la luz [COMANDO]", "[ORDEN] llueve [COMANDO]"]
    enc = lm.tokenizer(texts, return_tensors="pt", padding=True)
    positions = (enc["attention_mask"].cumsum(-1) - 1).clamp(min=0)
    with torch.inference_mode():
        states = lm.model.base_model(**enc, position_ids=positions,
                                     output_hidden_states=True).hidden_states
    mask = enc["attention_mask"].unsqueeze(-1).float()
    want = torch.nn.functional.normalize((states[1] * mask).sum(1) / mask.sum(1), dim=-1)
    assert torch.allclose(embed(lm, texts, 1), want, atol=1e-4)
    router = load_product(router_config({"kind": "embedding", "model": str(folder), "layer": 1},
                                        with_examples()))
    assert router.answer("apaga la luz").trace["route"] in ("LLM1", "LLM2")


# ---------------------------------------------------------------------------------------------
# members load once
# ---------------------------------------------------------------------------------------------


def test_members_load_once_and_are_shared(zoo, monkeypatch):
    import transformers

    from llmcombo.ensemble import cached_models, clear_cache, load_product
    from llmcombo.zoo import model_path

    loads = []
    real = transformers.AutoModelForCausalLM.from_pretrained

    def counting(path, *a, **k):
        loads.append(str(path))
        return real(path, *a, **k)

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", counting)
    clear_cache()
    try:
        router = load_product(selector_for("label_model")).load()
        vote = load_product(noisy_vote(3)).load()
        folder = load_product(str(model_path("domotica"))).load()
        router.answer("apaga la luz del salon")
        vote.answer("apaga la luz del salon")
        # zoo:domotica in the router, the vote and by folder: one copy in memory
        assert router.routes["LLM1"].lm is vote.voters[0].lm is folder.member.lm
        assert sorted(loads) == sorted({str(model_path(n)) for n in
                                        ("domotica", "tiempo", "selector")})
        assert len(cached_models()) == 3
    finally:
        clear_cache()


def test_the_cache_is_small_and_forgets_the_least_recently_used(zoo, monkeypatch):
    from llmcombo.ensemble import cached_models, clear_cache, load_model
    from llmcombo.zoo import model_path

    monkeypatch.setenv("LLMCOMBO_MODEL_CACHE", "2")
    clear_cache()
    try:
        load_model("zoo:base")
        load_model("zoo:domotica")
        load_model("zoo:base")  # used again: now the most recent
        load_model("zoo:tiempo")
        assert [k[0] for k in cached_models()] == [str(model_path("base")),
                                                   str(model_path("tiempo"))]
        monkeypatch.setenv("LLMCOMBO_MODEL_CACHE", "lots")
        with pytest.raises(UserError, match="LLMCOMBO_MODEL_CACHE"):
            load_model("zoo:selector")
    finally:
        clear_cache()


# ---------------------------------------------------------------------------------------------
# train_selector
# ---------------------------------------------------------------------------------------------


def test_train_selector_reports_held_out_routing_accuracy(classifier):
    from llmcombo.ensemble.selectors import ClassifierSelector

    test = tasks.selector_examples("test")[:2 * N_PROMPTS]
    assert classifier.n_test == len(test) and classifier.n_train == 300
    assert set(classifier.per_label) == {"LLM1", "LLM2"}
    # the reported accuracy is the saved selector's accuracy on the held-out prompts
    choices = ClassifierSelector(classifier.path).select([e.prompt for e in test])
    recomputed = sum(c.label == e.expected for c, e in zip(choices, test)) / len(test)
    assert classifier.accuracy == pytest.approx(recomputed)
    assert classifier.accuracy >= 0.9
    assert classifier.final_loss < 0.6  # fitted: below ln 2, the loss of a coin flip


def test_train_selector_fine_tunes_a_label_model(zoo, tmp_path):
    from llmcombo.ensemble import load_product, train_selector

    pairs = [(e.prompt, e.expected) for e in tasks.selector_examples("train")[:200]]
    report = train_selector(pairs, base="zoo:base", out=tmp_path / "sel", kind="label_model",
                            steps=40, holdout=0.25, seed=0)
    FIGURES["train_selector_label_model"] = {"accuracy": report.accuracy,
                                             "per_label": report.per_label,
                                             "n_train": report.n_train, "n_test": report.n_test,
                                             "steps": 40, "final_loss": report.final_loss}
    assert (report.n_train, report.n_test) == (150, 50)
    assert report.accuracy >= 0.9
    # the trained folder is a selector a router can use
    router = load_product(router_config(report.selector_config(threshold=0.5)))
    d = router.route(["apaga la luz del salon", "va a llover mañana en madrid"])
    assert [x["route"] for x in d] == ["LLM1", "LLM2"]


def test_train_selector_refuses_bad_input(tmp_path):
    from llmcombo.ensemble import train_selector

    with pytest.raises(UserError, match="two labels"):
        train_selector([("a", "LLM1"), ("b", "LLM1")], out=tmp_path / "x", test=[("c", "LLM1")])
    with pytest.raises(UserError, match="out"):
        train_selector({"LLM1": ["a"], "LLM2": ["b"]}, test=[("c", "LLM1")])
    with pytest.raises(UserError, match="kind"):
        train_selector({"LLM1": ["a"], "LLM2": ["b"]}, out=tmp_path / "x", kind="forest")


# ---------------------------------------------------------------------------------------------
# llmcombo ask
# ---------------------------------------------------------------------------------------------


def test_ask_answers_with_an_ensemble_yaml_and_a_model_folder(zoo, tmp_path, capsys):
    from llmcombo.configuration import dump_yaml

    cfg = tmp_path / "router.yaml"
    cfg.write_text(dump_yaml(selector_for("keywords")))
    assert main(["ask", str(cfg), "va a llover mañana en madrid", "--trace"]) == 0
    out = capsys.readouterr().out
    first, _, rest = out.partition("\n")
    assert first == "LLUVIA MADRID MANANA"
    trace = json.loads(rest)
    assert trace["route"] == "LLM2" and trace["member"] == TIEMPO
    assert trace["selector"]["kind"] == "keywords" and "timings" in trace
    # models are loaded before the answer: loading is reported apart from the answer's time
    assert trace["timings"]["load_s"] >= 0 and "generate_s" in trace["timings"]

    assert main(["ask", str(zoo.path("domotica")), "apaga", "la", "luz", "del", "salon"]) == 0
    assert capsys.readouterr().out.strip() == "LUZ_SL OFF"  # words joined, no trace

    # a generated spec answers too
    spec = tmp_path / "spec.yaml"
    assert main(["generate", str(cfg), "-o", str(spec)]) == 0
    assert yaml.safe_load(spec.read_text())["kind"] == "router"
    capsys.readouterr()
    assert main(["ask", str(spec), "va a llover mañana en madrid"]) == 0
    assert capsys.readouterr().out.strip() == "LLUVIA MADRID MANANA"


@pytest.mark.parametrize("case,needle", [
    ("missing.yaml", "file not found"),
    ("no-config-folder", "no config.json"),
    ("one-route.yaml", "ensemble.router.routes"),
    ("no-input.yaml", "ensemble.pipeline.stages[1].template"),
    ("unknown-member.yaml", "zoo:domotica"),
    ("merge.yaml", "merge"),
])
def test_ask_bad_input_is_one_clear_line_and_exit_1(zoo, tmp_path, capsys, case, needle):
    from llmcombo.configuration import dump_yaml

    docs = {
        "one-route.yaml": router_config({"kind": "keywords"}, [dict(with_keywords()[0])]),
        "no-input.yaml": {"ensemble": {"pipeline": {"stages": [
            {"model": DOMOTICA}, {"model": "zoo:base", "template": "sin entrada"}]}}},
        "unknown-member.yaml": {"ensemble": {"vote": {"members": [{"model": "zoo:domotika"}],
                                                      "samples": 3}}},
        "merge.yaml": {"merge": {"method": "linear", "models": [{"model": "zoo:domotica"}]}},
    }
    target = tmp_path / case
    if case in docs:
        target.write_text(dump_yaml(docs[case]))
    elif case == "no-config-folder":
        target.mkdir()
    assert main(["ask", str(target), "apaga la luz"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    err = captured.err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    assert needle in err


def test_ask_in_a_real_process_exits_1_without_a_traceback(zoo, tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("ensemble:\n  router:\n    selector: {kind: keywords}\n    routes:\n"
                   "      - {label: LLM1, model: zoo:domotica, keywords: [luz]}\n")
    proc = subprocess.run([sys.executable, "-m", "llmcombo.cli", "ask", str(cfg), "hola"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "ensemble.router.routes" in proc.stderr and "at least 2" in proc.stderr
