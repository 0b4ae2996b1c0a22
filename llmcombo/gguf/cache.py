"""GGUF files of model folders, converted once and kept in the user's cache.

A llama_cpp ensemble member may name a model folder (a merge's output, ``zoo:NAME``, a Hub id):
:func:`cached_gguf` converts it on first use into ``$LLMCOMBO_GGUF_CACHE`` (default
``~/.cache/llmcombo/gguf``) and reuses the file afterwards. The file name carries
:func:`llmcombo.outputs.model_fingerprint` of the folder, so a folder that a new run replaced (or
whose weights changed) is converted again; the stale file of the same folder is removed then.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

from llmcombo.gguf.export import export_gguf, local_model_folder
from llmcombo.gguf.format import gguf_version, normalize_quant
from llmcombo.gguf.tools import converter_version

ENV_CACHE = "LLMCOMBO_GGUF_CACHE"
_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_LOCK = threading.Lock()


def cache_dir() -> Path:
    env = os.environ.get(ENV_CACHE, "").strip()
    if env:
        return Path(env).expanduser().absolute()
    cache = os.environ.get("XDG_CACHE_HOME", "").strip() or "~/.cache"
    return Path(cache).expanduser().absolute() / "llmcombo" / "gguf"


def looks_like_gguf_path(ref: Any) -> bool:
    return isinstance(ref, (str, os.PathLike)) and os.fspath(ref).lower().endswith(".gguf")


def cached_gguf(ref: Any, quant: str = "f16", *, base_dir=None, progress: Any = None) -> Path:
    """A GGUF file for ``ref``: the file itself when ``ref`` is a ``.gguf`` path (checked), else
    the cached conversion of the model folder ``ref`` names (made now when missing or stale)."""
    from llmcombo import modelref
    from llmcombo.fsutil import config_hash
    from llmcombo.outputs import model_fingerprint

    if looks_like_gguf_path(ref):
        path = Path(modelref.resolve(os.fspath(ref), base_dir)).expanduser()
        gguf_version(path)
        return path.absolute()
    q = normalize_quant(quant)
    folder = local_model_folder(ref, base_dir).resolve()
    where = config_hash(str(folder), length=8)
    what = config_hash([model_fingerprint(folder), converter_version()], length=10)
    stem = f"{folder.name}-{where}"
    target = cache_dir() / f"{stem}-{what}-{q}.gguf"
    with _LOCKS_LOCK:
        lock = _LOCKS.setdefault(str(target), threading.Lock())
    with lock:
        if target.is_file():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        result = export_gguf(folder, target, q, overwrite=True, progress=progress)
        info = {"source": str(folder), "fingerprint": model_fingerprint(folder), "quant": q,
                "converter": converter_version(), "architecture": result.architecture,
                "tokenizer_check": result.tokenizer_check, "warnings": result.warnings}
        from llmcombo.fsutil import atomic_write

        atomic_write(target.with_suffix(".json"), json.dumps(info, indent=1, ensure_ascii=False))
        for old in target.parent.glob(f"{stem}-*-{q}.gguf"):  # this folder's stale conversions
            if old != target:
                old.unlink(missing_ok=True)
                old.with_suffix(".json").unlink(missing_ok=True)
    return target
