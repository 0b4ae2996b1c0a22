"""Reading configurations: an llmcombo file, or a mergekit YAML imported as an llmcombo
configuration (``merge_method`` becomes ``merge.method``, model references become text,
``modules:`` a list of named modules, a mergekit-multimerge file -- several documents, each with
a ``name`` -- a list of stages; every value is kept as it is, and validation reports what is
wrong). Imports nothing of mergekit: model references are read with the schema of
:mod:`llmcombo.productline.documents`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from llmcombo.configuration import Configuration, Documents, is_mergekit_document, read_yaml_file
from llmcombo.errors import UserError

# top-level keys of a mergekit document that belong to the llmcombo configuration's root (mergekit
# ignores them; mergekit-multimerge reads `name`)
ROOT_KEYS = ("name", "description")


def _drop_none(d: dict) -> dict:
    return {k: v for k, v in d.items() if v is not None}


def _import_ref(ref: Any, where: str) -> Any:
    if isinstance(ref, dict) and "model" in ref:
        from llmcombo.productline.documents import model_reference_text

        try:
            return model_reference_text(ref)
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            if "override_architecture" in str(exc):
                raise UserError(f"{where}: override_architecture is not supported by llmcombo yet.",
                                hint="Remove it, or merge with mergekit-yaml directly.") from None
    # anything else is kept as written: validation says what is wrong with it, with its path
    return ref


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


def _import_inputs(holder: dict, where: str) -> dict:
    out = {}
    for key, value in holder.items():
        if key == "models" and isinstance(value, list):
            value = [_import_entry(m, f"{where}models[{i}]", "model") for i, m in enumerate(value)]
        elif key == "slices" and isinstance(value, list):
            value = [_import_slice(s, f"{where}slices[{i}]") for i, s in enumerate(value)]
        out[key] = value
    return out


def _import_modules(modules: Any) -> Any:
    """mergekit's ``modules: {NAME: {models | slices, parameters}}`` as llmcombo's list of named
    modules (a list is what a form can show and a feature model can count)."""
    if not isinstance(modules, dict):
        return modules
    out = []
    for name, body in modules.items():
        if isinstance(body, dict):
            out.append({"name": name, **_import_inputs(body, f"modules.{name}.")})
        else:
            out.append({"name": name, "models": body})
    return out


def merge_of(data: dict) -> dict:
    """The llmcombo ``merge`` mapping of a mergekit merge document (its root keys left out)."""
    merge: dict[str, Any] = {"method": data.get("merge_method")}
    for key, value in data.items():
        if key in ("merge_method",) + ROOT_KEYS:
            continue
        if key == "base_model":
            value = _import_ref(value, "base_model")
        elif key == "tokenizer_source" and value not in ("base", "union"):
            value = _import_ref(value, "tokenizer_source")
        elif key == "tokenizer" and isinstance(value, dict) and "source" in value \
                and value["source"] not in ("base", "union"):
            value = {**value, "source": _import_ref(value["source"], "tokenizer.source")}
        elif key in ("models", "slices"):
            value = _import_inputs({key: value}, "")[key]
        elif key == "modules":
            value = _import_modules(value)
        merge[key] = value
    return _drop_none(merge)


def _root(data: dict) -> dict:
    return {k: data[k] for k in ROOT_KEYS if data.get(k) is not None}


def import_mergekit(data: Any) -> Configuration:
    """Turn a mergekit YAML document (merge or MoE) or a mergekit-multimerge file (several merge
    documents) into an llmcombo configuration."""
    kind = is_mergekit_document(data)
    if kind is None:
        if isinstance(data, Documents):
            raise UserError("this file has several YAML documents, but not all of them are "
                            "mergekit merge configurations (merge_method: ...); "
                            "mergekit-multimerge runs merges only.",
                            hint="Keep one configuration per file, or make every document a merge.")
        raise UserError("this is not a mergekit YAML: it has no merge_method (merge) and no "
                        "base_model + experts (MoE).")
    if kind == "multimerge":
        stages = []
        for doc in data:
            stage: dict[str, Any] = {"name": doc["name"]} if doc.get("name") is not None else {}
            stage["merge"] = merge_of(doc)
            stages.append(stage)
        return Configuration({"stages": stages}, imported_from="mergekit")
    data = dict(data)
    if kind == "merge":
        return Configuration({**_root(data), "merge": merge_of(data)}, imported_from="mergekit")
    moe: dict[str, Any] = {}
    for key, value in data.items():
        if key in ROOT_KEYS:
            continue
        if key == "base_model":
            value = _import_ref(value, "base_model")
        elif key in ("experts", "shared_experts") and isinstance(value, list):
            value = [_import_entry(e, f"{key}[{i}]", "source_model") for i, e in enumerate(value)]
        moe[key] = value
    return Configuration({**_root(data), "moe": _drop_none(moe)}, imported_from="mergekit")


def as_configuration(data: Any, *, base_dir: Any = None, source: Any = None) -> Configuration:
    """An llmcombo configuration from parsed data; mergekit documents are imported (the
    configuration keeps the documents as read in ``original``: validation checks them against
    mergekit's schema as they were written)."""
    if isinstance(data, Configuration) and base_dir is None:
        return data
    if is_mergekit_document(data) or isinstance(data, Documents):
        cfg = import_mergekit(data)
        cfg.original = data
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
