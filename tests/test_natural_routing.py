"""The README's router on prompts typed the way people type them (accents, capitals, ¿?, words
outside the zoo's grammar). The selector must choose among the route labels by their scores and
fall back, saying so, only when it is unsure; the routing accuracy on the full hand-written sets
(tests/data/natural/*.jsonl) is a benchmark figure (bench/natural_routing.py), not asserted here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parent / "data" / "natural"
THRESHOLD = 0.6
README_ROUTER = {"ensemble": {"router": {
    "selector": {"kind": "label_model", "model": "zoo:selector", "threshold": THRESHOLD},
    "fallback": "LLM1",
    "routes": [{"label": "LLM1", "model": "zoo:domotica"},
               {"label": "LLM2", "model": "zoo:tiempo"}]}}}

# typed by hand; the first two are the questions the router once sent to home automation
TYPED = [
    ("que tiempo hace mañana", "LLM2"),
    ("¿Qué tiempo hace hoy?", "LLM2"),
    ("¿Va a llover el sábado en Sevilla?", "LLM2"),
    ("Apaga la tele del salón", "LLM1"),
    ("¿Puedes encender la luz de la cocina, por favor?", "LLM1"),
    ("BAJA LAS PERSIANAS DEL DORMITORIO", "LLM1"),
]


def natural_prompts(limit_per_file: int = 6) -> list[tuple[str, str]]:
    """A handful of the hand-written sets when they are there, else the prompts above."""
    rows = []
    for f in sorted(DATA.glob("*.jsonl")):
        lines = [json.loads(x) for x in f.read_text(encoding="utf-8").splitlines() if x.strip()]
        rows += [(r["prompt"], r["route"]) for r in lines[:limit_per_file]]
    return rows or TYPED


@pytest.fixture(scope="module")
def router(zoo):
    from llmcombo.ensemble import load_product

    return load_product(README_ROUTER)


def test_the_route_is_the_most_probable_label_or_the_fallback_when_unsure(router):
    prompts = [p for p, _ in natural_prompts()] + [p for p, _ in TYPED]
    for a in router.answer_batch(prompts):
        t = a.trace
        scores = t["selector"]["scores"]
        assert set(scores) == {"LLM1", "LLM2"} and abs(sum(scores.values()) - 1) < 1e-3
        best = max(scores, key=scores.get)
        assert t["confidence"] == pytest.approx(scores[best], abs=1e-4)
        if t["confidence"] >= THRESHOLD:
            assert (t["route"], t["fallback"], t["reason"]) == (best, False, "selector")
        else:  # unsure: the fallback answers and the trace says what it would have chosen
            assert t["route"] == "LLM1" and t["fallback"]
            assert "unsure" in t["reason"] and f"would have chosen {best}" in t["reason"]
        assert t["member"] == {"LLM1": "zoo:domotica", "LLM2": "zoo:tiempo"}[t["route"]]


def test_ordinary_weather_questions_reach_the_weather_model(router):
    """`que tiempo hace mañana` was answered CALEF_GA ON: the selector scored LLM2 high, but its
    greedy text was not a label and the router fell back to home automation."""
    for a in router.answer_batch([p for p, _ in TYPED[:2]]):
        assert a.trace["route"] == "LLM2", a.trace
        assert a.trace["member"] == "zoo:tiempo"
