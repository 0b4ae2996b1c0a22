"""Reading configurations: an llmcombo file, or a mergekit YAML imported as an llmcombo
configuration (``merge_method`` becomes ``merge.method``, model references become text; every
value is kept as it is, and validation reports what is wrong)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from llmcombo.configuration import Configuration, is_mergekit_document, read_yaml_file
from llmcombo.errors import UserError


def _drop_none(d: dict) -> dict:
    return {k: v for k, v in d.items() if v is not None}


def _import_ref(ref: Any, where: str) -> Any:
    if isinstance(ref, str) or ref is None:
        return ref
    if isinstance(ref, dict):
        from llmcombo.engine.schema import model_reference_text

        try:
            return model_reference_text(ref)
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            if "override_architecture" in str(exc):
                raise UserError(f"{where}: override_architecture is not supported by llmcombo yet.",
                                hint="Remove it, or merge with mergekit-yaml directly.") from None
            raise UserError(f"{where}: not a model reference: {ref!r}") from None
    raise UserError(f"{where}: a model must be a folder or hub id, not {ref!r}.")


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


def import_mergekit(data: dict) -> Configuration:
    """Turn a mergekit YAML document (merge or MoE) into an llmcombo configuration."""
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


def as_configuration(data: Any, *, base_dir: Any = None, source: Any = None) -> Configuration:
    """An llmcombo configuration from parsed data; mergekit documents are imported."""
    if isinstance(data, Configuration) and base_dir is None:
        return data
    if is_mergekit_document(data):
        cfg = import_mergekit(data)
        cfg.base_dir = Path(base_dir) if base_dir else None
        cfg.source = str(source) if source else None
        return cfg
    if data is None:
        raise UserError("the configuration is empty.", hint="Start from a preset: llmcombo presets.")
    if not isinstance(data, dict):
        raise UserError(f"the configuration must be a mapping of names to values, not a "
                        f"{type(data).__name__}.", hint="Start from a preset or a mergekit YAML.")
    return Configuration(data, base_dir=base_dir, source=source)


def load_any(path: str | os.PathLike) -> Configuration:
    """Read an llmcombo configuration or a mergekit YAML (detected)."""
    data = read_yaml_file(path)
    return as_configuration(data, base_dir=Path(path).resolve().parent, source=path)
