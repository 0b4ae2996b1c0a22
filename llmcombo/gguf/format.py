"""What llmcombo knows of the GGUF format without llama.cpp: the types it writes
(:data:`QUANT_TYPES`: what llama.cpp's converter writes itself, what ``llama_model_quantize``
writes from it, their ``llama_ftype`` numbers and the names people type for them), the file's
header (:func:`gguf_version`, :func:`is_gguf_file`) and :class:`GGUFError`, the error of every
GGUF step (see :mod:`llmcombo.gguf`; :mod:`llmcombo.gguf.export` re-exports these names).
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

from llmcombo.errors import UserError

GGUF_MAGIC = b"GGUF"

# what llama.cpp's converter writes itself (--outtype)
CONVERTER_TYPES = ("f32", "f16", "bf16", "q8_0")
# what llama_model_quantize writes from a converted file: llama_ftype numbers (LLAMA_FTYPE_MOSTLY_*
# in llama.h; tests/test_gguf.py checks them against the installed llama_cpp)
QUANTIZER_TYPES = {
    "q6_k": 18, "q5_k_m": 17, "q5_k_s": 16, "q5_0": 8, "q5_1": 9, "q4_k_m": 15, "q4_k_s": 14,
    "q4_0": 2, "q4_1": 3, "q3_k_l": 13, "q3_k_m": 12, "q3_k_s": 11, "q2_k": 10, "iq4_nl": 25,
    "iq4_xs": 30,
}
QUANT_TYPES = CONVERTER_TYPES + tuple(QUANTIZER_TYPES)
# llama_ftype of the converter's types, for re-encoding a GGUF file with the quantiser
FTYPES = {"f32": 0, "f16": 1, "q8_0": 7, "bf16": 32, **QUANTIZER_TYPES}
ALIASES = {"float32": "f32", "fp32": "f32", "float16": "f16", "fp16": "f16", "half": "f16",
           "bfloat16": "bf16", "q8": "q8_0", "q4_k": "q4_k_m", "q5_k": "q5_k_m", "q3_k": "q3_k_m",
           "q6": "q6_k"}


class GGUFError(UserError):
    """A GGUF export or file that cannot work; ``log`` keeps the tool's own output."""

    def __init__(self, message: str, *, hint: str | None = None, log: str = "",
                 field: str | None = None):
        super().__init__(message, hint=hint, field=field)
        self.log = log


def normalize_quant(quant: str) -> str:
    """``"Q4_K_M"``, ``"q4-k-m"``, ``"fp16"`` -> the canonical name; an unknown name is a
    :class:`GGUFError` that lists the valid ones."""
    q = str(quant).strip().lower().replace("-", "_")
    q = ALIASES.get(q, q)
    if q in QUANT_TYPES:
        return q
    import difflib

    close = difflib.get_close_matches(q, QUANT_TYPES, n=1, cutoff=0.6)
    raise GGUFError(f"unknown GGUF type {quant!r}" + (f" (did you mean {close[0]}?)" if close
                                                     else ""),
                    field="quant", hint="use one of " + ", ".join(QUANT_TYPES))


def gguf_version(path: str | os.PathLike) -> int:
    """The GGUF version of the file ``path``; a :class:`GGUFError` when it is not a GGUF file."""
    p = Path(path)
    if p.is_dir():
        raise GGUFError(f"{p} is a folder, not a GGUF file.",
                        hint="Give the .gguf file, or the model folder with backend llama_cpp "
                             "(converted once and cached).")
    try:
        with open(p, "rb") as fh:
            head = fh.read(8)
    except FileNotFoundError:
        raise GGUFError(f"GGUF file not found: {p}", hint="Check the path.") from None
    except OSError as exc:
        raise GGUFError(f"cannot read {p}: {exc.strerror or exc}") from None
    if len(head) < 8 or head[:4] != GGUF_MAGIC:
        raise GGUFError(f"{p} is not a GGUF file (it starts with {head[:4]!r}, not b'GGUF').",
                        hint="Export a model with `llmcombo export-gguf MODEL OUT.gguf`, or pick "
                             "the .gguf file.")
    return struct.unpack("<I", head[4:8])[0]


def is_gguf_file(path: str | os.PathLike) -> bool:
    try:
        gguf_version(path)
        return True
    except GGUFError:
        return False
