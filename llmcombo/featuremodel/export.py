"""Feature model exports: UVL (the SPL community's exchange format), JSON (for tools and widgets)
and a readable tree."""

from __future__ import annotations

import re
from typing import Any

from llmcombo.featuremodel.elements import Attribute
from llmcombo.featuremodel.model import Feature, FeatureModel
from llmcombo.featuremodel.types import NumberType


def uvl_name(path: str) -> str:
    """UVL identifiers cannot hold dots; a feature's UVL name is its path joined with '_'."""
    return _plain_uvl_name(path)


def _plain_uvl_name(path: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", path) or "root"


def _uvl_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    text = str(v).replace("'", "").replace("\n", " ")
    return f"'{text}'"


def _uvl_attrs(items: dict) -> str:
    parts = []
    for k, v in items.items():
        if v is None:
            continue
        if k == "abstract":
            if v:
                parts.append("abstract")
            continue
        parts.append(f"{k} {_uvl_value(v)}")
    return " {" + ", ".join(parts) + "}" if parts else ""


def _card(card) -> str:
    lo, hi = card
    return f" cardinality [{lo}..{'*' if hi is None else hi}]"


def _uvl_names(model: FeatureModel) -> dict[str, str]:
    """A unique UVL identifier for every feature and attribute path (collisions get a suffix)."""
    names: dict[str, str] = {}
    used: set[str] = set()
    paths = []
    for f in model.features():
        if f.path:
            paths.append(f.path)
        paths += [a.path for a in f.attributes]
    for p in paths:
        base = uvl_name(p)
        name, k = base, 2
        while name in used:
            name, k = f"{base}_{k}", k + 1
        used.add(name)
        names[p] = name
    return names


def to_uvl(model: FeatureModel) -> str:
    names = _uvl_names(model)

    def uvl_name(path: str) -> str:  # noqa: F811 - the model's own unique names
        return names.get(path) or _plain_uvl_name(path)

    lines = [f"namespace {uvl_name(model.name)}", "", "features"]

    def attr_line(a: Attribute, indent: int) -> str:  # noqa: E306
        extra: dict[str, Any] = {}
        if isinstance(a.type, NumberType):
            extra["min"] = a.type.minimum
            extra["max"] = a.type.maximum
        if a.default is not None and not isinstance(a.default, (list, dict)):
            extra["default"] = a.default
        extra["kind"] = a.type.kind
        return " " * indent + f"{a.type.uvl_type} {uvl_name(a.path)}" + _uvl_attrs(extra)

    def emit(f: Feature, indent: int) -> None:
        name = uvl_name(f.path) if f.path else uvl_name(model.name)
        meta = {"abstract": f.abstract}
        for k in ("pretty_name", "reference_url"):
            if f.meta.get(k):
                meta[k] = f.meta[k]
        card = _card(f.card) if f.cloneable else ""
        lines.append(" " * indent + name + card + _uvl_attrs(meta))
        mandatory = [a for a in f.attributes if a.required] + [c for c in f.children if not c.optional]
        optional = [a for a in f.attributes if not a.required] + [c for c in f.children if c.optional]
        for kind, items in (("mandatory", mandatory), ("optional", optional)):
            if not items:
                continue
            lines.append(" " * (indent + 4) + kind)
            for it in items:
                if isinstance(it, Attribute):
                    lines.append(attr_line(it, indent + 8))
                else:
                    emit(it, indent + 8)
        for g in f.groups:
            if g.min == 1 and g.max == 1:
                head = "alternative"
            elif g.min == 1 and g.max is None:
                head = "or"
            else:
                head = f"[{g.min}..{'*' if g.max is None else g.max}]"
            lines.append(" " * (indent + 4) + head)
            for c in g.children:
                emit(c, indent + 8)

    emit(model.root, 4)
    cons = []
    skipped = []
    for c in model.constraints:
        text = c.expr.to_uvl(uvl_name)
        if text:
            cons.append(text)
        else:
            skipped.append(c.message)
    if cons:
        lines += ["", "constraints"]
        lines += ["    " + t for t in cons]
    notes = skipped + [chk.description for chk in model.checks]
    if notes:
        lines += ["", "// Constraints checked by llmcombo that UVL cannot express:"]
        lines += ["// - " + n.replace("\n", " ") for n in notes]
    return "\n".join(lines) + "\n"


def attribute_json(a: Attribute) -> dict:
    return {
        "name": a.name, "path": a.path, "label": a.title, "description": a.description,
        "type": a.type.to_json(), "default": a.default, "required": a.required,
        "required_when": a.required_when.to_json() if a.required_when else None,
        "when": a.when.to_json() if a.when else None,
        "defaults": [{"when": c.to_json(), "value": v} for c, v in a.defaults],
        "advanced": a.advanced,
    }


def feature_json(f: Feature) -> dict:
    return {
        "name": f.name, "path": f.path, "label": f.title, "description": f.description,
        "optional": f.optional, "abstract": f.abstract,
        "cardinality": list(f.card) if f.card else None,
        "attributes": [attribute_json(a) for a in f.attributes],
        "children": [feature_json(c) for c in f.children],
        "groups": [{"min": g.min, "max": g.max, "kind": g.kind,
                    "children": [feature_json(c) for c in g.children]} for g in f.groups],
        "meta": {k: v for k, v in f.meta.items() if isinstance(v, (str, int, float, bool, list))},
    }


def to_json(model: FeatureModel) -> dict:
    return {
        "name": model.name,
        "root": feature_json(model.root),
        "constraints": [{"expr": c.expr.to_json(), "message": c.message, "path": c.path,
                         "severity": c.severity} for c in model.constraints],
        "checks": [chk.description for chk in model.checks],
    }


def to_tree(model: FeatureModel) -> str:
    out: list[str] = []

    def emit(f: Feature, prefix: str, tag: str) -> None:
        card = ""
        if f.card is not None:
            lo, hi = f.card
            card = f" [{lo}..{'*' if hi is None else hi}]"
        name = f.name if f.path else model.name
        out.append(f"{prefix}{name}{card}{tag}")
        for a in f.attributes:
            req = " (required)" if a.required else ""
            default = f" = {a.default!r}" if a.default is not None else ""
            out.append(f"{prefix}    .{a.name}: {a.type.describe()}{default}{req}")
        for c in f.children:
            emit(c, prefix + "    ", "  (optional)" if c.optional else "")
        for g in f.groups:
            out.append(f"{prefix}    <{g.kind}>")
            for c in g.children:
                emit(c, prefix + "        ", "")

    emit(model.root, "", "")
    return "\n".join(out)
