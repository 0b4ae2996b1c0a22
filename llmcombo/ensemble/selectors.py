"""Selectors of a router, and :func:`train_selector`.

Every selector maps prompts to :class:`Choice` ``(label, confidence, answer, scores, reason)``;
confidence is in [0, 1] and the router compares it with the threshold:

``label_model``
    a causal LM trained to answer a route label (``LLM1``) after the prompt in its template, as in
    the seed's selector. Every route label (then end of sequence) is scored after the prompt (the
    prompt runs once, the labels on its cache) and the scores are normalised over the labels; the
    selector picks the most probable label. It never reads free text: a model whose greedy answer
    is not a label (``LLM en bilbaoM``) still ranks the labels, and an unsure ranking shows as a low
    confidence, which the router's threshold turns into the fallback.
    Confidence = the chosen label's probability among the route labels (the raw probability of
    the whole sequence is not used because the tokens every label shares (``LL``, ``M``) carry no
    decision yet lower it: the zoo selector gives 0.57 to a sure ``LLM2``).
``embedding``
    mean-pooled hidden states of the prompt (one forward pass, stopped after ``layer``;
    ``layer: 0`` reads only the token embeddings) compared by cosine with the centroid of each
    route's example prompts, like mergekit's ``hidden`` gate mode; confidence =
    softmax(similarity / temperature) of the best. On the zoo (bench/router_overhead.py) the last
    layer routes best and costs one forward pass of zoo:base, a sizeable share of a short
    answer; ``layer: 0`` costs almost nothing and routes a little worse.
``keywords``
    words of the prompt (case and accents ignored) that start with a route's keyword; confidence =
    the best route's share of the matches; no match or a tie: the fallback answers.
``classifier``
    a logistic regression on hidden states written by ``train_selector(kind="hidden_classifier")``;
    confidence = its probability.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from llmcombo.ensemble import members as M
from llmcombo.ensemble.rules import _fold
from llmcombo.ensemble.spec import DEFAULT_TEMPLATE
from llmcombo.errors import UserError
from llmcombo.fsutil import staged_dir

CLASSIFIER_FILE = "selector.json"


@dataclass
class Choice:
    label: str | None
    confidence: float
    answer: str | None = None  # what the selector said (label model) or its best label
    scores: dict[str, float] = field(default_factory=dict)
    reason: str | None = None  # why there is no label


class Selector:
    kind = "selector"
    member: Any = None

    @property
    def backend(self) -> str | None:
        """What runs the selector's model (None: the keyword selector has none)."""
        return self.member.backend if self.member is not None else None

    def select(self, prompts: Sequence[str]) -> list[Choice]:  # pragma: no cover
        raise NotImplementedError

    def members(self) -> list:
        return []


def _member(spec: dict, device, dtype, base_dir, template=None, model=None):
    return M.Member({"model": model or spec["model"], "ref": spec.get("ref"),
                     "template": template or spec.get("template") or DEFAULT_TEMPLATE,
                     "output": "line", "max_new_tokens": 8, "backend": spec.get("backend"),
                     "threads": spec.get("threads"), "quant": spec.get("quant")},
                    device, dtype, base_dir)


class LabelModelSelector(Selector):
    kind = "label_model"

    def __init__(self, spec: dict, labels: Sequence[str], device="auto", dtype="auto",
                 base_dir=None):
        self.member = _member(spec, device, dtype, base_dir)
        self.labels = list(labels)

    def members(self) -> list:
        return [self.member]

    def select(self, prompts: Sequence[str]) -> list[Choice]:
        """The most probable route label of each prompt (argmax over the labels' scores)."""
        rendered = [self.member.render(p) for p in prompts]
        probs, greedy = self.label_probabilities(rendered)
        out = []
        for pr, written in zip(probs, greedy):
            best = max(self.labels, key=lambda lab: pr[lab])  # the first among equals
            reason = None if written is not None else (
                "the selector's own text is not a route label; chosen by the labels' scores")
            out.append(Choice(best, pr[best], best, pr, reason))
        return out

    def label_probabilities(self, rendered: Sequence[str]
                            ) -> tuple[list[dict[str, float]], list[str | None]]:
        """Per rendered prompt: ``{label: probability}`` normalised over the route labels, and
        the label greedy decoding would write (None when it would write something else: greedy
        decoding writes label L exactly when L's every token, then end of sequence, is the most
        likely one, which the same pass shows). The prompts run once, the labels on top of their
        cache (:func:`llmcombo.ensemble.members.score_options`); nothing is generated."""
        import torch

        scored = M.score_options(self.member.lm, rendered, self.labels)
        lps = torch.tensor([[s.reduce("sum") for s in row] for row in scored],
                           dtype=torch.float64).view(len(rendered), len(self.labels))
        table = torch.softmax(lps, dim=-1).tolist()
        greedy = [next((lab for lab, s in zip(self.labels, row) if s.greedy), None)
                  for row in scored]
        return [dict(zip(self.labels, row)) for row in table], greedy


class EmbeddingSelector(Selector):
    kind = "embedding"

    def __init__(self, spec: dict, routes: Sequence[dict], device="auto", dtype="auto",
                 base_dir=None):
        self.member = _member(spec, device, dtype, base_dir)
        self.layer = int(spec.get("layer", -1))
        self.temperature = float(spec.get("temperature", 0.05))
        self.examples = {r["label"]: list(r.get("examples") or []) for r in routes}
        missing = [lab for lab, ex in self.examples.items() if not ex]
        if missing:
            raise UserError(f"the embedding selector needs example prompts for every route; "
                            f"{', '.join(missing)} has none.", hint="Add examples to each route.")
        self._centroids = None

    def members(self) -> list:
        return [self.member]

    def centroids(self):
        import torch

        if self._centroids is None:
            rows = []
            for lab, ex in self.examples.items():
                e = M.embed(self.member.lm, [self.member.render(x) for x in ex], self.layer)
                rows.append(torch.nn.functional.normalize(e.mean(0), dim=0))
            self._centroids = torch.stack(rows)
        return self._centroids

    def select(self, prompts: Sequence[str]) -> list[Choice]:
        import torch

        cents = self.centroids()
        emb = M.embed(self.member.lm, [self.member.render(p) for p in prompts], self.layer)
        sims = emb @ cents.T
        probs = torch.softmax(sims / self.temperature, dim=-1)
        labels = list(self.examples)
        out = []
        for s, p in zip(sims.tolist(), probs.tolist()):
            best = max(range(len(labels)), key=lambda i: p[i])
            out.append(Choice(labels[best], p[best], labels[best],
                              {lab: sv for lab, sv in zip(labels, s)}))
        return out


class KeywordSelector(Selector):
    kind = "keywords"

    def __init__(self, routes: Sequence[dict]):
        self.keywords = {r["label"]: [_fold(k) for k in (r.get("keywords") or [])] for r in routes}
        # one compiled pattern per keyword: whole words, the last one matched by its start
        self._patterns = {lab: [self._pattern(k) for k in kws if k]
                          for lab, kws in self.keywords.items()}

    @staticmethod
    def _pattern(keyword: str):
        import re

        return re.compile(r"(?<!\S)" + " ".join(re.escape(w) for w in keyword.split()))

    def select(self, prompts: Sequence[str]) -> list[Choice]:
        import re

        out = []
        for p in prompts:
            text = " ".join(re.sub(r"[^\w\s]", " ", _fold(p)).split())
            counts: dict[str, float] = {lab: sum(pat.search(text) is not None for pat in pats)
                                        for lab, pats in self._patterns.items()}
            total = sum(counts.values())
            if total == 0:
                out.append(Choice(None, 0.0, None, counts, "no keyword of any route matched"))
                continue
            top = max(counts.values())
            best = [lab for lab, c in counts.items() if c == top]
            if len(best) > 1:
                out.append(Choice(None, top / total, None, counts,
                                  f"keywords of {', '.join(best)} matched equally"))
                continue
            out.append(Choice(best[0], top / total, best[0], counts))
        return out


class ClassifierSelector(Selector):
    kind = "classifier"

    def __init__(self, folder: str | os.PathLike, device="auto", dtype="auto", base_dir=None,
                 labels: Sequence[str] | None = None, backend_spec: dict | None = None):
        import torch

        from llmcombo import modelref

        folder = Path(modelref.resolve(str(folder), base_dir))
        meta_file = folder / CLASSIFIER_FILE
        if not meta_file.is_file():
            raise UserError(f"{folder} has no {CLASSIFIER_FILE}: it is not a classifier written "
                            "by train_selector.", field="ensemble.router.selector.model")
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
        self.meta = meta
        self.labels = list(meta["labels"])
        if labels is not None and set(labels) - set(self.labels):
            missing = sorted(set(labels) - set(self.labels))
            raise UserError(f"the classifier in {folder} knows the labels "
                            f"{', '.join(self.labels)}, not {', '.join(missing)}.",
                            field="ensemble.router.routes",
                            hint="Use the classifier's labels for the routes, or retrain it.")
        self.layer = int(meta["layer"])
        self.member = _member(dict(backend_spec or {}), device, dtype, None,
                              template=meta.get("template"), model=meta["base"])
        self.weight = torch.tensor(meta["weight"], dtype=torch.float32)
        self.bias = torch.tensor(meta["bias"], dtype=torch.float32)

    def members(self) -> list:
        return [self.member]

    def probabilities(self, prompts: Sequence[str]):
        import torch

        emb = M.embed(self.member.lm, [self.member.render(p) for p in prompts], self.layer)
        return torch.softmax(emb @ self.weight.T + self.bias, dim=-1)

    def select(self, prompts: Sequence[str]) -> list[Choice]:
        out = []
        for p in self.probabilities(prompts).tolist():
            best = max(range(len(self.labels)), key=lambda i: p[i])
            out.append(Choice(self.labels[best], p[best], self.labels[best],
                              dict(zip(self.labels, p))))
        return out


def make_selector(spec: dict, routes: Sequence[dict], device="auto", dtype="auto",
                  base_dir=None) -> Selector:
    kind = spec.get("kind")
    labels = [r["label"] for r in routes]
    if kind == "label_model":
        return LabelModelSelector(spec, labels, device, dtype, base_dir)
    if kind == "embedding":
        return EmbeddingSelector(spec, routes, device, dtype, base_dir)
    if kind == "keywords":
        return KeywordSelector(routes)
    if kind == "classifier":
        return ClassifierSelector(spec["model"], device, dtype, base_dir, labels,
                                  {k: spec.get(k) for k in ("backend", "threads", "quant")})
    raise UserError(f"unknown selector kind {kind!r}",
                    hint="label_model, embedding, keywords or classifier")


# ---------------------------------------------------------------------------------------------
# training a selector
# ---------------------------------------------------------------------------------------------


@dataclass
class SelectorReport:
    """What :func:`train_selector` did: where the selector is and how well it routes held-out
    prompts."""

    kind: str
    path: str
    labels: list[str]
    accuracy: float  # held-out routing accuracy
    per_label: dict[str, float]
    n_train: int
    n_test: int
    seconds: float
    final_loss: float | None = None

    def selector_config(self, threshold: float = 0.5) -> dict:
        """The ``selector:`` block of a router configuration that uses this selector."""
        kind = "label_model" if self.kind == "label_model" else "classifier"
        return {"kind": kind, "model": self.path, "threshold": threshold}


def _pairs(examples: Any) -> list[tuple[str, str]]:
    if isinstance(examples, dict):  # {label: [prompts]}
        return [(p, str(lab)) for lab, ps in examples.items() for p in ps]
    out = []
    for e in examples:
        if hasattr(e, "prompt"):
            out.append((e.prompt, str(e.expected)))
        else:
            p, lab = e
            out.append((p, str(lab)))
    return out


def _split(pairs, holdout: float, seed: int):
    rng = random.Random(seed)
    idx = list(range(len(pairs)))
    rng.shuffle(idx)
    k = max(1, int(round(len(pairs) * holdout)))
    test = [pairs[i] for i in sorted(idx[:k])]
    train = [pairs[i] for i in sorted(idx[k:])]
    return train, test


def train_selector(examples: Any, base: str = "zoo:base", out: str | os.PathLike | None = None,
                   kind: str = "label_model", *, test: Any = None, holdout: float = 0.2,
                   template: str = DEFAULT_TEMPLATE, steps: int = 60, lr: float = 5e-4,
                   batch_size: int = 32, layer: int = -1, seed: int = 0, device: str = "auto",
                   progress: Callable[[float], None] | None = None) -> SelectorReport:
    """Train a selector from labelled prompts and report its held-out routing accuracy.

    ``examples``: :class:`llmcombo.zoo.tasks.Example` (``expected`` is the label, as
    :func:`llmcombo.zoo.tasks.selector_examples` gives), ``(prompt, label)`` pairs, or
    ``{label: [prompts]}``. ``test``: held-out examples (default: ``holdout`` of ``examples``).

    ``kind="label_model"`` fine-tunes ``base`` (a causal LM) to answer the label after
    ``template`` (loss on the label only), like the seed's selector, and saves the model in
    ``out``. ``kind="hidden_classifier"`` fits a logistic regression on ``base``'s mean-pooled
    hidden states (``layer``) and saves ``selector.json`` in ``out``; ``base`` is not changed.
    ``out`` is written atomically (a temporary sibling renamed into place).
    """
    if kind not in ("label_model", "hidden_classifier"):
        raise UserError(f"unknown selector kind {kind!r}", hint="label_model or hidden_classifier")
    if str(base).lower().endswith(".gguf"):
        raise UserError("train_selector trains with transformers; a GGUF file cannot be its base.",
                        field="base", hint="Give the model folder (or zoo:NAME); the trained "
                                           "selector can then run on backend: llama_cpp.")
    pairs = _pairs(examples)
    if test is None:
        train, held = _split(pairs, holdout, seed)
    else:
        train, held = pairs, _pairs(test)
    labels = sorted({lab for _, lab in train})
    if len(labels) < 2:
        raise UserError("a selector needs examples of at least two labels.")
    if out is None:
        raise UserError("train_selector needs out: the folder to write the selector to.")
    out = Path(out).expanduser().absolute()
    started = time.perf_counter()
    report = progress or (lambda f: None)
    with staged_dir(out, tag="training") as tmp:
        if kind == "label_model":
            loss = _train_label_model(train, base, tmp, template, steps, lr, batch_size, seed,
                                      device, report)
        else:
            loss = _fit_classifier(train, labels, base, tmp, template, layer, seed, device, report)
    # held-out routing accuracy, with the selector as a router would use it
    if kind == "label_model":
        sel: Selector = LabelModelSelector({"model": str(out), "template": template}, labels,
                                           device)
    else:
        sel = ClassifierSelector(out, device)
    choices = sel.select([p for p, _ in held])
    hits: dict[str, list[bool]] = {}
    for (_, lab), c in zip(held, choices):
        hits.setdefault(lab, []).append(c.label == lab)
    n_ok = sum(sum(v) for v in hits.values())
    return SelectorReport(kind=kind, path=str(out), labels=labels,
                          accuracy=n_ok / max(1, len(held)),
                          per_label={k: sum(v) / len(v) for k, v in sorted(hits.items())},
                          n_train=len(train), n_test=len(held),
                          seconds=round(time.perf_counter() - started, 2), final_loss=loss)


def _train_label_model(train, base, out: Path, template, steps, lr, batch_size, seed, device,
                       report) -> float:
    import copy

    import torch

    lm = M.load_model(base, device=device)
    tok = lm.tokenizer
    model = copy.deepcopy(lm.model)  # never train the cached copy
    eos = tok.eos_token_id
    rows = []
    for p, lab in train:
        prompt = M.render(template, p)
        p_ids = list(tok(prompt)["input_ids"])
        full = list(tok(prompt + " " + lab)["input_ids"])
        if full[: len(p_ids)] != p_ids:
            full = p_ids + list(tok(" " + lab, add_special_tokens=False)["input_ids"])
        seq = full + [eos]
        rows.append((seq, [-100] * len(p_ids) + seq[len(p_ids):]))
    pad = tok.pad_token_id
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    warm = max(1, steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * s / steps))))
    model.train()
    losses = []
    for step in range(steps):
        idx = torch.randint(len(rows), (min(batch_size, len(rows)),), generator=gen).tolist()
        batch = [rows[i] for i in idx]
        width = max(len(r[0]) for r in batch)
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        labels = torch.full((len(batch), width), -100, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for i, (x, y) in enumerate(batch):  # right padding for training
            ids[i, : len(x)] = torch.tensor(x)
            labels[i, : len(y)] = torch.tensor(y)
            mask[i, : len(x)] = 1
        dev = lm.device
        loss = model(input_ids=ids.to(dev), attention_mask=mask.to(dev), labels=labels.to(dev)).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
        report((step + 1) / steps)
    model.eval()
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    tail = losses[-10:]
    return round(sum(tail) / len(tail), 4)


def _fit_classifier(train, labels, base, out: Path, template, layer, seed, device,
                    report) -> float:
    import torch

    from llmcombo import modelref

    lm = M.load_model(base, device=device)
    x = M.embed(lm, [M.render(template, p) for p, _ in train], layer)
    y = torch.tensor([labels.index(lab) for _, lab in train])
    torch.manual_seed(seed)
    w = torch.zeros((len(labels), x.shape[1]), requires_grad=True)
    b = torch.zeros(len(labels), requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=0.5, max_iter=200, line_search_fn="strong_wolfe")
    l2 = 1e-3

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(x @ w.T + b, y) + l2 * (w ** 2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():  # LBFGS.step returns the loss before fitting: report the loss after
        loss = torch.nn.functional.cross_entropy(x @ w.T + b, y)
    report(1.0)
    meta = {"kind": "hidden_classifier", "base": modelref.resolve(base),
            "base_ref": base, "layer": layer, "template": template, "labels": labels,
            "weight": w.detach().tolist(), "bias": b.detach().tolist(),
            "n_train": len(train)}
    (out / CLASSIFIER_FILE).write_text(json.dumps(meta) + "\n", encoding="utf-8")
    return round(float(loss), 4)
