"""The second seed's example, word for word, on llama.cpp with the zoo models in GGUF: the vote of
three instances of the home-automation model on ``[ORDEN] apaga la luz del salon [COMANDO]`` (the
seed runs llama.cpp's ``batched`` with 3 sequences) and the LLM1/LLM2 router (the seed's selector
answers LLM1 for ``apaga la luz del salon`` and LLM2 for ``que tiempo hace``).

The shipped zoo (v2) has a Llama-2-shaped tokenizer that llama.cpp's converter reads; the refusal
of a tokenizer it does not recognise (zoo v1's shape) is tested in test_gguf.py.
"""

from __future__ import annotations

import pytest

from llmcombo.ensemble import load_product
from llmcombo.gguf import export as gx
from llmcombo.zoo.tasks import normalize_command

SEED_PROMPT = "[ORDEN] apaga la luz del salon [COMANDO]"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def zoo_gguf(zoo, llama_cpp, gguf_cache, tmp_path_factory):
    """The zoo's domotica, tiempo and selector models as f16 GGUF files."""
    out = tmp_path_factory.mktemp("zoo-gguf")
    return {name: gx.export_gguf(f"zoo:{name}", out / f"{name}-f16.gguf", "f16").path
            for name in ("domotica", "tiempo", "selector")}


def test_vote_of_three_instances_as_the_seed_runs_batched(zoo_gguf):
    vote = load_product({"ensemble": {"vote": {
        "members": [{"model": str(zoo_gguf["domotica"]), "template": "{input}"}],
        "samples": 3, "sampling": {"temperature": 0.7, "seed": 0}}}})
    lm = vote.voters[0].lm
    lm.decode_calls = 0
    answer = vote.answer(SEED_PROMPT)  # the seed's prompt, word for word
    trace = answer.trace
    assert trace["n"] == 3 and len(trace["samples"]) == 3 and trace["backend"] == "llama_cpp"
    assert lm.decode_calls <= 1 + vote.voters[0].max_new_tokens  # one batch of 3 sequences
    assert trace["winner_count"] >= 2  # "el comando que devuelvan al menos dos de ellas"
    assert normalize_command(answer.text) == "LUZ_SL OFF"


def test_the_seed_selector_answers_llm1_and_llm2(zoo_gguf):
    """./main -m ggml-select.gguf -p "<s>\\n [ORDEN] apaga la luz del salon\\n [COMANDO]" -> LLM1"""
    selector = load_product(str(zoo_gguf["selector"]))  # a .gguf file: llama.cpp
    assert selector.answer("apaga la luz del salon").text == "LLM1"
    assert selector.answer("que tiempo hace").text == "LLM2"


def test_the_seed_router_on_llama_cpp(zoo_gguf):
    router = load_product({"ensemble": {"router": {
        "selector": {"kind": "label_model", "model": str(zoo_gguf["selector"])},
        "routes": [{"label": "LLM1", "model": str(zoo_gguf["domotica"])},
                   {"label": "LLM2", "model": str(zoo_gguf["tiempo"])}],
        "fallback": "LLM1"}}})
    dom, wea = router.answer("apaga la luz del salon"), router.answer("que tiempo hace")
    assert (dom.trace["route"], wea.trace["route"]) == ("LLM1", "LLM2")
    assert dom.trace["selector"]["backend"] == wea.trace["backend"] == "llama_cpp"
    assert normalize_command(dom.text) == "LUZ_SL OFF"
    assert normalize_command(wea.text).startswith("TIEMPO")
