"""Child-process steps of a GGUF export that call into llama.cpp (a failing GGML assertion calls
abort(), which would take a Jupyter kernel with it):

    python -m llmcombo.gguf._child quantize SRC DST FTYPE THREADS
    python -m llmcombo.gguf._child verify GGUF [CHECK.json]

``verify`` loads the file's metadata and vocabulary with the installed llama.cpp and, given
``{"texts": [...], "ids": [...]}`` (transformers' token ids, computed by the parent), reports the
texts llama.cpp tokenizes otherwise (after the strip rules the GGUF carries); it prints one JSON
line.
"""

from __future__ import annotations

import ctypes
import json
import sys


def _quiet(L) -> None:
    import logging

    logging.getLogger("llama-cpp-python").setLevel(logging.CRITICAL)  # llama_cpp._logger's filter


def quantize(src: str, dst: str, ftype: int, threads: int) -> int:
    import llama_cpp as L

    _quiet(L)
    p = L.llama_model_quantize_default_params()
    p.ftype = ftype
    p.nthread = threads
    return 0 if L.llama_model_quantize(src.encode(), dst.encode(), p) == 0 else 3


def meta(L, model, key: str) -> str | None:
    buf = ctypes.create_string_buffer(1 << 16)
    n = L.llama_model_meta_val_str(model, key.encode(), buf, len(buf))
    return buf.value.decode("utf-8", errors="replace") if n >= 0 else None


def tokenize(L, vocab, text: str) -> list[int]:
    data = text.encode("utf-8")
    buf = (L.llama_token * (len(data) + 8))()
    n = L.llama_tokenize(vocab, data, len(data), buf, len(buf), True, True)
    return list(buf[:n]) if n >= 0 else [n]


def verify(path: str, check_file: str | None) -> int:
    import llama_cpp as L

    from llmcombo.gguf.tokens import STRIP_KEY, StripRules

    _quiet(L)
    p = L.llama_model_default_params()
    p.vocab_only = True
    model = L.llama_model_load_from_file(path.encode(), p)
    if not model:
        return 4
    vocab = L.llama_model_get_vocab(model)
    out: dict = {"n_tokens": L.llama_vocab_n_tokens(vocab),
                 "architecture": meta(L, model, "general.architecture"),
                 "tokenizer": meta(L, model, "tokenizer.ggml.model")}
    if check_file:
        with open(check_file, encoding="utf-8") as fh:
            check = json.load(fh)
        rules = StripRules.from_json(meta(L, model, STRIP_KEY))
        differ = {}
        for i, (text, ids) in enumerate(zip(check["texts"], check["ids"])):
            mine = tokenize(L, vocab, rules.apply(text))
            if mine != ids:
                differ[str(i)] = mine
        out["differ_ids"] = differ
    L.llama_model_free(model)
    print(json.dumps(out, ensure_ascii=False))
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["quantize"] and len(argv) == 5:
        return quantize(argv[1], argv[2], int(argv[3]), int(argv[4]))
    if argv[:1] == ["verify"] and len(argv) in (2, 3):
        return verify(argv[1], argv[2] if len(argv) == 3 else None)
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
