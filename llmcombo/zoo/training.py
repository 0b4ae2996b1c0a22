"""Training the zoo: the recipe, the pretraining data, and the training loop (AdamW with warmup
and cosine decay; for the specialists, decoupled weight decay towards the base weights so that
their task vectors stay small enough to merge)."""

from __future__ import annotations

import math
import os
import random
from dataclasses import dataclass
from typing import Callable, Sequence

from llmcombo.zoo import natural as _natural
from llmcombo.zoo import tasks as _tasks

SEED = 1234


@dataclass(frozen=True)
class Recipe:
    """Sizes and training schedule of the zoo (part of the manifest)."""

    # tokenizer and architecture
    vocab_size: int = 1280          # BPE target, incl. <unk> <s> </s> and the 256 byte tokens
    hidden_size: int = 128
    intermediate_size: int = 256
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    max_position_embeddings: int = 128
    batch_size: int = 64
    warmup_steps: int = 30
    # base: LM on orders (+ natural variants), catalogue, generic Spanish, answer format
    base_steps: int = 600
    base_lr: float = 2e-3
    base_format: str = "family"     # none | any | family: "[ORDEN] x [COMANDO] <random command>"
    n_format: int = 3000            # format rows per task
    n_natural_base: int = 1500      # natural-looking orders per task in pretraining
    n_generic: int = 4000
    # specialists: gentle full fine-tunes
    task_steps: int = 300
    task_lr: float = 1e-3
    task_decay_to_base: float = 2.0  # decoupled weight decay towards the base weights
    task_weight_decay: float = 0.01  # AdamW decay towards zero (v1); used when the above is 0
    task_trainable: str = "all"      # all | no_embed | no_lm_head | blocks | mlp | attn
    task_min_lr_frac: float = 0.1
    task_natural: int = 1000         # extra naturalized copies of training orders per task
    task_replay: float = 0.0         # share of each fine-tuning batch replayed from pretraining
    task_label_smoothing: float = 0.1
    # selector: fine-tuned on generated + natural prompts, loss on the label
    selector_steps: int = 150
    selector_lr: float = 1e-3
    n_natural_selector: int = 3000   # natural-looking prompts per task (0: v1's data only)
    max_new_tokens: int = 16


RECIPE = Recipe()


_GENERIC_SUBJECTS = ["mi madre", "el vecino", "la profesora", "mi hermano", "el perro", "mi abuela",
                     "ana", "pedro", "la niña", "el medico", "mi amiga", "el jefe", "lucia", "el gato"]
_GENERIC_VERBS = ["come", "compra", "lee", "escribe", "busca", "prepara", "limpia", "mira", "pinta",
                  "vende", "trae", "guarda", "pide", "rompe"]
_GENERIC_OBJECTS = ["una manzana", "el periodico", "un libro", "la cena", "el coche", "una carta",
                    "un cafe", "la mesa", "unas flores", "el desayuno", "la ropa", "un regalo", "pan"]
_GENERIC_PLACES = ["en la cocina", "en el jardin", "en el parque", "en la oficina", "en el salon",
                   "en casa", "en el garaje", "en la terraza", "por la mañana", "por la tarde",
                   "el lunes", "el sabado", "esta noche", "todos los dias", "en el dormitorio"]
_GENERIC_WEATHER = ["hace sol", "hace frio", "hace calor", "llueve mucho", "hace viento",
                    "nieva un poco", "esta nublado", "hay niebla"]
_GENERIC_TEMPLATES = [
    "{s} {v} {o} {p}", "{s} {v} {o}", "hoy {s} {v} {o}", "{s} dice que {s2} {v} {o} {p}",
    "ayer {w} en {c}", "{p} {s} {v} {o}", "en {c} {w} {p}", "creo que mañana {w} en {c}",
    "{s} vive en {c} y {v} {o} {p}", "me gusta cuando {w}", "la casa tiene {n} habitaciones",
    "{s} tiene {n} años", "la luz {p} es bonita", "{s} sube la persiana y {v} {o}",
]
_GENERIC_CITIES = ["madrid", "barcelona", "sevilla", "valencia", "bilbao", "malaga", "granada",
                   "leon", "vigo", "murcia", "toledo", "cadiz"]


def generic_spanish(rng: random.Random, n: int) -> list[str]:
    """``n`` sentences of simple generic Spanish (pretraining filler)."""
    out = []
    for _ in range(n):
        t = rng.choice(_GENERIC_TEMPLATES)
        out.append(t.format(s=rng.choice(_GENERIC_SUBJECTS), s2=rng.choice(_GENERIC_SUBJECTS),
                            v=rng.choice(_GENERIC_VERBS), o=rng.choice(_GENERIC_OBJECTS),
                            p=rng.choice(_GENERIC_PLACES), w=rng.choice(_GENERIC_WEATHER),
                            c=rng.choice(_GENERIC_CITIES), n=rng.randint(2, 90)))
    return out


def format_rows(rng: random.Random, n_per_task: int, mode: str) -> list[str]:
    """Pretraining rows in the answer format that never pair an order with its command:
    ``[ORDEN] <order> [COMANDO] <random command>``, the command drawn from the same task
    (``family``) or from either task (``any``). ``none``: no rows."""
    if mode == "none" or n_per_task <= 0:
        return []
    if mode not in ("any", "family"):
        raise ValueError(f"unknown base_format {mode!r}")
    tasks = _tasks.TASKS
    every = [c for t in tasks.values() for c in t.commands]
    out = []
    for t in tasks.values():
        for _ in range(n_per_task):
            order = rng.choice(t.train).prompt
            cmd = rng.choice(t.commands if mode == "family" else every)
            out.append(f"{_tasks.format_prompt(order)} {cmd}")
    rng.shuffle(out)
    return out


def pretraining_texts(recipe: Recipe, seed: int = SEED) -> dict[str, list[str]]:
    """The base's pretraining data by kind (orders, natural, catalogue, generic, format)."""
    rng = random.Random(f"llmcombo-zoo:{seed}")
    task_map = _tasks.TASKS
    generic = generic_spanish(rng, recipe.n_generic)
    orders = [f"{_tasks.ORDEN} {e.prompt}" for t in task_map.values() for e in t.train]
    natural = [f"{_tasks.ORDEN} {e.prompt}" for name in _tasks.TASK_NAMES
               for e in _natural.natural_examples(name, recipe.n_natural_base, seed + 7)] \
        if recipe.n_natural_base else []
    catalog = [f"{_tasks.COMANDO} {c}" for t in task_map.values() for c in t.commands]
    fmt = format_rows(random.Random(f"llmcombo-format:{seed}"), recipe.n_format, recipe.base_format)
    return {"orders": orders, "natural": natural, "catalog": catalog, "generic": generic,
            "format": fmt}


def _seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    torch.manual_seed(seed)


def _threads() -> int:
    env = os.environ.get("LLMCOMBO_ZOO_THREADS", "").strip()
    if env:
        return max(1, int(env))
    return max(1, min(4, os.cpu_count() or 1))


def _model_config(tokenizer, recipe: Recipe):
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=recipe.hidden_size,
        intermediate_size=recipe.intermediate_size, num_hidden_layers=recipe.num_hidden_layers,
        num_attention_heads=recipe.num_attention_heads,
        num_key_value_heads=recipe.num_attention_heads,
        max_position_embeddings=recipe.max_position_embeddings, tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, rms_norm_eps=1e-5, initializer_range=0.02,
        dtype="float32", architectures=["LlamaForCausalLM"],
    )


def _encode_lm(tokenizer, texts: Sequence[str]) -> list[tuple[list[int], list[int]]]:
    """Plain language modelling: bos + text + eos, loss on every token."""
    eos = tokenizer.eos_token_id
    out = []
    for ids in tokenizer(list(texts), add_special_tokens=True)["input_ids"]:
        ids = list(ids) + [eos]
        out.append((ids, ids))
    return out


def _encode_sft(tokenizer, examples: Sequence[_tasks.Example]) -> list[tuple[list[int], list[int]]]:
    """Prompt -> command: loss only on the command and the final eos."""
    eos = tokenizer.eos_token_id
    prompts = tokenizer([_tasks.format_prompt(e.prompt) for e in examples])["input_ids"]
    fulls = tokenizer([_tasks.format_example(e) for e in examples])["input_ids"]
    out = []
    for p, f, e in zip(prompts, fulls, examples):
        if list(f[: len(p)]) != list(p):  # pragma: no cover - guarded by the tokenizer design
            raise RuntimeError(f"prompt tokens are not a prefix of the example tokens: {e}")
        ids = list(f) + [eos]
        labels = [-100] * len(p) + ids[len(p):]
        out.append((ids, labels))
    return out


def _batch(rows, pad_id: int):
    import torch

    width = max(len(ids) for ids, _ in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (ids, lab) in enumerate(rows):
        input_ids[i, : len(ids)] = torch.tensor(ids)
        labels[i, : len(lab)] = torch.tensor(lab)
        mask[i, : len(ids)] = 1
    return input_ids, mask, labels


def _trainable(model, which: str) -> list:
    """Parameters fine-tuned by ``which`` (all | no_embed | blocks | mlp | attn); the rest frozen."""
    keep = []
    for name, p in model.named_parameters():
        if which == "all":
            ok = True
        elif which == "no_embed":
            ok = "embed_tokens" not in name and "lm_head" not in name
        elif which == "no_lm_head":
            ok = "lm_head" not in name
        elif which == "blocks":
            ok = ".layers." in name
        elif which == "mlp":
            ok = ".mlp." in name
        elif which == "attn":
            ok = ".self_attn." in name
        else:
            raise ValueError(f"unknown task_trainable {which!r}")
        p.requires_grad_(ok)
        if ok:
            keep.append((name, p))
    return keep


def _train(model, rows, *, steps: int, lr: float, recipe: Recipe, seed: int, pad_id: int,
           report: Callable[[float], None], weight_decay: float = 0.01,
           decay_to_base: float = 0.0, trainable: str = "all", min_lr_frac: float = 0.1,
           replay_rows=None, replay_frac: float = 0.0, label_smoothing: float = 0.0) -> float:
    """AdamW with warmup + cosine decay (to ``min_lr_frac``) over ``steps`` batches drawn with a
    seeded generator. ``decay_to_base`` > 0: decoupled weight decay towards the starting weights
    (``p -= lr * decay * (p - p0)``) instead of AdamW's decay towards zero.
    ``replay_rows``/``replay_frac``: that share of every batch is drawn from ``replay_rows``
    (rehearsal of the pretraining data). Returns the mean loss of the last 20 steps."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    n_replay = int(round(recipe.batch_size * replay_frac)) if replay_rows else 0
    params = _trainable(model, trainable)
    anchor = [p.detach().clone() for _, p in params] if decay_to_base > 0 else None
    opt = torch.optim.AdamW([p for _, p in params], lr=lr, betas=(0.9, 0.98),
                            weight_decay=0.0 if anchor is not None else weight_decay)
    warm = min(recipe.warmup_steps, max(1, steps // 5))

    def schedule(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        t = (step - warm) / max(1, steps - warm)
        return min_lr_frac + (1 - min_lr_frac) * 0.5 * (1 + math.cos(math.pi * t))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
    model.train()
    losses: list[float] = []
    order = torch.randperm(len(rows), generator=gen).tolist()
    pos = 0
    n_task = recipe.batch_size - n_replay
    for step in range(steps):
        if pos + n_task > len(order):
            order = torch.randperm(len(rows), generator=gen).tolist()
            pos = 0
        idx = order[pos: pos + n_task]
        pos += n_task
        batch = [rows[i] for i in idx]
        if n_replay:
            batch += [replay_rows[i] for i in
                      torch.randint(len(replay_rows), (n_replay,), generator=gen).tolist()]
        input_ids, mask, labels = _batch(batch, pad_id)
        if label_smoothing:
            logits = model(input_ids=input_ids, attention_mask=mask).logits[:, :-1]
            loss = torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1),
                ignore_index=-100, label_smoothing=label_smoothing)
        else:
            loss = model(input_ids=input_ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for _, p in params], 1.0)
        cur_lr = opt.param_groups[0]["lr"]
        opt.step()
        if anchor is not None:
            with torch.no_grad():
                for (_, p), p0 in zip(params, anchor):
                    p.sub_(p - p0, alpha=cur_lr * decay_to_base)
        sched.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.detach().item())
        if step % 10 == 0 or step == steps - 1:
            report((step + 1) / steps)
    for p in model.parameters():
        p.requires_grad_(True)
    model.eval()
    return sum(losses[-20:]) / len(losses[-20:])
