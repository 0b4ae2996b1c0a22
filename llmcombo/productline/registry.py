"""What the installed mergekit declares -- merge methods (parameters, types, defaults, required
flags, input contracts), MoE output architectures, chat template names, the model architectures
it knows and their modules -- as plain data.

The feature model is built from this data, and reading it imports nothing of mergekit (importing
mergekit's registry pulls in torch, transformers and peft: 10 s or more on a small machine).
It comes from a *snapshot*, in this order:

1. ``$XDG_CACHE_HOME/llmcombo/mergekit-VERSION-HASH.json``, written by
   :func:`llmcombo.engine.registry.refresh` from the installed mergekit and keyed by mergekit's
   version and the stamps of its registry files (an edited or reinstalled mergekit gets a new one);
2. the snapshot shipped with llmcombo (``mergekit-VERSION.json`` beside this file) when the
   installed mergekit has that version (a test checks it equals what mergekit declares).

When neither matches (another mergekit version), :func:`is_current` is False and the layers above
(validation, the CLI, the dashboard) call :func:`llmcombo.engine.registry.refresh`, which reads
mergekit once and writes (1). Until then the shipped snapshot stands in.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.metadata
import importlib.util
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SNAPSHOT_FORMAT = 3
SHIPPED_DIR = Path(__file__).resolve().parent


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


def mergekit_root() -> str | None:
    """Where the installed mergekit package lives (found without importing it)."""
    try:
        spec = importlib.util.find_spec("mergekit")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return list(spec.submodule_search_locations)[0]


def mergekit_version() -> str | None:
    try:
        return importlib.metadata.version("mergekit")
    except importlib.metadata.PackageNotFoundError:
        return None


def fingerprint() -> dict | None:
    """Version and file stamps of the installed mergekit, found without importing it."""
    root, version = mergekit_root(), mergekit_version()
    if root is None or version is None:
        return None
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


def cache_dir() -> Path:
    """llmcombo's cache folder (``$XDG_CACHE_HOME/llmcombo`` or ``~/.cache/llmcombo``)."""
    cache = os.environ.get("XDG_CACHE_HOME", "").strip() or "~/.cache"
    return Path(cache).expanduser() / "llmcombo"


def cache_path(fp: dict) -> Path:
    digest = hashlib.sha256(json.dumps(fp, sort_keys=True).encode()).hexdigest()[:16]
    return cache_dir() / f"mergekit-{fp['mergekit']}-{digest}.json"


def shipped_path(version: str) -> Path:
    return SHIPPED_DIR / f"mergekit-{version}.json"


def encode(snapshot: dict) -> dict:
    """The JSON form of a snapshot (see :func:`snapshot`)."""
    return {"methods": {n: dataclasses.asdict(m) for n, m in snapshot["methods"].items()},
            "moe_architectures": dict(snapshot["moe_architectures"]),
            "chat_templates": list(snapshot["chat_templates"]),
            "architectures": {a: {t: list(mods) for t, mods in by_type.items()}
                              for a, by_type in snapshot["architectures"].items()}}


def decode(raw: dict) -> dict:
    methods = {}
    for name, m in raw["methods"].items():
        m = dict(m)
        m["params"] = tuple(ParamInfo(**p) for p in m["params"])
        methods[name] = MethodInfo(**m)
    return {"methods": methods, "moe_architectures": dict(raw["moe_architectures"]),
            "chat_templates": tuple(raw["chat_templates"]),
            "architectures": {a: {t: tuple(mods) for t, mods in by_type.items()}
                              for a, by_type in raw["architectures"].items()}}


def _read(path: Path, fp: dict | None) -> dict | None:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        if fp is not None and raw.get("fingerprint") != fp:
            return None
        return decode(raw)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _cache_enabled() -> bool:
    return os.environ.get("LLMCOMBO_MERGEKIT_SNAPSHOT", "1").strip().lower() not in (
        "0", "false", "no", "off")


def is_current() -> bool:
    """Whether a snapshot made from the installed mergekit is available (cheap: no import)."""
    fp = fingerprint()
    if fp is None:
        return False
    if _cache_enabled() and _read(cache_path(fp), fp) is not None:
        return True
    return shipped_path(fp["mergekit"]).is_file()


@functools.lru_cache(maxsize=1)
def snapshot() -> dict:
    """``{"methods": {name: MethodInfo}, "moe_architectures": {value: display name},
    "chat_templates": (names)}``: the cached snapshot of the installed mergekit, else the shipped
    one for its version, else the newest shipped one (see the module docstring)."""
    fp = fingerprint()
    if fp is not None and _cache_enabled():
        found = _read(cache_path(fp), fp)
        if found is not None:
            return found
    version = fp["mergekit"] if fp else mergekit_version()
    if version is not None:
        found = _read(shipped_path(version), None)
        if found is not None:
            return found
    shipped = sorted(SHIPPED_DIR.glob("mergekit-*.json"))
    if not shipped:  # pragma: no cover - a broken installation
        raise RuntimeError("llmcombo ships no mergekit snapshot; reinstall llmcombo.")
    found = _read(shipped[-1], None)
    assert found is not None, f"the shipped snapshot {shipped[-1]} cannot be read"
    return found


def merge_methods() -> dict[str, MethodInfo]:
    """Every merge method registered in the installed mergekit, by name."""
    return snapshot()["methods"]


def moe_architectures() -> dict[str, str]:
    """mergekit's MoE output architectures: the value for ``architecture`` -> its display name."""
    return snapshot()["moe_architectures"]


def chat_templates() -> tuple[str, ...]:
    """The chat template names mergekit ships."""
    return snapshot()["chat_templates"]


def architectures() -> dict[str, dict[str, tuple[str, ...]]]:
    """The model architectures mergekit describes without inferring the layout from the
    weights: ``{"LlamaForCausalLM": {model_type: (module names)}}`` (model type ``""`` when
    mergekit has one description for the name); single-module models have the module
    ``default``."""
    return snapshot()["architectures"]


def modules_of(architecture: str, model_type: str | None = None) -> tuple[str, ...] | None:
    """The module names mergekit uses for a model of this architecture (None: unknown)."""
    by_type = architectures().get(architecture)
    if not by_type:
        return None
    if len(by_type) == 1:
        return next(iter(by_type.values()))
    return by_type.get(model_type or "")


__all__ = ["MethodInfo", "ParamInfo", "architectures", "cache_dir", "chat_templates", "fingerprint",
           "is_current", "merge_methods", "modules_of", "moe_architectures", "snapshot"]
