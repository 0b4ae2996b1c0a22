"""Output folders of runs: placed atomically, checked before they are kept, and cleaned up after a
killed run.

A run writes into a hidden sibling ``.NAME.llmcombo-partial-PID-XXXX``, which is renamed to the
output only once it is complete and checked (:func:`verify_model_folder`: no NaN/inf in the saved
tensors, ``config.json`` loads with transformers, a tokenizer is there). An existing output is
replaced only after success (its previous content waits in ``.NAME.llmcombo-old-...`` for the one
rename). :func:`cleanup_stale` removes what killed runs left behind.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
from pathlib import Path

from llmcombo.errors import UserError
from llmcombo.fsutil import pid_alive, replace_dir
from llmcombo.progress import CancelToken

LINEAGE_FILE = "llmcombo_lineage.json"
MERGE_YAML = "mergekit_config.yml"
MOE_YAML = "mergekit_moe_config.yml"
PARTIAL_TAG = "llmcombo-partial"
OLD_TAG = "llmcombo-old"

_SIBLING = re.compile(r"^\.(?P<name>.+)\.(?P<tag>" + PARTIAL_TAG + "|" + OLD_TAG
                      + r")-(?P<pid>\d+)-[^/]*$")

def cleanup_stale(out) -> list[Path]:
    """Remove what killed runs for ``out`` left behind (partial folders of dead processes).

    A left-over *previous* result (``.NAME.llmcombo-old-*``, the crash fell between the two renames
    of an overwrite) is put back in place when ``out`` is missing. Returns the paths removed.
    """
    out = Path(out)
    removed: list[Path] = []
    if not out.parent.is_dir():
        return removed
    for p in out.parent.iterdir():
        mt = _SIBLING.match(p.name)
        if not mt or mt.group("name") != out.name or pid_alive(int(mt.group("pid"))):
            continue
        if mt.group("tag") == OLD_TAG and not out.exists():
            try:
                os.rename(p, out)
                continue
            except OSError:
                pass
        shutil.rmtree(p, ignore_errors=True)
        removed.append(p)
    return removed


def _looks_replaceable(folder: Path) -> bool:
    if not any(folder.iterdir()):
        return True
    return any((folder / f).exists() for f in ("config.json", LINEAGE_FILE, MERGE_YAML, MOE_YAML))


def check_out(out: Path, overwrite: bool, input_dirs: list[Path]) -> None:
    if out.exists() and not out.is_dir():
        raise UserError(f"the output {out} is a file, not a folder.",
                        hint="Choose a folder name for the result.")
    if out.exists() and not overwrite:
        raise UserError(f"the output folder already exists: {out}",
                        hint="Choose another folder, or allow replacing it (overwrite=True, "
                        "--overwrite).")
    if out.exists() and not _looks_replaceable(out):
        raise UserError(f"refusing to replace {out}: it is not empty and does not look like a "
                        "model folder.", hint="Choose a new folder for the result.")
    for d in input_dirs:
        if d == out or out in d.parents:
            raise UserError(f"the output {out} would replace one of the input models ({d}).",
                            hint="Write the result to a new folder.")


def place(tmp: Path, out: Path, overwrite: bool) -> None:
    """Rename the finished folder into place; an old output is replaced only now."""
    if out.exists() and not overwrite:
        raise UserError(f"the output folder {out} appeared while the run was working; the "
                        "result was not written.", hint="Run again with another folder.")
    replace_dir(tmp, out, old_tag=OLD_TAG)


# ---------------------------------------------------------------------------------------------
# checking the written model
# ---------------------------------------------------------------------------------------------


_FLOAT_DTYPES = {"F32": "float32", "F16": "float16", "BF16": "bfloat16", "F64": "float64"}


def _chunk_finite(values) -> bool:
    """True when every element is finite: a cheap sum first (finite sum => all finite, as an
    inf or NaN always propagates), then the exact element-wise test only if the sum is not."""
    import torch

    if math.isfinite(values.sum(dtype=torch.float32 if values.element_size() < 8
                                else torch.float64).item()):
        return True
    return bool(torch.isfinite(values).all())


def nonfinite_tensors(path, *, chunk_bytes: int = 64 * 2**20,
                      cancel: CancelToken | None = None) -> list[str]:
    """Names of the tensors of a safetensors file that hold NaN or inf.

    The file is read with plain ``read`` calls into one reusable buffer rather than memory-mapped:
    mapping it would add the whole file to the process's resident memory (RSS), reading keeps the
    extra memory at ``chunk_bytes``.
    """
    import struct

    import torch

    bad: list[str] = []
    with open(path, "rb", buffering=0) as fh:
        (n,) = struct.unpack("<Q", fh.read(8))
        header = json.loads(fh.read(n))
        base = 8 + n
        entries = sorted(((meta["data_offsets"][0], meta["data_offsets"][1], name,
                           meta["dtype"]) for name, meta in header.items()
                          if name != "__metadata__"), key=lambda e: e[0])
        buf = bytearray(chunk_bytes)
        view = memoryview(buf)
        for start, end, name, dtype in entries:
            if dtype not in _FLOAT_DTYPES or end <= start:
                continue
            tdtype = getattr(torch, _FLOAT_DTYPES[dtype])
            item = torch.empty((), dtype=tdtype).element_size()
            step = (chunk_bytes // item) * item
            fh.seek(base + start)
            pos = start
            while pos < end:
                if cancel is not None:
                    cancel.raise_if_cancelled()
                want = min(step, end - pos)
                got = fh.readinto(view[:want])
                if not got:
                    raise OSError(f"{path} is truncated")
                got -= got % item
                if not _chunk_finite(torch.frombuffer(buf, dtype=tdtype, count=got // item)):
                    bad.append(name)
                    break
                pos += got
                fh.seek(base + pos)
    return bad


def verify_model_folder(folder, *, trust_remote_code: bool = False, require_tokenizer: bool = True,
                        scan_tensors: bool = True, cancel: CancelToken | None = None
                        ) -> tuple[list[str], list[str]]:
    """Check a written model folder; returns ``(problems, warnings)`` (sentences)."""
    folder = Path(folder)
    problems: list[str] = []
    warns: list[str] = []
    cfg_file = folder / "config.json"
    if not cfg_file.is_file():
        problems.append("no config.json was written.")
    else:
        try:
            raw = json.loads(cfg_file.read_text(encoding="utf-8"))
        except ValueError as exc:
            raw = None
            problems.append(f"config.json is not valid JSON ({exc}).")
        if raw is not None:
            if raw.get("auto_map") and not trust_remote_code:
                warns.append("config.json needs code from the model's repository "
                             "(trust_remote_code) to load; it was not loaded to check it.")
            else:
                try:
                    from transformers import AutoConfig

                    AutoConfig.from_pretrained(str(folder), trust_remote_code=trust_remote_code)
                except (OSError, ValueError, KeyError, TypeError) as exc:
                    problems.append(f"config.json does not load with transformers ({exc}).")
    weights = sorted(folder.glob("*.safetensors"))
    others = [p for p in folder.iterdir() if p.suffix in (".bin", ".pt", ".pth")]
    if not weights and not others:
        problems.append("no weight files were written.")
    if others and not weights:
        warns.append("the weights are pickled (*.bin) and were not scanned for NaN/inf.")
    if scan_tensors and weights:
        bad: list[str] = []
        for wf in weights:
            try:
                bad += nonfinite_tensors(wf, cancel=cancel)
            except (OSError, ValueError, KeyError) as exc:
                problems.append(f"{wf.name} cannot be read back ({exc}).")
        if bad:
            more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
            problems.append("these tensors contain NaN or infinite values: "
                            + ", ".join(bad[:5]) + more + ".")
    if require_tokenizer and not any((folder / f).is_file() for f in
                                     ("tokenizer.json", "tokenizer.model", "vocab.json")):
        problems.append("no tokenizer was written (tokenizer.json / tokenizer.model).")
    return problems, warns




def model_fingerprint(folder: str | os.PathLike) -> str | None:
    """What identifies the weights in a model folder: the ``run_id`` of the llmcombo run that wrote
    it, else the names, sizes and modification times of its weight and config files. Caches of
    loaded models and of built products key on it, so a folder replaced by a new run (or edited)
    is never served from a stale cache. None when ``folder`` is not a folder."""
    from llmcombo.fsutil import config_hash

    p = Path(folder)
    if not p.is_dir():
        return None
    try:
        lineage = json.loads((p / LINEAGE_FILE).read_text(encoding="utf-8"))
        if isinstance(lineage, dict) and lineage.get("run_id"):
            return f"run:{lineage['run_id']}"
    except (OSError, ValueError):
        pass
    files = sorted(f for f in p.iterdir()
                   if f.is_file() and f.suffix in (".safetensors", ".bin", ".json", ".gguf"))
    return "files:" + config_hash([(f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in files])
