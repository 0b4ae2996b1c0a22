"""Experiments on the zoo that merge or ensemble models and measure them: an interpolation sweep
between two models, a vote as the number of answers grows, and the demo's product-line search.
The first two return a tidy pandas frame; :mod:`llmcombo.plots` draws them."""

from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

from llmcombo.errors import UserError
from llmcombo.zoo.tasks import TASK_NAMES

# the demo's search: the table's methods that draw no random masks, and NuSLERP (spherical
# interpolation of both task vectors from the base)
SEARCH_METHODS = ("linear", "slerp", "task_arithmetic", "ties", "nuslerp")


def sweep_config(model_a: str, model_b: str, t: float, method: str = "slerp",
                 dtype: str = "float32") -> dict:
    """The merge configuration of one sweep point: ``t = 0`` is model A, ``t = 1`` model B."""
    if method == "slerp":
        merge = {"method": "slerp", "base_model": model_a,
                 "models": [{"model": model_a}, {"model": model_b}],
                 "parameters": {"t": float(t)}, "dtype": dtype}
    elif method == "linear":
        merge = {"method": "linear",
                 "models": [{"model": model_a, "parameters": {"weight": round(1.0 - t, 10)}},
                            {"model": model_b, "parameters": {"weight": float(t)}}],
                 "dtype": dtype}
    else:
        raise UserError(f"an interpolation sweep uses slerp or linear, not {method!r}.")
    return {"name": f"{method}-t{t:.3f}", "merge": merge}


def interpolation_sweep(model_a: str, model_b: str, *, method: str = "slerp", k: int = 5,
                        tasks: Sequence[str] = TASK_NAMES, limit: int | None = None,
                        cache_dir: str | os.PathLike, batch_size: int = 64, progress: Any = None,
                        ts: Sequence[float] | None = None):
    """Accuracy on each task along ``t = 0, 1/(k-1), ..., 1`` between ``model_a`` and ``model_b``.
    Each point is a merge run with :func:`llmcombo.run.run` and cached in ``cache_dir`` by its
    configuration hash (a second sweep reuses them). Rows: the tidy columns plus ``t`` and
    ``method``; ``product`` is ``METHOD t=T``."""
    import pandas as pd

    from llmcombo import evaluate as ev
    from llmcombo.run import run_cached

    if ts is None:
        if k < 2:
            raise UserError("an interpolation sweep needs at least 2 points (k >= 2).")
        ts = [i / (k - 1) for i in range(k)]
    rows = []
    for t in ts:
        folder = run_cached(sweep_config(model_a, model_b, t, method), cache_dir,
                            name=f"sweep-{method}-t{t:.3f}")
        for task in tasks:
            ds = ev.dataset(task, limit=limit)
            answers = ev.answer_examples(str(folder), ds.examples, batch_size=batch_size,
                                         progress=progress, desc=f"{method} t={t:.2f} {task}")
            r = ev.accuracy_row(f"{method} t={t:.2f}", ds.name, answers,
                                [e.expected for e in ds.examples])
            rows.append({**r, "t": float(t), "method": method})
    return pd.DataFrame(rows)


def vote_config(members: Sequence[str], samples: int, *, temperature: float = 1.0,
                seed: int = 0, tie_break: str = "likelihood") -> dict:
    """An ensemble configuration: every member answers ``samples`` times; majority wins."""
    vote: dict[str, Any] = {"members": [{"model": m} for m in members], "samples": int(samples),
                            "decide": "majority", "tie_break": tie_break}
    if samples > 1 or temperature > 0:
        vote["sampling"] = {"temperature": float(temperature), "seed": int(seed)}
    return {"ensemble": {"vote": vote}}


def _names(models: str | Sequence[str]) -> list[str]:
    return [models] if isinstance(models, str) else list(models)


def vote_scaling(members: Sequence[str] | Mapping[str, Sequence[str] | str],
                 samples: Sequence[int] = (1, 3, 5, 9), *,
                 tasks: Sequence[str] = TASK_NAMES, limit: int | None = None,
                 temperature: float = 1.0, seed: int = 0, tie_break: str = "likelihood",
                 batch_size: int = 64, progress: Any = None):
    """Accuracy of a vote as the number of answers grows: for each ``s`` in ``samples`` every
    member answers ``s`` times (sampled at ``temperature``, seeded) and the majority wins.

    ``members``: models that vote on every task, or ``{task: model(s)}`` so that each task is
    answered by its own specialist; then N starts at 1 (one sample of one model), which shows
    what voting adds over a single noisy answer. Rows: tidy columns plus ``samples``, ``N``
    (answers per prompt = members x samples) and ``temperature``."""
    import pandas as pd

    from llmcombo import evaluate as ev
    from llmcombo.ensemble import load_product

    per_task: dict[str, list[str]]
    if isinstance(members, Mapping):
        per_task = {t: _names(members[t]) for t in members}
        tasks = [t for t in tasks if t in per_task] or list(per_task)
    else:
        per_task = {t: list(members) for t in tasks}
    rows = []
    for s in samples:
        for task in tasks:
            voters = per_task[task]
            n = len(voters) * int(s)
            config = vote_config(voters, s, temperature=temperature, seed=seed,
                                 tie_break=tie_break)
            if n == 1:
                # one sampled answer, the baseline a vote improves on: not a vote a user would
                # configure (validation asks for two answers), so its spec is built directly
                from llmcombo.ensemble.spec import to_spec

                config = to_spec(config, resolve=False)[1]
            product = load_product(config)
            ds = ev.dataset(task, limit=limit)
            answers = ev.answer_examples(product, ds.examples, batch_size=batch_size,
                                         progress=progress, desc=f"vote N={n} {task}")
            r = ev.accuracy_row(f"vote N={n}", ds.name, answers, [e.expected for e in ds.examples])
            rows.append({**r, "samples": int(s), "N": n, "temperature": float(temperature)})
    return pd.DataFrame(rows)


def search_spec(trials: int, limit: int | None) -> dict:
    """The demo's search: merges of the two specialists (:data:`SEARCH_METHODS`), the worst-case
    share of each specialist's skill kept on the zoo's validation splits (``limit`` prompts per
    task), TPE, seed 0."""
    evaluation = {"limit": limit} if limit else {}
    return {"name": "demo-search",
            "description": "The demo's search for the merge that keeps most of both skills.",
            "search": {"models": [{"model": "zoo:domotica"}, {"model": "zoo:tiempo"}],
                       "base_model": "zoo:base",
                       "tasks": [{"task": t} for t in TASK_NAMES], "objective": "worst",
                       "trials": int(trials), "seed": 0,
                       "space": {"methods": list(SEARCH_METHODS)}, "evaluation": evaluation}}


def demo_search(trials: int, limit: int | None, cache_dir: str | os.PathLike, log: Any = None):
    """Run the demo's search (:func:`search_spec`), its study kept in
    ``cache_dir/search-study-HASH`` and resumed, so a second run costs nothing. Returns the
    :class:`~llmcombo.search.driver.SearchResult` (no test split read: the demo measures the
    chosen merge on it like every other product)."""
    from pathlib import Path

    from llmcombo.fsutil import config_hash
    from llmcombo.search import search
    from llmcombo.search.study import has_study

    spec = search_spec(trials, limit)
    out = Path(cache_dir) / f"search-study-{config_hash(spec)}"
    say = (lambda msg: log(f"      {msg}") if msg.startswith("trial") else None) if log else None
    return search(spec, out, resume=has_study(out), report=False, log=say)


def search_meta(found: Any, limit: int | None) -> dict:
    """What demo.json keeps of the demo's search (``found``: its result)."""
    return {"trials": int(found.counts.get("complete", 0)),
            "failed": int(found.counts.get("failed", 0)), "best_trial": found.best_trial,
            "best": found.best_merge or found.best, "seconds": found.timings.get("search_s"),
            "study": str(found.out), "validation_prompts_per_task": limit}


def search_section(search: dict) -> list[str]:
    """The demo report's lines about its search (``search``: the demo.json entry)."""
    from llmcombo.configuration import dump_yaml

    m = search["best"]["merge"]
    return [
        "## The search",
        "",
        f"`search` is the best of {search['trials']} merges of the specialists "
        f"({', '.join(SEARCH_METHODS)}) that a product-line search tried (`llmcombo search`: "
        "Optuna's TPE over each method's parameters in their feature-model domains), chosen "
        "by the smallest share of a specialist's skill it keeps on the tasks' *validation* "
        f"prompts ({search['validation_prompts_per_task'] or 'all'} per task); the table "
        "above measures it on the held-out test prompts, like every other product. Trial "
        f"{search['best_trial']}, {m['method']}:",
        "",
        "```yaml",
        dump_yaml(search["best"]).rstrip(),
        "```",
    ]
