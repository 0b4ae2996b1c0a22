"""Maintenance: refresh llmcombo's copy of llama.cpp's GGUF converter from a llama-cpp-python sdist.

llama-cpp-python's wheels do not contain llama.cpp's Python converter; its sdist does
(``vendor/llama.cpp/``). llmcombo ships the few files the converter needs, taken from the sdist of
the version the ``[llama]`` extra pins, so the converter that writes a GGUF and the llama.cpp that
reads it come from the same revision::

    python tools/vendor_llama_convert.py /path/to/llama_cpp_python-0.3.36.tar.gz

writes ``llmcombo/_vendor/llama_convert/`` (atomically: a temporary sibling renamed into place):

    convert_hf_to_gguf.py, conversion/*.py, gguf-py/gguf/**/*.py (+ py.typed), LICENSE, gguf-py/LICENSE

plus ``VERSION.json`` (the llama-cpp-python version, the sdist's sha256 and every file's sha256).
The files are copied unmodified; llama.cpp and gguf-py are MIT-licensed and their licence files
go along. After an upgrade: bump the pin in pyproject.toml and run ``pytest tests/test_gguf.py``.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEST = ROOT / "llmcombo" / "_vendor" / "llama_convert"
REQUIRED = ("convert_hf_to_gguf.py", "conversion/__init__.py", "gguf-py/gguf/__init__.py", "LICENSE",
            "gguf-py/LICENSE")


def wanted(rel: str) -> bool:
    """The converter's files inside ``vendor/llama.cpp/`` of the sdist."""
    if rel in ("convert_hf_to_gguf.py", "LICENSE", "gguf-py/LICENSE"):
        return True
    if rel.startswith("conversion/") and rel.endswith(".py") and rel.count("/") == 1:
        return True
    if rel.startswith("gguf-py/gguf/") and rel.endswith((".py", "py.typed")):
        return "/scripts/" not in rel  # gguf-dump and friends: not needed to convert
    return False


def vendor(sdist: Path, dest: Path = DEST) -> dict:
    m = re.match(r"llama_cpp_python-(\d[\w.]*)\.tar\.gz$", sdist.name)
    if not m:
        raise SystemExit(f"{sdist.name} is not a llama_cpp_python-VERSION.tar.gz sdist")
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    files: dict[str, str] = {}
    with tarfile.open(sdist) as tf:
        for member in tf.getmembers():
            parts = member.name.split("/")
            if len(parts) < 4 or parts[1:3] != ["vendor", "llama.cpp"] or not member.isfile():
                continue
            rel = "/".join(parts[3:])
            if not wanted(rel):
                continue
            data = tf.extractfile(member).read()
            out = tmp / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(data)
            files[rel] = hashlib.sha256(data).hexdigest()
    missing = [f for f in REQUIRED if f not in files]
    if missing:
        shutil.rmtree(tmp, ignore_errors=True)
        raise SystemExit(f"{sdist} lacks {missing}")
    info = {"llama_cpp_python": m.group(1), "source": sdist.name,
            "source_sha256": hashlib.sha256(sdist.read_bytes()).hexdigest(),
            "licenses": {"LICENSE": "MIT, Copyright (c) 2023-2026 The ggml authors (llama.cpp)",
                         "gguf-py/LICENSE": "MIT, Copyright (c) 2023 Georgi Gerganov (gguf-py)"},
            "files": len(files), "bytes": sum((tmp / f).stat().st_size for f in files),
            "sha256": dict(sorted(files.items()))}
    (tmp / "VERSION.json").write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    return info


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    i = vendor(Path(sys.argv[1]))
    print(f"llama-cpp-python {i['llama_cpp_python']}: {i['files']} files, "
          f"{i['bytes'] / 2**20:.2f} MiB -> {DEST.relative_to(ROOT)}")
