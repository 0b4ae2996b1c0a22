"""Files a person can take away: download links and "save to a folder" (plain Python, no widgets).

A download is an ``<a download>`` link whose ``href`` is the file itself (a ``data:`` URL), so it
works in Voila without a file server and without the network. Files larger than
:data:`MAX_DOWNLOAD_BYTES` are not offered that way (the browser would hold them in memory twice):
the panel says where they are and offers "Save to folder" instead.
"""

from __future__ import annotations

import base64
import html
import io
import os
import re
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

MAX_DOWNLOAD_BYTES = 200 * 2**20
MIME = {".yaml": "application/x-yaml", ".yml": "application/x-yaml", ".csv": "text/csv",
        ".png": "image/png", ".md": "text/markdown", ".zip": "application/zip",
        ".json": "application/json", ".txt": "text/plain"}


def file_stem(name: str, default: str = "file") -> str:
    """A file or folder name made of ``name`` (runs of other characters than ASCII letters, digits,
    ``_ . -`` become one ``-``); ``default`` when nothing is left."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.") or default


@dataclass(frozen=True)
class Download:
    """A file offered for download: its name, its bytes and what the link says."""

    filename: str
    data: bytes
    label: str

    @property
    def mime(self) -> str:
        return MIME.get(Path(self.filename).suffix.lower(), "application/octet-stream")

    def link(self, cls: str = "") -> str:
        href = f"data:{self.mime};base64,{base64.b64encode(self.data).decode('ascii')}"
        return (f"<a class='llmcombo-download {cls}' download='{html.escape(self.filename)}' "
                f"href='{href}' title='{html.escape(self.filename)}'>{html.escape(self.label)}</a>")


def text_download(filename: str, text: str, label: str) -> Download:
    return Download(filename, text.encode("utf-8"), label)


def links(downloads: list[Download]) -> str:
    """The links in one wrapping row (empty when there is nothing to download)."""
    if not downloads:
        return ""
    return "<div class='llmcombo-downloads'>" + "".join(
        d.link(f"llmcombo-download-{Path(d.filename).suffix.lstrip('.') or 'file'}")
        for d in downloads) + "</div>"


def folder_bytes(folder: str | os.PathLike) -> int:
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())


def zip_folder(folder: str | os.PathLike, *, max_bytes: int = MAX_DOWNLOAD_BYTES) -> bytes:
    """The model folder as a zip archive in memory (files under a top folder named like it).
    Raises ValueError when the folder holds more than ``max_bytes``."""
    folder = Path(folder)
    size = folder_bytes(folder)
    if size > max_bytes:
        raise ValueError(f"{folder.name} holds {size / 2**20:.0f} MiB, more than a browser "
                         f"download takes here ({max_bytes / 2**20:.0f} MiB)")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        for p in sorted(folder.rglob("*")):
            if p.is_file() and not p.name.startswith("."):
                z.write(p, f"{folder.name}/{p.relative_to(folder).as_posix()}")
    return buf.getvalue()


def resolve_folder(text: str, default: str | os.PathLike) -> Path:
    """The folder a person typed (``~`` expanded, relative to ``default``'s parent when relative),
    as an absolute path."""
    text = (text or "").strip()
    if not text:
        return Path(default).expanduser().absolute()
    p = Path(os.path.expanduser(text))
    return p if p.is_absolute() else (Path.cwd() / p).absolute()


def save_files(folder: str | os.PathLike, files: list[Download]) -> list[Path]:
    """Write ``files`` into ``folder`` (created when missing), each atomically; returns the full
    paths written."""
    from llmcombo.fsutil import atomic_write

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return [Path(atomic_write(folder / f.filename, f.data)) for f in files]


def copy_folder(src: str | os.PathLike, dest_parent: str | os.PathLike) -> Path:
    """Copy a model folder into ``dest_parent`` (as ``dest_parent/NAME``); an existing copy is
    replaced only once the new one is complete."""
    from llmcombo.fsutil import staged_dir

    src = Path(src)
    dest = Path(dest_parent).expanduser().absolute() / src.name
    if dest.resolve() == src.resolve():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with staged_dir(dest, tag="copy") as tmp:
        shutil.copytree(src, tmp, dirs_exist_ok=True)
    return dest


__all__ = ["Download", "MAX_DOWNLOAD_BYTES", "copy_folder", "folder_bytes", "links",
           "resolve_folder", "save_files", "text_download", "zip_folder"]
