"""Model references: a local folder, a Hugging Face Hub id, or ``zoo:NAME`` (a local zoo model).

Relative local paths are resolved against the configuration file's folder so that mergekit never
mistakes them for hub ids.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

ZOO_PREFIX = "zoo:"
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*/[A-Za-z0-9][A-Za-z0-9_.\-]*$")


def split_lora(ref: str) -> tuple[str, str | None]:
    """mergekit's ``model+lora`` syntax."""
    if "+" in ref and not os.path.exists(ref):
        model, lora = ref.split("+", 1)
        return model, lora
    return ref, None


def is_zoo(ref: str) -> bool:
    return isinstance(ref, str) and ref.startswith(ZOO_PREFIX)


def looks_like_path(ref: str) -> bool:
    return ref.startswith(("/", "./", "../", "~")) or os.sep in ref and not _HUB_ID.match(ref)


def is_hub_id(ref: str) -> bool:
    """True when ``ref`` reads as ``owner/name`` and is not an existing local folder."""
    return bool(_HUB_ID.match(ref)) and not os.path.exists(ref)


def resolve(ref: str, base_dir: str | os.PathLike | None = None) -> str:
    """Return what mergekit and transformers should receive for ``ref``.

    ``zoo:NAME`` becomes the zoo model's folder; a relative path that exists relative to
    ``base_dir`` (or looks like a path) becomes absolute; anything else is kept (a hub id).
    """
    if not isinstance(ref, str):
        return ref
    model, lora = split_lora(ref)
    resolved = _resolve_one(model, base_dir)
    if lora is not None:
        resolved = f"{resolved}+{_resolve_one(lora, base_dir)}"
    return resolved


def _resolve_one(ref: str, base_dir) -> str:
    if is_zoo(ref):
        from llmcombo import zoo

        return str(zoo.model_path(ref[len(ZOO_PREFIX):]))
    expanded = os.path.expanduser(ref)
    if os.path.isabs(expanded):
        return expanded
    if base_dir is not None:
        candidate = Path(base_dir) / expanded
        if candidate.exists() or looks_like_path(ref):
            return str(candidate.resolve())
    if os.path.exists(expanded) or looks_like_path(ref):
        return str(Path(expanded).resolve())
    return ref
