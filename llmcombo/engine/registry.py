"""Reading mergekit's registry itself (imports mergekit, torch and transformers) to make the
snapshot the feature model is built from (:mod:`llmcombo.productline.registry`)."""

from __future__ import annotations

import json
import os
import typing
from pathlib import Path
from typing import Any

from llmcombo.productline import registry as R


def _kind_of(value_type: Any) -> tuple[str, bool]:
    nullable = False
    args = typing.get_args(value_type)
    if typing.get_origin(value_type) is typing.Union and type(None) in args:
        nullable = True
        value_type = next(a for a in args if a is not type(None))
    return {bool: "bool", int: "int", float: "float", str: "str"}.get(value_type, "float"), nullable


def read_mergekit() -> dict:
    """The snapshot (see :func:`llmcombo.productline.registry.snapshot`) read from mergekit."""
    from mergekit.merge_methods import registered_methods
    from mergekit.moe import ALL_OUTPUT_ARCHITECTURES

    methods: dict[str, R.MethodInfo] = {}
    for m in sorted(registered_methods(), key=lambda m: m.spec.name):
        s = m.spec
        params = []
        for p in s.parameters:
            kind, nullable = _kind_of(p.value_type)
            params.append(R.ParamInfo(p.name, kind, p.scope.value, p.required,
                                      None if p.required else p.default, nullable, p.description))
        c = s.contract
        methods[s.name] = R.MethodInfo(s.name, s.pretty_name or s.name, s.reference_url,
                                       c.base.value, c.min_inputs, c.max_inputs, c.min_non_base,
                                       c.max_non_base, tuple(params))
    archs = {a.name().split()[0].lower(): a.name() for a in ALL_OUTPUT_ARCHITECTURES}
    root = R.mergekit_root()
    try:
        names = os.listdir(os.path.join(root, "_data", "chat_templates")) if root else []
    except OSError:
        names = []
    templates = tuple(sorted(n[:-6] for n in names if n.endswith(".jinja")))
    return {"methods": methods, "moe_architectures": archs, "chat_templates": templates,
            "architectures": read_architectures()}


def read_architectures() -> dict[str, dict[str, tuple[str, ...]]]:
    """mergekit's described architectures: name -> {model type: module names} (what
    ``arch_info_for_config`` picks from a config.json)."""
    from mergekit.architecture.json_definitions import NAME_TO_ARCH
    from mergekit.architecture.moe_defs import AfmoeModuleArchitecture, Glm4MoeModuleArchitecture

    out: dict[str, dict[str, tuple[str, ...]]] = {}
    for name in sorted(NAME_TO_ARCH):
        cands = list(NAME_TO_ARCH[name])
        if len(cands) == 1:
            out[name] = {"": tuple(sorted(cands[0].modules))}
        else:
            out[name] = {str(c.expected_model_type or ""): tuple(sorted(c.modules)) for c in cands}
    for extra in (AfmoeModuleArchitecture, Glm4MoeModuleArchitecture):
        out[extra.ARCHITECTURE_NAME] = {"": ("default",)}
    return dict(sorted(out.items()))


def snapshot_json(snap: dict, fingerprint: dict | None) -> str:
    return json.dumps({"fingerprint": fingerprint, **R.encode(snap)}, indent=1) + "\n"


def refresh(force: bool = False) -> Path | None:
    """Read the installed mergekit and write its snapshot to llmcombo's cache, unless one made
    from it is already available (``force``: write anyway). Clears the feature model's caches so
    the next use sees it. Returns the file written (None when nothing was written)."""
    from llmcombo.fsutil import atomic_write

    if not force and R.is_current():
        return None
    fp = R.fingerprint()
    snap = read_mergekit()
    path = R.cache_path(fp) if fp is not None else None
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, snapshot_json(snap, fp))
        except OSError:
            path = None  # a read-only cache: the shipped snapshot stands in
    R.snapshot.cache_clear()
    from llmcombo.productline import clear_caches

    clear_caches()
    return path


def write_shipped(folder: Path = R.SHIPPED_DIR) -> Path:
    """Write the snapshot shipped with llmcombo for the installed mergekit version (developers
    run this when the pinned mergekit changes: ``python -m llmcombo.engine.registry``)."""
    from llmcombo.fsutil import atomic_write

    version = R.mergekit_version()
    path = folder / f"mergekit-{version}.json"
    atomic_write(path, snapshot_json(read_mergekit(), None))
    return path


if __name__ == "__main__":  # pragma: no cover
    print(write_shipped())
