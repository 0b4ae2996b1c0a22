"""The model zoo: tiny Llama models trained locally, offline and deterministically.

Tests, notebooks and the demo cannot download models, so llmcombo trains its own (a few minutes on
a laptop CPU) and ships the result (:mod:`llmcombo.zoo.store`); ``llmcombo zoo build`` retrains it
from scratch, reproducibly::

    base       pretrained on mixed text (orders of both tasks, command catalogue, generic Spanish),
               but never on the order -> command mapping: weak on both tasks
    domotica   base fully fine-tuned on the domotica task   (strong there, weak on tiempo)
    tiempo     base fully fine-tuned on the tiempo task     (strong there, weak on domotica)
    selector   base fully fine-tuned to answer LLM1 (domotica prompt) or LLM2 (tiempo prompt)

All four share one tokenizer and one architecture (``LlamaForCausalLM``, float32, untied
embeddings), and the three fine-tunes share ``base`` as their common ancestor, so every mergekit
method (task arithmetic, TIES, DARE, ...) and mergekit's MoE builder accept them.

Usage::

    from llmcombo import zoo
    z = zoo.build("my-zoo")         # trains a zoo into my-zoo (reused when it is complete)
    z.path("domotica")              # a folder for AutoModelForCausalLM / mergekit
    z.manifest["models"]["domotica"]["accuracy"]   # measured on the held-out test splits

A build trains into a temporary sibling folder and renames it into place, so a killed build never
leaves half a zoo, and a file lock makes concurrent builds wait for each other instead of training
twice.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import os
import random
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

from llmcombo.errors import UserError
from llmcombo.fsutil import staged_dir
from llmcombo.zoo import tasks as _tasks
from llmcombo.zoo.store import (ENV_DIR, MANIFEST, MODEL_NAMES, ZOO_VERSION, Zoo, _read_manifest,
                                cache_dir, default_dir, is_complete)

if TYPE_CHECKING:  # pragma: no cover
    pass

SEED = 1234

Progress = Callable[[str, float], None]


@dataclass(frozen=True)
class Recipe:
    """Sizes and training schedule of the zoo (part of the manifest)."""

    vocab_size: int = 1024
    hidden_size: int = 128
    intermediate_size: int = 256
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    max_position_embeddings: int = 128
    batch_size: int = 64
    base_steps: int = 600
    base_lr: float = 2e-3
    task_steps: int = 300
    task_lr: float = 1e-3
    selector_steps: int = 80
    selector_lr: float = 5e-4
    warmup_steps: int = 30
    n_generic: int = 4000
    max_new_tokens: int = 16


RECIPE = Recipe()

# ---------------------------------------------------------------------------------------------
# locations
# ---------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------
# build: locking, atomic rename, progress
# ---------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _lock(target: Path) -> Iterator[None]:
    lock_path = target.parent / f".{target.name}.lock"
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no lock, the rename is still atomic
        yield
        return
    with open(lock_path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                os.unlink(lock_path)  # no .lock left behind once the build is over
            fcntl.flock(fh, fcntl.LOCK_UN)


def _disk_error(exc: OSError, where: Path) -> UserError:
    if exc.errno == errno.ENOSPC:
        return UserError(f"no space left on the disk while writing the zoo to {where}",
                         hint=f"free some space or set {ENV_DIR} to another folder")
    return UserError(f"cannot write the zoo to {where}: {exc.strerror or exc}",
                     hint=f"set {ENV_DIR} to a writable folder")


def build(dir: str | os.PathLike | None = None, *, force: bool = False,
          progress: Progress | None = None) -> Zoo:
    """Return the zoo in ``dir`` (default :func:`default_dir`), training it first unless a complete
    zoo of this :data:`ZOO_VERSION` is already there (``force=True`` retrains anyway).

    Without ``dir``: the zoo in use (:func:`~llmcombo.zoo.store.default_dir`, the shipped one
    unless ``$LLMCOMBO_ZOO_DIR`` says otherwise) when it is complete, else a new one trained into
    ``$LLMCOMBO_ZOO_DIR`` or :func:`~llmcombo.zoo.store.cache_dir` (never into the installed
    package).

    ``progress(stage, fraction)`` receives the stage name and the overall fraction done (0..1);
    without it a bar is shown on a terminal and a line every few seconds elsewhere.
    """
    if dir is None:
        current = default_dir()
        if not force and is_complete(current):
            return Zoo(current)
        dir = os.environ.get(ENV_DIR, "").strip() or cache_dir()
    target = Path(dir).expanduser().absolute()
    if not force and is_complete(target):
        return Zoo(target)
    if target.exists() and not target.is_dir():
        raise UserError(f"{target} is a file, not a folder", hint="choose another zoo folder")
    if target.is_dir() and any(target.iterdir()) and _read_manifest(target) is None:
        raise UserError(f"{target} is not empty and does not hold a zoo; refusing to replace it",
                        hint="choose an empty or new folder for the zoo")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with _lock(target):
            if not force and is_complete(target):  # built by another process while we waited
                return Zoo(target)
            for stale in target.parent.glob(f".{target.name}.building-*"):
                shutil.rmtree(stale, ignore_errors=True)  # left by a killed build (we hold the lock)
            with staged_dir(target, tag="building") as tmp:
                _train_zoo(tmp, progress)
    except OSError as exc:
        raise _disk_error(exc, target) from exc
    return Zoo(target)


class _Reporter:
    """Maps per-stage fractions to one overall fraction; calls ``progress`` or drives tqdm."""

    WEIGHTS = {"data": 0.02, "tokenizer": 0.02, "base": 0.40, "domotica": 0.18, "tiempo": 0.18,
               "selector": 0.06, "evaluate": 0.12, "save": 0.02}

    def __init__(self, progress: Progress | None):
        from llmcombo.progress import default_progress

        self.progress = progress
        self.bar = None
        self.n = 0
        if progress is None:
            self.bar = default_progress()
            self.bar.start(1000, "zoo")

    def __call__(self, stage: str, fraction: float) -> None:
        order = list(self.WEIGHTS)
        start = sum(self.WEIGHTS[s] for s in order[: order.index(stage)])
        overall = min(1.0, start + self.WEIGHTS[stage] * max(0.0, min(1.0, fraction)))
        if self.progress is not None:
            self.progress(stage, overall)
        elif self.bar is not None:
            if stage != getattr(self, "stage", None):
                self.stage = stage
                self.bar.log(f"zoo: {stage}")
            step = int(overall * 1000) - self.n
            if step > 0:
                self.n += step
                self.bar.update(step)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# ---------------------------------------------------------------------------------------------
# training
# ---------------------------------------------------------------------------------------------

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


def _seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    torch.manual_seed(seed)


def _threads() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def train_tokenizer(texts: Sequence[str], vocab_size: int):
    """A small BPE tokenizer (Metaspace + punctuation split, so ``LUZ_SL`` is ``LUZ``,``_``,``SL``)
    wrapped as a transformers fast tokenizer with bos/eos/pad/unk and left padding."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers
    from tokenizers import processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<s>", "</s>", "<unk>", _tasks.ORDEN, _tasks.COMANDO]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always"),
        pre_tokenizers.Punctuation("isolated"),
    ])
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    alphabet = list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                    "áéíóúñüÁÉÍÓÚÑÜ¿?¡!.,;:_-'\"()")
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, min_frequency=2,
                                  initial_alphabet=alphabet, show_progress=False)
    tok.train_from_iterator(list(texts), trainer)
    # the markers swallow the spaces around them, so "[ORDEN] x [COMANDO] y" tokenizes cleanly
    tok.add_special_tokens([AddedToken(m, lstrip=True, rstrip=True, normalized=False, special=True)
                            for m in (_tasks.ORDEN, _tasks.COMANDO)])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A $B",
                                                       special_tokens=[("<s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                   unk_token="<unk>", pad_token="<pad>", padding_side="left",
                                   model_max_length=RECIPE.max_position_embeddings)


def _model_config(tokenizer, recipe: Recipe):
    from transformers import LlamaConfig

    vocab = len(tokenizer)
    vocab = ((vocab + 7) // 8) * 8
    return LlamaConfig(
        vocab_size=vocab, hidden_size=recipe.hidden_size,
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


def _train(model, rows, *, steps: int, lr: float, recipe: Recipe, seed: int, pad_id: int,
           report: Callable[[float], None]) -> float:
    """AdamW with warmup + cosine decay over ``steps`` batches drawn with a seeded generator.
    Returns the mean loss of the last 20 steps."""
    import math

    import torch

    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.98), weight_decay=0.01)

    def schedule(step: int) -> float:
        if step < recipe.warmup_steps:
            return (step + 1) / recipe.warmup_steps
        t = (step - recipe.warmup_steps) / max(1, steps - recipe.warmup_steps)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
    model.train()
    losses: list[float] = []
    order = torch.randperm(len(rows), generator=gen).tolist()
    pos = 0
    for step in range(steps):
        if pos + recipe.batch_size > len(order):
            order = torch.randperm(len(rows), generator=gen).tolist()
            pos = 0
        idx = order[pos: pos + recipe.batch_size]
        pos += recipe.batch_size
        input_ids, mask, labels = _batch([rows[i] for i in idx], pad_id)
        loss = model(input_ids=input_ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.detach().item())
        if step % 10 == 0 or step == steps - 1:
            report((step + 1) / steps)
    model.eval()
    return sum(losses[-20:]) / len(losses[-20:])


def generate_commands(model, tokenizer, prompts: Sequence[str], max_new_tokens: int = 16,
                      batch_size: int = 64) -> list[str]:
    """Greedy answers of ``model`` to task ``prompts`` (plain orders, or already formatted with
    :func:`llmcombo.zoo.tasks.format_prompt`), parsed with :func:`llmcombo.zoo.tasks.parse_command`.

    Batched with left padding; each answer stops at the tokenizer's eos token.
    """
    import torch

    formatted = [_tasks.format_prompt(p) for p in prompts]
    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    stop = {i for i in (eos, pad) if i is not None}
    was_training = model.training
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    model.eval()
    out: list[str] = []
    try:
        with torch.inference_mode():
            for start in range(0, len(formatted), batch_size):
                chunk = formatted[start: start + batch_size]
                enc = tokenizer(chunk, return_tensors="pt", padding=True)
                if pad is None:  # pragma: no cover - single prompts need no padding
                    enc.pop("attention_mask", None)
                enc = {k: v.to(model.device) for k, v in enc.items()}
                gen = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                                     eos_token_id=eos, pad_token_id=pad)
                for row in gen[:, enc["input_ids"].shape[1]:].tolist():
                    cut = next((i for i, t in enumerate(row) if t in stop), len(row))
                    text = tokenizer.decode(row[:cut], skip_special_tokens=True)
                    out.append(_tasks.parse_command(text))
    finally:
        tokenizer.padding_side = side
        if was_training:
            model.train()
    return out


def accuracy(answers: Sequence[str], expected: Sequence[str]) -> float:
    """Exact match of :func:`llmcombo.zoo.tasks.normalize_command` (0..1)."""
    if not expected:
        return 0.0
    norm = _tasks.normalize_command
    return sum(norm(a) == norm(e) for a, e in zip(answers, expected)) / len(expected)


def evaluate(model, tokenizer, batch_size: int = 100) -> dict[str, float]:
    """Held-out accuracy of ``model`` on each task, and its routing accuracy (LLM1/LLM2)."""
    result: dict[str, float] = {}
    routing_answers: list[str] = []
    routing_expected: list[str] = []
    for name, task in _tasks.TASKS.items():
        answers = generate_commands(model, tokenizer, [e.prompt for e in task.test],
                                    max_new_tokens=RECIPE.max_new_tokens, batch_size=batch_size)
        result[name] = accuracy(answers, [e.expected for e in task.test])
        routing_answers += answers
        routing_expected += [task.label] * len(task.test)
    result["routing"] = accuracy(routing_answers, routing_expected)
    return result


def _folder_size(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def _train_zoo(out: Path, progress: Progress | None, recipe: Recipe = RECIPE,
               seed: int = SEED) -> dict:
    import copy

    import torch
    import transformers
    from transformers import GenerationConfig, LlamaForCausalLM
    from transformers.utils import logging as hf_logging

    started = time.time()
    report = _Reporter(progress)
    threads = torch.get_num_threads()
    torch.set_num_threads(_threads())
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        _seed_everything(seed)
        report("data", 0.0)
        task_map = _tasks.TASKS
        rng = random.Random(f"llmcombo-zoo:{seed}")
        generic = generic_spanish(rng, recipe.n_generic)
        orders = [f"{_tasks.ORDEN} {e.prompt}" for t in task_map.values() for e in t.train]
        catalog = [f"{_tasks.COMANDO} {c}" for t in task_map.values() for c in t.commands]
        report("data", 1.0)

        tok_texts = ([_tasks.format_example(e) for t in task_map.values() for e in t.train]
                     + catalog + generic + [" ".join(_tasks.SELECTOR_LABELS.values())] * 10)
        tokenizer = train_tokenizer(tok_texts, recipe.vocab_size)
        report("tokenizer", 1.0)

        config = _model_config(tokenizer, recipe)
        gen_config = GenerationConfig(bos_token_id=tokenizer.bos_token_id,
                                      eos_token_id=tokenizer.eos_token_id,
                                      pad_token_id=tokenizer.pad_token_id, do_sample=False,
                                      max_new_tokens=recipe.max_new_tokens)
        pad = tokenizer.pad_token_id
        torch.manual_seed(seed)
        base = LlamaForCausalLM(config)
        base.generation_config = gen_config
        base_rows = _encode_lm(tokenizer, orders + catalog + generic)
        losses = {"base": _train(base, base_rows, steps=recipe.base_steps, lr=recipe.base_lr,
                                 recipe=recipe, seed=seed, pad_id=pad,
                                 report=lambda f: report("base", f))}

        models = {"base": base}
        for i, name in enumerate(_tasks.TASK_NAMES):
            model = copy.deepcopy(base)
            rows = _encode_sft(tokenizer, task_map[name].train)
            losses[name] = _train(model, rows, steps=recipe.task_steps, lr=recipe.task_lr,
                                  recipe=recipe, seed=seed + 1 + i, pad_id=pad,
                                  report=functools.partial(report, name))
            models[name] = model
        selector = copy.deepcopy(base)
        rows = _encode_sft(tokenizer, _tasks.selector_examples("train"))
        losses["selector"] = _train(selector, rows, steps=recipe.selector_steps,
                                    lr=recipe.selector_lr, recipe=recipe, seed=seed + 10,
                                    pad_id=pad, report=lambda f: report("selector", f))
        models["selector"] = selector

        accuracies = {}
        for i, name in enumerate(MODEL_NAMES):
            accuracies[name] = evaluate(models[name], tokenizer)
            report("evaluate", (i + 1) / len(MODEL_NAMES))

        manifest: dict[str, Any] = {
            "zoo_version": ZOO_VERSION, "seed": seed, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "architecture": "LlamaForCausalLM", "dtype": "float32",
            "recipe": asdict(recipe),
            "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
            "tasks": {n: {"description": t.description, "train": len(t.train), "test": len(t.test),
                          "selector_label": t.label} for n, t in task_map.items()},
            "models": {},
        }
        for i, name in enumerate(MODEL_NAMES):
            folder = out / name
            models[name].save_pretrained(folder, safe_serialization=True)
            tokenizer.save_pretrained(folder)
            manifest["models"][name] = {
                "path": name,
                "parameters": sum(p.numel() for p in models[name].parameters()),
                "size_bytes": _folder_size(folder),
                "final_train_loss": round(losses[name], 4),
                "accuracy": {k: round(v, 4) for k, v in accuracies[name].items()},
            }
            report("save", (i + 1) / len(MODEL_NAMES))
        manifest["build_seconds"] = round(time.time() - started, 1)
        # written last: a folder with zoo.json is a complete zoo
        (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        return manifest
    finally:
        report.close()
        torch.set_num_threads(threads)
        hf_logging.set_verbosity(verbosity)
