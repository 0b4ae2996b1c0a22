"""Configurations as data: the :class:`Configuration` type, YAML in and out, telling llmcombo
files from mergekit files, and the shipped presets. (Importing a mergekit file is
:mod:`llmcombo.importer`; writing files is :mod:`llmcombo.fsutil`.)"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from llmcombo.errors import UserError


class Configuration(dict):
    """An llmcombo configuration: plain data (a dict) plus where it came from.

    ``base_dir`` is the folder relative model paths are resolved against; ``imported_from`` is
    ``"mergekit"`` when the file was a mergekit YAML.
    """

    def __init__(self, data: dict | None = None, *, base_dir: str | os.PathLike | None = None,
                 source: str | os.PathLike | None = None, imported_from: str | None = None):
        super().__init__(data or {})
        self.base_dir = Path(base_dir) if base_dir is not None else None
        self.source = str(source) if source is not None else None
        self.imported_from = imported_from
        self.original: Any = None  # the mergekit document(s) it was imported from, as read

    @property
    def family(self) -> str | None:
        from llmcombo.productline import family_of

        return family_of(self)

    def to_yaml(self) -> str:
        return dump_yaml(dict(self))


class _Dumper(yaml.SafeDumper):
    """Readable YAML: block style, but short lists of numbers (gradients, layer ranges) inline."""


def _repr_list(dumper, data):
    flow = len(data) <= 12 and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


def _repr_str(dumper, data):
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(list, _repr_list)
_Dumper.add_representer(str, _repr_str)
_Dumper.add_representer(Configuration, lambda d, data: d.represent_dict(dict(data)))


def dump_yaml(data: Any) -> str:
    return yaml.dump(_plain(data), Dumper=_Dumper, sort_keys=False, allow_unicode=True,
                     default_flow_style=False)


def dump_yaml_documents(docs: list) -> str:
    """Several YAML documents in one text, separated by ``---`` (one document: no separator)."""
    return "---\n".join(dump_yaml(d) for d in docs)


def _plain(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _plain(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [_plain(v) for v in data]
    return data


class Documents(list):
    """A YAML text of several documents (``---`` between them): a mergekit-multimerge file."""


def parse_yaml_text(text: str, where: str = "the configuration") -> Any:
    """The data of a YAML text; several documents (``---``) come back as :class:`Documents`
    (empty documents left out), one as its data, none as None."""
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
        if len(docs) > 1:
            return Documents(docs)
        return docs[0] if docs else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "it is not valid YAML"
        raise UserError(f"{where} is not valid YAML{at}: {problem}.",
                        hint="Check the indentation and the ':' after each key.") from None


def read_yaml_file(path: str | os.PathLike) -> Any:
    p = Path(path)
    if not p.exists():
        raise UserError(f"file not found: {p}", hint="Check the path.")
    if p.is_dir():
        raise UserError(f"{p} is a folder, not a configuration file.")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{p} is not a text file.") from None
    except OSError as exc:
        raise UserError(f"cannot read {p}: {exc.strerror}.") from None
    return parse_yaml_text(text, str(p))


def is_mergekit_document(data: Any) -> str | None:
    """``"merge"`` or ``"moe"`` when ``data`` looks like a mergekit YAML, ``"multimerge"`` for
    several documents that are all merges (mergekit-multimerge), else None."""
    if isinstance(data, Documents):
        kinds = {is_mergekit_document(d) for d in data}
        return "multimerge" if kinds == {"merge"} else None
    if not isinstance(data, dict):
        return None
    if "merge_method" in data:
        return "merge"
    if "experts" in data and "base_model" in data and "moe" not in data:
        return "moe"
    return None


# ---------------------------------------------------------------------------------------------
# presets
# ---------------------------------------------------------------------------------------------


def _preset_dir():
    import importlib.resources

    return importlib.resources.files("llmcombo") / "presets"


def list_presets() -> list[str]:
    return sorted(p.name[:-5] for p in _preset_dir().iterdir() if p.name.endswith(".yaml"))


def load_preset(name: str) -> Configuration:
    names = list_presets()
    if name not in names:
        raise UserError(f"unknown preset {name!r}", hint="Known presets: " + ", ".join(names))
    text = (_preset_dir() / f"{name}.yaml").read_text(encoding="utf-8")
    return Configuration(parse_yaml_text(text, f"preset {name}"))
