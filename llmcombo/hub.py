"""Publish a model folder to the Hugging Face Hub: a model card, then one upload.

::

    from llmcombo.hub import publish, build_card
    publish("out/my-merge", "me/my-merge", license="apache-2.0", dry_run=True)  # no network
    publish("out/my-merge", "me/my-merge", private=True)

The card is built with huggingface_hub's ``ModelCard`` / ``ModelCardData``: base models (the Hub ids
among the inputs), the method, the mergekit YAML, the lineage written by :mod:`llmcombo.run`, an
evaluation table when the folder holds ``evaluation.csv`` (or ``eval_results.csv`` /
``results.csv``), the GGUF files beside the safetensors (``gguf=["q8_0"]`` exports them first with
:func:`llmcombo.gguf.export_gguf`), tags ``merge``, ``mergekit`` (``moe``, ``gguf``), and the
licence.

The token comes from ``token=``, ``HF_TOKEN`` or the saved login (``huggingface_hub.get_token``).
It is never printed, logged or written: error messages from the Hub are scrubbed, and a folder
with a file that contains the token is refused.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence, TypeGuard

from llmcombo.errors import OfflineError, UserError
from llmcombo.fsutil import atomic_write

LINEAGE_FILE = "llmcombo_lineage.json"
CARD_FILE = "README.md"
EVAL_FILES = ("evaluation.csv", "eval_results.csv", "results.csv")
YAML_FILES = ("mergekit_config.yml", "mergekit_moe_config.yml")
IGNORE_PATTERNS = [".*", "**/.*", "__pycache__/*", "**/__pycache__/*", "*.pyc", "*.lock",
                   "*.llmcombo-partial-*", "*.llmcombo-old-*"]
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


@dataclass
class PublishResult:
    repo_id: str
    url: str
    card_path: Path
    files: list[str] = field(default_factory=list)  # paths relative to the folder
    total_bytes: int = 0
    dry_run: bool = False
    private: bool = False
    commit_url: str | None = None

    def summary(self) -> str:
        size = f"{self.total_bytes / 1e6:.1f} MB"
        if self.dry_run:
            head = (f"dry run: would upload {len(self.files)} file(s), {size}, to {self.url}"
                    f"{' (private)' if self.private else ''}; model card written to "
                    f"{self.card_path}")
        else:
            head = f"uploaded {len(self.files)} file(s), {size}, to {self.url}"
        return "\n".join([head] + [f"  {f}" for f in self.files])


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


# ---------------------------------------------------------------------------------------------
# upload
# ---------------------------------------------------------------------------------------------


def _gguf_tool() -> str:
    try:
        from llmcombo.gguf.export import converter_version

        return converter_version()
    except Exception:
        return "?"


def export_gguf_files(folder: Path, types: list[str], progress=None) -> list[Path]:
    """``NAME-TYPE.gguf`` in ``folder`` for each type: exported now, unless a file of that name
    is already there and newer than the weights."""
    from llmcombo.gguf.export import export_gguf, normalize_quant

    quants = [normalize_quant(t) for t in types]  # every name checked before any work
    weights = [f.stat().st_mtime for f in folder.iterdir() if f.suffix in (".safetensors", ".bin")]
    out = []
    for q in dict.fromkeys(quants):
        path = folder / f"{folder.name}-{q}.gguf"
        if not (path.is_file() and path.stat().st_mtime >= max(weights, default=0)):
            export_gguf(folder, path, q, overwrite=True, progress=progress)
        out.append(path)
    return out


def _scrub(text: str, token: str | None) -> str:
    if token and text:
        text = text.replace(token, "hf_***")
    return text


def _files_to_upload(folder: Path) -> list[str]:
    from huggingface_hub.utils import filter_repo_objects

    rel = sorted(str(p.relative_to(folder)).replace(os.sep, "/")
                 for p in folder.rglob("*") if p.is_file())
    return list(filter_repo_objects(rel, ignore_patterns=IGNORE_PATTERNS))


def _check_folder(folder: Path) -> None:
    if not folder.is_dir():
        raise UserError(f"model folder not found: {folder}",
                        hint="Give the folder written by `llmcombo merge`.")
    if not (folder / "config.json").is_file():
        raise UserError(f"{folder} has no config.json, so it is not a model folder.",
                        hint="Give the folder written by `llmcombo merge`.")
    if not any(folder.glob("*.safetensors")) and not any(folder.glob("*.bin")):
        raise UserError(f"{folder} has no weight files (*.safetensors).",
                        hint="Run the merge again; only complete model folders can be published.")


def _check_repo_id(repo_id: str) -> None:
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as exc:
        raise UserError(f"{repo_id!r} is not a valid Hub repository name: {exc}",
                        field="repo_id", hint="Write it as user/name, e.g. me/my-merge.") from None


def _refuse_files_with_token(folder: Path, files: list[str], token: str) -> None:
    needle = token.encode()
    for rel in files:
        path = folder / rel
        try:
            if path.stat().st_size > 50 * 2**20 or path.suffix in (".safetensors", ".bin"):
                continue
            if needle in path.read_bytes():
                raise UserError(f"{rel} contains your Hugging Face token; it was not uploaded.",
                                hint="Remove the token from that file (or the file from the "
                                "folder) and publish again.")
        except OSError:
            continue


def _token(token: str | None) -> str:
    from huggingface_hub import get_token

    tok = token or os.environ.get("HF_TOKEN") or get_token()
    if not tok:
        raise UserError("you are not logged in to the Hugging Face Hub.",
                        hint="Run `hf auth login`, or set the HF_TOKEN environment variable.")
    return tok


def _network_error(exc: BaseException) -> bool:
    import socket

    names = {type(e).__name__ for e in _chain(exc)}
    return any(isinstance(e, (ConnectionError, TimeoutError, socket.gaierror, socket.timeout))
               for e in _chain(exc)) or bool(names & {"ConnectError", "ConnectTimeout",
                                                       "ReadTimeout", "NetworkError",
                                                       "OfflineModeIsEnabled"})


def _chain(exc: BaseException | None) -> Iterator[BaseException]:
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def publish(folder, repo_id: str, *, private: bool = False, license: str | None = None,
            dry_run: bool = False, token: str | None = None,
            commit_message: str | None = None, gguf: Sequence[str] = (),
            progress=None) -> PublishResult:
    """Write the model card into ``folder`` (``README.md``) and upload the folder to ``repo_id``.

    ``gguf``: GGUF types (``["q8_0", "q4_k_m"]``) exported into the folder first
    (``NAME-TYPE.gguf``, :func:`export_gguf_files`) and uploaded beside the safetensors; GGUF
    files already in the folder are uploaded and listed on the card anyway.
    ``dry_run=True`` writes the card (and the GGUF files) and lists the files that would be
    uploaded without any network access. Raises :class:`UserError` (not logged in, bad folder or
    name) and :class:`OfflineError` (the Hub cannot be reached).
    """
    folder = Path(folder).expanduser().absolute()
    _check_folder(folder)
    _check_repo_id(repo_id)
    tok = None if dry_run else _token(token)
    if gguf:
        export_gguf_files(folder, list(gguf), progress)
    card = build_card(folder, repo_id=repo_id, license=license)
    text = _scrub(str(card), tok)
    card_path = folder / CARD_FILE
    atomic_write(card_path, text)
    files = _files_to_upload(folder)
    result = PublishResult(repo_id=repo_id, url=f"https://huggingface.co/{repo_id}",
                           card_path=card_path, files=files,
                           total_bytes=sum((folder / f).stat().st_size for f in files),
                           dry_run=dry_run, private=private)
    if dry_run:
        return result
    assert tok is not None  # not a dry run: _token gave one or raised
    _refuse_files_with_token(folder, files, tok)
    from llmcombo.preflight import models as pm

    offline = OfflineError("publishing needs the Hugging Face Hub, which is not reachable "
                           "(offline?).",
                           hint="Connect to the internet and try again; --dry-run writes the "
                           "card and lists the files without the network.")
    if not pm.hub_reachable():
        raise offline
    from huggingface_hub import HfApi

    api = HfApi(token=tok)
    failure: UserError | None = None
    try:
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        info = api.upload_folder(repo_id=repo_id, folder_path=str(folder),
                                 commit_message=commit_message or "Upload model made with llmcombo",
                                 ignore_patterns=IGNORE_PATTERNS)
    except Exception as exc:  # never let the original (which may carry headers) escape
        if _network_error(exc):
            failure = offline
        else:
            status = getattr(getattr(exc, "response", None), "status_code", None)
            reason = _scrub(str(exc).strip().splitlines()[0] if str(exc).strip() else
                            type(exc).__name__, tok)
            hint = ("Check that your token can write to this namespace (a write token)."
                    if status in (401, 403) else None)
            failure = UserError(f"the Hub refused the upload: {reason}", hint=hint)
    if failure is not None:
        raise failure
    result.commit_url = getattr(info, "commit_url", None)
    return result


__all__ = ["PublishResult", "build_card", "export_gguf_files", "public_text", "publish"]
