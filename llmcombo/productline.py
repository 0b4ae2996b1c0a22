"""THE feature model of LLM combinations, built with the metamodel.

Merge methods, their parameters, types, defaults, required flags and input contracts (base model
required/optional/ignored, how many inputs) are read from the installed mergekit's method registry,
so a method added to mergekit appears here without code. What mergekit does not declare (parameter
ranges, friendly explanations, MoE rules) is in the small tables below.

A configuration is YAML shaped like mergekit's own files, under one key per family::

    merge:                       moe:
      method: ties                 base_model: zoo:base
      base_model: zoo:base         gate_mode: hidden
      models:                      experts:
        - model: zoo:domotica        - source_model: zoo:domotica
          parameters:                  positive_prompts: [enciende la luz]
            weight: 0.5
            density: 0.5
"""

from __future__ import annotations

import functools
import importlib.resources
from dataclasses import dataclass, field
from typing import Any, Callable

from llmcombo.featuremodel import (
    MANY, Attribute, BoolType, Check, Constraint, CountCmp, EnumType, Eq, Feature, FeatureModel,
    FloatType, GradientType, IntType, IsSet, MappingType, ModelRefType, NumberType, Not, Or,
    RangeType, Sel, StringListType, StringType, alternative, any_selected, error, scalars_of,
    warning,
)
from llmcombo.featuremodel.issues import Issue

# ---------------------------------------------------------------------------------------------
# What mergekit declares: read from its registry
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParamInfo:
    name: str
    kind: str  # "float" | "int" | "bool" | "str"
    scope: str  # "shared" | "input" | "non_base"
    required: bool
    default: Any
    nullable: bool = False
    description: str | None = None


@dataclass(frozen=True)
class MethodInfo:
    name: str
    pretty_name: str
    reference_url: str | None
    base: str  # "required" | "optional" | "forbidden" | "ignored"
    min_inputs: int
    max_inputs: int | None
    min_non_base: int | None
    max_non_base: int | None
    params: tuple[ParamInfo, ...] = field(default_factory=tuple)

    def param(self, name: str) -> ParamInfo | None:
        for p in self.params:
            if p.name == name:
                return p
        return None

    @property
    def shared_params(self) -> tuple[ParamInfo, ...]:
        return tuple(p for p in self.params if p.scope == "shared")

    @property
    def input_params(self) -> tuple[ParamInfo, ...]:
        return tuple(p for p in self.params if p.scope != "shared")


def _kind_of(value_type: Any) -> tuple[str, bool]:
    import typing

    nullable = False
    args = typing.get_args(value_type)
    if typing.get_origin(value_type) is typing.Union and type(None) in args:
        nullable = True
        value_type = next(a for a in args if a is not type(None))
    return {bool: "bool", int: "int", float: "float", str: "str"}.get(value_type, "float"), nullable


def _methods_from_mergekit() -> dict[str, MethodInfo]:
    from mergekit.merge_methods import registered_methods

    out: dict[str, MethodInfo] = {}
    for m in sorted(registered_methods(), key=lambda m: m.spec.name):
        s = m.spec
        params = []
        for p in s.parameters:
            kind, nullable = _kind_of(p.value_type)
            params.append(ParamInfo(p.name, kind, p.scope.value, p.required,
                                    None if p.required else p.default, nullable, p.description))
        c = s.contract
        out[s.name] = MethodInfo(s.name, s.pretty_name or s.name, s.reference_url, c.base.value,
                                 c.min_inputs, c.max_inputs, c.min_non_base, c.max_non_base,
                                 tuple(params))
    return out


def _moe_architectures_from_mergekit() -> dict[str, str]:
    from mergekit.moe import ALL_OUTPUT_ARCHITECTURES

    out = {}
    for arch in ALL_OUTPUT_ARCHITECTURES:
        name = arch.name()
        out[name.split()[0].lower()] = name
    return out


# Importing mergekit's registry pulls in torch, transformers and peft (10 s or more on a small
# machine), only to read a few names and defaults. What it declares is therefore kept in a
# snapshot (JSON in the user's cache), keyed by mergekit's version and the files of its method
# registry and MoE package, and rebuilt from mergekit itself whenever any of them changes.
# ``LLMCOMBO_MERGEKIT_SNAPSHOT=0`` reads mergekit every time.
SNAPSHOT_FORMAT = 1


def _mergekit_fingerprint() -> dict | None:
    """Version and file stamps of the installed mergekit, found without importing it."""
    import importlib.metadata
    import importlib.util
    import os

    try:
        spec = importlib.util.find_spec("mergekit")
        version = importlib.metadata.version("mergekit")
    except (ImportError, ValueError, importlib.metadata.PackageNotFoundError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    root = list(spec.submodule_search_locations)[0]
    stamps = []
    for sub in ("merge_methods", "moe"):
        folder = os.path.join(root, sub)
        try:
            names = sorted(n for n in os.listdir(folder) if n.endswith(".py"))
        except OSError:
            return None
        for n in names:
            st = os.stat(os.path.join(folder, n))
            stamps.append(f"{sub}/{n}:{st.st_size}:{st.st_mtime_ns}")
    return {"format": SNAPSHOT_FORMAT, "mergekit": version, "path": os.path.abspath(root),
            "files": stamps}


def _snapshot_path(fingerprint: dict):
    import hashlib
    import json
    import os
    from pathlib import Path

    digest = hashlib.sha256(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest()[:16]
    cache = os.environ.get("XDG_CACHE_HOME", "").strip() or "~/.cache"
    return Path(cache).expanduser() / "llmcombo" / f"mergekit-{fingerprint['mergekit']}-{digest}.json"


def _encode_methods(methods: dict[str, MethodInfo]) -> dict:
    import dataclasses

    return {name: dataclasses.asdict(m) for name, m in methods.items()}


def _decode_methods(raw: dict) -> dict[str, MethodInfo]:
    out = {}
    for name, m in raw.items():
        m = dict(m)
        m["params"] = tuple(ParamInfo(**p) for p in m["params"])
        out[name] = MethodInfo(**m)
    return out


@functools.lru_cache(maxsize=1)
def mergekit_snapshot() -> dict:
    """What llmcombo reads from mergekit's registry: ``{"methods": {name: MethodInfo},
    "moe_architectures": {value: display name}}``, from the snapshot when it matches the
    installed mergekit, else from mergekit (and the snapshot is written for next time)."""
    import json
    import os

    use_cache = os.environ.get("LLMCOMBO_MERGEKIT_SNAPSHOT", "1").strip().lower() not in (
        "0", "false", "no", "off")
    fingerprint = _mergekit_fingerprint() if use_cache else None
    path = _snapshot_path(fingerprint) if fingerprint else None
    if path is not None:
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            if raw.get("fingerprint") == fingerprint:
                return {"methods": _decode_methods(raw["methods"]),
                        "moe_architectures": dict(raw["moe_architectures"])}
        except (OSError, ValueError, KeyError, TypeError):
            pass  # missing or stale: read mergekit below
    snap = {"methods": _methods_from_mergekit(), "moe_architectures": _moe_architectures_from_mergekit()}
    if path is not None:
        try:
            import tempfile

            path.parent.mkdir(parents=True, exist_ok=True)
            text = json.dumps({"fingerprint": fingerprint, "methods": _encode_methods(snap["methods"]),
                               "moe_architectures": snap["moe_architectures"]}, indent=1)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".mergekit-", suffix=".json")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    f.write(text)
                os.chmod(tmp, 0o644)
                os.replace(tmp, path)
            except BaseException:
                os.unlink(tmp)
                raise
        except (OSError, TypeError, ValueError):
            pass  # a read-only cache only costs the import next time
    return snap


def mergekit_snapshot_is_current() -> bool:
    """Whether a snapshot matching the installed mergekit is on disk (cheap: no mergekit import)."""
    import json

    fingerprint = _mergekit_fingerprint()
    if fingerprint is None:
        return False
    try:
        raw = json.loads(_snapshot_path(fingerprint).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(raw, dict) and raw.get("fingerprint") == fingerprint


def merge_methods() -> dict[str, MethodInfo]:
    """Every merge method registered in the installed mergekit, by name."""
    return mergekit_snapshot()["methods"]


def moe_architectures() -> dict[str, str]:
    """mergekit's MoE output architectures: the value for ``architecture`` -> its display name."""
    return mergekit_snapshot()["moe_architectures"]


@functools.lru_cache(maxsize=1)
def chat_templates() -> tuple[str, ...]:
    """The chat template names mergekit ships."""
    try:
        from mergekit._data import chat_templates as pkg

        names = [p.name[:-6] for p in importlib.resources.files(pkg).iterdir()
                 if p.name.endswith(".jinja")]
        return tuple(sorted(names))
    except Exception:  # pragma: no cover - layout change in mergekit
        return ()


DTYPES = ("float32", "float16", "bfloat16", "float64")
GATE_MODES = ("hidden", "cheap_embed", "random", "uniform_random")
RANDOM_GATES = ("random", "uniform_random")

# ---------------------------------------------------------------------------------------------
# What mergekit does not declare: llmcombo's own table
# ---------------------------------------------------------------------------------------------

# Ranges by (method, parameter); "*" applies to every method with that parameter.
PARAM_RANGES: dict[tuple[str, str], NumberType] = {
    ("*", "density"): FloatType(0.0, 1.0, min_open=True),
    ("*", "gamma"): FloatType(0.0, 1.0, max_open=True),
    ("della", "epsilon"): FloatType(0.0, 0.5, max_open=True),
    ("della_linear", "epsilon"): FloatType(0.0, 0.5, max_open=True),
    ("ram", "epsilon"): FloatType(0.0, None),
    ("ramplus_tl", "epsilon"): FloatType(0.0, None),
    ("ramplus_tl", "r"): FloatType(0.0, None),
    ("ramplus_tl", "alpha"): FloatType(0.0, None),
    ("slerp", "t"): FloatType(0.0, 1.0),
    ("nearswap", "t"): FloatType(0.0, None, min_open=True),
    ("sce", "select_topk"): FloatType(0.0, 1.0, min_open=True),
    ("karcher", "max_iter"): IntType(1, None),
    ("karcher", "tol"): FloatType(0.0, None, min_open=True),
    ("multislerp", "eps"): FloatType(0.0, None, min_open=True),
    ("*", "lambda"): FloatType(),
    ("*", "weight"): FloatType(),
}

PARAM_HELP: dict[str, str] = {
    "weight": "how much this model contributes",
    "density": "fraction of the task vector's weights kept, in (0, 1]",
    "gamma": "fraction of the largest task-vector weights removed as outliers",
    "epsilon": "DELLA: spread of keep probabilities around density / RAM: threshold for 'changed'",
    "lambda": "scale applied to the merged task vector",
    "normalize": "divide by the sum of weights",
    "rescale": "rescale kept weights to preserve the norm",
    "int8_mask": "store masks as int8 to save memory",
    "t": "SLERP: interpolation factor from the base (0) to the other model (1)",
    "filter_wise": "model stock: compute the ratio per row instead of per tensor",
    "select_topk": "SCE: fraction of elements with the highest variance kept",
    "max_iter": "maximum iterations of the Karcher mean",
    "tol": "convergence tolerance of the Karcher mean",
    "scale": "multiply this tensor by a factor",
    "nuslerp_row_wise": "NuSLERP: interpolate row vectors instead of column vectors",
    "nuslerp_flatten": "NuSLERP: treat tensors as flattened vectors",
    "normalize_weights": "Multi-SLERP: make the weights sum to 1",
    "eps": "small constant for numerical stability",
    "r": "RAM+: rescale strength",
    "alpha": "RAM+: cap on the overlap ratio",
}

BASE_REASON: dict[str, str] = {
    "task_arithmetic": "task vectors are measured as the difference from the base model",
    "ties": "task vectors are measured as the difference from the base model",
    "slerp": "SLERP interpolates from the base model towards the other model",
    "nearswap": "NearSwap moves the base model's weights towards the other model",
    "model_stock": "Model Stock interpolates towards the pretrained base model",
}

METHOD_HELP: dict[str, str] = {
    "linear": "Weighted average of the models.",
    "slerp": "Spherical interpolation between exactly two models.",
    "nuslerp": "Spherical interpolation between two models, optionally using a base model's task vectors.",
    "multislerp": "Spherical interpolation of several models (optionally around a base).",
    "task_arithmetic": "Adds the models' task vectors (model minus base) to the base.",
    "ties": "Task arithmetic that trims small changes and resolves sign conflicts (TIES).",
    "dare_ties": "Randomly drops task-vector entries, rescales, then TIES sign consensus.",
    "dare_linear": "Randomly drops task-vector entries and rescales, without sign consensus.",
    "breadcrumbs": "Drops both the smallest and the largest task-vector entries.",
    "breadcrumbs_ties": "Breadcrumbs sparsification with TIES sign consensus.",
    "della": "Magnitude-ranked random dropping (DELLA) with sign consensus.",
    "della_linear": "Magnitude-ranked random dropping (DELLA) without sign consensus.",
    "model_stock": "Geometric interpolation using at least two fine-tunes of one base.",
    "karcher": "Riemannian (Karcher) mean of the models' weights.",
    "passthrough": "Copies tensors unchanged: stack layer slices into a frankenmerge.",
    "sce": "Select, Calculate, Erase: keeps high-variance task-vector entries.",
    "arcee_fusion": "Fuses the parts of one model that differ most from the base.",
    "nearswap": "Interpolates towards the other model where weights are already close.",
    "ram": "Reinforced Agent Merging: averages task vectors, rescaled by overlap.",
    "ramplus_tl": "RAM+ with tensor-local overlap rescaling.",
}


def param_domain(method: str, name: str) -> NumberType | None:
    """The range of a parameter for a method (None: any value of its type)."""
    return PARAM_RANGES.get((method, name)) or PARAM_RANGES.get(("*", name))


# ---------------------------------------------------------------------------------------------
# Building the feature model
# ---------------------------------------------------------------------------------------------

METHOD_PREFIX = "merge.method."


def method_path(name: str) -> str:
    return METHOD_PREFIX + name


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


def _param_attributes(scopes: tuple[str, ...], where: str) -> list[Attribute]:
    """One attribute per parameter name that some method accepts in one of ``scopes``; its
    domain, default and relevance depend on the selected method."""
    methods = merge_methods()
    by_name: dict[str, list[tuple[MethodInfo, ParamInfo]]] = {}
    for m in methods.values():
        for p in m.params:
            if p.scope in scopes:
                by_name.setdefault(p.name, []).append((m, p))
    attrs = []
    for name in sorted(by_name, key=_param_order):
        uses = by_name[name]
        first = uses[0][1]
        base_type = GradientType(element=_element_type(first))
        domains = []
        defaults = []
        for m, p in uses:
            domains.append((Sel(method_path(m.name)), GradientType(element=_element_type(p, m.name))))
            if not p.required:
                defaults.append((Sel(method_path(m.name)), p.default))
        users = ", ".join(m.name for m, _ in uses)
        attrs.append(Attribute(
            name=name, type=base_type, label=name,
            description=PARAM_HELP.get(name),
            when=any_selected(method_path(m.name) for m, _ in uses),
            defaults=defaults, domains=domains,
            ignored_hint=f"{name} is used by: {users}. Remove it {where}, or pick one of those methods.",
            advanced=name in {"int8_mask", "eps", "tol", "max_iter", "nuslerp_flatten",
                              "nuslerp_row_wise", "normalize_weights"},
        ))
    return attrs


_ORDER = ["weight", "density", "t", "gamma", "epsilon", "lambda", "select_topk", "normalize",
          "rescale", "filter_wise", "scale"]


def _param_order(name: str) -> tuple[int, str]:
    return (_ORDER.index(name) if name in _ORDER else len(_ORDER), name)


def _method_features() -> list[Feature]:
    feats = []
    for m in merge_methods().values():
        feats.append(Feature(
            m.name, label=m.pretty_name, description=METHOD_HELP.get(m.name, m.pretty_name),
            meta={"pretty_name": m.pretty_name, "reference_url": m.reference_url or "",
                  "base": m.base, "min_inputs": m.min_inputs,
                  "max_inputs": m.max_inputs if m.max_inputs is not None else -1},
        ))
    return feats


def _dtype_attr(name: str, label: str, description: str) -> Attribute:
    return Attribute(name, EnumType(DTYPES), label=label, description=description)


def _tokenizer_source_type() -> EnumType:
    return EnumType(("base", "union"), open=True, open_type=ModelRefType())


def _check_tokens(value, path, label) -> list[Issue]:
    from pydantic import ValidationError
    from mergekit.tokenizer.config import TokenEmbeddingConfig

    issues = []
    for tok, cfg in value.items():
        try:
            TokenEmbeddingConfig.model_validate(cfg if cfg is not None else {})
        except (ValidationError, ValueError, TypeError, RuntimeError) as exc:
            first = str(exc).splitlines()[-1] if str(exc) else "invalid"
            issues.append(error(f"{path}.{tok}", f"token {tok!s}: {first}",
                                "See mergekit's tokenizer docs: source: {kind: zero} or a model.",
                                "type"))
    return issues


def merge_branch() -> Feature:
    input_params = _param_attributes(("input", "non_base"), "from this model")
    all_params = _param_attributes(("shared", "input", "non_base"), "from the merge parameters")
    slice_params = _param_attributes(("shared", "input", "non_base"), "from this slice")
    source_params = _param_attributes(("input", "non_base"), "from this source")
    model_ref = ModelRefType()
    models = Feature(
        "models", label="input models", card=(1, MANY),
        description="The models to merge, each with its own parameters.",
        attributes=[Attribute("model", model_ref, required=True, label="model",
                              description="a local folder, a Hugging Face id (owner/name) or zoo:NAME")],
        children=[Feature("parameters", label="parameters for this model", optional=True,
                          attributes=input_params)],
    )
    sources = Feature(
        "sources", label="input slices", card=(1, MANY),
        attributes=[
            Attribute("model", model_ref, required=True, label="model"),
            Attribute("layer_range", RangeType(), required=True, label="layer range",
                      description="[start, end): the layers taken from this model, end excluded"),
        ],
        children=[Feature("parameters", label="parameters for this source", optional=True,
                          attributes=source_params)],
    )
    slices = Feature(
        "slices", label="output slices", card=(1, MANY),
        description="Layer slices that are stacked to build the output (frankenmerges).",
        attributes=[
            Attribute("base_model", model_ref, label="slice base model", advanced=True),
            Attribute("residual_weight", FloatType(), label="residual weight", advanced=True),
        ],
        children=[sources, Feature("parameters", label="parameters for this slice", optional=True,
                                   attributes=slice_params)],
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
    base_required = [method_path(m.name) for m in merge_methods().values() if m.base == "required"]
    base_ignored = [method_path(m.name) for m in merge_methods().values() if m.base in ("ignored", "forbidden")]
    return Feature(
        "merge", label="Merge", description="Combine the weights of several models into one model.",
        attributes=[
            Attribute("base_model", model_ref, label="base model",
                      description="the common ancestor of the models (needed by task-vector methods)",
                      required_when=any_selected(base_required) if base_required else None,
                      when=Not(any_selected(base_ignored)) if base_ignored else None,
                      ignored_hint="This method does not use a base model; remove base_model."),
            _dtype_attr("dtype", "compute dtype", "the dtype the merge computes in"),
            _dtype_attr("out_dtype", "output dtype", "the dtype of the saved model (default: dtype)"),
            Attribute("tokenizer_source", _tokenizer_source_type(), label="tokenizer source",
                      description="base, union, or a model whose tokenizer to copy"),
            Attribute("chat_template", StringType(multiline=True), label="chat template",
                      description="auto, a template name (chatml, llama3, ...) or a Jinja template",
                      advanced=True),
        ],
        children=[method,
                  Feature("parameters", label="merge parameters", optional=True, attributes=all_params),
                  tokenizer],
        groups=[alternative(models, slices)],
    )


def moe_branch() -> Feature:
    model_ref = ModelRefType()
    prompts_needed = Not(Or((Eq("moe.gate_mode", "random"), Eq("moe.gate_mode", "uniform_random"))))

    def expert_attrs(shared: bool) -> list[Attribute]:
        attrs = [
            Attribute("source_model", model_ref, required=True, label="expert model"),
            Attribute("positive_prompts", StringListType(min_items=1), label="positive prompts",
                      description="example prompts that this expert should handle",
                      required_when=None if shared else prompts_needed),
            Attribute("negative_prompts", StringListType(), label="negative prompts",
                      description="example prompts this expert should not handle", advanced=True),
            Attribute("noise_scale", FloatType(0.0, None), label="noise scale", advanced=True,
                      description="noise added to the gate weights"),
        ]
        if shared:
            attrs.append(Attribute("residual_scale", FloatType(), label="residual scale",
                                   description="scale of the shared expert's output"))
        return attrs

    archs = moe_architectures()
    return Feature(
        "moe", label="Mixture of experts",
        description="Build a mixture-of-experts model whose experts are dense models.",
        attributes=[
            Attribute("base_model", model_ref, required=True, label="base model",
                      description="provides attention, embeddings and norms"),
            Attribute("gate_mode", EnumType(GATE_MODES, labels={
                "hidden": "hidden states of the prompts", "cheap_embed": "token embeddings of the prompts",
                "random": "random gates", "uniform_random": "uniform random gates"}),
                default="hidden", label="gate mode",
                description="how the router weights are initialised"),
            Attribute("experts_per_token", IntType(1, None), default=2, label="experts per token"),
            Attribute("architecture", EnumType(("auto",) + tuple(archs), labels=dict(archs)),
                      default="auto", label="output architecture"),
            _dtype_attr("dtype", "dtype", "dtype of the output model"),
        ],
        children=[
            Feature("experts", label="experts", card=(2, MANY), attributes=expert_attrs(False),
                    description="Each expert is a dense model with prompts describing its skill."),
            Feature("shared_experts", label="shared experts", card=(1, MANY), optional=True,
                    attributes=expert_attrs(True),
                    description="Experts every token goes through (Qwen MoE / DeepSeek outputs)."),
        ],
    )


# The extension point: each branch is a function returning (feature, constraints, checks).
Branch = Callable[[], tuple[Feature, list[Constraint], list[Check]]]
_BRANCHES: list[Branch] = []


def register_branch(branch: Branch) -> Branch:
    """Add a family of combinations (the runtime ensembles register themselves here)."""
    if branch not in _BRANCHES:
        _BRANCHES.append(branch)
        if "feature_model" in globals():
            feature_model.cache_clear()
    return branch


def _merge() -> tuple[Feature, list[Constraint], list[Check]]:
    return merge_branch(), merge_constraints(), [Check(check_merge, MERGE_CHECK_DOC)]


def _moe() -> tuple[Feature, list[Constraint], list[Check]]:
    return moe_branch(), moe_constraints(), [Check(check_moe, MOE_CHECK_DOC)]


register_branch(_merge)
register_branch(_moe)


@functools.lru_cache(maxsize=1)
def feature_model() -> FeatureModel:
    """The feature model of every combination llmcombo can build (cached)."""
    _load_plugins()
    branches, constraints, checks = [], [], []
    for b in _BRANCHES:
        f, c, k = b()
        branches.append(f)
        constraints += c
        checks += k
    root = Feature(
        "LLMCombination", label="LLM combination", abstract=True,
        attributes=[Attribute("name", StringType(), label="name",
                              description="a name for the product (used for the output folder)"),
                    Attribute("description", StringType(multiline=True), label="description")],
        groups=[alternative(*branches)],
    )
    return FeatureModel(root, constraints, checks, name="LLMCombination")


def _load_plugins() -> None:
    # Families living in other modules of the package register themselves on import.
    for mod in ("llmcombo.ensemble.spec",):
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name != mod:
                raise

# ---------------------------------------------------------------------------------------------
# Constraints
# ---------------------------------------------------------------------------------------------


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
        if m.base == "ignored" and m.max_inputs == 1:
            continue
    return out


MERGE_CHECK_DOC = ("each merge method's number of inputs (mergekit's input contract, the base model "
                   "counting as an input), required per-model and global parameters, parameter "
                   "ranges per method, DELLA's density +/- epsilon within (0, 1), layer ranges")


def _method_of(data: dict) -> str | None:
    m = (data.get("merge") or {}).get("method") if isinstance(data.get("merge"), dict) else None
    if isinstance(m, str):
        return m
    if isinstance(m, dict) and len(m) == 1:
        return next(iter(m))
    return None


def _as_list(v: Any) -> list:
    if v is None:
        return []
    if isinstance(v, dict):
        return [v]
    return v if isinstance(v, list) else []


def _params(d: Any) -> dict:
    p = d.get("parameters") if isinstance(d, dict) else None
    return p if isinstance(p, dict) else {}


def check_merge(data: dict, ctx) -> list[Issue]:
    merge = data.get("merge")
    if not isinstance(merge, dict):
        return []
    issues: list[Issue] = []
    ct = merge.get("chat_template")
    known = chat_templates()
    if isinstance(ct, str) and ct.strip() and ct != "auto" and "{" not in ct and known \
            and ct not in known:
        issues.append(warning("merge.chat_template", f"{ct} is not a chat template mergekit knows, "
                                                     "and it does not look like a Jinja template.",
                              "Use auto, one of " + ", ".join(known) + ", or a Jinja template.",
                              "template"))
    name = _method_of(data)
    info = merge_methods().get(name) if name else None
    if info is None:
        return issues
    base = merge.get("base_model")
    global_params = _params(merge)

    def inputs_of(entries: list, slice_base: Any, path: str, key: str) -> None:
        refs = [e.get("model") for e in entries if isinstance(e, dict)]
        ids = list(refs)
        base_added = False
        if slice_base and slice_base not in ids and info.base != "ignored" and key == "models":
            ids.append(slice_base)
            base_added = True
        if key == "models" and slice_base and slice_base not in refs and info.base == "ignored":
            ids.append(slice_base)
            base_added = True
        dupes = sorted({str(r) for r in refs if refs.count(r) > 1})
        if dupes:
            issues.append(error(path, f"{', '.join(dupes)} is listed more than once.",
                                "List each model once.", "duplicate"))
        has_base = slice_base is not None and slice_base in ids and info.base != "ignored"
        if key == "slices" and slice_base and info.base != "ignored" and slice_base not in refs:
            issues.append(error(path, f"The base model {slice_base} is not among this slice's "
                                      "sources.", "Add a source from the base model, or change the "
                                                  "base model.", "base"))
        count = len(ids)
        non_base = count - int(has_base)
        what = "models" if key == "models" else "sources"
        base_note = " (the base model counts as one)" if info.base != "ignored" else ""
        if count < info.min_inputs or (info.max_inputs is not None and count > info.max_inputs):
            if info.max_inputs == info.min_inputs:
                need = f"exactly {info.min_inputs}"
            elif info.max_inputs is None:
                need = f"at least {info.min_inputs}"
            else:
                need = f"between {info.min_inputs} and {info.max_inputs}"
            issues.append(error(path, f"{info.pretty_name} takes {need} input model(s){base_note}; "
                                      f"this configuration has {count}.",
                                "Add or remove " + what + "." if info.max_inputs != 1 else
                                "Passthrough copies one model per slice: use slices with one source each.",
                                "count"))
        if info.min_non_base is not None or info.max_non_base is not None:
            lo, hi = info.min_non_base or 0, info.max_non_base
            if non_base < lo or (hi is not None and non_base > hi):
                need = f"exactly {lo}" if lo == hi else (f"at least {lo}" if hi is None else f"{lo} to {hi}")
                issues.append(error(path, f"{info.pretty_name} takes {need} model(s) besides the base "
                                          f"model; this configuration has {non_base}.",
                                    f"Add or remove {what}.", "count"))
        if base_added and info.base == "ignored":
            issues.append(warning("merge.base_model", f"{info.pretty_name} does not use a base model; "
                                                      "mergekit will add it as one more input.",
                                  "Remove base_model, or list it under models with its weight.",
                                  "base"))
        # per-input parameters
        for p in info.input_params:
            for i, e in enumerate(entries):
                if not isinstance(e, dict):
                    continue
                is_base = slice_base is not None and e.get("model") == slice_base
                if p.scope == "non_base" and is_base:
                    continue
                pp = _params(e)
                epath = f"{path}[{i}].parameters"
                if p.required and p.name not in pp and p.name not in global_params \
                        and p.name not in local_params:
                    issues.append(error(f"{epath}.{p.name}", f"{info.pretty_name} needs a {p.name} "
                                                             f"for {e.get('model')}.",
                                        f"Set {p.name} for this model, or once in the merge parameters "
                                        "for all models.", "required"))
            if p.required and base_added and p.scope == "input" and p.name not in global_params \
                    and p.name not in local_params:
                issues.append(error(f"merge.parameters.{p.name}", f"{info.pretty_name} needs a "
                                                                  f"{p.name} for the base model too.",
                                    "Set it in the merge parameters, or list the base under models.",
                                    "required"))
        for p in info.shared_params:
            for i, e in enumerate(entries):
                if isinstance(e, dict) and p.name in _params(e):
                    issues.append(warning(f"{path}[{i}].parameters.{p.name}",
                                          f"{p.name} is one value for the whole merge; a value per "
                                          "model is ignored.", "Set it in the merge parameters.",
                                          "ignored"))

    local_params: dict = {}
    if "models" in merge and "slices" not in merge:
        inputs_of(_as_list(merge.get("models")), base, "merge.models", "models")
        shared_sources = [global_params]
    elif "slices" in merge and "models" not in merge:
        shared_sources = []
        for si, s in enumerate(_as_list(merge.get("slices"))):
            if not isinstance(s, dict):
                continue
            local_params = _params(s)
            sbase = s.get("base_model") or base
            if info.max_inputs == 1 and info.base == "ignored":
                sbase_eff = None
            else:
                sbase_eff = sbase
            inputs_of(_as_list(s.get("sources")), sbase_eff, f"merge.slices[{si}].sources", "slices")
            shared_sources.append({**global_params, **local_params})
        local_params = {}
    else:
        shared_sources = [global_params]
    for p in info.shared_params:
        if p.required and any(p.name not in src for src in shared_sources):
            issues.append(error(f"merge.parameters.{p.name}", f"{info.pretty_name} needs {p.name}"
                                + (f" ({PARAM_HELP[p.name]})" if p.name in PARAM_HELP else "") + ".",
                                f"Set {p.name} in the merge parameters.", "required"))

    # DELLA: density +/- epsilon must stay in (0, 1)
    if any(pi.name == "epsilon" for pi in info.params) and info.param("density") is not None:
        for path, params in _all_param_dicts(merge):
            eps = params.get("epsilon", global_params.get("epsilon", info.param("epsilon").default))
            dens = params.get("density", global_params.get("density"))
            for d in scalars_of(dens) if dens is not None else []:
                for e in scalars_of(eps):
                    if isinstance(d, (int, float)) and isinstance(e, (int, float)) and 0 < d < 1 \
                            and 0 <= e < 0.5 and (d - e <= 0 or d + e >= 1):
                        issues.append(error(f"{path}.epsilon", f"With density {d:g}, epsilon {e:g} "
                                            "puts keep probabilities outside (0, 1): density minus "
                                            "epsilon and density plus epsilon must both be in (0, 1).",
                                            f"Use epsilon below {min(d, 1 - d):g}.", "range"))
                        break
    return issues


def _all_param_dicts(merge: dict) -> list[tuple[str, dict]]:
    out = [("merge.parameters", _params(merge))]
    for i, m in enumerate(_as_list(merge.get("models"))):
        out.append((f"merge.models[{i}].parameters", _params(m)))
    for i, s in enumerate(_as_list(merge.get("slices"))):
        out.append((f"merge.slices[{i}].parameters", _params(s)))
        for j, src in enumerate(_as_list(s.get("sources") if isinstance(s, dict) else None)):
            out.append((f"merge.slices[{i}].sources[{j}].parameters", _params(src)))
    return [(p, d) for p, d in out if d]


def moe_constraints() -> list[Constraint]:
    out = []
    archs = moe_architectures()
    if "mixtral" in archs:
        out.append(Constraint.excludes(Eq("moe.architecture", "mixtral"), Sel("moe.shared_experts"),
                                       "The Mixtral output architecture has no shared experts.",
                                       "moe.shared_experts",
                                       "Remove the shared experts or choose deepseek or qwen."))
    if "qwen3" in archs:
        out.append(Constraint.excludes(Eq("moe.architecture", "qwen3"), Sel("moe.shared_experts"),
                                       "The Qwen3 MoE output architecture has no shared experts.",
                                       "moe.shared_experts", "Remove the shared experts."))
    if "qwen" in archs:
        out.append(Constraint.requires(Eq("moe.architecture", "qwen"), CountCmp("moe.shared_experts", "==", 1),
                                       "The Qwen MoE output architecture needs exactly one shared expert.",
                                       "moe.shared_experts", "Add one shared expert."))
    if "deepseek" in archs:
        out.append(Constraint.requires(Eq("moe.architecture", "deepseek"), CountCmp("moe.shared_experts", "<=", 1),
                                       "The DeepSeek MoE output architecture takes at most one shared expert.",
                                       "moe.shared_experts", "Keep one shared expert."))
        out.append(Constraint.excludes(Eq("moe.architecture", "deepseek"), IsSet("moe.shared_experts.positive_prompts"),
                                       "The DeepSeek MoE output architecture does not gate shared experts, "
                                       "so a shared expert cannot have prompts.",
                                       "moe.shared_experts", "Remove the shared expert's prompts."))
    return out


MOE_CHECK_DOC = ("experts_per_token between 1 and the number of experts; experts must differ in "
                 "prompts and models; prompts for all shared experts or none")


def check_moe(data: dict, ctx) -> list[Issue]:
    moe = data.get("moe")
    if not isinstance(moe, dict):
        return []
    issues: list[Issue] = []
    experts = [e for e in _as_list(moe.get("experts")) if isinstance(e, dict)]
    k = moe.get("experts_per_token", 2)
    if isinstance(k, int) and not isinstance(k, bool) and experts and k > len(experts):
        issues.append(error("moe.experts_per_token", f"experts per token is {k}, but there are only "
                                                     f"{len(experts)} experts.",
                            f"Use a value between 1 and {len(experts)}, or add experts.", "range"))
    gate = moe.get("gate_mode", "hidden")
    if gate not in RANDOM_GATES and len(experts) >= 2:
        def key(e):
            return (tuple(_as_list_str(e.get("positive_prompts"))),
                    tuple(_as_list_str(e.get("negative_prompts"))))
        if all(key(e) == key(experts[0]) for e in experts[1:]) and key(experts[0])[0]:
            issues.append(error("moe.experts", "Every expert has the same prompts, so the router "
                                               "cannot tell them apart.",
                                "Give each expert prompts typical of what it should handle.", "prompts"))
    if len(experts) >= 2 and all(e.get("source_model") == experts[0].get("source_model") for e in experts[1:]):
        issues.append(error("moe.experts", "All experts are the same model: the result would cost "
                                           "more and answer exactly the same.",
                            "Use different expert models.", "experts"))
    shared = [e for e in _as_list(moe.get("shared_experts")) if isinstance(e, dict)]
    with_prompts = [bool(e.get("positive_prompts")) for e in shared]
    if shared and any(with_prompts) and not all(with_prompts):
        issues.append(error("moe.shared_experts", "Give prompts to every shared expert or to none.",
                            code="prompts"))
    arch = moe.get("architecture", "auto")
    if arch == "qwen" and shared and gate not in RANDOM_GATES and not shared[0].get("positive_prompts"):
        issues.append(error("moe.shared_experts[0].positive_prompts",
                            "The Qwen MoE output architecture gates the shared expert, so it needs "
                            "prompts.", "Add positive prompts to the shared expert.", "prompts"))
    return issues


def _as_list_str(v: Any) -> list[str]:
    if isinstance(v, str):
        return [v]
    return [x for x in v if isinstance(x, str)] if isinstance(v, list) else []


def family_of(data: Any) -> str | None:
    """Which family a configuration belongs to (merge, moe, ensemble ...)."""
    if not isinstance(data, dict):
        return None
    names = [c.name for c in feature_model().root.groups[0].children]
    found = [n for n in names if n in data]
    return found[0] if len(found) == 1 else None
