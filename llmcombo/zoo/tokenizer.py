"""The zoo's tokenizer, shaped like Llama 2's so that llama.cpp's converter takes it: a
``tokenizers`` BPE with byte fallback and the 256 byte tokens, ``Prepend("▁") + Replace(" ", "▁")``,
no pre-tokenizer, the Llama decoder, ``<unk>``=0 ``<s>``=1 ``</s>``=2 (``<unk>`` doubles as pad);
plus a SentencePiece ``tokenizer.model`` with the same pieces (score = merge order) and
``added_tokens.json``, which make llama.cpp tokenize exactly as transformers does.
``[ORDEN]``/``[COMANDO]`` are special added tokens that swallow the spaces around them
(:mod:`llmcombo.gguf.tokens` reproduces that on llama.cpp)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

from llmcombo.zoo import tasks as _tasks

SPECIAL = ("<unk>", "<s>", "</s>")
BYTE_TOKENS = tuple(f"<0x{i:02X}>" for i in range(256))
_ALPHABET = list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                 "áéíóúñüÁÉÍÓÚÑÜ¿?¡!.,;:_-'\"()%/▁")


def _full_merges(vocab: dict[str, int]) -> list[tuple[str, str]]:
    """Every merge ``(a, b)`` with ``a``, ``b`` and ``a+b`` pieces, ordered by the id of ``a+b``
    (as transformers' converter writes Llama's merges): BPE with these merges is exactly
    SentencePiece-BPE with score = -id, i.e. what llama.cpp does with ``tokenizer.model``."""
    skip = set(SPECIAL) | set(BYTE_TOKENS)
    merges = []
    for piece, pid in vocab.items():
        if piece in skip or len(piece) < 2:
            continue
        for k in range(1, len(piece)):
            a, b = piece[:k], piece[k:]
            if a in vocab and b in vocab and a not in skip and b not in skip:
                merges.append((pid, vocab[a], vocab[b], a, b))
    merges.sort()
    return [(a, b) for _, _, _, a, b in merges]


def train_tokenizer(texts: Sequence[str], vocab_size: int, max_length: int = 128):
    """A Llama-2-style BPE tokenizer trained on ``texts`` (see the module docstring), wrapped as a
    transformers fast tokenizer with bos/eos/unk (pad = unk) and left padding."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers
    from tokenizers import pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    # training only: pieces never cross a word start (▁), a "_" (LUZ | _SL) or punctuation, so BPE
    # over a whole string without pre-tokenizer (Llama's way) splits exactly as this did
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split("▁", behavior="merged_with_next"),
        pre_tokenizers.Split("_", behavior="merged_with_next"),
        pre_tokenizers.Split(Regex(r"[?!.,;:\"()%/]"), behavior="isolated"),
    ])
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL + BYTE_TOKENS),
                                  min_frequency=2, initial_alphabet=_ALPHABET, show_progress=False)
    tok.train_from_iterator(list(texts), trainer)
    vocab = tok.get_vocab()
    # rebuild with the full merge list (see _full_merges) and Llama's shape
    llama = Tokenizer(models.BPE(vocab=vocab, merges=_full_merges(vocab), unk_token="<unk>",
                                 byte_fallback=True, fuse_unk=True))
    llama.normalizer = tok.normalizer
    llama.pre_tokenizer = None
    llama.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(),
                                       decoders.Fuse(), decoders.Strip(content=" ", left=1)])
    llama.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in SPECIAL])
    # the markers swallow the spaces around them, so "[ORDEN] x [COMANDO] y" tokenizes cleanly
    llama.add_special_tokens([AddedToken(m, lstrip=True, rstrip=True, normalized=False,
                                         special=True) for m in (_tasks.ORDEN, _tasks.COMANDO)])
    llama.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A $B", special_tokens=[("<s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=llama, bos_token="<s>", eos_token="</s>",
                                   unk_token="<unk>", pad_token="<unk>", padding_side="left",
                                   model_max_length=max_length, clean_up_tokenization_spaces=False)


def sentencepiece_model(tokenizer) -> bytes:
    """A SentencePiece BPE ``tokenizer.model`` with the tokenizer's pieces (score = -id, byte
    fallback, the markers as user-defined pieces): what llama.cpp's converter reads first."""
    import importlib
    from typing import Any

    pb: Any = importlib.import_module("sentencepiece.sentencepiece_model_pb2")  # generated, untyped

    vocab = tokenizer.get_vocab()
    by_id = sorted(vocab.items(), key=lambda kv: kv[1])
    assert [i for _, i in by_id] == list(range(len(by_id))), "token ids must be contiguous"
    m = pb.ModelProto()
    m.trainer_spec.model_type = pb.TrainerSpec.BPE
    m.trainer_spec.vocab_size = len(by_id)
    m.trainer_spec.byte_fallback = True
    m.trainer_spec.unk_id, m.trainer_spec.bos_id, m.trainer_spec.eos_id = 0, 1, 2
    m.trainer_spec.pad_id = -1
    m.trainer_spec.split_digits = False
    m.normalizer_spec.name = "identity"
    m.normalizer_spec.add_dummy_prefix = True
    m.normalizer_spec.remove_extra_whitespaces = False
    m.normalizer_spec.escape_whitespaces = True
    markers = (_tasks.ORDEN, _tasks.COMANDO)
    for piece, pid in by_id:
        p = m.pieces.add()
        p.piece = piece
        p.score = 0.0 if piece in SPECIAL or piece in BYTE_TOKENS or piece in markers \
            else -float(pid)
        if piece == "<unk>":
            p.type = pb.ModelProto.SentencePiece.UNKNOWN
        elif piece in SPECIAL:
            p.type = pb.ModelProto.SentencePiece.CONTROL
        elif piece in BYTE_TOKENS:
            p.type = pb.ModelProto.SentencePiece.BYTE
        elif piece in markers:
            p.type = pb.ModelProto.SentencePiece.USER_DEFINED
        else:
            p.type = pb.ModelProto.SentencePiece.NORMAL
    return m.SerializeToString()


def save_tokenizer(tokenizer, folder: str | os.PathLike) -> None:
    """``tokenizer.json`` + ``tokenizer_config.json`` + ``tokenizer.model`` + ``added_tokens.json``.

    Copy all four when saving a model derived from the zoo (mergekit does by default): without
    ``tokenizer.model`` llama.cpp's converter still converts, but tokenizes differently."""
    folder = Path(folder)
    tokenizer.save_pretrained(folder)
    cfg_file = folder / "tokenizer_config.json"
    cfg = json.loads(cfg_file.read_text(encoding="utf-8"))
    # PreTrainedTokenizerFast: transformers 5 takes tokenizer.json as it is (its LlamaTokenizer
    # class rebuilds the pre-tokenizer from `legacy`, which a re-save then drops); the settings
    # are LlamaTokenizerFast's, so loading it as one gives the same tokens
    cfg.update({"tokenizer_class": "PreTrainedTokenizerFast", "legacy": True,
                "add_prefix_space": True, "add_bos_token": True, "add_eos_token": False,
                "padding_side": "left", "clean_up_tokenization_spaces": False,
                "pad_token": "<unk>"})
    cfg_file.write_text(json.dumps(cfg, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (folder / "tokenizer.model").write_bytes(sentencepiece_model(tokenizer))
    # llama.cpp's converter types the pieces of added_tokens.json USER_DEFINED: llama.cpp then
    # matches the markers in the text even without parse_special
    markers = {m: tokenizer.convert_tokens_to_ids(m) for m in (_tasks.ORDEN, _tasks.COMANDO)}
    (folder / "added_tokens.json").write_text(json.dumps(markers) + "\n", encoding="utf-8")
