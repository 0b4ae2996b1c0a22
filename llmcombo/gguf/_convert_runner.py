"""Runs llama.cpp's ``convert_hf_to_gguf.py`` (llmcombo's unmodified copy) in this child process,
with three small additions for ``tokenizer.json`` vocabularies (no patch to a converter file;
the ``gguf`` classes are adjusted in memory before ``convert_hf_to_gguf.main()`` runs):

1. token scores: ``gguf.LlamaHfVocab`` (a Llama-2-style ``tokenizer.json``: BPE with byte
   fallback, no ``tokenizer.model``) gives every token the score -1000. llama.cpp tokenizes such a
   vocabulary with SentencePiece's algorithm, which merges the adjacent pair whose joined piece
   scores highest and, on equal scores, merges left to right: not the Hugging Face merge order.
   Each token gets ``-(rank of the first merge that makes it)`` (0 when no merge does), the order a
   SentencePiece ``tokenizer.model`` would carry, and llama.cpp then tokenizes as transformers.
2. vocabulary padding: when ``config.json``'s ``vocab_size`` exceeds the tokenizer (padded to a
   multiple of 8, say) the converter writes fewer tokens than the embedding has rows and llama.cpp
   refuses the file ("wrong shape"); ``[PAD{i}]`` tokens of type UNUSED fill the gap, as the
   converter itself does for ``tokenizer.model`` vocabularies.
3. added tokens' ``lstrip``/``rstrip`` flags, which a GGUF cannot carry, are written under the key
   ``llmcombo.tokenizer.strip`` (:mod:`llmcombo.gguf.tokens`) for llmcombo's backend.

Usage: python _convert_runner.py CONVERTER_DIR MODEL_DIR -- <convert_hf_to_gguf.py arguments>
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _patch_vocab(gguf) -> None:
    cls = getattr(gguf, "LlamaHfVocab", None)
    if cls is None or not hasattr(cls, "get_token_score") or not hasattr(cls, "all_tokens"):
        print("llmcombo: gguf.LlamaHfVocab changed; converting without the vocabulary fixes",
              file=sys.stderr)
        return
    orig_init, orig_all = cls.__init__, cls.all_tokens

    def __init__(self, base_path: Path):
        orig_init(self, base_path)
        tj = _read_json(Path(self.fname_tokenizer))
        model = tj.get("model") or {}
        id_to_text = {i: t for t, i in (model.get("vocab") or {}).items()}
        rank_of: dict[str, int] = {}
        for r, m in enumerate(model.get("merges") or []):
            a, b = m.split(" ", 1) if isinstance(m, str) else m
            rank_of.setdefault(a + b, r)
        self._llmcombo_scores = {i: -float(rank_of[t] + 1) if t in rank_of else 0.0
                                 for i, t in id_to_text.items()}
        cfg = _read_json(Path(base_path) / "config.json")
        try:
            n = int(cfg.get("vocab_size") or (cfg.get("text_config") or {}).get("vocab_size") or 0)
        except (TypeError, ValueError):
            n = 0
        self._llmcombo_pad = max(0, n - self.vocab_size)
        self.vocab_size += self._llmcombo_pad

    def get_token_score(self, token_id: int) -> float:
        return self._llmcombo_scores.get(token_id, 0.0)

    def all_tokens(self):
        n = 0
        for item in orig_all(self):
            n += 1
            yield item
        for i in range(n, n + self._llmcombo_pad):
            yield f"[PAD{i}]".encode("utf-8"), -1000.0, gguf.TokenType.UNUSED

    cls.__init__, cls.get_token_score, cls.all_tokens = __init__, get_token_score, all_tokens


def _patch_strip_flags(gguf, model_dir: Path) -> None:
    from llmcombo.gguf.tokens import STRIP_KEY, strip_rules

    rules = strip_rules(_read_json(model_dir / "tokenizer.json"))
    if not rules:
        return
    orig = gguf.GGUFWriter.add_tokenizer_model

    def add_tokenizer_model(self, model: str) -> None:
        orig(self, model)
        self.add_string(STRIP_KEY, rules.to_json())

    gguf.GGUFWriter.add_tokenizer_model = add_tokenizer_model


def main() -> None:
    argv = sys.argv[1:]
    if "--" not in argv or argv.index("--") != 2:
        sys.exit("usage: _convert_runner.py CONVERTER_DIR MODEL_DIR -- ARGS...")
    conv_dir, model_dir, args = Path(argv[0]).resolve(), Path(argv[1]), argv[3:]
    sys.path.insert(0, str(conv_dir))
    sys.path.insert(1, str(conv_dir / "gguf-py"))  # the gguf package of the same llama.cpp
    import gguf  # noqa: E402

    _patch_vocab(gguf)
    _patch_strip_flags(gguf, model_dir)
    import convert_hf_to_gguf as conv  # noqa: E402  (its own sys.path insert is a no-op now)

    sys.argv = [str(conv_dir / "convert_hf_to_gguf.py")] + args
    conv.main()


if __name__ == "__main__":
    main()
