"""What the demo runs: its product names, the sizes of a run (:class:`Settings`; ``quick`` for CI)
and the configurations of its merges, mixture of experts, vote and router.

:mod:`llmcombo.zoo.demo` runs them; :mod:`llmcombo.zoo.demo_report` tabulates their results.
Both re-export what they use from here, so ``from llmcombo.zoo.demo import PRODUCTS`` keeps working.
"""

from __future__ import annotations

from dataclasses import dataclass

TASKS = ("domotica", "tiempo")
PARENTS = ("base", "domotica", "tiempo")
MERGES = ("linear", "slerp", "task_arithmetic", "ties", "dare_ties")
PRODUCTS = PARENTS + MERGES + ("moe", "vote", "router")
SEARCH = "search"  # the best merge of the demo's search: a row of the table after the merges
TABLE_ORDER = PARENTS + MERGES + (SEARCH, "moe", "vote", "router")
VOTE_TEMPERATURE = 0.7
VOTE_SAMPLES = 3
# vote scaling: each specialist on its own task, sampled hot enough that one answer is often
# wrong, so the figure shows what more votes add (N = 1 is a single sample)
SCALING_TEMPERATURE = 1.0


@dataclass(frozen=True)
class Settings:
    """Sizes of one demo run (``quick``: the CI sizes)."""

    quick: bool
    limit: int | None  # held-out prompts per task (None: all 300)
    sweep_ts: tuple[float, ...]
    sweep_limit: int | None
    vote_samples: tuple[int, ...]
    vote_limit: int | None
    routing_limit: int | None
    samples_shown: int = 6
    search_trials: int = 30
    search_limit: int | None = 100  # validation prompts per task and trial

    @classmethod
    def make(cls, quick: bool) -> "Settings":
        if quick:
            return cls(True, 40, (0.0, 0.5, 1.0), 40, (1, 3), 40, 40, 4, 10, 30)
        return cls(False, None, (0.0, 0.25, 0.5, 0.75, 1.0), 100, (1, 3, 5, 9), 100, 100, 6,
                   30, 100)


def merge_configs() -> dict[str, dict]:
    """The five merges and the MoE of the demo (shipped presets; task arithmetic written here)."""
    from llmcombo.configuration import load_preset

    cfgs = {
        "linear": dict(load_preset("linear")),
        "slerp": dict(load_preset("slerp")),
        "task_arithmetic": {
            "name": "task-arithmetic",
            "description": "Task arithmetic: base + both task vectors (weight 1 each).",
            "merge": {"method": "task_arithmetic", "base_model": "zoo:base",
                      "models": [{"model": "zoo:domotica", "parameters": {"weight": 1.0}},
                                 {"model": "zoo:tiempo", "parameters": {"weight": 1.0}}],
                      "dtype": "float32"}},
        "ties": dict(load_preset("ties")),
        "dare_ties": dict(load_preset("dare_ties")),
        "moe": dict(load_preset("moe")),
    }
    return cfgs


def ensemble_configs(vote_samples: int = VOTE_SAMPLES) -> dict[str, dict]:
    """The vote and the router of the demo."""
    from llmcombo.zoo.experiments import vote_config

    return {
        "vote": vote_config(["zoo:domotica", "zoo:tiempo"], vote_samples,
                            temperature=VOTE_TEMPERATURE, seed=0, tie_break="likelihood"),
        "router": {"ensemble": {"router": {
            "selector": {"kind": "label_model", "model": "zoo:selector", "threshold": 0.5},
            "routes": [{"label": "LLM1", "model": "zoo:domotica"},
                       {"label": "LLM2", "model": "zoo:tiempo"}],
            "fallback": "LLM1"}}},
    }


__all__ = ["MERGES", "PARENTS", "PRODUCTS", "SCALING_TEMPERATURE", "SEARCH", "Settings",
           "TABLE_ORDER", "TASKS", "VOTE_SAMPLES", "VOTE_TEMPERATURE", "ensemble_configs",
           "merge_configs"]
