"""The ensemble branch of the feature model: runtime compositions of models.

Three kinds, an alternative group under ``ensemble``; each is configured, validated, generated and
run like a merge::

    ensemble:                          ensemble:                      ensemble:
      pipeline:                          vote:                          router:
        stages:                            members:                       selector:
          - model: zoo:base                  - model: zoo:domotica          kind: label_model
            template: "... {input} ..."    samples: 5                       model: zoo:selector
            output: text                   sampling:                        threshold: 0.6
          - model: zoo:domotica              temperature: 1.2             routes:
                                             seed: 0                        - label: LLM1
                                           tie_break: likelihood              model: zoo:domotica
                                                                            - label: LLM2
                                                                              model: zoo:tiempo
                                                                          fallback: LLM1

Every place that names a model (a pipeline stage, a vote member, a route, a judge) is a *member*:
``model`` plus how the model is prompted and read:

``template``
    the text the model receives; ``{input}`` is replaced by the member's input (the user's prompt,
    or the previous stage's answer in a pipeline; ``{prompt}`` is always the user's original
    prompt). Default ``[ORDEN] {input} [COMANDO]``: the zoo's task format
    (:func:`llmcombo.zoo.tasks.format_prompt`), so raw user text goes in and a command comes out.
``output``
    how the answer is read from the generated text: ``command`` (the zoo's commands:
    :func:`llmcombo.zoo.tasks.parse_command`, cut at the end of the line, upper-cased), ``line`` (the
    first line, stripped) or ``text`` (everything, stripped).
``max_new_tokens``
    the most tokens the member may generate.
``backend``
    ``transformers`` (default) or ``llama_cpp``: llama.cpp through llama-cpp-python (the
    ``[llama]`` extra), for a ``.gguf`` file (always llama_cpp) or a model folder converted once
    to a cached GGUF of type ``quant`` (default f16); ``threads`` sets llama.cpp's CPU threads
    (default 1 for models under 50M parameters). The selector and a judge take them too.

:func:`to_spec` (registered with :func:`llmcombo.generate.register_generator`) turns a valid
configuration into the *ensemble spec*: the same content with every default filled in and model
references resolved; :func:`llmcombo.ensemble.load_product` runs it.
"""

from __future__ import annotations

import difflib
from typing import Any

from llmcombo.featuremodel import (
    MANY, Attribute, Check, Constraint, CountCmp, EnumType, Eq, Feature, FloatType, IntType,
    ModelRefType, Or, Sel, StringListType, StringType, alternative, error, warning,
)
from llmcombo.featuremodel.issues import Issue
from llmcombo.ensemble import formats
from llmcombo.ensemble.backends import (
    backend_spec, check_backends, check_llama_model, backend_attributes, model_entries,
)
from llmcombo.productline import Family, ModelSlot, register_family
from llmcombo.shapes import as_dict as _as_dict
from llmcombo.shapes import as_list as _as_list

SPEC_VERSION = 1
DEFAULT_TEMPLATE = "[ORDEN] {input} [COMANDO]"
SELECTOR_KINDS = {
    "label_model": "a selector model that answers a route label (LLM1 / LLM2)",
    "embedding": "similarity of the prompt's hidden states to each route's example prompts",
    "keywords": "keywords of each route found in the prompt",
    "classifier": "a classifier on hidden states (llmcombo.ensemble.train_selector)",
}
TIE_RULES = {
    "first": "the tied answer given first (members in order, then samples in order)",
    "random": "a random tied answer (seeded by sampling.seed)",
    "likelihood": "the tied answer the members found most likely (mean log-probability)",
    "judge": "the judge picks among the tied answers",
}
DEVICES = ("auto", "cpu", "cuda")
DTYPES = ("auto", "float32", "float16", "bfloat16")

E = "ensemble"
VOTE = "ensemble.vote"
ROUTER = "ensemble.router"
SEL_KIND = "ensemble.router.selector.kind"
JUDGE_KIND = "ensemble.vote.judge.kind"


# ---------------------------------------------------------------------------------------------
# the branch
# ---------------------------------------------------------------------------------------------


def member_attributes() -> list[Attribute]:
    """What every member (stage, vote member, route) says about its model."""
    outputs = {name: o.description for name, o in formats.outputs().items()}
    return [
        Attribute("model", ModelRefType(), required=True, label="model",
                  description="a model folder, a Hugging Face id (owner/name) or zoo:NAME"),
        Attribute("template", StringType(must_contain="{input}", multiline=True),
                  default=DEFAULT_TEMPLATE, label="prompt template",
                  description="the text the model receives; {input} is replaced by the input "
                              "({prompt}: the user's original prompt)"),
        Attribute("output", EnumType(tuple(outputs), labels=outputs), default="command",
                  label="read the answer as",
                  description="command (zoo task format), first line, or the whole text"),
        Attribute("max_new_tokens", IntType(1, 4096), default=24, label="max new tokens",
                  advanced=True, description="the most tokens this model may generate"),
    ] + backend_attributes()


def _pipeline() -> Feature:
    return Feature(
        "pipeline", label="Pipeline",
        description="The prompt goes to the first model; its answer, placed in the next "
                    "template, is the next model's prompt, and so on.",
        children=[Feature("stages", label="stages", card=(2, MANY), attributes=member_attributes(),
                          description="The models in the order they run.")],
    )


def _vote() -> Feature:
    judge_model = Eq(JUDGE_KIND, "model")
    judge_functions = formats.judges()
    sampling = Feature(
        "sampling", label="sampling", optional=True,
        description="How each answer is sampled (temperature 0: greedy, always the same answer).",
        attributes=[
            Attribute("temperature", FloatType(0.0, None), default=1.0, label="temperature",
                      description="randomness of each answer; 0 is greedy"),
            Attribute("top_k", IntType(0, None), default=0, label="top-k",
                      description="sample among the k most likely tokens (0: all)"),
            Attribute("top_p", FloatType(0.0, 1.0, min_open=True), default=1.0, label="top-p",
                      description="sample among the most likely tokens covering this probability"),
            Attribute("seed", IntType(0, None), label="seed",
                      description="makes the samples reproducible (empty: different every run)"),
        ],
    )
    judge = Feature(
        "judge", label="judge", optional=True,
        description="Picks the best answer: a model (the candidate it finds most likely) or a "
                    "scoring function.",
        attributes=[
            Attribute("kind", EnumType(("model", "function"), labels={
                "model": "a judge model scores each candidate answer",
                "function": "a scoring function scores each candidate answer"}),
                required=True, label="judge kind"),
            Attribute("model", ModelRefType(), label="judge model", required_when=judge_model,
                      when=judge_model, ignored_hint="Only a judge of kind model uses a model.",
                      description="scores each candidate by how likely it finds it"),
            Attribute("template", StringType(must_contain="{input}", multiline=True),
                      default=DEFAULT_TEMPLATE, label="judge prompt template", when=judge_model,
                      ignored_hint="Only a judge of kind model uses a template."),
            *backend_attributes(),
            Attribute("function", EnumType(tuple(judge_functions), labels=judge_functions,
                                           open=True, open_type=StringType()),
                      label="scoring function", required_when=Eq(JUDGE_KIND, "function"),
                      when=Eq(JUDGE_KIND, "function"),
                      ignored_hint="Only a judge of kind function uses a function.",
                      description="known_command, longest, shortest, or module:function "
                                  "called as fn(prompt, answer) -> number"),
        ],
    )
    return Feature(
        "vote", label="Vote",
        description="The same prompt goes to every member (or N samples of one model); the "
                    "answer most of them give wins, or a judge picks the best.",
        attributes=[
            Attribute("samples", IntType(1, 64), default=1,
                      defaults=[(CountCmp("ensemble.vote.members", "==", 1), 3)],
                      label="answers per member",
                      description="how many answers each member gives (sampled in one batch)"),
            Attribute("decide", EnumType(("majority", "judge"), labels={
                "majority": "the answer given most often wins",
                "judge": "the judge picks the best answer"}), default="majority",
                label="how the winner is decided"),
            Attribute("tie_break", EnumType(tuple(TIE_RULES), labels=TIE_RULES), label="tie rule",
                      description="how a tie between equally frequent answers is broken"),
        ],
        children=[Feature("members", label="members", card=(1, MANY),
                          attributes=member_attributes(),
                          description="The models that answer (one model sampled N times, or "
                                      "several models)."),
                  sampling, judge],
    )


def _router() -> Feature:
    kind_uses_model = Or((Eq(SEL_KIND, "label_model"), Eq(SEL_KIND, "embedding"),
                          Eq(SEL_KIND, "classifier")))
    kind_embeds = Or((Eq(SEL_KIND, "label_model"), Eq(SEL_KIND, "embedding")))
    selector = Feature(
        "selector", label="selector", description="Decides which route answers a prompt.",
        attributes=[
            Attribute("kind", EnumType(tuple(SELECTOR_KINDS), labels=SELECTOR_KINDS),
                      required=True, label="selector kind"),
            Attribute("model", ModelRefType(), label="selector model",
                      required_when=kind_uses_model, when=kind_uses_model,
                      ignored_hint="The keyword selector uses no model; remove it.",
                      description="label_model: the model that answers a label; embedding: the "
                                  "model whose hidden states are compared; classifier: the "
                                  "folder written by llmcombo.ensemble.train_selector"),
            Attribute("template", StringType(must_contain="{input}", multiline=True),
                      default=DEFAULT_TEMPLATE, label="selector prompt template", when=kind_embeds,
                      ignored_hint="Only the label_model and embedding selectors use a template."),
            Attribute("threshold", FloatType(0.0, 1.0), default=0.5, label="confidence threshold",
                      description="below this confidence the fallback route answers"),
            Attribute("layer", IntType(), default=-1, label="hidden layer",
                      when=Eq(SEL_KIND, "embedding"), advanced=True,
                      ignored_hint="Only the embedding selector reads a hidden layer.",
                      description="which hidden states are compared: -1 the last layer, 0 the "
                                  "token embeddings only (cheapest, like mergekit's cheap_embed), "
                                  "k the k-th layer (the forward pass stops there)"),
            Attribute("temperature", FloatType(0.0, None, min_open=True), default=0.05,
                      label="similarity temperature", when=Eq(SEL_KIND, "embedding"),
                      advanced=True, ignored_hint="Only the embedding selector uses it.",
                      description="confidence is a softmax of the cosine similarities divided "
                                  "by this; smaller is more decisive"),
            *backend_attributes(),
        ],
    )
    route_attrs = [Attribute("label", StringType(), required=True, label="label",
                             description="the route's name; a label model answers it")]
    route_attrs += member_attributes()
    route_attrs += [
        Attribute("examples", StringListType(min_items=1), label="example prompts",
                  required_when=Eq(SEL_KIND, "embedding"),
                  description="typical prompts of this route (the embedding selector compares "
                              "with them)"),
        Attribute("keywords", StringListType(min_items=1), label="keywords",
                  required_when=Eq(SEL_KIND, "keywords"),
                  description="words that send a prompt here (keyword selector; a keyword matches "
                              "words starting with it, ignoring case and accents)"),
    ]
    return Feature(
        "router", label="Router",
        description="A selector decides which model answers each prompt.",
        attributes=[Attribute("fallback", StringType(), label="fallback route",
                              description="the route that answers when the selector is unsure "
                                          "or answers something that is not a route (default: "
                                          "the first route)")],
        children=[selector,
                  Feature("routes", label="routes", card=(2, MANY), attributes=route_attrs,
                          description="A router needs at least two routes to choose between.")],
    )


def ensemble_branch() -> Feature:
    return Feature(
        "ensemble", label="Ensemble",
        description="Combine models at run time: a pipeline, a vote, or a router.",
        attributes=[
            Attribute("device", EnumType(DEVICES), default="auto", label="device",
                      description="auto: CUDA when available, else CPU"),
            Attribute("dtype", EnumType(DTYPES), default="auto", label="dtype", advanced=True,
                      description="auto: float32 on CPU, the model's own dtype on CUDA"),
        ],
        groups=[alternative(_pipeline(), _vote(), _router())],
    )


def ensemble_constraints() -> list[Constraint]:
    return [
        Constraint.requires(Eq("ensemble.vote.decide", "judge"), Sel("ensemble.vote.judge"),
                            "The vote is decided by a judge, but no judge is set.",
                            "ensemble.vote.judge", "Add a judge (a model or a scoring function), "
                                                   "or decide by majority."),
        Constraint.requires(Eq("ensemble.vote.tie_break", "judge"), Sel("ensemble.vote.judge"),
                            "Ties are broken by the judge, but no judge is set.",
                            "ensemble.vote.judge", "Add a judge, or choose another tie rule."),
    ]


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


def _kind_of(ens: dict) -> str | None:
    kinds = [k for k in ("pipeline", "vote", "router") if isinstance(ens.get(k), dict)]
    return kinds[0] if len(kinds) == 1 else None


def model_slots(config: dict) -> list[ModelSlot]:
    """Every model an ensemble configuration names, with the path of its field."""
    ens = config.get(E) if isinstance(config, dict) else None
    if not isinstance(ens, dict):
        return []
    out: list[ModelSlot] = []
    kind = _kind_of(ens)
    if kind is None:
        return out
    body = ens[kind]  # a mapping: _kind_of says so
    key = {"pipeline": "stages", "vote": "members", "router": "routes"}[kind]
    for i, m in enumerate(_as_list(body.get(key))):
        if isinstance(m, dict) and isinstance(m.get("model"), str):
            out.append(ModelSlot(f"{E}.{kind}.{key}[{i}].model", m["model"], "member"))
    if kind == "vote" and isinstance(body.get("judge"), dict):
        j = body["judge"]
        if j.get("kind") == "model" and isinstance(j.get("model"), str):
            out.append(ModelSlot(f"{VOTE}.judge.model", j["model"], "judge"))
    if kind == "router" and isinstance(body.get("selector"), dict):
        s = body["selector"]
        if s.get("kind") != "keywords" and isinstance(s.get("model"), str):
            role = "classifier" if s.get("kind") == "classifier" else "selector"
            out.append(ModelSlot(f"{ROUTER}.selector.model", s["model"], role))
    return out


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


def _branch():
    return ensemble_branch(), ensemble_constraints(), [Check(check_ensemble, CHECK_DOC)]


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


# ---------------------------------------------------------------------------------------------
# generation: configuration -> ensemble spec
# ---------------------------------------------------------------------------------------------


def _member_spec(m: dict, base_dir, resolve: bool) -> dict:
    from llmcombo import modelref

    ref = m["model"]
    return {
        "model": modelref.resolve(ref, base_dir) if resolve else ref,
        "ref": ref,
        "template": m.get("template") or DEFAULT_TEMPLATE,
        "output": m.get("output") or "command",
        "max_new_tokens": int(m.get("max_new_tokens") or 24),
        **backend_spec(m),
    }


def to_spec(config: dict, base_dir=None, resolve: bool = True) -> tuple[str, dict]:
    """``(kind, spec)`` of a valid ensemble configuration: every default filled in, model
    references resolved (``zoo:NAME`` -> its folder) unless ``resolve=False``."""
    from llmcombo import modelref
    from llmcombo.errors import UserError

    ens = config.get(E)
    if not isinstance(ens, dict) or (kind := _kind_of(ens)) is None:
        raise UserError("an ensemble configuration needs exactly one of pipeline, vote or router.",
                        field=E)
    body = ens[kind]
    spec: dict[str, Any] = {"llmcombo_ensemble": SPEC_VERSION, "kind": kind,
                            "device": ens.get("device") or "auto",
                            "dtype": ens.get("dtype") or "auto"}
    if config.get("name"):
        spec["name"] = config["name"]

    def ref(r):
        return modelref.resolve(r, base_dir) if resolve and isinstance(r, str) else r

    if kind == "pipeline":
        spec["stages"] = [_member_spec(m, base_dir, resolve) for m in _as_list(body["stages"])]
    elif kind == "vote":
        members = [_member_spec(m, base_dir, resolve) for m in _as_list(body["members"])]
        s = body.get("sampling") or {}
        spec["members"] = members
        spec["samples"] = int(body.get("samples") or (3 if len(members) == 1 else 1))
        spec["sampling"] = {"temperature": float(s.get("temperature", 1.0)),
                            "top_k": int(s.get("top_k", 0)), "top_p": float(s.get("top_p", 1.0)),
                            "seed": s.get("seed")}
        spec["decide"] = body.get("decide") or "majority"
        spec["tie_break"] = body.get("tie_break") or "first"
        j = body.get("judge")
        if isinstance(j, dict):
            judge = {"kind": j["kind"]}
            if j["kind"] == "model":
                judge.update(model=ref(j["model"]), ref=j["model"],
                             template=j.get("template") or DEFAULT_TEMPLATE, **backend_spec(j))
            else:
                judge["function"] = j["function"]
            spec["judge"] = judge
    else:
        sel = dict(body["selector"])
        selector: dict[str, Any] = {"kind": sel["kind"],
                                    "threshold": float(sel.get("threshold", 0.5))}
        if sel["kind"] != "keywords":
            selector.update(model=ref(sel["model"]), ref=sel["model"], **backend_spec(sel))
        if sel["kind"] in ("label_model", "embedding"):
            selector["template"] = sel.get("template") or DEFAULT_TEMPLATE
        if sel["kind"] == "embedding":
            selector["layer"] = int(sel.get("layer", -1))
            selector["temperature"] = float(sel.get("temperature", 0.05))
        routes = []
        for r in _as_list(body["routes"]):
            route = {"label": _norm_label(r["label"]), **_member_spec(r, base_dir, resolve)}
            for key in ("examples", "keywords"):
                if r.get(key):
                    route[key] = [r[key]] if isinstance(r[key], str) else list(r[key])
            routes.append(route)
        spec["selector"] = selector
        spec["routes"] = routes
        spec["fallback"] = _norm_label(body.get("fallback") or routes[0]["label"])
    return kind, spec


def is_spec(data: Any) -> bool:
    """True for a generated ensemble spec (not a configuration)."""
    return isinstance(data, dict) and "llmcombo_ensemble" in data and "kind" in data


FAMILY = register_family(Family(
    E, _branch, model_slots, "llmcombo.ensemble.spec:to_spec", "ensemble", "Ensemble",
    "llmcombo.ensemble.spec:check_models"))
