"""Measuring zoo models: greedy task answers, exact-match accuracy, routing by the labels'
scores, the held-out evaluation written into the manifest, the hand-written natural prompt sets."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

from llmcombo.zoo import tasks as _tasks
from llmcombo.zoo.training import RECIPE

LABELS = tuple(_tasks.SELECTOR_LABELS.values())  # the selector's route labels

def generate_commands(model, tokenizer, prompts: Sequence[str], max_new_tokens: int = 16,
                      batch_size: int = 64) -> list[str]:
    """Greedy answers of ``model`` to task ``prompts`` (plain orders, or already formatted with
    :func:`llmcombo.tasks.format_prompt`), parsed with :func:`llmcombo.tasks.parse_command`.

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
    """Exact match of :func:`llmcombo.tasks.normalize_command` (0..1)."""
    if not expected:
        return 0.0
    norm = _tasks.normalize_command
    return sum(norm(a) == norm(e) for a, e in zip(answers, expected)) / len(expected)


def route_scores(model, tokenizer, prompts: Sequence[str],
                 labels: Sequence[str] = LABELS,
                 batch_size: int = 64) -> list[dict[str, float]]:
    """``{label: probability}`` per prompt: log-probability of each label (its tokens, then eos)
    after ``format_prompt(prompt)``, softmax over the labels (as the router's label-model
    selector does). The route is the argmax; nothing is generated."""
    import torch

    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    rows, spans = [], []
    for p in prompts:
        fp = _tasks.format_prompt(p)
        p_ids = tokenizer(fp)["input_ids"]
        for lab in labels:
            ids = tokenizer(f"{fp} {lab}")["input_ids"] + [eos]
            assert ids[: len(p_ids)] == p_ids
            rows.append(ids)
            spans.append(len(p_ids))
    out_lp = []
    model.eval()
    with torch.inference_mode():
        for s in range(0, len(rows), batch_size):
            chunk, sp = rows[s: s + batch_size], spans[s: s + batch_size]
            width = max(len(r) for r in chunk)
            ids = torch.full((len(chunk), width), pad, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for i, r in enumerate(chunk):
                ids[i, : len(r)] = torch.tensor(r)  # right padding: positions stay 0..n
                mask[i, : len(r)] = 1
            logp = torch.log_softmax(model(input_ids=ids, attention_mask=mask).logits.float(), -1)
            for i, r in enumerate(chunk):
                tgt = torch.tensor(r[sp[i]:])
                out_lp.append(float(logp[i, sp[i] - 1: len(r) - 1].gather(1, tgt[:, None]).sum()))
    res = []
    k = len(labels)
    for j in range(len(prompts)):
        lp = torch.tensor(out_lp[j * k: (j + 1) * k], dtype=torch.float64)
        res.append(dict(zip(labels, torch.softmax(lp, 0).tolist())))
    return res


def route(model, tokenizer, prompts: Sequence[str], labels: Sequence[str] = LABELS) -> list[str]:
    """The argmax label of :func:`route_scores` per prompt."""
    return [max(s, key=lambda lab: s[lab]) for s in route_scores(model, tokenizer, prompts, labels)]


def evaluate(model, tokenizer, batch_size: int = 100, split: str = "test",
             tasks: Sequence[str] | None = None) -> dict[str, float]:
    """Accuracy of ``model`` on each task's ``split`` (held-out test by default), and its routing
    accuracy: the share of greedy answers that are the right selector label (as in v1)."""
    result: dict[str, float] = {}
    routing_answers: list[str] = []
    routing_expected: list[str] = []
    for name, task in _tasks.TASKS.items():
        if tasks is not None and name not in tasks:
            continue
        data = task.split(split)
        answers = generate_commands(model, tokenizer, [e.prompt for e in data],
                                    max_new_tokens=RECIPE.max_new_tokens, batch_size=batch_size)
        result[name] = accuracy(answers, [e.expected for e in data])
        routing_answers += answers
        routing_expected += [task.label] * len(data)
    if tasks is None:
        result["routing"] = accuracy(routing_answers, routing_expected)
    return result


def load_natural(folder: str | os.PathLike) -> dict[str, list[dict]]:
    """The hand-written natural prompt sets ``{task: [{"prompt", "route", "expected"?}]}``."""
    folder = Path(folder)
    return {name: [json.loads(line) for line in (folder / f"{name}.jsonl").read_text(
        encoding="utf-8").splitlines() if line.strip()] for name in _tasks.TASK_NAMES}


def _folder_size(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
