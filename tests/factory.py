"""Random tiny model folders for plumbing tests: what a test needs when it only cares about
shapes (a merge that runs, a MoE that builds, a pre-flight that reads config.json), not about
what the model has learnt.

::

    from tests.factory import make_model, make_family
    folder = make_model(tmp_path / "m", arch="qwen2", layers=3)
    fam = make_family(tmp_path, ("base", "a", "b"))      # fine-tunes of one base: same shapes

Each folder is a real Hugging Face model folder (``config.json``, ``model.safetensors``, a fast
tokenizer with bos/eos/pad/unk), a few layers deep, hidden size 32 by default, in float32, made
in a fraction of a second from a seed (no download, no training). Architectures: ``llama``,
``qwen2``, ``mistral`` (and ``qwen3`` for mergekit's Qwen3 MoE output).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

WORDS = tuple("the to of and is in it you that on for with enciende apaga la luz del salon que "
              "tiempo hace en madrid write code debug this tell story math poetry hello world "
              "[ORDEN] [COMANDO]".split())
SPECIALS = ("<pad>", "<s>", "</s>", "<unk>")

ARCHS = {
    "llama": ("LlamaConfig", "LlamaForCausalLM"),
    "qwen2": ("Qwen2Config", "Qwen2ForCausalLM"),
    "mistral": ("MistralConfig", "MistralForCausalLM"),
    "qwen3": ("Qwen3Config", "Qwen3ForCausalLM"),
}


def make_tokenizer():
    """A word-level fast tokenizer over a small fixed vocabulary (unknown words map to <unk>)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    tokens = dict.fromkeys(SPECIALS + WORDS + tuple("abcdefghijklmnopqrstuvwxyz0123456789"))
    vocab = {t: i for i, t in enumerate(tokens)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A $B",
                                                       special_tokens=[("<s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                   unk_token="<unk>", pad_token="<pad>", padding_side="left",
                                   model_max_length=64)


def model_config(arch: str = "llama", *, layers: int = 2, hidden: int = 32,
                 intermediate: int | None = None, heads: int = 4, kv_heads: int = 2,
                 vocab: int = 96):
    import transformers

    cls_name, arch_name = ARCHS[arch]
    cls = getattr(transformers, cls_name)
    kw = dict(vocab_size=vocab, hidden_size=hidden, intermediate_size=intermediate or 2 * hidden,
              num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv_heads,
              max_position_embeddings=64, tie_word_embeddings=False, bos_token_id=1,
              eos_token_id=2, pad_token_id=0, architectures=[arch_name])
    if arch == "qwen3":
        kw["head_dim"] = hidden // heads
    return cls(**kw)


def make_model(folder: str | Path, arch: str = "llama", *, seed: int = 0, like: str | Path | None = None,
               noise: float = 0.02, tokenizer: bool = True, **shape) -> Path:
    """Write a random model folder. ``like``: start from that folder's weights and add
    ``noise`` (a "fine-tune" of it: same architecture and shapes)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    folder = Path(folder)
    torch.manual_seed(seed)
    if like is not None:
        cfg = AutoConfig.from_pretrained(like)
        model = AutoModelForCausalLM.from_pretrained(like, dtype=torch.float32)
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p) * noise)
    else:
        cfg = model_config(arch, **shape)
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    model.save_pretrained(folder, safe_serialization=True)
    if tokenizer:
        make_tokenizer().save_pretrained(folder)
    return folder


def make_family(root: str | Path, names: Iterable[str] = ("base", "a", "b", "c"),
                arch: str = "llama", **shape) -> dict[str, Path]:
    """Models that share one base: the first name is the base, the others are its
    "fine-tunes" (the base plus a little noise, a different seed each)."""
    root = Path(root)
    names = list(names)
    out = {names[0]: make_model(root / names[0], arch, seed=0, **shape)}
    for i, name in enumerate(names[1:], start=1):
        out[name] = make_model(root / name, arch, seed=i, like=out[names[0]])
    return out


def read_config(folder: str | Path) -> dict:
    return json.loads((Path(folder) / "config.json").read_text(encoding="utf-8"))
