"""The ensemble's checks: the rules of the ensemble branch that a boolean expression cannot say
(:func:`check_ensemble`: answers to compare and ties in a vote, route labels, the fallback, what
each selector needs, keywords shared by routes, backends) and the model-aware check
(:func:`check_models`: do the ensemble's models exist; reads config.json files, like
:mod:`llmcombo.preflight`). :mod:`llmcombo.ensemble.spec` registers both with the family.
"""

from __future__ import annotations

import difflib
from typing import Any

from llmcombo.featuremodel import error, warning
from llmcombo.featuremodel.issues import Issue
from llmcombo.ensemble.backends import check_backends, check_llama_model, model_entries
from llmcombo.ensemble.branch import E, ROUTER, VOTE, model_slots
from llmcombo.shapes import as_dict as _as_dict
from llmcombo.shapes import as_list as _as_list


# ---------------------------------------------------------------------------------------------
# checks (rules a boolean expression cannot say)
# ---------------------------------------------------------------------------------------------

CHECK_DOC = ("votes need at least two answers (members x samples) and an odd number of answers or "
             "a tie rule; route labels are unique; the fallback names a route; the embedding "
             "selector needs example prompts and the keyword selector keywords on every route; "
             "a .gguf model runs on llama_cpp only")


def _default(ctx, path: str) -> Any:
    return ctx.model.attribute(path).default_for(ctx.selection)


def _get(d: dict, key: str, ctx, path: str) -> Any:
    v = d.get(key) if isinstance(d, dict) else None
    return _default(ctx, path) if v is None else v


def _int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None



def _check_vote(vote: dict, ctx) -> list[Issue]:
    issues: list[Issue] = []
    members = [m for m in _as_list(vote.get("members")) if isinstance(m, dict)]
    samples = _int(_get(vote, "samples", ctx, f"{VOTE}.samples"))
    if not members or samples is None:
        return issues
    n = len(members) * samples
    what = (f"{len(members)} member(s) x {samples} answer(s) each" if len(members) > 1
            else f"1 member x {samples} answer(s)")
    if n < 2:
        issues.append(error(f"{VOTE}.samples", f"A vote needs at least two answers to compare; "
                                               f"this one has {what}.",
                            "Set samples to 3 (three answers of the same model), or add members.",
                            "count"))
    elif n % 2 == 0 and vote.get("tie_break") is None:
        issues.append(error(f"{VOTE}.tie_break", f"With {n} answers ({what}) two answers can tie "
                                                 f"({n // 2} against {n // 2}); say how a tie is "
                                                 "broken.",
                            "Set tie_break (first, random, likelihood or judge), or use an odd "
                            "number of answers.", "tie"))
    sampling = _as_dict(vote.get("sampling"))
    temp = sampling.get("temperature", _default(ctx, f"{VOTE}.sampling.temperature"))
    refs = [m.get("model") for m in members]
    if samples > 1 and temp == 0:
        issues.append(warning(f"{VOTE}.sampling.temperature",
                              "With temperature 0 every answer of the same model is the same, so "
                              "its extra samples change nothing.",
                              "Use a temperature above 0 (for example 1.0) or one sample per "
                              "member.", "greedy"))
    elif len(members) > 1 and len(set(map(str, refs))) == 1 and temp == 0:
        issues.append(warning(f"{VOTE}.members", "Every member is the same model answering "
                                                 "greedily: they all give the same answer.",
                              "Use different models, or sample (temperature above 0).", "greedy"))
    if vote.get("judge") is not None and vote.get("decide", "majority") != "judge" \
            and vote.get("tie_break") != "judge":
        issues.append(warning(f"{VOTE}.judge", "A judge is set but not used: the vote is decided "
                                               "by majority and ties are not broken by the judge.",
                              "Set decide: judge or tie_break: judge, or remove the judge.",
                              "ignored"))
    return issues


def _norm_label(label: Any) -> str:
    return str(label).strip()


def _check_router(router: dict, ctx) -> list[Issue]:
    issues: list[Issue] = []
    routes = _as_list(router.get("routes"))
    labels: dict[str, int] = {}
    for i, r in enumerate(routes):
        if not isinstance(r, dict) or not isinstance(r.get("label"), str):
            continue
        lab = _norm_label(r["label"])
        if lab in labels:
            issues.append(error(f"{ROUTER}.routes[{i}].label",
                                f"Two routes are called {lab} (routes {labels[lab] + 1} and "
                                f"{i + 1}); the selector could not tell which one it means.",
                                "Give every route its own label.", "duplicate"))
        else:
            labels[lab] = i
    fallback = router.get("fallback")
    if isinstance(fallback, str) and labels and _norm_label(fallback) not in labels:
        close = difflib.get_close_matches(fallback, list(labels), n=1, cutoff=0.5)
        issues.append(error(f"{ROUTER}.fallback",
                            f"The fallback route {fallback} is not one of the routes "
                            f"({', '.join(labels)}).",
                            f"Did you mean {close[0]}?" if close else
                            "Use the label of one of the routes.", "fallback"))
    selector = _as_dict(router.get("selector"))
    kind = selector.get("kind")
    need = {"embedding": ("examples", "The embedding selector compares the prompt with each "
                                      "route's example prompts, but route {label} has none.",
                          "Add a few typical prompts of this route under examples."),
            "keywords": ("keywords", "The keyword selector looks for each route's keywords, but "
                                     "route {label} has none.",
                         "Add words that send a prompt to this route under keywords.")}
    if kind in need:
        key, msg, hint = need[kind]
        for i, r in enumerate(routes):
            if isinstance(r, dict) and not r.get(key):
                # code "requires": replaces the generic "is required here" of the same field
                issues.append(error(f"{ROUTER}.routes[{i}].{key}",
                                    msg.format(label=r.get("label", i + 1)), hint, "requires"))
    if kind == "keywords":
        owner: dict[str, Any] = {}  # keyword -> its route's label (labels are checked above)
        for i, r in enumerate(routes):
            if not isinstance(r, dict):
                continue
            for kw in r.get("keywords") or []:
                if not isinstance(kw, str):
                    continue
                key = _fold(kw)
                if key in owner and owner[key] != r.get("label"):
                    issues.append(warning(f"{ROUTER}.routes[{i}].keywords",
                                          f"The keyword {kw!r} belongs to two routes "
                                          f"({owner[key]} and {r.get('label')}); it cannot "
                                          "decide between them.", "Keep it in one route.",
                                          "keywords"))
                owner.setdefault(key, r.get("label"))
    return issues


def _fold(text: str) -> str:
    import unicodedata

    text = unicodedata.normalize("NFKD", str(text).lower())
    return " ".join("".join(c for c in text if not unicodedata.combining(c)).split())


def check_ensemble(data: dict, ctx) -> list[Issue]:
    ens = data.get(E)
    if not isinstance(ens, dict):
        return []
    issues: list[Issue] = check_backends(ens, data)
    if isinstance(ens.get("vote"), dict):
        issues += _check_vote(ens["vote"], ctx)
    if isinstance(ens.get("router"), dict):
        issues += _check_router(ens["router"], ctx)
    return issues


# ---------------------------------------------------------------------------------------------
# model-aware check (reads config.json files, like llmcombo.preflight)
# ---------------------------------------------------------------------------------------------


def check_models(config: dict, base_dir=None) -> list[Issue]:
    """Do the ensemble's models exist? A missing local folder is an error; a hub id that cannot
    be checked because the Hub is unreachable is a warning. Reads config.json only."""
    from llmcombo.preflight import inspect_model

    issues: list[Issue] = []
    seen: dict[str, list[Issue]] = {}
    selector = ((config.get(E) or {}).get("router") or {}).get("selector") or {}
    llama = {f"{p}.model": m for p, m in model_entries(config)
             if (m.get("backend") or ("llama_cpp" if str(m.get("model", "")).lower()
                                      .endswith(".gguf") else "transformers")) == "llama_cpp"}
    for slot in model_slots(config):
        path, ref = slot.path, slot.ref
        if path in llama:
            issues += check_llama_model(ref, path, base_dir, slot.role == "classifier")
            if ref.lower().endswith(".gguf"):
                continue
        if slot.role == "classifier":
            continue  # a classifier folder holds selector.json, not a model (checked below)
        if ref not in seen:
            _, found = inspect_model(ref, path, base_dir)
            seen[ref] = found
            issues += found
        else:  # same model again: same verdict, at this path too
            issues += [Issue(i.severity, path, i.message, i.hint, i.code) for i in seen[ref]]
    if selector.get("kind") == "classifier" and isinstance(selector.get("model"), str):
        from llmcombo import modelref
        from pathlib import Path

        folder = Path(modelref.resolve(selector["model"], base_dir))
        if not folder.is_dir():
            issues.append(error(f"{ROUTER}.selector.model",
                                f"the classifier folder {folder} does not exist.",
                                "Train one with llmcombo.ensemble.train_selector(..., "
                                "kind='hidden_classifier', out=FOLDER).", "model_missing"))
        elif not (folder / "selector.json").is_file():
            issues.append(error(f"{ROUTER}.selector.model",
                                f"{folder} has no selector.json, so it is not a classifier "
                                "written by train_selector.",
                                "Train one with llmcombo.ensemble.train_selector(..., "
                                "kind='hidden_classifier').", "no_selector"))
    return issues
