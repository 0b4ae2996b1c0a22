"""Data paths of configuration fields: ``merge.models[1].parameters.density``.

A data path names a place in a configuration dict (keys and list indices); the *model path* of the
same place drops the indices (``merge.models.parameters.density``), which is how the feature model
names features and attributes. Plain Python, used by the view-model.
"""

from __future__ import annotations

import re
from typing import Any, Union

Token = Union[str, int]
_TOKEN = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def parse(path: str) -> list[Token]:
    """``"a.b[1].c"`` -> ``["a", "b", 1, "c"]`` (``""`` -> ``[]``)."""
    out: list[Token] = []
    for name, index in _TOKEN.findall(path or ""):
        out.append(int(index) if index else name)
    return out


def join(path: str, name: str | int) -> str:
    if isinstance(name, int):
        return f"{path}[{name}]"
    return f"{path}.{name}" if path else name


def fmt(tokens: list[Token]) -> str:
    path = ""
    for t in tokens:
        path = join(path, t)
    return path


def model_path(path: str) -> str:
    """The feature-model path of a data path: the indices dropped."""
    return ".".join(t for t in parse(path) if isinstance(t, str))


def parent(path: str) -> str | None:
    """The path one step up (``None`` above the root)."""
    tokens = parse(path)
    if not tokens:
        return None
    return fmt(tokens[:-1])


def ancestors(path: str):
    """``path`` itself, then each enclosing path up to ``""``."""
    tokens = parse(path)
    for i in range(len(tokens), -1, -1):
        yield fmt(tokens[:i])


def get(data: Any, path: str, default: Any = None) -> Any:
    """The value at ``path`` (``default`` when absent). A shorthand alternative written as a name
    (``method: ties``) reads as ``{ties: {}}``."""
    cur = data
    for t in parse(path):
        if isinstance(t, int):
            if not isinstance(cur, list) or t >= len(cur):
                return default
            cur = cur[t]
        else:
            if isinstance(cur, str):
                cur = {cur: {}}
            if not isinstance(cur, dict) or t not in cur:
                return default
            cur = cur[t]
    return cur
