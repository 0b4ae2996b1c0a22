"""What identifies a product's content, for the panels' caches (:func:`content_key`), and the
zoo's models offered as products."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

ZOO_PRODUCTS = ("base", "domotica", "tiempo")


def content_key(ref: Any, base_dir: Any = None) -> str:
    """What identifies a product's content, for caches: a model folder by its path and
    :func:`llmcombo.outputs.model_fingerprint` (the run id of the run that wrote it), an ensemble
    configuration by its text and the fingerprints of every model it names. A folder replaced by
    a new run gets a new key, so nothing is served from a stale cache."""
    import json

    from llmcombo import modelref
    from llmcombo.errors import UserError
    from llmcombo.fsutil import config_hash
    from llmcombo.outputs import model_fingerprint

    def folder_key(r: str) -> str:
        try:
            path = modelref.resolve(r, base_dir)
        except UserError:
            return f"ref:{r}"
        if os.path.isdir(path):
            return f"{os.path.abspath(path)}|{model_fingerprint(path)}"
        return f"ref:{path}"

    if isinstance(ref, (str, os.PathLike)):
        text = str(ref)
        p = Path(text).expanduser()
        if p.is_file() and p.suffix.lower() in (".yaml", ".yml", ".json"):
            from llmcombo.configuration import read_yaml_file
            from llmcombo.errors import UserError as _UE

            try:
                data = read_yaml_file(p)
            except _UE:
                return f"file:{p}|{p.stat().st_mtime_ns}"
            return content_key(data, p.resolve().parent)
        return folder_key(text)
    if isinstance(ref, dict):
        from llmcombo.productline import model_slots

        try:
            slots = model_slots(ref)
        except Exception:
            slots = []
        parts = sorted({folder_key(sl.ref) for sl in slots})
        return "config:" + config_hash(json.loads(json.dumps(ref, default=str)), parts)
    return f"object:{id(ref)}"
