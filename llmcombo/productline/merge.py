"""The ``merge`` family: weight-space merges, one method of the installed mergekit each.

Methods, parameters, types, defaults, required flags and input contracts come from mergekit's
registry (:mod:`llmcombo.productline.registry`); ranges and explanations from
:mod:`llmcombo.productline.tables`. :func:`check_merge` adds what a feature model cannot say with
constraints: mergekit's input contract (how many models, the base model counting as one), required
parameters per model, DELLA's density +/- epsilon.
"""

from __future__ import annotations

from typing import Any

from llmcombo.featuremodel import (
    MANY, Attribute, BoolType, Check, Constraint, EnumType, Eq, Feature, FloatType, GradientType,
    IntType, IsSet, MappingType, ModelRefType, Not, NumberType, RangeType, Sel, StringType,
    alternative, any_selected, error, scalars_of, warning,
)
from llmcombo.featuremodel.issues import Issue
from llmcombo.productline.registry import MethodInfo, ParamInfo, chat_templates, merge_methods
from llmcombo.productline.slots import ModelSlot
from llmcombo.productline.tables import BASE_REASON, DTYPES, METHOD_HELP, PARAM_HELP, param_domain
from llmcombo.shapes import as_dict, as_list, params_of

METHOD_PREFIX = "merge.method."


def method_path(name: str) -> str:
    return METHOD_PREFIX + name


def method_name(merge: Any) -> str | None:
    """The method of a ``merge`` mapping: ``method: ties`` or ``method: {ties: ...}``."""
    m = as_dict(merge).get("method")
    if isinstance(m, dict) and len(m) == 1:
        return str(next(iter(m)))
    return m if isinstance(m, str) else None


# ---------------------------------------------------------------------------------------------
# the branch
# ---------------------------------------------------------------------------------------------


def _element_type(p: ParamInfo, method: str | None = None) -> Any:
    if p.kind == "bool":
        return BoolType()
    dom = param_domain(method, p.name) if method else None
    if dom is not None:
        return NumberType(integer=p.kind == "int", minimum=dom.minimum, maximum=dom.maximum,
                          min_open=dom.min_open, max_open=dom.max_open, nullable=p.nullable)
    if p.kind == "int":
        return IntType(nullable=p.nullable)
    if p.kind == "str":
        return StringType()
    return FloatType(nullable=p.nullable)


_ORDER = ["weight", "density", "t", "gamma", "epsilon", "lambda", "select_topk", "normalize",
          "rescale", "filter_wise", "scale"]
_ADVANCED = {"int8_mask", "eps", "tol", "max_iter", "nuslerp_flatten", "nuslerp_row_wise",
             "normalize_weights"}


def _param_order(name: str) -> tuple[int, str]:
    return (_ORDER.index(name) if name in _ORDER else len(_ORDER), name)


def _param_attributes(scopes: tuple[str, ...], where: str) -> list[Attribute]:
    """One attribute per parameter name that some method accepts in one of ``scopes``; its
    domain, default and relevance depend on the selected method."""
    by_name: dict[str, list[tuple[MethodInfo, ParamInfo]]] = {}
    for m in merge_methods().values():
        for p in m.params:
            if p.scope in scopes:
                by_name.setdefault(p.name, []).append((m, p))
    attrs = []
    for name in sorted(by_name, key=_param_order):
        uses = by_name[name]
        domains = [(Sel(method_path(m.name)), GradientType(element=_element_type(p, m.name)))
                   for m, p in uses]
        defaults = [(Sel(method_path(m.name)), p.default) for m, p in uses if not p.required]
        users = ", ".join(m.name for m, _ in uses)
        attrs.append(Attribute(
            name=name, type=GradientType(element=_element_type(uses[0][1])), label=name,
            description=PARAM_HELP.get(name),
            when=any_selected(method_path(m.name) for m, _ in uses),
            defaults=defaults, domains=domains,
            ignored_hint=f"{name} is used by: {users}. Remove it {where}, or pick one of those methods.",
            advanced=name in _ADVANCED,
        ))
    return attrs


def _method_features() -> list[Feature]:
    return [Feature(m.name, label=m.pretty_name, description=METHOD_HELP.get(m.name, m.pretty_name),
                    meta={"pretty_name": m.pretty_name, "reference_url": m.reference_url or "",
                          "base": m.base, "min_inputs": m.min_inputs,
                          "max_inputs": m.max_inputs if m.max_inputs is not None else -1})
            for m in merge_methods().values()]


def dtype_attr(name: str, label: str, description: str) -> Attribute:
    return Attribute(name, EnumType(DTYPES), label=label, description=description)


def _tokenizer_source_type() -> EnumType:
    return EnumType(("base", "union"), open=True, open_type=ModelRefType())


def _token_problem(cfg: Any) -> str | None:
    """Why mergekit's ``TokenEmbeddingConfig`` refuses one ``tokenizer.tokens`` entry (None when
    it accepts it): ``source`` is a model, ``{kind: zero}``, or ``{kind: model_token, model: M,
    token_id: N | token: T}``; ``force`` is true or false."""
    if cfg is None:
        return None
    if not isinstance(cfg, dict):
        return f"expected a mapping with source and force, not {cfg!r}"
    force = cfg.get("force", False)
    if not isinstance(force, bool) and force not in (0, 1, "true", "false", "True", "False"):
        return f"force must be true or false, not {force!r}"
    src = cfg.get("source")
    if src is None or isinstance(src, str):
        return None
    if not isinstance(src, dict):
        return f"source must be a model or a mapping, not {src!r}"
    kind = src.get("kind")
    if kind == "zero":
        return None
    if kind == "model_token":
        if "model" not in src:
            return "a model_token source needs a model"
        if (src.get("token_id") is None) == (src.get("token") is None):
            return "a model_token source needs exactly one of token_id or token"
        return None
    if "model" in src:  # a model reference written as a mapping
        return None
    return f"unknown source {src!r}: use a model, {{kind: zero}} or {{kind: model_token, ...}}"


def _check_tokens(value: dict, path: str, label: str) -> list[Issue]:
    issues = []
    for tok, cfg in value.items():
        problem = _token_problem(cfg)
        if problem:
            issues.append(error(f"{path}.{tok}", f"token {tok!s}: {problem}",
                                "See mergekit's tokenizer docs: source: {kind: zero} or a model.",
                                "type"))
    return issues


def merge_branch() -> Feature:
    model_ref = ModelRefType()
    models = Feature(
        "models", label="input models", card=(1, MANY),
        description="The models to merge, each with its own parameters.",
        attributes=[Attribute("model", model_ref, required=True, label="model",
                              description="a local folder, a Hugging Face id (owner/name) or zoo:NAME")],
        children=[Feature("parameters", label="parameters for this model", optional=True,
                          attributes=_param_attributes(("input", "non_base"), "from this model"))],
    )
    sources = Feature(
        "sources", label="input slices", card=(1, MANY),
        attributes=[
            Attribute("model", model_ref, required=True, label="model"),
            Attribute("layer_range", RangeType(), required=True, label="layer range",
                      description="[start, end): the layers taken from this model, end excluded"),
        ],
        children=[Feature("parameters", label="parameters for this source", optional=True,
                          attributes=_param_attributes(("input", "non_base"), "from this source"))],
    )
    slices = Feature(
        "slices", label="output slices", card=(1, MANY),
        description="Layer slices that are stacked to build the output (frankenmerges).",
        attributes=[
            Attribute("base_model", model_ref, label="slice base model", advanced=True),
            Attribute("residual_weight", FloatType(), label="residual weight", advanced=True),
        ],
        children=[sources, Feature("parameters", label="parameters for this slice", optional=True,
                                   attributes=_param_attributes(("shared", "input", "non_base"),
                                                                "from this slice"))],
    )
    method = Feature("method", label="merge method", description="How weights are combined.",
                     groups=[alternative(*_method_features())])
    tokenizer = Feature(
        "tokenizer", label="tokenizer settings", optional=True,
        description="Build the output vocabulary (instead of tokenizer_source).",
        attributes=[
            Attribute("source", _tokenizer_source_type(), default="union", label="vocabulary source"),
            Attribute("pad_to_multiple_of", IntType(1, None), label="pad vocabulary to a multiple of"),
            Attribute("tokens", MappingType(checker=_check_tokens), label="token embeddings",
                      advanced=True),
        ],
    )
    methods = merge_methods().values()
    base_required = [method_path(m.name) for m in methods if m.base == "required"]
    base_ignored = [method_path(m.name) for m in methods if m.base in ("ignored", "forbidden")]
    return Feature(
        "merge", label="Merge", description="Combine the weights of several models into one model.",
        attributes=[
            Attribute("base_model", model_ref, label="base model",
                      description="the common ancestor of the models (needed by task-vector methods)",
                      required_when=any_selected(base_required) if base_required else None,
                      when=Not(any_selected(base_ignored)) if base_ignored else None,
                      ignored_hint="This method does not use a base model; remove base_model."),
            dtype_attr("dtype", "compute dtype", "the dtype the merge computes in"),
            dtype_attr("out_dtype", "output dtype", "the dtype of the saved model (default: dtype)"),
            Attribute("tokenizer_source", _tokenizer_source_type(), label="tokenizer source",
                      description="base, union, or a model whose tokenizer to copy"),
            Attribute("chat_template", StringType(multiline=True), label="chat template",
                      description="auto, a template name (chatml, llama3, ...) or a Jinja template",
                      advanced=True),
        ],
        children=[method,
                  Feature("parameters", label="merge parameters", optional=True,
                          attributes=_param_attributes(("shared", "input", "non_base"),
                                                       "from the merge parameters")),
                  tokenizer],
        groups=[alternative(models, slices)],
    )


def merge_constraints() -> list[Constraint]:
    out = [
        Constraint.excludes(IsSet("merge.tokenizer_source"), Sel("merge.tokenizer"),
                            "Use either tokenizer_source or tokenizer settings, not both.",
                            "merge.tokenizer", "Remove one of them."),
        Constraint.requires(Eq("merge.tokenizer_source", "base"), IsSet("merge.base_model"),
                            "tokenizer_source is base, but no base_model is set.",
                            "merge.tokenizer_source", "Set base_model or choose union."),
        Constraint.requires(Eq("merge.tokenizer.source", "base"), IsSet("merge.base_model"),
                            "The tokenizer source is base, but no base_model is set.",
                            "merge.tokenizer.source", "Set base_model or choose union."),
    ]
    for m in merge_methods().values():
        if m.base == "required":
            reason = BASE_REASON.get(m.name, "it merges relative to a base model")
            out.append(Constraint.requires(
                Sel(method_path(m.name)), IsSet("merge.base_model"),
                f"{m.pretty_name} needs a base model: {reason}.", "merge.base_model",
                "Set base_model to the model the others were fine-tuned from."))
        if m.base == "forbidden":
            out.append(Constraint.excludes(
                Sel(method_path(m.name)), IsSet("merge.base_model"),
                f"{m.pretty_name} does not accept a base model.", "merge.base_model",
                "Remove base_model."))
    return out


# ---------------------------------------------------------------------------------------------
# the checks a constraint cannot express
# ---------------------------------------------------------------------------------------------

MERGE_CHECK_DOC = ("each merge method's number of inputs (mergekit's input contract, the base model "
                   "counting as an input), required per-model and global parameters, parameter "
                   "ranges per method, DELLA's density +/- epsilon within (0, 1), layer ranges")


def _need_text(lo: int, hi: int | None) -> str:
    if hi == lo:
        return f"exactly {lo}"
    if hi is None:
        return f"at least {lo}"
    return f"between {lo} and {hi}"


def _check_inputs(info: MethodInfo, entries: list, base: Any, path: str, key: str,
                  global_params: dict, local_params: dict) -> list[Issue]:
    """One list of inputs (``models``, or one slice's ``sources``) against the method's contract:
    input counts, duplicates, required and per-model parameters."""
    issues: list[Issue] = []
    refs = [e.get("model") for e in entries if isinstance(e, dict)]
    ids = list(refs)
    base_added = False
    if key == "models" and base and base not in ids:
        ids.append(base)  # mergekit adds the base model as one more input
        base_added = True
    dupes = sorted({str(r) for r in refs if refs.count(r) > 1})
    if dupes:
        issues.append(error(path, f"{', '.join(dupes)} is listed more than once.",
                            "List each model once.", "duplicate"))
    if key == "slices" and base and info.base != "ignored" and base not in refs:
        issues.append(error(path, f"The base model {base} is not among this slice's sources.",
                            "Add a source from the base model, or change the base model.", "base"))
    has_base = base is not None and base in ids and info.base != "ignored"
    count, non_base = len(ids), len(ids) - int(has_base)
    what = "models" if key == "models" else "sources"
    base_note = " (the base model counts as one)" if info.base != "ignored" else ""
    if count < info.min_inputs or (info.max_inputs is not None and count > info.max_inputs):
        issues.append(error(path, f"{info.pretty_name} takes {_need_text(info.min_inputs, info.max_inputs)} "
                                  f"input model(s){base_note}; this configuration has {count}.",
                            "Add or remove " + what + "." if info.max_inputs != 1 else
                            "Passthrough copies one model per slice: use slices with one source each.",
                            "count"))
    if info.min_non_base is not None or info.max_non_base is not None:
        lo, hi = info.min_non_base or 0, info.max_non_base
        if non_base < lo or (hi is not None and non_base > hi):
            issues.append(error(path, f"{info.pretty_name} takes {_need_text(lo, hi)} model(s) "
                                      f"besides the base model; this configuration has {non_base}.",
                                f"Add or remove {what}.", "count"))
    if base_added and info.base == "ignored":
        issues.append(warning("merge.base_model", f"{info.pretty_name} does not use a base model; "
                                                  "mergekit will add it as one more input.",
                              "Remove base_model, or list it under models with its weight.", "base"))
    known = {**global_params, **local_params}
    for p in info.input_params:
        if not p.required or p.name in known:
            continue
        for i, e in enumerate(entries):
            if not isinstance(e, dict) or (p.scope == "non_base" and base is not None
                                           and e.get("model") == base):
                continue
            if p.name not in params_of(e):
                issues.append(error(f"{path}[{i}].parameters.{p.name}",
                                    f"{info.pretty_name} needs a {p.name} for {e.get('model')}.",
                                    f"Set {p.name} for this model, or once in the merge parameters "
                                    "for all models.", "required"))
        if base_added and p.scope == "input":
            issues.append(error(f"merge.parameters.{p.name}",
                                f"{info.pretty_name} needs a {p.name} for the base model too.",
                                "Set it in the merge parameters, or list the base under models.",
                                "required"))
    for p in info.shared_params:
        for i, e in enumerate(entries):
            if p.name in params_of(e):
                issues.append(warning(f"{path}[{i}].parameters.{p.name}",
                                      f"{p.name} is one value for the whole merge; a value per "
                                      "model is ignored.", "Set it in the merge parameters.",
                                      "ignored"))
    return issues


def _all_param_dicts(merge: dict) -> list[tuple[str, dict]]:
    out = [("merge.parameters", params_of(merge))]
    for i, m in enumerate(as_list(merge.get("models"))):
        out.append((f"merge.models[{i}].parameters", params_of(m)))
    for i, s in enumerate(as_list(merge.get("slices"))):
        out.append((f"merge.slices[{i}].parameters", params_of(s)))
        for j, src in enumerate(as_list(as_dict(s).get("sources"))):
            out.append((f"merge.slices[{i}].sources[{j}].parameters", params_of(src)))
    return [(p, d) for p, d in out if d]


def _check_della(info: MethodInfo, merge: dict) -> list[Issue]:
    """DELLA: density +/- epsilon must stay in (0, 1)."""
    eps_info = info.param("epsilon")
    if eps_info is None or info.param("density") is None:
        return []
    global_params = params_of(merge)
    issues: list[Issue] = []
    for path, params in _all_param_dicts(merge):
        eps = params.get("epsilon", global_params.get("epsilon", eps_info.default))
        dens = params.get("density", global_params.get("density"))
        for d in scalars_of(dens) if dens is not None else []:
            bad = [e for e in scalars_of(eps)
                   if isinstance(d, (int, float)) and isinstance(e, (int, float)) and 0 < d < 1
                   and 0 <= e < 0.5 and (d - e <= 0 or d + e >= 1)]
            if bad:
                issues.append(error(f"{path}.epsilon", f"With density {d:g}, epsilon {bad[0]:g} "
                                    "puts keep probabilities outside (0, 1): density minus "
                                    "epsilon and density plus epsilon must both be in (0, 1).",
                                    f"Use epsilon below {min(d, 1 - d):g}.", "range"))
    return issues


def _check_chat_template(merge: dict) -> list[Issue]:
    ct = merge.get("chat_template")
    known = chat_templates()
    if isinstance(ct, str) and ct.strip() and ct != "auto" and "{" not in ct and known \
            and ct not in known:
        return [warning("merge.chat_template", f"{ct} is not a chat template mergekit knows, "
                                               "and it does not look like a Jinja template.",
                        "Use auto, one of " + ", ".join(known) + ", or a Jinja template.",
                        "template")]
    return []


def check_merge(data: dict, ctx: Any) -> list[Issue]:
    merge = data.get("merge")
    if not isinstance(merge, dict):
        return []
    issues = _check_chat_template(merge)
    name = method_name(merge)
    info = merge_methods().get(name) if name else None
    if info is None:
        return issues
    base = merge.get("base_model")
    global_params = params_of(merge)
    if "models" in merge and "slices" not in merge:
        issues += _check_inputs(info, as_list(merge.get("models")), base, "merge.models", "models",
                                global_params, {})
        shared_sources = [global_params]
    elif "slices" in merge and "models" not in merge:
        shared_sources = []
        for si, s in enumerate(as_list(merge.get("slices"))):
            if not isinstance(s, dict):
                continue
            local = params_of(s)
            one_model_copy = info.max_inputs == 1 and info.base == "ignored"
            sbase = None if one_model_copy else (s.get("base_model") or base)
            issues += _check_inputs(info, as_list(s.get("sources")), sbase,
                                    f"merge.slices[{si}].sources", "slices", global_params, local)
            shared_sources.append({**global_params, **local})
    else:
        shared_sources = [global_params]
    for p in info.shared_params:
        if p.required and any(p.name not in src for src in shared_sources):
            issues.append(error(f"merge.parameters.{p.name}", f"{info.pretty_name} needs {p.name}"
                                + (f" ({PARAM_HELP[p.name]})" if p.name in PARAM_HELP else "") + ".",
                                f"Set {p.name} in the merge parameters.", "required"))
    return issues + _check_della(info, merge)


def branch() -> tuple[Feature, list[Constraint], list[Check]]:
    return merge_branch(), merge_constraints(), [Check(check_merge, MERGE_CHECK_DOC)]


# ---------------------------------------------------------------------------------------------
# model references
# ---------------------------------------------------------------------------------------------


def model_slots(config: dict) -> list[ModelSlot]:
    """Every model reference of a merge configuration, with the path of its field."""
    m = as_dict(config.get("merge"))
    slots: list[ModelSlot] = []
    if isinstance(m.get("base_model"), str):
        slots.append(ModelSlot("merge.base_model", m["base_model"], "base"))
    for i, entry in enumerate(as_list(m.get("models"))):
        ref = entry.get("model") if isinstance(entry, dict) else entry
        if isinstance(ref, str):
            slots.append(ModelSlot(f"merge.models[{i}].model", ref, "model"))
    for i, sl in enumerate(as_list(m.get("slices"))):
        if not isinstance(sl, dict):
            continue
        for j, src in enumerate(as_list(sl.get("sources"))):
            if isinstance(src, dict) and isinstance(src.get("model"), str):
                slots.append(ModelSlot(f"merge.slices[{i}].sources[{j}].model", src["model"], "slice"))
        if isinstance(sl.get("base_model"), str):
            slots.append(ModelSlot(f"merge.slices[{i}].base_model", sl["base_model"], "base"))
    tok = m.get("tokenizer_source")
    tpath = "merge.tokenizer_source"
    if isinstance(m.get("tokenizer"), dict):
        tok, tpath = m["tokenizer"].get("source", tok), "merge.tokenizer.source"
    if isinstance(tok, str) and tok not in ("base", "union"):
        slots.append(ModelSlot(tpath, tok, "tokenizer"))
    return slots
