"""Child-process steps of a GGUF export that call into llama.cpp (a failing GGML assertion calls
abort(), which would take a Jupyter kernel with it):

    python -m llmcombo.gguf._child quantize SRC DST FTYPE THREADS
    python -m llmcombo.gguf._child verify GGUF [MODEL_DIR]

``verify`` loads the file's metadata and vocabulary with the installed llama.cpp and, given the
Hugging Face folder it came from, compares transformers' token ids with llama.cpp's on
:func:`llmcombo.gguf.tokens.check_texts`; it prints one JSON line.
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


def verify(path: str, model_dir: str | None) -> int:
    import llama_cpp as L

    from llmcombo.gguf.tokens import STRIP_KEY, StripRules, check_texts

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
    if model_dir:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(model_dir)
        rules = StripRules.from_json(meta(L, model, STRIP_KEY))
        specials = [t for t in getattr(tok, "added_tokens_decoder", {}).values()
                    if getattr(t, "special", False)]
        marks = [t.content for t in specials if t.content not in (tok.bos_token, tok.eos_token,
                                                                  tok.unk_token, tok.pad_token)]
        texts = check_texts(marks)
        bad = []
        for t in texts:
            hf = list(tok(t)["input_ids"])
            ll = tokenize(L, vocab, rules.apply(t))
            if hf != ll:
                bad.append({"text": t, "transformers": tok.convert_ids_to_tokens(hf)[:24],
                            "llama_cpp": tok.convert_ids_to_tokens([i for i in ll if i >= 0])[:24]})
        out["checked"] = len(texts)
        out["differ"] = len(bad)
        out["examples"] = bad[:3]
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
