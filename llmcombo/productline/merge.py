"""The ``merge`` family: weight-space merges, one method of the installed mergekit each.

Methods, parameters, types, defaults, required flags and input contracts come from mergekit's
registry (:mod:`llmcombo.productline.registry`); advised ranges, the few limits where mergekit
fails, and explanations from :mod:`llmcombo.productline.tables`; what a feature model cannot say
with constraints is checked in :mod:`llmcombo.productline.merge_checks`.

The rule of this module: an **error** only where mergekit refuses the document or fails while
merging (``tests/test_engine_truth.py`` shows mergekit failing on each such shape); what mergekit
accepts but probably does not do what was meant (a key it ignores, a value outside the advised
range, a parameter the method does not use) is a **warning**. Values are read the way mergekit
reads them (pydantic's lax mode: ``tol: 1e-5`` -- text in YAML 1.1 -- is the number 1e-05), and
the warning shows the value as read.

The branch can be built under another root (``stages.merge`` for a stage of a multi-stage merge):
every path in its expressions and checks is relative to ``root``.
"""

from __future__ import annotations

import difflib
from typing import Any

from llmcombo.featuremodel import (
    MANY, Attribute, BoolType, Check, Constraint, EnumType, Eq, Expr, Feature, FloatType,
    GradientType, IntType, IsSet, MappingType, ModelRefType, Not, NumberType, RangeType, Sel,
    StringType, alternative, any_selected, error, warning,
)
from llmcombo.featuremodel.issues import Issue
from llmcombo.featuremodel.types import AttrType, _show
from llmcombo.productline.merge_checks import (MERGE_CHECK_DOC, ROOT, check_merge,
                                               effective_method, method_name)
from llmcombo.productline.registry import MethodInfo, ParamInfo, merge_methods
from llmcombo.productline.slots import ModelSlot
from llmcombo.productline.tables import (BASE_REASON, DTYPE_SPELLINGS, DTYPES, ENGINE_DTYPES,
                                         METHOD_HELP, PARAM_HELP, engine_limit, param_domain)
from llmcombo.shapes import as_dict, as_list

__all__ = ["METHOD_PREFIX", "ROOT", "branch", "check_merge", "coercer", "dtype_attr",
           "effective_method", "merge_branch", "merge_constraints", "merge_slots", "method_name",
           "method_path", "model_slots"]

METHOD_PREFIX = "merge.method."


def method_path(name: str, root: str = ROOT) -> str:
    return f"{root}.method.{name}"


# ---------------------------------------------------------------------------------------------
# reading values the way mergekit does
# ---------------------------------------------------------------------------------------------


def coercer(kind: str, nullable: bool = False):
    """``fn(value) -> (ok, value as read, why)``: pydantic's reading of a parameter declared as
    ``kind`` (what mergekit does when the merge runs)."""
    from llmcombo.productline.documents import coerce_scalar

    return lambda value: coerce_scalar(kind, value, nullable)


class DtypeType(EnumType):
    """A dtype name as mergekit's ``dtype_from_name`` reads it: the form offers the floating-point
    ones; ``int64`` and the ``torch.`` prefix are read too; anything else stops the merge."""

    def check(self, value, path, label):
        if value in self.choices:
            return []
        if isinstance(value, str):
            name = value[len("torch."):] if value.startswith("torch.") else value
            if name in ENGINE_DTYPES:
                if name == "int64":
                    return [warning(path, f"{label} int64 is not a floating-point type: merging "
                                          "whole numbers fails for most methods.",
                                    "Use bfloat16, float16 or float32.", "dtype")]
                return []
            guess = DTYPE_SPELLINGS.get(name.lower()) or next(iter(difflib.get_close_matches(
                name.lower(), list(ENGINE_DTYPES), n=1, cutoff=0.6)), None)
            hint = f"Did you mean {guess}?" if guess else "Choose one of: " + ", ".join(DTYPES) + "."
            return [error(path, f"{label} {value!r} is not a dtype mergekit knows (it stops with "
                                f"'Unimplemented dtype'); use one of {', '.join(DTYPES)}.", hint,
                          "choice")]
        return [error(path, f"{label} must be text like bfloat16, not {_show(value)}.",
                      "Choose one of: " + ", ".join(DTYPES) + ".", "type")]


def dtype_attr(name: str, label: str, description: str) -> Attribute:
    return Attribute(name, DtypeType(DTYPES), label=label, description=description)


# ---------------------------------------------------------------------------------------------
# the branch
# ---------------------------------------------------------------------------------------------


def _element_type(p: ParamInfo, method: str | None = None) -> AttrType:
    if p.kind == "bool":
        return BoolType(coerce=coercer("bool", p.nullable))
    if p.kind == "str":
        return StringType(nonempty=False)
    dom = param_domain(method, p.name) if method else None
    limit = engine_limit(method, p.name) if method else None
    lo, hi = (dom.minimum, dom.maximum) if dom is not None else (None, None)
    return NumberType(integer=p.kind == "int", minimum=lo, maximum=hi,
                      min_open=bool(dom and dom.min_open), max_open=bool(dom and dom.max_open),
                      nullable=p.nullable, severity="warning", limits=limit,
                      coerce=coercer(p.kind, p.nullable), finite="warning")


def _gradient(element: AttrType) -> GradientType:
    # mergekit ignores keys of a filtered entry it does not know; `pattern` was its old name of
    # `filter`, so an entry written the old way applies to every tensor
    return GradientType(element=element, lenient=True, renamed={"pattern": "filter"})


_ORDER = ["weight", "density", "t", "gamma", "epsilon", "lambda", "select_topk", "normalize",
          "rescale", "filter_wise", "scale"]
_ADVANCED = {"int8_mask", "eps", "tol", "max_iter", "nuslerp_flatten", "nuslerp_row_wise",
             "normalize_weights"}


def _param_order(name: str) -> tuple[int, str]:
    return (_ORDER.index(name) if name in _ORDER else len(_ORDER), name)


def _param_attributes(scopes: tuple[str, ...], where: str, root: str) -> list[Attribute]:
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
        domains: list[tuple[Expr, AttrType]] = [
            (Sel(method_path(m.name, root)), _gradient(_element_type(p, m.name))) for m, p in uses]
        defaults: list[tuple[Expr, Any]] = [(Sel(method_path(m.name, root)), p.default)
                                            for m, p in uses if not p.required]
        users = ", ".join(m.name for m, _ in uses)
        attrs.append(Attribute(
            name=name, type=_gradient(_element_type(uses[0][1])), label=name,
            description=PARAM_HELP.get(name),
            when=any_selected(method_path(m.name, root) for m, _ in uses),
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


def _tokenizer_source_type() -> EnumType:
    return EnumType(("base", "union"), open=True, open_type=ModelRefType())


def _check_tokens(value: dict, path: str, label: str) -> list[Issue]:
    """``tokenizer.tokens`` as mergekit's ``TokenEmbeddingConfig`` reads each entry: ``source``
    a model, ``{kind: zero}`` or ``{kind: model_token, model: M, token_id: N | token: T}``;
    ``force`` true or false."""
    from pydantic import ValidationError

    from llmcombo.productline.documents import TokenEmbeddingConfig, _loc

    issues = []
    for tok, cfg in value.items():
        if not isinstance(tok, str):
            issues.append(error(f"{path}.{tok}", f"token {tok!r} must be written as text (in "
                                                 "quotes).", None, "type"))
            continue
        try:
            TokenEmbeddingConfig.model_validate(cfg if cfg is not None else {})
        except ValidationError as exc:
            err = exc.errors(include_url=False)[0]
            where = _loc(tuple(err.get("loc", ())))
            msg = str(err.get("msg", "")).removeprefix("Value error, ")
            issues.append(error(f"{path}.{tok}", f"token {tok}: {where + ': ' if where else ''}"
                                                 f"{msg}.",
                                "See mergekit's tokenizer docs: source: {kind: zero} or a model.",
                                "type"))
    return issues


def _inputs_features(root: str) -> tuple[Feature, Feature]:
    """The two ways to give a merge its inputs: ``models`` (whole models) and ``slices`` (layer
    ranges stacked into the output)."""
    model_ref = ModelRefType()
    models = Feature(
        "models", label="input models", card=(1, MANY), unknown="warning",
        description="The models to merge, each with its own parameters.",
        attributes=[Attribute("model", model_ref, required=True, label="model",
                              description="a local folder, a Hugging Face id (owner/name) or zoo:NAME")],
        children=[Feature("parameters", label="parameters for this model", optional=True,
                          unknown="warning",
                          attributes=_param_attributes(("input", "non_base"), "from this model",
                                                       root))],
    )
    sources = Feature(
        "sources", label="input slices", card=(1, MANY), unknown="warning",
        attributes=[
            Attribute("model", model_ref, required=True, label="model"),
            Attribute("layer_range", RangeType(empty="warning", coerce=coercer("int")),
                      required=True, label="layer range",
                      description="[start, end): the layers taken from this model, end excluded"),
        ],
        children=[Feature("parameters", label="parameters for this source", optional=True,
                          unknown="warning",
                          attributes=_param_attributes(("input", "non_base"), "from this source",
                                                       root))],
    )
    slices = Feature(
        "slices", label="output slices", card=(1, MANY), unknown="warning",
        description="Layer slices that are stacked to build the output (frankenmerges).",
        attributes=[
            Attribute("base_model", model_ref, label="slice base model", advanced=True),
            Attribute("residual_weight", FloatType(coerce=coercer("float", True)),
                      label="residual weight", advanced=True),
        ],
        children=[sources, Feature("parameters", label="parameters for this slice", optional=True,
                                   unknown="warning",
                                   attributes=_param_attributes(("shared", "input", "non_base"),
                                                                "from this slice", root))],
    )
    return models, slices


def merge_branch(root: str = ROOT) -> Feature:
    model_ref = ModelRefType()
    models, slices = _inputs_features(root)
    module_models, module_slices = _inputs_features(root)
    modules = Feature(
        "modules", label="modules", card=(1, MANY), unknown="warning",
        description="Multi-module models (a language model and a vision tower ...): each module "
                    "merged with its own inputs. Single-module models have one, named default.",
        attributes=[Attribute("name", StringType(), required=True, label="module name",
                              description="the module's name in mergekit's description of the "
                                          "architecture (default for single-module models)")],
        children=[Feature("parameters", label="parameters for this module", optional=True,
                          unknown="warning",
                          attributes=_param_attributes(("shared", "input", "non_base"),
                                                       "from this module", root))],
        groups=[alternative(module_models, module_slices)],
    )
    method = Feature("method", label="merge method", description="How weights are combined.",
                     groups=[alternative(*_method_features())])
    tokenizer = Feature(
        "tokenizer", label="tokenizer settings", optional=True, unknown="warning",
        description="Build the output vocabulary (instead of tokenizer_source).",
        attributes=[
            Attribute("source", _tokenizer_source_type(), default="union", label="vocabulary source"),
            Attribute("pad_to_multiple_of", IntType(0, None, coerce=coercer("int", True)),
                      label="pad vocabulary to a multiple of"),
            Attribute("tokens", MappingType(checker=_check_tokens), label="token embeddings",
                      advanced=True),
        ],
    )
    methods = merge_methods().values()
    base_required = [method_path(m.name, root) for m in methods if m.base == "required"]
    base_ignored = [method_path(m.name, root) for m in methods if m.base in ("ignored", "forbidden")]
    parameter_names = sorted({p.name for m in methods for p in m.params})
    return Feature(
        "merge", label="Merge", description="Combine the weights of several models into one model.",
        unknown="warning",
        meta={"unknown_hints": {
            **{n: f"mergekit reads merge parameters under parameters: write parameters: "
                  f"{{{n}: ...}}." for n in parameter_names},
            "merge_method": "In an llmcombo configuration the method is written method: NAME.",
            "name": "A name for the product goes at the top level of the configuration."}},
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
                  Feature("parameters", label="merge parameters", optional=True, unknown="warning",
                          attributes=_param_attributes(("shared", "input", "non_base"),
                                                       "from the merge parameters", root)),
                  tokenizer],
        groups=[alternative(models, slices, modules)],
    )


def merge_constraints(root: str = ROOT) -> list[Constraint]:
    out = [
        Constraint.excludes(IsSet(f"{root}.tokenizer_source"), Sel(f"{root}.tokenizer"),
                            "Use either tokenizer_source or tokenizer settings, not both.",
                            f"{root}.tokenizer", "Remove one of them."),
        Constraint(Eq(f"{root}.tokenizer_source", "base").implies(IsSet(f"{root}.base_model")),
                   "tokenizer_source is base, but no base_model is set: mergekit takes the "
                   "tokenizer of the first model.", f"{root}.tokenizer_source", "warning",
                   "Set base_model or choose union.", "requires"),
        Constraint(Eq(f"{root}.tokenizer.source", "base").implies(IsSet(f"{root}.base_model")),
                   "The tokenizer source is base, but no base_model is set: mergekit takes the "
                   "tokenizer of the first model.", f"{root}.tokenizer.source", "warning",
                   "Set base_model or choose union.", "requires"),
    ]
    for m in merge_methods().values():
        if m.base == "required":
            reason = BASE_REASON.get(m.name, "it merges relative to a base model")
            out.append(Constraint.requires(
                Sel(method_path(m.name, root)), IsSet(f"{root}.base_model"),
                f"{m.pretty_name} needs a base model: {reason}.", f"{root}.base_model",
                "Set base_model to the model the others were fine-tuned from."))
        if m.base == "forbidden":
            out.append(Constraint.excludes(
                Sel(method_path(m.name, root)), IsSet(f"{root}.base_model"),
                f"{m.pretty_name} does not accept a base model.", f"{root}.base_model",
                "Remove base_model."))
    return out


def branch() -> tuple[Feature, list[Constraint], list[Check]]:
    return merge_branch(), merge_constraints(), [Check(check_merge, MERGE_CHECK_DOC)]


# ---------------------------------------------------------------------------------------------
# model references
# ---------------------------------------------------------------------------------------------


def merge_slots(m: dict, root: str = ROOT) -> list[ModelSlot]:
    """Every model reference of a ``merge`` mapping, with the path of its field."""
    slots: list[ModelSlot] = []
    if isinstance(m.get("base_model"), str):
        slots.append(ModelSlot(f"{root}.base_model", m["base_model"], "base"))

    def inputs(holder: dict, prefix: str) -> None:
        for i, entry in enumerate(as_list(holder.get("models"))):
            ref = entry.get("model") if isinstance(entry, dict) else entry
            if isinstance(ref, str):
                slots.append(ModelSlot(f"{prefix}.models[{i}].model", ref, "model"))
        for i, sl in enumerate(as_list(holder.get("slices"))):
            if not isinstance(sl, dict):
                continue
            for j, src in enumerate(as_list(sl.get("sources"))):
                if isinstance(src, dict) and isinstance(src.get("model"), str):
                    slots.append(ModelSlot(f"{prefix}.slices[{i}].sources[{j}].model",
                                           src["model"], "slice"))
            if isinstance(sl.get("base_model"), str):
                slots.append(ModelSlot(f"{prefix}.slices[{i}].base_model", sl["base_model"], "base"))

    inputs(m, root)
    for k, mod in enumerate(as_list(m.get("modules"))):
        if isinstance(mod, dict):
            inputs(mod, f"{root}.modules[{k}]")
    tok = m.get("tokenizer_source")
    tpath = f"{root}.tokenizer_source"
    if isinstance(m.get("tokenizer"), dict):
        tok, tpath = m["tokenizer"].get("source", tok), f"{root}.tokenizer.source"
    if isinstance(tok, str) and tok not in ("base", "union"):
        slots.append(ModelSlot(tpath, tok, "tokenizer"))
    return slots


def model_slots(config: dict) -> list[ModelSlot]:
    """Every model reference of a merge configuration, with the path of its field."""
    return merge_slots(as_dict(config.get("merge")))
