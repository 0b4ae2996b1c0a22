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

The card (:func:`build_card`, :func:`public_text`) is built by :mod:`llmcombo.modelcard`; this
module writes it into the folder, checks the folder, the name and the token, and uploads.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

from llmcombo.errors import OfflineError, UserError
from llmcombo.fsutil import atomic_write
from llmcombo.modelcard import (CARD_TEMPLATE, EVAL_FILES, LINEAGE_FILE, YAML_FILES, build_card,
                                public_files, public_text)

CARD_FILE = "README.md"
IGNORE_PATTERNS = [".*", "**/.*", "__pycache__/*", "**/__pycache__/*", "*.pyc", "*.lock",
                   "*.llmcombo-partial-*", "*.llmcombo-old-*"]


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
# upload
# ---------------------------------------------------------------------------------------------


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

    from huggingface_hub import CommitOperationAdd

    api = HfApi(token=tok)
    # one commit of the listed files; the lineage and the mergekit YAML without local paths
    public = public_files(folder)
    operations = [CommitOperationAdd(path_in_repo=rel,
                                     path_or_fileobj=public.get(rel) or str(folder / rel))
                  for rel in files]
    failure: UserError | None = None
    try:
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        info = api.create_commit(repo_id=repo_id, operations=operations, repo_type="model",
                                 commit_message=commit_message or "Upload model made with llmcombo")
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


__all__ = ["CARD_FILE", "CARD_TEMPLATE", "EVAL_FILES", "IGNORE_PATTERNS", "LINEAGE_FILE", "PublishResult",
           "YAML_FILES", "build_card", "export_gguf_files", "public_files", "public_text", "publish"]
