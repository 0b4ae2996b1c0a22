"""Evaluation: accuracy, intervals, perplexity (hand-computed and against a one-text-at-a-time
loop), user files, side-by-side generations, the lm-eval bridge."""

from __future__ import annotations

import json
import math
import sys
import types
from types import SimpleNamespace

import pandas as pd
import pytest
import torch

from llmcombo import evaluate as ev
from llmcombo.ensemble.products import Answer, Product
from llmcombo.errors import OfflineError, UserError
from llmcombo.zoo.tasks import Example


class FakeProduct(Product):
    """Answers from a dict; records the batches it was asked."""

    kind = "fake"

    def __init__(self, answers: dict[str, str]):
        self.answers = answers
        self.batches: list[list[str]] = []

    def members(self):
        return []

    def answer_batch(self, prompts):
        self.batches.append(list(prompts))
        return [Answer(self.answers.get(p, ""), {"kind": "fake"}) for p in prompts]


EXAMPLES = [Example("apaga la luz del salon", "LUZ_SL OFF"),
            Example("que tiempo hace hoy en madrid", "TIEMPO MADRID HOY"),
            Example("sube la persiana", "PERSIANA_SL UP"),
            Example("llueve en vigo", "LLUVIA VIGO HOY")]
ANSWERS = {"apaga la luz del salon": "  luz_sl   off ",  # right after normalisation
           "que tiempo hace hoy en madrid": "TIEMPO MADRID HOY",  # right
           "sube la persiana": "PERSIANA_SL DOWN",  # wrong
           "llueve en vigo": "lluvia vigo hoy"}  # right


# ---------------------------------------------------------------------------------------------
# accuracy and intervals
# ---------------------------------------------------------------------------------------------


def test_wilson_interval_matches_hand_computation():
    # 3 of 4: p = .75, z = 1.96 -> centre (.75 + z^2/8) / (1 + z^2/4), known table value
    lo, hi = ev.wilson_interval(3, 4)
    z = ev.Z95
    denom = 1 + z * z / 4
    centre = (0.75 + z * z / 8) / denom
    half = z * math.sqrt(0.75 * 0.25 / 4 + z * z / 64) / denom
    assert lo == pytest.approx(centre - half, abs=1e-12)
    assert hi == pytest.approx(centre + half, abs=1e-12)
    assert (round(lo, 4), round(hi, 4)) == (0.3006, 0.9544)
    assert ev.wilson_interval(0, 10)[0] == 0.0 and ev.wilson_interval(10, 10)[1] == 1.0
    assert all(math.isnan(v) for v in ev.wilson_interval(0, 0))


def test_accuracy_of_a_fake_product_is_exact_and_tidy():
    prod = FakeProduct(ANSWERS)
    df = ev.evaluate_accuracy(prod, EXAMPLES, name="fake", batch_size=3, progress=False)
    assert list(df.columns[:7]) == ev.COLUMNS
    assert len(df) == 1
    r = df.iloc[0]
    assert (r["product"], r["task"], r["metric"], r["n"], r["correct"]) == \
        ("fake", "examples", "accuracy", 4, 3)
    assert r["value"] == 0.75
    assert (r["ci_low"], r["ci_high"]) == pytest.approx(ev.wilson_interval(3, 4))
    # answered in chunks of batch_size
    assert [len(b) for b in prod.batches] == [3, 1]


def test_evaluate_many_products_on_user_files_concatenates(tmp_path):
    jsonl = tmp_path / "mine.jsonl"
    jsonl.write_text("\n".join(json.dumps({"prompt": e.prompt, "expected": e.expected})
                               for e in EXAMPLES) + "\n\n", encoding="utf-8")
    csv = tmp_path / "other.csv"
    pd.DataFrame({"prompt": [e.prompt for e in EXAMPLES[:2]],
                  "expected": [e.expected for e in EXAMPLES[:2]]}).to_csv(csv, index=False)
    wrong = FakeProduct({})
    df = ev.evaluate({"good": FakeProduct(ANSWERS), "bad": wrong}, [jsonl, csv], progress=False)
    got = {(r.product, r.task): (r.value, r.n) for r in df.itertuples()}
    assert got == {("good", "mine"): (0.75, 4), ("good", "other"): (1.0, 2),
                   ("bad", "mine"): (0.0, 4), ("bad", "other"): (0.0, 2)}
    out = ev.save_results(df, tmp_path / "results.csv")
    back = ev.load_results(out)
    assert back[ev.COLUMNS].equals(df[ev.COLUMNS].astype(back[ev.COLUMNS].dtypes.to_dict()))
    both = pd.concat([back, back], ignore_index=True)
    assert len(both) == 8


def test_progress_callback_sees_every_prompt():
    calls = []
    ev.evaluate_accuracy(FakeProduct(ANSWERS), EXAMPLES, batch_size=2,
                         progress=lambda done, total, desc: calls.append((done, total)))
    assert calls == [(0, 4), (2, 4), (4, 4)]


def test_limit_takes_a_prefix_of_the_zoo_split():
    from llmcombo.zoo.tasks import get_task

    ds = ev.dataset("tiempo", limit=5)
    assert ds.name == "tiempo" and ds.examples == get_task("tiempo").test[:5]


@pytest.mark.parametrize("name,content,message", [
    ("a.csv", "prompt,answer\nhola,LUZ_SL ON\n", "no 'expected' column"),
    ("a.csv", "", "is empty"),
    ("a.jsonl", '{"prompt": "hola", "expected": "X"}\n{"prompt": "hola"}\n', "line 2: missing 'expected'"),
    ("a.jsonl", '{"prompt": "hola", "expected": "X"}\nnot json\n', "line 2: not valid JSON"),
    ("a.jsonl", '["hola", "X"]\n', "expected a JSON object"),
    ("a.jsonl", '{"prompt": "", "expected": "X"}\n', "prompt is empty"),
    ("a.jsonl", "\n\n", "has no examples"),
    ("a.txt", "hola\n", "unknown evaluation file type"),
])
def test_bad_evaluation_files_are_clear_user_errors(tmp_path, name, content, message):
    p = tmp_path / name
    p.write_text(content, encoding="utf-8")
    with pytest.raises(UserError, match=message):
        ev.load_examples(p)


def test_missing_file_and_unknown_task():
    with pytest.raises(UserError, match="not found"):
        ev.dataset("no/such/file.jsonl")
    with pytest.raises(UserError, match="unknown task 'domotika'"):
        ev.dataset("domotika")


def test_sample_generations_side_by_side():
    df = ev.sample_generations({"good": FakeProduct(ANSWERS), "bad": FakeProduct({})}, EXAMPLES,
                               n=3, progress=False)
    assert list(df.columns) == ["prompt", "expected", "good", "bad"]
    assert len(df) == 3
    assert df["good"].tolist() == [ANSWERS[e.prompt] for e in EXAMPLES[:3]]
    assert df["bad"].tolist() == ["", "", ""]


# ---------------------------------------------------------------------------------------------
# perplexity
# ---------------------------------------------------------------------------------------------


class CharTokenizer:
    """a -> 1, b -> 2, c -> 3, with bos 0 in front; pad id 9 (never a real token)."""

    pad_token_id = 9

    def __call__(self, texts, add_special_tokens=True):
        return {"input_ids": [([0] if add_special_tokens else []) + [" abc".index(ch) for ch in t]
                              for t in texts]}


class ConstantLM(torch.nn.Module):
    """Predicts the same distribution everywhere: p(bos)=.1, p(a)=.2, p(b)=.3, p(c)=.4, and a
    large probability for the pad id so unmasked padding would show."""

    def __init__(self):
        super().__init__()
        probs = torch.tensor([0.1, 0.2, 0.3, 0.4] + [1e-9] * 5 + [10.0])
        self.row = torch.log(probs / probs.sum() * 1.0)
        self.seen_masks = []

    def forward(self, input_ids, attention_mask=None):
        self.seen_masks.append(attention_mask.clone())
        b, t = input_ids.shape
        return SimpleNamespace(logits=self.row.expand(b, t, -1).clone())


def test_perplexity_equals_hand_computation_with_padding():
    lm = ConstantLM()
    texts = ["ab", "c", "abcc"]  # 2 + 1 + 4 predicted tokens, padded to width 5 in one batch
    probs = torch.tensor([0.1, 0.2, 0.3, 0.4] + [1e-9] * 5 + [10.0], dtype=torch.float64)
    p = (probs / probs.sum()).tolist()
    nll = [-(math.log(p[1]) + math.log(p[2])), -math.log(p[3]),
           -(math.log(p[1]) + math.log(p[2]) + 2 * math.log(p[3]))]
    sums, counts = ev.token_nll((lm, CharTokenizer()), texts, batch_size=8)
    assert counts == [2, 1, 4]
    assert sums == pytest.approx(nll, rel=1e-6)
    expected = math.exp(sum(nll) / 7)
    # by hand: 7 predicted tokens (a, b | c | a, b, c, c) out of a total mass of 11.000000005:
    # ppl = 11.000000005 / (0.2^2 * 0.3^2 * 0.4^3) ** (1/7) = 36.39469...
    assert round(expected, 5) == 36.39469
    assert round(ev.perplexity((lm, CharTokenizer()), texts), 5) == 36.39469
    # one batch, right padded, pads masked
    assert lm.seen_masks[0].tolist() == [[1, 1, 1, 0, 0], [1, 1, 0, 0, 0], [1, 1, 1, 1, 1]]
    df = ev.evaluate_perplexity((lm, CharTokenizer()), texts, name="const", task="toy")
    r = df.iloc[0]
    assert (r["product"], r["task"], r["metric"], r["n"], r["tokens"]) == \
        ("const", "toy", "perplexity", 3, 7)
    assert r["value"] == pytest.approx(expected, rel=1e-6)
    assert r["ci_low"] <= r["value"] <= r["ci_high"]


def test_uniform_model_has_perplexity_equal_to_vocabulary_size():
    class Uniform(torch.nn.Module):
        def forward(self, input_ids, attention_mask=None):
            return SimpleNamespace(logits=torch.zeros(*input_ids.shape, 10))

    assert ev.perplexity((Uniform(), CharTokenizer()), ["abc", "a", "cab"]) == pytest.approx(10.0)
    df = ev.evaluate_perplexity((Uniform(), CharTokenizer()), ["abc", "a", "cab"], name="u")
    # every text has perplexity 10, so every bootstrap resample does too
    assert df.iloc[0][["value", "ci_low", "ci_high", "n", "tokens"]].tolist() == \
        pytest.approx([10.0, 10.0, 10.0, 3, 7])


@pytest.fixture(scope="module")
def tiny_llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    from llmcombo.zoo import train_tokenizer

    texts = ["apaga la luz del salon", "que tiempo hace hoy en madrid", "sube la persiana",
             "enciende la calefaccion del dormitorio", "va a llover mañana en sevilla"] * 4
    tok = train_tokenizer(texts, 80)
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok) + 8, hidden_size=32, intermediate_size=64,
                      num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
                      max_position_embeddings=64, pad_token_id=tok.pad_token_id,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    model = LlamaForCausalLM(cfg).eval()
    return model, tok


def test_batched_perplexity_equals_one_text_at_a_time_loop(tiny_llama):
    model, tok = tiny_llama
    texts = ["apaga la luz", "que tiempo hace hoy en madrid por favor", "sube",
             "enciende la calefaccion del dormitorio ya"]
    manual_sums, manual_counts = [], []
    with torch.no_grad():
        for t in texts:  # no padding at all
            ids = torch.tensor([tok(t)["input_ids"]])
            logits = model(input_ids=ids).logits[0, :-1].double()
            nll = torch.nn.functional.cross_entropy(logits, ids[0, 1:], reduction="sum")
            manual_sums.append(float(nll))
            manual_counts.append(ids.shape[1] - 1)
    assert len(set(manual_counts)) > 1  # different lengths share one batch below
    sums, counts = ev.token_nll((model, tok), texts, batch_size=4)
    assert counts == manual_counts
    assert sums == pytest.approx(manual_sums, rel=1e-5, abs=1e-5)
    ppl = ev.perplexity((model, tok), texts, batch_size=4)
    assert ppl == pytest.approx(math.exp(sum(manual_sums) / sum(manual_counts)), rel=1e-5)
    # the batch size does not change the answer
    assert ev.perplexity((model, tok), texts, batch_size=1) == pytest.approx(ppl, rel=1e-5)


def test_perplexity_from_a_text_file_and_errors(tmp_path, tiny_llama):
    model, tok = tiny_llama
    f = tmp_path / "t.txt"
    f.write_text("apaga la luz\n\nsube la persiana\n", encoding="utf-8")
    assert ev.read_texts(f) == ["apaga la luz", "sube la persiana"]
    assert ev.perplexity((model, tok), f) == pytest.approx(
        ev.perplexity((model, tok), ["apaga la luz", "sube la persiana"]))
    with pytest.raises(UserError, match="not found"):
        ev.read_texts(tmp_path / "none.txt")
    with pytest.raises(UserError, match="too short"):
        ev.perplexity((model, tok), [""])
    with pytest.raises(UserError, match="ensemble has several"):
        ev.perplexity(FakeProduct({}), ["hola"])


# ---------------------------------------------------------------------------------------------
# cached builds
# ---------------------------------------------------------------------------------------------


def test_run_cached_runs_once_per_configuration(tmp_path, monkeypatch):
    import llmcombo.run as R

    calls = []

    def fake_run(config, out, **kw):
        calls.append(out)
        out.mkdir(parents=True)
        (out / "config.json").write_text("{}")

    monkeypatch.setattr(R, "run", fake_run)
    cfg = {"merge": {"method": "linear", "models": [
        {"model": str(tmp_path / "a"), "parameters": {"weight": 1.0}},
        {"model": str(tmp_path / "b"), "parameters": {"weight": 1.0}}]}}
    a = R.run_cached(cfg, tmp_path / "cache", name="lin")
    b = R.run_cached(cfg, tmp_path / "cache", name="lin")
    cfg2 = {"merge": {**cfg["merge"], "parameters": {"normalize": False}}}
    c = R.run_cached(cfg2, tmp_path / "cache", name="lin")
    assert a == b != c and len(calls) == 2 and a.name.startswith("lin-")


# ---------------------------------------------------------------------------------------------
# lm-evaluation-harness
# ---------------------------------------------------------------------------------------------


def test_lm_eval_not_installed_is_a_user_error(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "lm_eval", None)  # import fails, installed or not
    with pytest.raises(UserError, match="lm-evaluation-harness is not installed") as info:
        ev.evaluate_lm_eval(str(tmp_path), ["arc_easy"])
    assert "llmcombo[lm-eval]" in info.value.hint


def test_lm_eval_offline_is_an_offline_error_and_results_are_tidy(monkeypatch, tmp_path):
    fake = types.ModuleType("lm_eval")
    seen = {}

    def offline(**kw):
        seen.update(kw)
        raise ConnectionError("Couldn't reach 'allenai/ai2_arc' on the Hub (LocalEntryNotFoundError)")

    fake.simple_evaluate = offline
    monkeypatch.setitem(sys.modules, "lm_eval", fake)
    with pytest.raises(OfflineError, match="could not get the data"):
        ev.evaluate_lm_eval(str(tmp_path), "arc_easy", limit=5)
    assert seen["tasks"] == ["arc_easy"] and seen["limit"] == 5
    assert seen["model_args"].startswith(f"pretrained={tmp_path}")
    # lm-eval's hf model would default to cuda; without a GPU the bridge asks for the CPU
    assert seen["device"] == ("cuda" if torch.cuda.is_available() else "cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(OfflineError):
        ev.evaluate_lm_eval(str(tmp_path), "arc_easy", limit=5)
    assert seen["device"] == "cpu"
    with pytest.raises(OfflineError):
        ev.evaluate_lm_eval(str(tmp_path), "arc_easy", device="cuda:1")
    assert seen["device"] == "cuda:1"  # an explicit choice is passed through

    fake.simple_evaluate = lambda **kw: {
        "results": {"arc_easy": {"alias": "arc_easy", "acc,none": 0.5, "acc_stderr,none": 0.1,
                                 "acc_norm,none": 0.25, "acc_norm_stderr,none": "N/A"}},
        "n-samples": {"arc_easy": {"original": 2376, "effective": 5}}}
    df = ev.evaluate_lm_eval(str(tmp_path), ["arc_easy"], name="m")
    assert df[["product", "task", "metric", "value", "n"]].values.tolist() == [
        ["m", "arc_easy", "acc", 0.5, 5], ["m", "arc_easy", "acc_norm", 0.25, 5]]
    assert df.iloc[0]["ci_low"] == pytest.approx(0.5 - ev.Z95 * 0.1)
    assert math.isnan(df.iloc[1]["ci_low"])
    # what lm_eval 0.4.13 returns for a local multiple-choice task: sample_len is bookkeeping,
    # and the normal-approximation interval of a proportion stays inside [0, 1]
    df = ev.lm_eval_frame({"results": {"mine": {
        "alias": "mine", "sample_len": 20, "acc,none": 0.05, "acc_stderr,none": 0.05,
        "acc_norm,none": 0.95, "acc_norm_stderr,none": 0.05, "perplexity,none": 3.0,
        "perplexity_stderr,none": 2.0}}, "n-samples": {"mine": {"effective": 20}}}, "m")
    got = {r.metric: (r.value, r.ci_low, r.ci_high) for r in df.itertuples()}
    assert set(got) == {"acc", "acc_norm", "perplexity"}
    assert got["acc"] == pytest.approx((0.05, 0.0, 0.05 + ev.Z95 * 0.05))
    assert got["acc_norm"] == pytest.approx((0.95, 0.95 - ev.Z95 * 0.05, 1.0))
    assert got["perplexity"] == pytest.approx((3.0, 0.0, 3.0 + ev.Z95 * 2.0))
    with pytest.raises(UserError, match="ensembles"):
        ev.evaluate_lm_eval(FakeProduct({}), ["arc_easy"])


def test_lm_eval_unknown_task_suggests_close_names(monkeypatch, tmp_path):
    fake = types.ModuleType("lm_eval")
    fake.simple_evaluate = lambda **kw: pytest.fail("must not run an unknown task")
    tasks_mod = types.ModuleType("lm_eval.tasks")

    class TaskManager:
        all_tasks = ["arc_easy", "arc_challenge", "hellaswag"]

    tasks_mod.TaskManager = TaskManager
    fake.tasks = tasks_mod
    monkeypatch.setitem(sys.modules, "lm_eval", fake)
    monkeypatch.setitem(sys.modules, "lm_eval.tasks", tasks_mod)
    with pytest.raises(UserError, match="unknown lm-eval task.*arc_eazy") as info:
        ev.evaluate_lm_eval(str(tmp_path), ["arc_eazy", "hellaswag"])
    assert "arc_easy" in info.value.hint


def test_lm_eval_include_path_must_be_a_folder(monkeypatch, tmp_path):
    fake = types.ModuleType("lm_eval")
    fake.simple_evaluate = lambda **kw: pytest.fail("must not run")
    monkeypatch.setitem(sys.modules, "lm_eval", fake)
    with pytest.raises(UserError, match="include_path .* is not a folder"):
        ev.evaluate_lm_eval(str(tmp_path), ["mine"], include_path=tmp_path / "nope")
