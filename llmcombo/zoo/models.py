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
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

from llmcombo.errors import UserError
from llmcombo.fsutil import staged_dir
from llmcombo.zoo import tasks as _tasks
from llmcombo.zoo import natural as _natural
from llmcombo.zoo.measure import _folder_size, accuracy, evaluate, generate_commands, route
from llmcombo.zoo.tokenizer import save_tokenizer, train_tokenizer
from llmcombo.zoo.training import (RECIPE, SEED, Recipe, _encode_lm, _encode_sft, _model_config,
                                   _seed_everything, _threads, _train, pretraining_texts)
from llmcombo.zoo.store import (ENV_DIR, MANIFEST, MODEL_NAMES, ZOO_VERSION, Zoo, _read_manifest,
                                cache_dir, default_dir, is_complete)

if TYPE_CHECKING:  # pragma: no cover
    pass

Progress = Callable[[str, float], None]

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

    WEIGHTS = {"data": 0.02, "tokenizer": 0.02, "base": 0.50, "domotica": 0.10, "tiempo": 0.10,
               "selector": 0.12, "evaluate": 0.12, "save": 0.02}

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
# training the zoo (data: training.py, tokenizer: tokenizer.py, measurements: measure.py)
# ---------------------------------------------------------------------------------------------


def train_models(recipe: Recipe = RECIPE, seed: int = SEED, progress: Progress | None = None,
                 only: Sequence[str] = MODEL_NAMES, base=None, tokenizer=None) -> dict:
    """Train the zoo's models in memory: ``{"tokenizer", "models": {name: model},
    "losses", "seconds": {stage: s}}``. ``base``/``tokenizer``: reuse a trained base."""
    import copy

    import torch
    from transformers import GenerationConfig, LlamaForCausalLM

    report = progress or (lambda stage, f: None)
    seconds: dict[str, float] = {}
    t0 = time.time()
    _seed_everything(seed)
    task_map = _tasks.TASKS
    texts = pretraining_texts(recipe, seed)
    seconds["data"] = time.time() - t0
    t0 = time.time()
    if tokenizer is None:
        tok_texts = ([_tasks.format_example(e) for t in task_map.values() for e in t.train]
                     + texts["natural"] + texts["catalog"] + texts["generic"]
                     + [" ".join(_tasks.SELECTOR_LABELS.values())] * 10)
        tokenizer = train_tokenizer(tok_texts, recipe.vocab_size, recipe.max_position_embeddings)
    report("tokenizer", 1.0)
    seconds["tokenizer"] = time.time() - t0
    pad = tokenizer.pad_token_id
    losses: dict[str, float] = {}
    models: dict[str, Any] = {}
    t0 = time.time()
    base_rows = None
    if base is None or recipe.task_replay > 0:
        base_rows = _encode_lm(tokenizer, texts["orders"] + texts["natural"] + texts["catalog"]
                               + texts["generic"] + texts["format"])
    if base is None:
        config = _model_config(tokenizer, recipe)
        torch.manual_seed(seed)
        base = LlamaForCausalLM(config)
        base.generation_config = GenerationConfig(
            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id, do_sample=False,
            max_new_tokens=recipe.max_new_tokens)
        losses["base"] = _train(base, base_rows, steps=recipe.base_steps, lr=recipe.base_lr,
                                recipe=recipe, seed=seed, pad_id=pad,
                                report=lambda f: report("base", f))
    models["base"] = base
    seconds["base"] = time.time() - t0
    for i, name in enumerate(_tasks.TASK_NAMES):
        if name not in only:
            continue
        t0 = time.time()
        model = copy.deepcopy(base)
        examples = list(task_map[name].train)
        if recipe.task_natural:
            examples += _natural.natural_task_examples(name, recipe.task_natural, seed)
        rows = _encode_sft(tokenizer, examples)
        losses[name] = _train(model, rows, steps=recipe.task_steps, lr=recipe.task_lr,
                              recipe=recipe, seed=seed + 1 + i, pad_id=pad,
                              report=functools.partial(report, name),
                              weight_decay=recipe.task_weight_decay,
                              decay_to_base=recipe.task_decay_to_base,
                              trainable=recipe.task_trainable,
                              min_lr_frac=recipe.task_min_lr_frac,
                              replay_rows=base_rows, replay_frac=recipe.task_replay,
                              label_smoothing=recipe.task_label_smoothing)
        models[name] = model
        seconds[name] = time.time() - t0
    if "selector" in only:
        t0 = time.time()
        selector = copy.deepcopy(base)
        if recipe.n_natural_selector:
            examples = _natural.selector_training_examples(recipe.n_natural_selector, seed)
        else:
            examples = _tasks.selector_examples("train")
        rows = _encode_sft(tokenizer, examples)
        losses["selector"] = _train(selector, rows, steps=recipe.selector_steps,
                                    lr=recipe.selector_lr, recipe=recipe, seed=seed + 10,
                                    pad_id=pad, report=lambda f: report("selector", f))
        models["selector"] = selector
        seconds["selector"] = time.time() - t0
    return {"tokenizer": tokenizer, "models": models, "losses": losses, "seconds": seconds}


def _train_zoo(out: Path, progress: Progress | None, recipe: Recipe = RECIPE,
               seed: int = SEED) -> dict:
    import torch
    import transformers
    from transformers.utils import logging as hf_logging

    started = time.time()
    out = Path(out)
    report = _Reporter(progress)
    threads = torch.get_num_threads()
    torch.set_num_threads(_threads())
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        report("data", 1.0)
        trained = train_models(recipe, seed, progress=report)
        tokenizer, models, losses = trained["tokenizer"], trained["models"], trained["losses"]
        t0 = time.time()
        accuracies, val_accuracies = {}, {}
        for i, name in enumerate(MODEL_NAMES):
            accuracies[name] = evaluate(models[name], tokenizer)
            if name != "selector":
                val_accuracies[name] = evaluate(models[name], tokenizer, split="validation")
            report("evaluate", (i + 1) / len(MODEL_NAMES))
        # the selector routes by comparing the labels' probabilities (what the router does)
        sel_routes = []
        sel_expected = []
        for name, task in _tasks.TASKS.items():
            sel_routes += route(models["selector"], tokenizer, [e.prompt for e in task.test])
            sel_expected += [task.label] * len(task.test)
        accuracies["selector"]["routing_by_scores"] = accuracy(sel_routes, sel_expected)
        trained["seconds"]["evaluate"] = time.time() - t0

        manifest: dict[str, Any] = {
            "zoo_version": ZOO_VERSION, "seed": seed,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "architecture": "LlamaForCausalLM", "dtype": "float32",
            "recipe": asdict(recipe),
            "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
            "tasks": {n: {"description": t.description, "train": len(t.train),
                          "validation": len(t.validation), "test": len(t.test),
                          "selector_label": t.label}
                      for n, t in _tasks.TASKS.items()},
            "models": {},
        }
        for i, name in enumerate(MODEL_NAMES):
            folder = out / name
            models[name].save_pretrained(folder, safe_serialization=True)
            save_tokenizer(tokenizer, folder)
            manifest["models"][name] = {
                "path": name,
                "parameters": sum(p.numel() for p in models[name].parameters()),
                "size_bytes": _folder_size(folder),
                "final_train_loss": round(losses[name], 4),
                "accuracy": {k: round(v, 4) for k, v in accuracies[name].items()},
            }
            if name in val_accuracies:
                manifest["models"][name]["validation_accuracy"] = {
                    k: round(v, 4) for k, v in val_accuracies[name].items()}
            report("save", (i + 1) / len(MODEL_NAMES))
        manifest["stage_seconds"] = {k: round(v, 1) for k, v in trained["seconds"].items()}
        manifest["build_seconds"] = round(time.time() - started, 1)
        manifest["threads"] = torch.get_num_threads()
        # written last: a folder with zoo.json is a complete zoo
        (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        return manifest
    finally:
        report.close()
        torch.set_num_threads(threads)
        hf_logging.set_verbosity(verbosity)


__all__ = ["RECIPE", "SEED", "Recipe", "accuracy", "build", "evaluate", "generate_commands",
           "route", "train_models", "train_tokenizer"]
