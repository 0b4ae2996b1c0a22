"""Generation: an llmcombo configuration -> a mergekit YAML (merge or MoE) or an ensemble spec;
and import: any mergekit YAML -> an llmcombo configuration.

Every generated mergekit document is checked with mergekit's own pydantic models
(``MergeConfiguration``, ``MoEMergeConfig``) before it is returned, so what we hand to mergekit is
what mergekit accepts.
"""

from __future__ import annotations

from typing import Any, Callable

from llmcombo import modelref
from llmcombo.configuration import Configuration, dump_yaml
from llmcombo.errors import UserError

# family -> function(config, base_dir, resolve) -> (kind, document). Ensembles register here too.
Generator = Callable[[dict, Any, bool], tuple[str, dict]]
GENERATORS: dict[str, Generator] = {}


def register_generator(family: str, fn: Generator) -> None:
    GENERATORS[family] = fn


def _as_list(v: Any) -> list:
    if v is None:
        return []
    return [v] if isinstance(v, dict) else list(v)


def _ref(ref: Any, base_dir, resolve: bool) -> Any:
    return modelref.resolve(ref, base_dir) if resolve and isinstance(ref, str) else ref


def _params(d: dict) -> dict | None:
    p = d.get("parameters")
    return dict(p) if p else None


def _drop_none(d: dict) -> dict:
    return {k: v for k, v in d.items() if v is not None}


def method_name(merge: dict) -> str | None:
    m = merge.get("method")
    if isinstance(m, dict) and len(m) == 1:
        return next(iter(m))
    return m if isinstance(m, str) else None


def _merge_doc(config: dict, base_dir, resolve: bool) -> tuple[str, dict]:
    merge = config["merge"]
    doc: dict[str, Any] = {"merge_method": method_name(merge)}
    if merge.get("base_model") is not None:
        doc["base_model"] = _ref(merge["base_model"], base_dir, resolve)
    if "models" in merge:
        doc["models"] = [_drop_none({"model": _ref(m["model"], base_dir, resolve),
                                     "parameters": _params(m)}) for m in _as_list(merge["models"])]
    if "slices" in merge:
        slices = []
        for s in _as_list(merge["slices"]):
            sources = [_drop_none({"model": _ref(src["model"], base_dir, resolve),
                                   "layer_range": list(src["layer_range"]),
                                   "parameters": _params(src)}) for src in _as_list(s["sources"])]
            slices.append(_drop_none({
                "sources": sources,
                "base_model": _ref(s.get("base_model"), base_dir, resolve),
                "residual_weight": s.get("residual_weight"),
                "parameters": _params(s),
            }))
        doc["slices"] = slices
    if merge.get("parameters"):
        doc["parameters"] = dict(merge["parameters"])
    for key in ("dtype", "out_dtype"):
        if merge.get(key) is not None:
            doc[key] = merge[key]
    ts = merge.get("tokenizer_source")
    if ts is not None:
        doc["tokenizer_source"] = ts if ts in ("base", "union") else _ref(ts, base_dir, resolve)
    tok = merge.get("tokenizer")
    if tok:
        tok = dict(tok)
        if "source" in tok and tok["source"] not in ("base", "union"):
            tok["source"] = _ref(tok["source"], base_dir, resolve)
        doc["tokenizer"] = tok
    if merge.get("chat_template") is not None:
        doc["chat_template"] = merge["chat_template"]
    _check_with_mergekit("merge", doc)
    return "merge", doc


def _expert_doc(e: dict, base_dir, resolve: bool) -> dict:
    out = {"source_model": _ref(e["source_model"], base_dir, resolve)}
    for key in ("positive_prompts", "negative_prompts"):
        if e.get(key) is not None:
            v = e[key]
            out[key] = [v] if isinstance(v, str) else list(v)
    for key in ("noise_scale", "residual_scale"):
        if e.get(key) is not None:
            out[key] = e[key]
    return out


def _moe_doc(config: dict, base_dir, resolve: bool) -> tuple[str, dict]:
    moe = config["moe"]
    doc: dict[str, Any] = {"base_model": _ref(moe["base_model"], base_dir, resolve)}
    for key in ("gate_mode", "dtype", "experts_per_token"):
        if moe.get(key) is not None:
            doc[key] = moe[key]
    arch = moe.get("architecture")
    if arch and arch != "auto":
        doc["architecture"] = arch
    doc["experts"] = [_expert_doc(e, base_dir, resolve) for e in _as_list(moe["experts"])]
    if moe.get("shared_experts"):
        doc["shared_experts"] = [_expert_doc(e, base_dir, resolve) for e in _as_list(moe["shared_experts"])]
    _check_with_mergekit("moe", doc)
    return "moe", doc


register_generator("merge", _merge_doc)
register_generator("moe", _moe_doc)


def parse_mergekit(kind: str, doc: dict):
    """mergekit's own model of a document (raises pydantic/mergekit errors as they are)."""
    if kind == "merge":
        from mergekit.config import MergeConfiguration

        return MergeConfiguration.model_validate(doc)
    from mergekit.moe.config import MoEMergeConfig

    return MoEMergeConfig.model_validate(doc)


def _check_with_mergekit(kind: str, doc: dict) -> None:
    try:
        parse_mergekit(kind, doc)
    except Exception as exc:  # pydantic ValidationError, RuntimeError from mergekit validators
        first = str(exc).strip().splitlines()
        reason = first[-1] if first else type(exc).__name__
        raise UserError(f"mergekit does not accept the generated configuration: {reason}",
                        hint="Run `llmcombo validate` on the configuration for details.") from None


def to_mergekit(config: dict, base_dir=None, *, resolve: bool = True,
                validate: bool = True) -> tuple[str, dict]:
    """Return ``(kind, document)``: ``kind`` is ``merge``, ``moe`` or an ensemble kind; model
    references are resolved (``zoo:NAME``, relative folders) unless ``resolve=False``.

    Raises :class:`UserError` listing the errors when the configuration is not valid.
    """
    from llmcombo.productline import family_of, feature_model

    if base_dir is None:
        base_dir = getattr(config, "base_dir", None)
    if validate:
        issues = feature_model().validate(dict(config) if isinstance(config, dict) else config)
        errors = [i for i in issues if i.is_error]
        if errors:
            lines = "\n".join("  - " + i.format() for i in errors)
            raise UserError(f"the configuration has {len(errors)} error(s):\n{lines}")
    family = family_of(config)
    if family not in GENERATORS:
        raise UserError("the configuration must contain exactly one of: "
                        + ", ".join(sorted(GENERATORS)) + ".")
    return GENERATORS[family](config, base_dir, resolve)


def generate_yaml(config: dict, base_dir=None, *, resolve: bool = True) -> str:
    """The mergekit YAML (or ensemble spec) of a configuration, as text."""
    kind, doc = to_mergekit(config, base_dir, resolve=resolve)
    return dump_yaml(doc)


# ---------------------------------------------------------------------------------------------
# import
# ---------------------------------------------------------------------------------------------


def _import_ref(ref: Any, where: str) -> Any:
    if isinstance(ref, str) or ref is None:
        return ref
    if isinstance(ref, dict):
        from mergekit.common import ModelReference

        try:
            parsed = ModelReference.model_validate(ref)
        except Exception:
            raise UserError(f"{where}: not a model reference: {ref!r}") from None
        if parsed.override_architecture:
            raise UserError(f"{where}: override_architecture is not supported by llmcombo yet.",
                            hint="Remove it, or merge with mergekit-yaml directly.")
        return str(parsed)
    raise UserError(f"{where}: a model must be a folder or hub id, not {ref!r}.")


def import_mergekit(data: dict) -> Configuration:
    """Turn a mergekit YAML document (merge or MoE) into an llmcombo configuration.

    Values are kept as they are (validation reports what is wrong); only the spelling differs:
    ``merge_method`` becomes ``merge.method``, and model references become text.
    """
    from llmcombo.configuration import is_mergekit_document

    kind = is_mergekit_document(data)
    if kind is None:
        raise UserError("this is not a mergekit YAML: it has no merge_method (merge) and no "
                        "base_model + experts (MoE).")
    data = dict(data)
    if kind == "merge":
        if data.get("modules"):
            raise UserError("mergekit multi-module configurations (modules:) are not supported "
                            "by llmcombo yet.", hint="Use models or slices.")
        data.pop("modules", None)
        merge: dict[str, Any] = {"method": data.pop("merge_method")}
        for key, value in data.items():
            if key == "base_model":
                value = _import_ref(value, "base_model")
            elif key == "tokenizer_source" and value not in ("base", "union"):
                value = _import_ref(value, "tokenizer_source")
            elif key == "models" and isinstance(value, list):
                value = [_import_entry(m, f"models[{i}]", "model") for i, m in enumerate(value)]
            elif key == "slices" and isinstance(value, list):
                value = [_import_slice(s, f"slices[{i}]") for i, s in enumerate(value)]
            merge[key] = value
        return Configuration({"merge": _drop_none(merge)}, imported_from="mergekit")
    moe: dict[str, Any] = {}
    for key, value in data.items():
        if key == "base_model":
            value = _import_ref(value, "base_model")
        elif key in ("experts", "shared_experts") and isinstance(value, list):
            value = [_import_entry(e, f"{key}[{i}]", "source_model") for i, e in enumerate(value)]
        moe[key] = value
    return Configuration({"moe": _drop_none(moe)}, imported_from="mergekit")


def _import_entry(entry: Any, where: str, key: str) -> Any:
    if isinstance(entry, dict) and key in entry:
        entry = dict(entry)
        entry[key] = _import_ref(entry[key], f"{where}.{key}")
        return _drop_none(entry)
    return entry


def _import_slice(s: Any, where: str) -> Any:
    if not isinstance(s, dict):
        return s
    s = dict(s)
    if isinstance(s.get("sources"), list):
        s["sources"] = [_import_entry(src, f"{where}.sources[{j}]", "model")
                        for j, src in enumerate(s["sources"])]
    if s.get("base_model") is not None:
        s["base_model"] = _import_ref(s["base_model"], f"{where}.base_model")
    return _drop_none(s)
