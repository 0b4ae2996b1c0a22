"""Plain-language sentences for what the dashboard shows: answer traces ("routed to the weather
model, 95 % sure") and what an evaluation says about a product ("kept home automation, lost most
of the weather skill: raise density"). Plain Python: tests read the sentences directly."""

from __future__ import annotations

import html
from typing import Any, Mapping

# the zoo's models and tasks, as a person would name them
MODEL_WORDS = {"zoo:domotica": "the home-automation model", "zoo:tiempo": "the weather model",
               "zoo:base": "the base model", "zoo:selector": "the selector model"}
TASK_WORDS = {"domotica": "home automation", "tiempo": "weather"}
SPARSIFYING = {"ties", "dare_ties", "dare_linear", "della", "della_linear", "breadcrumbs",
               "breadcrumbs_ties", "sce"}


def model_words(ref: Any) -> str:
    """``zoo:tiempo`` -> "the weather model (zoo:tiempo)"; other references as they are."""
    ref = str(ref)
    return f"{MODEL_WORDS[ref]} ({ref})" if ref in MODEL_WORDS else ref


def task_words(task: str) -> str:
    return TASK_WORDS.get(task, task)


def _pct(x: Any) -> str:
    try:
        return f"{float(x):.0%}"
    except (TypeError, ValueError):
        return "?"


def _q(text: Any) -> str:
    return f"“{text}”"


# ---------------------------------------------------------------------------------------------
# answer traces
# ---------------------------------------------------------------------------------------------


def trace_sentences(trace: Mapping) -> list[str]:
    """How an answer was reached, in sentences (plain text)."""
    kind = trace.get("kind")
    out: list[str] = []
    if kind == "router":
        scores = (trace.get("selector") or {}).get("scores") or {}
        listed = ", ".join(f"{lab} {_pct(v)}" for lab, v in scores.items())
        member = model_words(trace.get("member"))
        if not trace.get("fallback"):
            out.append(f"Routed to {member}, route {trace.get('route')}, "
                       f"{_pct(trace.get('confidence'))} sure.")
        else:
            reason = str(trace.get("reason") or "the selector gave no route")
            out.append(f"The selector was not sure enough ({reason}), so the fallback route "
                       f"{trace.get('route')}, {member}, answered.")
        if listed:
            out.append(f"Selector scores: {listed}.")
    elif kind == "vote":
        votes = trace.get("votes") or {}
        n, k = trace.get("n"), trace.get("winner_count")
        how = str(trace.get("decided_by") or "")
        winner = next(iter(votes), None) if how == "majority" else None
        if how == "majority":
            out.append(f"{k} of {n} answers agreed on {_q(winner)}: the majority wins.")
        elif how.startswith("tie"):
            tied = trace.get("tie") or []
            rule = trace.get("tie_rule") or how.split(":", 1)[-1]
            rule_words = {"likelihood": "the answer the models found more likely",
                          "first": "the answer given first", "random": "a random pick",
                          "judge": "the judge's pick"}.get(rule, rule)
            out.append(f"The answers tied ({', '.join(_q(t) for t in tied)}, {k} votes each); "
                       f"the tie went to {rule_words}.")
        elif how == "judge":
            out.append(f"A judge scored the {len(votes)} different answers and picked the best.")
        if votes:
            out.append("Votes: " + ", ".join(f"{_q(a)} × {c}" for a, c in votes.items()) + ".")
    elif kind == "pipeline":
        stages = trace.get("stages") or []
        for i, st in enumerate(stages, 1):
            verb = "answered" if i == 1 else "read it and answered"
            out.append(f"Stage {i}, {model_words(st.get('member'))}, {verb} {_q(st.get('output'))}.")
    elif kind == "model":
        out.append(f"{model_words(trace.get('member'))} answered.")
    total = (trace.get("timings") or {}).get("total_s")
    if isinstance(total, (int, float)):
        out.append(f"Took {total:.2f} s.")
    return out


def trace_html(trace: Mapping) -> str:
    """The sentences, then the raw trace (JSON) behind a disclosure."""
    import json

    from llmcombo_widgets.theme import disclosure

    lines = "".join(f"<div class='llmcombo-trace-sentence'>{html.escape(s)}</div>"
                    for s in trace_sentences(trace))
    raw = json.dumps(dict(trace), indent=2, ensure_ascii=False, default=str)
    return lines + disclosure("raw trace (JSON)", raw, cls="llmcombo-raw-trace")


# ---------------------------------------------------------------------------------------------
# what an evaluation says
# ---------------------------------------------------------------------------------------------


def _params(config: Mapping) -> dict:
    """The parameters of a merge configuration, per model and global (first values seen)."""
    merge = config.get("merge") if isinstance(config, Mapping) else None
    if not isinstance(merge, Mapping):
        return {}
    out: dict[str, Any] = dict(merge.get("parameters") or {})
    for m in merge.get("models") or []:
        if isinstance(m, Mapping):
            for k, v in (m.get("parameters") or {}).items():
                out.setdefault(k, v)
    return out


def advice(kind: str, method: str, config: Mapping, winner_task: str | None) -> str:
    """What to change when a combination keeps one skill and loses the other (or both)."""
    params = _params(config)
    good_at = f"the model that is good at {task_words(winner_task)}" if winner_task else \
        "the model that wins"
    if kind == "moe":
        return ("mergekit's MoE builder takes only the MLP layers from the experts; attention, "
                "embeddings and the output head come from the base model. Experts that were "
                "fine-tuned in every layer lose their skill this way. A router ensemble "
                "(Ensembles tab) keeps each model whole.")
    if method in SPARSIFYING:
        d = params.get("density")
        now = f" (now {d})" if isinstance(d, (int, float)) else ""
        return (f"Raise density{now} towards 1 to keep more of each model's changes, or lower "
                f"the weight of {good_at}.")
    if method == "task_arithmetic":
        return f"Lower the weight of {good_at}, or raise the other model's weight."
    if method == "linear":
        return f"Move weight from {good_at} to the other model."
    if method in ("slerp", "nuslerp"):
        t = params.get("t")
        now = f" (now {t})" if isinstance(t, (int, float)) else ""
        return (f"Move t{now} towards the model that lost its skill (t = 0 is the base model, "
                "1 the other model).")
    return ("Try other weights, or a router ensemble (Ensembles tab), which keeps each model "
            "whole.")


def explain_results(frame, runs: Mapping[str, Mapping] | None = None,
                    parents: tuple[str, ...] = ("base", "domotica", "tiempo")) -> list[str]:
    """One sentence per evaluated combination: which skills it kept (compared with the best
    parent on each task) and, when it lost one, why and what to change. ``runs`` maps a
    product's name to ``{kind, method, configuration}`` (from its run's lineage)."""
    if frame is None or len(frame) == 0:
        return []
    acc = frame[frame["metric"] == "accuracy"]
    if acc.empty:
        return []
    piv = acc.pivot_table(index="product", columns="task", values="value", sort=False)
    tasks = list(piv.columns)
    refs = [p for p in piv.index if p in parents]
    best = {t: float(piv.loc[refs, t].max()) if refs else float("nan") for t in tasks}
    out = []
    for prod in piv.index:
        if prod in parents:
            continue
        vals = {t: float(piv.loc[prod, t]) for t in tasks if piv.loc[prod, t] == piv.loc[prod, t]}
        kept = {t: v / best[t] for t, v in vals.items() if best.get(t, 0) and best[t] >= 0.2}
        if not kept:
            continue
        shown = ", ".join(f"{task_words(t)} {v:.0%}" for t, v in vals.items())
        lost = [t for t, k in kept.items() if k < 0.5]
        good = [t for t, k in kept.items() if k >= 0.8]
        meta = (runs or {}).get(prod) or {}
        kind, method = str(meta.get("kind") or ""), str(meta.get("method") or "")
        config = meta.get("configuration") or {}
        if not lost and len(good) == len(kept):
            out.append(f"{prod} kept every skill ({shown}): at least 80 % of the best parent "
                       "on each task.")
        elif lost and good:
            out.append(f"{prod} kept {', '.join(task_words(t) for t in good)} but lost most of "
                       f"{', '.join(task_words(t) for t in lost)} ({shown}). "
                       + advice(kind, method, config, good[0]))
        elif lost and len(lost) == len(kept):
            out.append(f"{prod} kept little of any skill ({shown}). "
                       + advice(kind, method, config, None))
        else:
            out.append(f"{prod} kept part of each skill ({shown}). "
                       + advice(kind, method, config, max(kept, key=lambda t: kept[t])))
    return out


__all__ = ["MODEL_WORDS", "TASK_WORDS", "advice", "explain_results", "model_words",
           "task_words", "trace_html", "trace_sentences"]
