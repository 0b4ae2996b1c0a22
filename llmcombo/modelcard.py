"""The model card of a published model folder, built with huggingface_hub's ``ModelCard`` /
``ModelCardData``: base models (the Hub ids among the inputs), the method, the mergekit YAML, the
lineage written by :mod:`llmcombo.run`, an evaluation table when the folder holds
``evaluation.csv`` (or ``eval_results.csv`` / ``results.csv``), the GGUF files beside the
safetensors, tags ``merge``, ``mergekit`` (``moe``, ``gguf``), and the licence.

The card is public: :func:`public_text` replaces every local folder of this machine by what the
configuration said (``zoo:domotica``) or ``local:NAME``. :mod:`llmcombo.hub` writes the card and
uploads the folder; it re-exports :func:`build_card` and :func:`public_text`.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from pathlib import Path
from typing import TypeGuard

from llmcombo.outputs import LINEAGE_FILE

EVAL_FILES = ("evaluation.csv", "eval_results.csv", "results.csv")
YAML_FILES = ("mergekit_config.yml", "mergekit_moe_config.yml")
_MAX_EVAL_ROWS = 50

CARD_TEMPLATE = """---
{{ card_data }}
---

# {{ model_name }}

{{ summary }}

## Method

{{ method_text }}

## Models combined

{% for row in inputs -%}
* {{ row }}
{% endfor %}
{% if gguf_rows %}
## GGUF

For llama.cpp and the tools built on it, written by llama.cpp's own converter{{ gguf_tool }}:

| file | type | size |
|---|---|---|
{% for name, kind, size in gguf_rows -%}
| `{{ name }}` | {{ kind }} | {{ size }} |
{% endfor %}
```bash
llama-cli -m {{ gguf_rows[0][0] }} -p "..."
```
{% endif %}
{% if eval_table %}
## Evaluation

{{ eval_table }}
{% endif %}
## Configuration

The {{ tool }} configuration that produced this model:

```yaml
{{ yaml }}
```
{% if lineage %}
## Lineage

| | |
|---|---|
{% for k, v in lineage_rows -%}
| {{ k }} | {{ v }} |
{% endfor %}
<details><summary>llmcombo_lineage.json</summary>

```json
{{ lineage }}
```

</details>
{% endif %}
"""


# ---------------------------------------------------------------------------------------------
# the model card
# ---------------------------------------------------------------------------------------------


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _is_hub_id(ref) -> bool:
    from llmcombo import modelref

    if not isinstance(ref, str) or modelref.is_zoo(ref):
        return False
    return modelref.is_hub_id(ref.split("@")[0].split("+")[0])


def _method_text(kind: str, method: str, mk: dict) -> tuple[str, str]:
    """(short name, a sentence about the method)."""
    if kind == "moe":
        gate = mk.get("gate_mode", "hidden")
        n = len(mk.get("experts") or [])
        return ("mixture of experts",
                f"A mixture of experts built from {n} dense model(s) with mergekit's MoE builder "
                f"(gate mode `{gate}`, {mk.get('experts_per_token', 2)} expert(s) per token).")
    from llmcombo.productline import merge_methods

    info = merge_methods().get(method)
    pretty, url = (info.pretty_name, info.reference_url) if info else (method, None)
    text = f"Merged with the **{pretty}** method (`{method}`) of mergekit"
    text += f" ([reference]({url}))." if url else "."
    if mk.get("base_model"):
        text += f" Base model: `{mk['base_model']}`."
    return pretty, text


def _eval_table(folder: Path) -> str | None:
    for name in EVAL_FILES:
        path = folder / name
        if not path.is_file():
            continue
        try:
            rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))
        except (OSError, UnicodeDecodeError, csv.Error):
            continue
        rows = [r for r in rows if r]
        if len(rows) < 2:
            continue
        width = len(rows[0])

        def cell(v: str) -> str:
            v = v.strip().replace("|", "\\|").replace("\n", " ")
            try:
                f = float(v)
                return f"{f:.4g}" if not v.isdigit() else v
            except ValueError:
                return v

        lines = ["| " + " | ".join(cell(c) for c in rows[0]) + " |",
                 "|" + "---|" * width]
        for r in rows[1:_MAX_EVAL_ROWS + 1]:
            r = (r + [""] * width)[:width]
            lines.append("| " + " | ".join(cell(c) for c in r) + " |")
        if len(rows) - 1 > _MAX_EVAL_ROWS:
            lines.append(f"\n({len(rows) - 1 - _MAX_EVAL_ROWS} more rows in `{name}`.)")
        return f"From `{name}`:\n\n" + "\n".join(lines)
    return None


# an absolute local path (POSIX, ~/..., or C:\\...) standing on its own: not the path part of a URL
# ("https://host/x": the slash follows ':' or '/'), not "0.5/0.5" or "and/or"
_LOCAL_PATH = re.compile(r"(?<![\w:/.~-])(?:~|[A-Za-z]:\\|/)(?:[^\s`'\"|()\[\]{}<>,;*]*)")


def _is_local_path(ref: object) -> TypeGuard[str]:
    return isinstance(ref, str) and bool(ref) and (
        os.path.isabs(os.path.expanduser(ref)) or ref.startswith("~"))


def _shown_name(path: str) -> str:
    """What the card shows for a local folder: its name only."""
    name = Path(path.rstrip("/\\")).name or "model"
    return f"local:{name}"


def public_text(text: str, inputs: list[dict] | None = None) -> str:
    """``text`` without local absolute paths: an input's resolved folder becomes what was written
    in the configuration (``zoo:domotica``), any other local path (a folder given as an absolute
    path, a cache folder in the options) becomes ``local:NAME``. Hub ids and URLs are kept."""
    swaps: dict[str, str] = {}
    for row in inputs or []:
        given, resolved = row.get("given"), row.get("resolved")
        for ref in (resolved, given):
            if not _is_local_path(ref):
                continue
            shown = given if isinstance(given, str) and given and not _is_local_path(given) \
                else _shown_name(ref)
            for variant in {ref, ref.rstrip("/"), str(Path(os.path.expanduser(ref)))}:
                swaps.setdefault(variant, shown)
    for old in sorted(swaps, key=len, reverse=True):  # the longest first: nested folders
        text = text.replace(old, swaps[old])

    def hide(m: re.Match) -> str:
        path = m.group(0)
        if len(path) < 2 or path in ("~", "~/"):
            return path
        return _shown_name(path)

    return _LOCAL_PATH.sub(hide, text)


def _inputs_from(lineage: dict | None, kind: str, mk: dict) -> list[dict]:
    if lineage and lineage.get("inputs"):
        return list(lineage["inputs"])
    from llmcombo.productline import model_slots

    return [{"field": s.path, "role": s.role, "given": s.ref, "resolved": s.ref}
            for s in model_slots({kind: mk})]


_GGUF_TYPE = re.compile(r"[-_.]((?:i?q\d\w*)|f16|f32|bf16)\.gguf$", re.IGNORECASE)


def _gguf_rows(folder: Path) -> list[tuple[str, str, str]]:
    """``(file, type, size)`` of the GGUF files in ``folder`` (the type read from the name)."""
    rows = []
    for f in sorted(folder.glob("*.gguf")):
        m = _GGUF_TYPE.search(f.name)
        rows.append((f.name, m.group(1).upper() if m else "-", f"{f.stat().st_size / 1e6:.1f} MB"))
    return rows


def _gguf_tool() -> str:
    try:
        from llmcombo.gguf.export import converter_version

        return converter_version()
    except Exception:
        return "?"


def public_files(folder) -> dict[str, bytes]:
    """What the Hub gets instead of the folder's lineage and mergekit YAML: the same files with
    local paths replaced as on the card (:func:`public_text`), so that an upload does not show
    where the inputs were on the user's machine. Files without a local path are left out."""
    folder = Path(folder)
    lineage = _read_json(folder / LINEAGE_FILE)
    inputs = list((lineage or {}).get("inputs") or [])
    out = {}
    for name in (LINEAGE_FILE, *YAML_FILES):
        try:
            text = (folder / name).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        public = public_text(text, inputs)
        if public != text:
            out[name] = public.encode("utf-8")
    return out


def build_card(folder, *, repo_id: str | None = None, license: str | None = None):
    """The :class:`huggingface_hub.ModelCard` of a model folder written by ``llmcombo merge``
    (a plain mergekit output folder works too)."""
    import yaml
    from huggingface_hub import ModelCard, ModelCardData

    folder = Path(folder)
    lineage = _read_json(folder / LINEAGE_FILE)
    yaml_name = next((n for n in YAML_FILES if (folder / n).is_file()), None)
    yaml_text = (folder / yaml_name).read_text(encoding="utf-8").strip() if yaml_name else ""
    if lineage and lineage.get("mergekit_config"):
        mk = lineage["mergekit_config"]
        kind = lineage.get("kind", "merge")
    else:
        mk = yaml.safe_load(yaml_text) if yaml_text else {}
        mk = mk if isinstance(mk, dict) else {}
        kind = "moe" if yaml_name == "mergekit_moe_config.yml" or "experts" in mk else "merge"
    if not yaml_text and mk:
        yaml_text = yaml.safe_dump(mk, sort_keys=False).strip()
    method = str(mk.get("merge_method") or (lineage or {}).get("method") or kind)
    pretty, method_text = _method_text(kind, method, mk)

    inputs = _inputs_from(lineage, kind, mk)
    base_models: list[str] = []
    listed: list[str] = []
    for row in inputs:
        given, resolved = row.get("given"), row.get("resolved")
        hub = given if _is_hub_id(given) else resolved if _is_hub_id(resolved) else None
        if hub and hub.split("+")[0] not in base_models:
            base_models.append(hub.split("+")[0])
        name = given if given == resolved or not resolved or _is_local_path(resolved) \
            else f"{given} ({resolved})"
        entry = f"[{hub}](https://huggingface.co/{hub.split('@')[0]})" if hub else f"`{name}`"
        text = f"{entry} -- {row.get('role', 'model')}"
        if text not in listed:
            listed.append(text)

    gguf_rows = _gguf_rows(folder)
    tags = ["merge", "mergekit", "llmcombo"] + (["moe"] if kind == "moe" else []) + \
        (["gguf"] if gguf_rows else [])
    model_name = repo_id.split("/")[-1] if repo_id else folder.name
    card_data = ModelCardData(base_model=base_models or None, tags=tags, license=license,
                              library_name="transformers", model_name=model_name,
                              pipeline_tag="text-generation")
    lineage_rows = []
    if lineage:
        versions = lineage.get("versions") or {}
        lineage_rows = [("made with", f"llmcombo {versions.get('llmcombo')}, mergekit "
                                      f"{versions.get('mergekit')}"),
                        ("libraries", f"torch {versions.get('torch')}, transformers "
                                      f"{versions.get('transformers')}"),
                        ("device", lineage.get("device")),
                        ("finished", lineage.get("finished_at")),
                        ("seconds", lineage.get("seconds")),
                        ("method", lineage.get("method"))]
    summary = (f"This model is a {'mixture of experts' if kind == 'moe' else 'merge'} of "
               f"{len(listed)} model(s), made with [mergekit](https://github.com/arcee-ai/mergekit)"
               + (" through llmcombo." if lineage else "."))
    card = ModelCard.from_template(
        card_data, template_str=CARD_TEMPLATE, model_name=model_name, summary=summary,
        method_text=method_text, inputs=listed, yaml=yaml_text,
        tool="mergekit" + (" MoE" if kind == "moe" else ""),
        eval_table=_eval_table(folder), gguf_rows=gguf_rows,
        gguf_tool=f" (llama-cpp-python {_gguf_tool()})" if gguf_rows else "",
        lineage=json.dumps(lineage, indent=2) if lineage else None, lineage_rows=lineage_rows)
    # the card is public: no local folder of this machine (the zoo in the home cache, the
    # output folder, a model given by its absolute path) is written into it
    return ModelCard(public_text(card.content, inputs))


__all__ = ["CARD_TEMPLATE", "EVAL_FILES", "LINEAGE_FILE", "YAML_FILES", "build_card", "public_text"]
