"""Model references: a local folder, a Hugging Face Hub id (``owner/name``, ``owner/name@rev``),
mergekit's ``model+lora``, or ``SCHEME:NAME`` for a scheme a plugin registered (``zoo:domotica``:
a model of llmcombo's offline zoo).

Relative local paths are resolved against the configuration file's folder so that mergekit never
mistakes them for hub ids. Resolving a reference is a text step: it never trains, downloads or
builds anything; a scheme whose models are not there says so and names the command that makes
them.
"""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from llmcombo.errors import UserError

ZOO_PREFIX = "zoo:"
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*/[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_SCHEME = re.compile(r"^([a-z][a-z0-9_]*):(?![/\\])(.*)$")


@dataclass(frozen=True)
class Scheme:
    """``name:MODEL`` references: ``names()`` lists the models, ``folder(model)`` says where one
    is (without building it), ``missing_hint`` tells how to get them when the folder is absent."""

    name: str
    names: Callable[[], tuple[str, ...]]
    folder: Callable[[str], Path]
    missing_hint: str = ""


_SCHEMES: dict[str, Scheme] = {}


def register_scheme(scheme: Scheme) -> None:
    _SCHEMES[scheme.name] = scheme


def _scheme(name: str) -> Scheme | None:
    if name not in _SCHEMES:
        from llmcombo.plugins import load_plugins

        load_plugins()
    return _SCHEMES.get(name)


def split_scheme(ref: str) -> tuple[str, str] | None:
    """``("zoo", "domotica")`` for ``zoo:domotica``; None for a path, hub id or Windows drive."""
    if not isinstance(ref, str):
        return None
    m = _SCHEME.match(ref)
    if m is None or len(m.group(1)) == 1:  # C:\... is a drive, not a scheme
        return None
    return m.group(1), m.group(2)


def split_lora(ref: str) -> tuple[str, str | None]:
    """mergekit's ``model+lora`` syntax."""
    if "+" in ref and not os.path.exists(ref):
        model, lora = ref.split("+", 1)
        return model, lora
    return ref, None


def is_zoo(ref: object) -> bool:
    return isinstance(ref, str) and ref.startswith(ZOO_PREFIX)


def looks_like_path(ref: str) -> bool:
    return ref.startswith(("/", "./", "../", "~")) or (os.sep in ref and not _HUB_ID.match(ref))


def is_hub_id(ref: str) -> bool:
    """True when ``ref`` reads as ``owner/name`` and is not an existing local folder."""
    return bool(_HUB_ID.match(ref)) and not os.path.exists(ref)


def scheme_problem(ref: str) -> tuple[str, str] | None:
    """``(message, hint)`` when ``ref`` is ``SCHEME:NAME`` with an unknown scheme or model name
    ("did you mean zoo:domotica?"), None otherwise. Reads no file."""
    parts = split_scheme(ref)
    if parts is None:
        return None
    name, model = parts
    scheme = _scheme(name)
    if scheme is None:
        known = ", ".join(f"{s}:" for s in sorted(_SCHEMES)) or "none"
        return (f"{ref} names an unknown kind of model reference {name!r}.",
                f"Known prefixes: {known}; a local folder or a Hub id (owner/name) needs none.")
    names = scheme.names()
    if model not in names:
        close = difflib.get_close_matches(model, names, n=1, cutoff=0.5)
        listing = ", ".join(f"{name}:{n}" for n in names)
        hint = (f"Did you mean {name}:{close[0]}? " if close else "") + f"The {name} has: {listing}."
        return f"{ref}: there is no {name} model called {model!r}.", hint
    return None


def known_refs() -> list[str]:
    """Every ``SCHEME:NAME`` reference the registered schemes offer (``zoo:base``, ...), for
    pickers and "did you mean" suggestions. Reads no file."""
    from llmcombo.plugins import load_plugins

    load_plugins()
    return [f"{name}:{model}" for name, scheme in sorted(_SCHEMES.items())
            for model in scheme.names()]


def resolve_scheme(ref: str) -> str:
    """The folder of a ``SCHEME:NAME`` reference; :class:`UserError` for an unknown name or a
    folder that is not there (never builds it)."""
    problem = scheme_problem(ref)
    if problem is not None:
        raise UserError(problem[0], hint=problem[1])
    name, model = split_scheme(ref)  # type: ignore[misc]
    scheme = _SCHEMES[name]
    folder = scheme.folder(model)
    if not (folder / "config.json").is_file():
        raise UserError(f"the {name} model {ref} is not at {folder}.", hint=scheme.missing_hint or None)
    return str(folder)


def resolve(ref: str, base_dir: str | os.PathLike | None = None) -> str:
    """Return what mergekit and transformers should receive for ``ref``.

    ``zoo:NAME`` (any registered scheme) becomes the model's folder; a relative path that exists
    relative to ``base_dir`` (or looks like a path) becomes absolute; anything else is kept (a hub
    id). Never trains or downloads.
    """
    if not isinstance(ref, str):
        return ref
    model, lora = split_lora(ref)
    resolved = _resolve_one(model, base_dir)
    if lora is not None:
        resolved = f"{resolved}+{_resolve_one(lora, base_dir)}"
    return resolved


def _resolve_one(ref: str, base_dir: str | os.PathLike | None) -> str:
    if split_scheme(ref) is not None:
        return resolve_scheme(ref)
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
