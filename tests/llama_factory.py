"""Tiny Llama model folders for the llama.cpp tests, made in a second or two, so those tests do
not depend on the zoo.

``llama2_tokenizer()`` is shaped like Llama 2's ``tokenizer.json`` (what llama.cpp's converter
reads as a ``llama`` vocabulary): BPE with ``byte_fallback``, ``<unk>``=0 ``<s>``=1 ``</s>``=2, the
256 byte tokens ``<0x00>``..``<0xFF>``, normalizer Prepend("▁") + Replace(" ", "▁"), no
pre-tokenizer, the Llama decoder, post-processor ``<s> $A``, plus the special markers ``[ORDEN]``
and ``[COMANDO]`` (``strip_markers``: with lstrip/rstrip, as the zoo's). ``metaspace=True`` gives
instead the shape of zoo v1's tokenizer (Metaspace pre-tokenizer, no byte fallback), which
llama.cpp does not recognise.

``model_folder(path, ...)`` writes a random ``LlamaForCausalLM`` (hidden 32, 2 layers) with that
tokenizer; ``pad_vocab`` pads ``vocab_size`` to a multiple of 8 as the zoo does; ``train`` teaches
it a few ``(prompt, answer)`` pairs by heart (a few seconds), for tests that need real answers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

ORDEN, COMANDO = "[ORDEN]", "[COMANDO]"
SPECIALS = ["<unk>", "<s>", "</s>"]
CORPUS = [
    "apaga la luz del salon", "enciende la luz del salon", "apaga la luz de la cocina",
    "enciende la calefaccion del baño", "sube la persiana del dormitorio", "baja la persiana",
    "que tiempo hace", "que tiempo hara mañana en madrid", "va a llover hoy en sevilla",
    "hace frio en burgos", "LUZ_SL OFF", "LUZ_SL ON", "LUZ_CO OFF", "CALEF_BA ON", "TIEMPO HOY",
    "TIEMPO MADRID MANANA", "LLM1", "LLM2", "el perro come una manzana en la cocina",
    "mi madre lee el periodico en el salon", "la profesora escribe una carta",
] * 4

SEED_PAIRS = [  # the seed's example, and a few neighbours so the answers depend on the prompt
    ("apaga la luz del salon", "LUZ_SL OFF"), ("enciende la luz del salon", "LUZ_SL ON"),
    ("apaga la luz de la cocina", "LUZ_CO OFF"), ("enciende la calefaccion del baño", "CALEF_BA ON"),
    ("que tiempo hace", "TIEMPO HOY"), ("que tiempo hara mañana en madrid", "TIEMPO MADRID MANANA"),
]
SELECTOR_PAIRS = [(p, "LLM2" if a.startswith("TIEMPO") else "LLM1") for p, a in SEED_PAIRS]


def llama2_tokenizer(vocab_size: int = 420, strip_markers: bool = False, metaspace: bool = False):
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers
    from tokenizers import processors, trainers
    from transformers import PreTrainedTokenizerFast

    # merges learned word by word (a temporary Metaspace split, so no token spans two words)
    scratch = Tokenizer(models.BPE(unk_token="<unk>"))
    scratch.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    alphabet = list("abcdefghijklmnopqrstuvwxyzñ_ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
    trainer = trainers.BpeTrainer(vocab_size=vocab_size - 256, special_tokens=SPECIALS,
                                  min_frequency=2, show_progress=False, initial_alphabet=alphabet)
    scratch.train_from_iterator(CORPUS, trainer)
    learned = json.loads(scratch.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in learned["merges"]]
    if metaspace:  # zoo v1's shape: what llama.cpp's converter refuses
        vocab = dict(learned["vocab"])
        tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>"))
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
        tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    else:
        vocab = {s: i for i, s in enumerate(SPECIALS)}
        for b in range(256):
            vocab[f"<0x{b:02X}>"] = len(vocab)
        for text, _ in sorted(learned["vocab"].items(), key=lambda kv: kv[1]):
            vocab.setdefault(text, len(vocab))
        tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>",
                                   byte_fallback=True, fuse_unk=True))
        tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"),
                                               normalizers.Replace(" ", "▁")])
        tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(),
                                         decoders.Fuse(), decoders.Strip(" ", 1, 0)])
    tok.add_special_tokens([AddedToken(s, normalized=False, special=True) for s in SPECIALS])
    tok.add_special_tokens([AddedToken(m, lstrip=strip_markers, rstrip=strip_markers,
                                       normalized=False, special=True) for m in (ORDEN, COMANDO)])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A $B",
                                                       special_tokens=[("<s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                   unk_token="<unk>", pad_token="</s>", padding_side="left",
                                   extra_special_tokens=[ORDEN, COMANDO], model_max_length=128)


def prompt(text: str) -> str:
    return f"{ORDEN} {text} {COMANDO}"


def model_folder(path: str | Path, *, seed: int = 0, strip_markers: bool = False,
                 metaspace: bool = False, pad_vocab: bool = False,
                 train: Sequence[tuple[str, str]] = (), steps: int = 100,
                 hidden: int = 32, layers: int = 2, architecture: str | None = None) -> Path:
    """A tiny ``LlamaForCausalLM`` folder at ``path`` (random, or taught ``train`` pairs)."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    path = Path(path)
    tok = llama2_tokenizer(strip_markers=strip_markers, metaspace=metaspace)
    n_vocab = len(tok)
    if pad_vocab:
        n_vocab = (n_vocab + 7) // 8 * 8
    cfg = LlamaConfig(vocab_size=n_vocab, hidden_size=hidden, intermediate_size=2 * hidden,
                      num_hidden_layers=layers, num_attention_heads=2, num_key_value_heads=2,
                      max_position_embeddings=128, bos_token_id=tok.bos_token_id,
                      eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                      tie_word_embeddings=False)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(cfg)
    model.generation_config = GenerationConfig(bos_token_id=tok.bos_token_id,
                                               eos_token_id=tok.eos_token_id,
                                               pad_token_id=tok.pad_token_id, do_sample=False)
    if train:
        _teach(model, tok, train, steps, seed)
    model.save_pretrained(path, safe_serialization=True)
    tok.save_pretrained(path)
    if architecture:  # pretend to be another architecture (config.json only)
        data = json.loads((path / "config.json").read_text())
        data["architectures"] = [architecture]
        (path / "config.json").write_text(json.dumps(data))
    return path


def _teach(model, tok, pairs, steps: int, seed: int) -> None:
    import torch

    rows = []
    for p, a in pairs:
        p_ids = list(tok(prompt(p))["input_ids"])
        full = list(tok(prompt(p) + " " + a)["input_ids"]) + [tok.eos_token_id]
        rows.append((full, [-100] * len(p_ids) + full[len(p_ids):]))
    width = max(len(r[0]) for r in rows)
    ids = torch.full((len(rows), width), tok.pad_token_id)
    labels = torch.full((len(rows), width), -100)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (x, y) in enumerate(rows):
        ids[i, : len(x)], labels[i, : len(y)], mask[i, : len(x)] = torch.tensor(x), \
            torch.tensor(y), 1
    torch.manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a 30k-parameter model: one thread is 10x faster on a busy machine
    try:
        model.train()
        for _ in range(steps):
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
            loss.backward()
            opt.step()
            opt.zero_grad()
    finally:
        torch.set_num_threads(threads)
        model.eval()


def mixtral_folder(path: str | Path, seed: int = 0) -> Path:
    """A tiny random ``MixtralForCausalLM`` (what mergekit-moe writes) with the same tokenizer."""
    import torch
    from transformers import MixtralConfig, MixtralForCausalLM

    path = Path(path)
    tok = llama2_tokenizer()
    cfg = MixtralConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64,
                        num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                        num_local_experts=2, num_experts_per_tok=1, max_position_embeddings=128,
                        bos_token_id=1, eos_token_id=2, pad_token_id=2, tie_word_embeddings=False)
    torch.manual_seed(seed)
    MixtralForCausalLM(cfg).save_pretrained(path, safe_serialization=True)
    tok.save_pretrained(path)
    return path
