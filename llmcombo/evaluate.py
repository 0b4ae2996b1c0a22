"""Evaluation: task accuracy, perplexity and side-by-side generations, as tidy pandas frames.

Every metric comes back as rows of one shape, so results of several runs concatenate and save as
one CSV::

    product   task      metric    value   n    ci_low  ci_high
    ties      domotica  accuracy  0.62    300  0.56    0.67
    ties      tiempo    accuracy  0.71    300  0.66    0.76
    domotica  domotica  perplexity 1.9    300  1.85    1.95

::

    from llmcombo import evaluate as ev
    df = ev.evaluate({"ties": "out/ties", "router": "router.yaml"}, tasks=["domotica", "tiempo"])
    df = pd.concat([df, ev.evaluate_accuracy("zoo:domotica", "my_orders.jsonl")])
    ev.save_results(df, "results.csv")

* **accuracy** -- exact match of :func:`llmcombo.datasets.normalize_answer` of the product's answer
  against the expected command, on the held-out split of a zoo task or on a user's JSONL/CSV file
  of ``prompt``/``expected`` pairs; 95 % Wilson score interval.
* **perplexity** -- of a single model on a list of texts (or a text file): batched, no gradients,
  right-padded with the padding masked out, so it equals ``exp`` of the mean negative
  log-likelihood over the real predicted tokens of all texts (each text scored as if alone);
  95 % percentile bootstrap over texts (seeded).
* **generations** -- :func:`sample_generations`: prompt, expected, one column per product.

A product is anything :func:`llmcombo.ensemble.load_product` accepts (model folder, hub id,
``zoo:NAME``, ensemble configuration or spec) or a :class:`~llmcombo.ensemble.Product`.
Long evaluations report progress through ``progress``: ``None`` (a tqdm bar when stderr is a
terminal), an object with ``start/update/close`` (:class:`llmcombo.run.Progress`, what the widgets
implement) or a callable ``fn(done, total, desc)``.

The frame itself (columns, rows, intervals, CSV io) is :mod:`llmcombo.tidy`; the
lm-evaluation-harness bridge is :mod:`llmcombo.lmeval`. Both are re-exported here.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

from llmcombo.datasets import (Dataset, Example, dataset, load_examples, normalize_answer,
                               read_texts, task_names)
from llmcombo.errors import UserError
from llmcombo.lmeval import evaluate_lm_eval, lm_eval_frame
from llmcombo.progress import as_progress, phase
from llmcombo.tidy import (COLUMNS, Z95, accuracy_table, bootstrap_perplexity_interval, frame,
                           load_results, product_name, row, save_results, wilson_interval)


# ---------------------------------------------------------------------------------------------
# products
# ---------------------------------------------------------------------------------------------


def _products(products: Any) -> dict[str, Any]:
    if isinstance(products, Mapping) and not ("ensemble" in products or "kind" in products):
        return dict(products)
    if isinstance(products, (list, tuple)):
        out: dict[str, Any] = {}
        for p in products:
            name = product_name(p)
            if name in out:
                raise UserError(f"two products are both called {name!r}.",
                                hint="Pass a dict {name: product} to name them.")
            out[name] = p
        return out
    return {product_name(products): products}


def answer_examples(product: Any, examples: Sequence, *, batch_size: int = 64,
                    progress: Any = None, desc: str = "answering") -> list[str]:
    """The product's answers (text) to the examples' prompts, in chunks of ``batch_size``."""
    from llmcombo.ensemble import load_product

    prod = load_product(product)
    prompts = [e.prompt for e in examples]
    answers: list[str] = []
    with phase(as_progress(progress), len(prompts), desc) as bar:
        for start in range(0, len(prompts), batch_size):
            chunk = prompts[start: start + batch_size]
            answers += [a.text for a in prod.answer_batch(chunk)]
            bar.update(len(chunk))
    return answers


def accuracy_row(product: str, task: str, answers: Sequence[str], expected: Sequence[str]) -> dict:
    """The tidy accuracy row for answers against expected commands (exact match after
    :func:`~llmcombo.datasets.normalize_answer`), with its Wilson interval."""
    if len(answers) != len(expected):
        raise ValueError(f"{len(answers)} answers for {len(expected)} expected values")
    k = sum(normalize_answer(a) == normalize_answer(e) for a, e in zip(answers, expected))
    n = len(expected)
    lo, hi = wilson_interval(k, n)
    return row(product, task, "accuracy", k / n if n else math.nan, n, lo, hi, correct=k)


def evaluate_accuracy(product: Any, data: Any = None, *, name: str | None = None,
                      limit: int | None = None, batch_size: int = 64, progress: Any = None):
    """Exact-match accuracy of one product on each dataset in ``data`` (a zoo task name, a
    JSONL/CSV path, examples, or a list of those). One row per dataset."""
    if data is None:
        data = task_names()
    sources = [data] if isinstance(data, (str, os.PathLike, Dataset)) else list(data)
    if sources and not isinstance(sources[0], (str, os.PathLike, Dataset)):
        sources = [data]  # a plain list of examples
    label = name or product_name(product)
    rows = []
    for src in sources:
        ds = dataset(src, limit=limit)
        answers = answer_examples(product, ds.examples, batch_size=batch_size, progress=progress,
                                  desc=f"{label} on {ds.name}")
        rows.append(accuracy_row(label, ds.name, answers, [e.expected for e in ds.examples]))
    return frame(rows)


def evaluate(products: Any, tasks: Any = None, *, limit: int | None = None,
             batch_size: int = 64, progress: Any = None):
    """Accuracy of every product on every task: ``products`` is one product, a list, or a dict
    ``{name: product}``. Returns one tidy frame."""
    import pandas as pd

    frames = [evaluate_accuracy(p, tasks, name=n, limit=limit, batch_size=batch_size,
                                progress=progress) for n, p in _products(products).items()]
    return pd.concat(frames, ignore_index=True) if frames else frame([])


# ---------------------------------------------------------------------------------------------
# perplexity
# ---------------------------------------------------------------------------------------------


def model_and_tokenizer(model: Any):
    """``(model, tokenizer)`` from a single-model product, a loaded model, a pair, or a reference."""
    if isinstance(model, tuple) and len(model) == 2:
        return model
    if hasattr(model, "model") and hasattr(model, "tokenizer"):  # members.LoadedModel
        return model.model, model.tokenizer
    from llmcombo.ensemble import members as M
    from llmcombo.ensemble import products as P

    if isinstance(model, P.SingleModel) and model.member.backend != "transformers" or \
            isinstance(model, (str, os.PathLike)) and str(model).lower().endswith(".gguf"):
        raise UserError("perplexity is measured with transformers, not on a llama.cpp (GGUF) "
                        "model.", hint="Give the model folder the GGUF file was made from.")
    if isinstance(model, P.SingleModel):
        lm = model.member.lm
        return lm.model, lm.tokenizer
    if isinstance(model, P.Product):
        raise UserError(f"perplexity needs one language model; a {model.kind} ensemble has "
                        "several.", hint="Measure the perplexity of its member models instead.")
    if isinstance(model, (str, os.PathLike)):
        p = Path(model)
        if p.is_file() and p.suffix.lower() in (".yaml", ".yml", ".json"):
            raise UserError(f"perplexity needs one language model, not a configuration ({p}).",
                            hint="Give a model folder, zoo:NAME or a hub id.")
        lm = M.load_model(str(model))
        return lm.model, lm.tokenizer
    raise UserError(f"cannot measure the perplexity of {type(model).__name__}.",
                    hint="Give a model folder, zoo:NAME, a hub id or (model, tokenizer).")


def token_nll(model: Any, texts: Sequence[str], *, batch_size: int = 16, progress: Any = None,
              add_special_tokens: bool = True) -> tuple[list[float], list[int]]:
    """Per text: the summed negative log-likelihood (nats) of its tokens after the first, and how
    many tokens that is. Batches are right-padded; padded positions are masked out of the
    attention and of the sum, so each text gets the value it would get alone."""
    import torch

    if isinstance(texts, str):
        raise UserError("perplexity needs a list of texts (or a file path given to perplexity()).")
    lm, tok = model_and_tokenizer(model)
    texts = list(texts)
    if any(not isinstance(t, str) for t in texts):
        raise UserError("perplexity needs a list of texts.")
    encoded = [list(ids) for ids in tok(texts, add_special_tokens=add_special_tokens)["input_ids"]]
    pad = tok.pad_token_id if getattr(tok, "pad_token_id", None) is not None else 0
    device = getattr(lm, "device", "cpu")
    sums: list[float] = []
    counts: list[int] = []
    was_training = getattr(lm, "training", False)
    if hasattr(lm, "eval"):
        lm.eval()
    try:
        with torch.inference_mode(), phase(as_progress(progress), len(encoded), "perplexity") as bar:
            for start in range(0, len(encoded), batch_size):
                chunk = encoded[start: start + batch_size]
                width = max(1, max(len(ids) for ids in chunk))
                ids = torch.full((len(chunk), width), pad, dtype=torch.long)
                mask = torch.zeros((len(chunk), width), dtype=torch.long)
                for i, seq in enumerate(chunk):
                    ids[i, : len(seq)] = torch.tensor(seq, dtype=torch.long)
                    mask[i, : len(seq)] = 1
                logits = lm(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
                logp = torch.log_softmax(logits[:, :-1].double(), dim=-1)
                target = ids[:, 1:].to(logp.device)
                real = mask[:, 1:].to(logp.device).bool()
                nll = -logp.gather(-1, target.unsqueeze(-1)).squeeze(-1)
                nll = torch.where(real, nll, torch.zeros_like(nll))
                sums += nll.sum(1).tolist()
                counts += real.sum(1).tolist()
                bar.update(len(chunk))
    finally:
        if was_training:
            lm.train()
    return sums, [int(c) for c in counts]


def perplexity(model: Any, texts: Sequence[str] | str | os.PathLike, *, batch_size: int = 16,
               progress: Any = None) -> float:
    """``exp`` of the mean per-token negative log-likelihood over all real tokens of ``texts``."""
    if isinstance(texts, (str, os.PathLike)):
        texts = read_texts(texts)
    sums, counts = token_nll(model, texts, batch_size=batch_size, progress=progress)
    if sum(counts) == 0:
        raise UserError("the texts are too short: no token to predict (each text needs at least "
                        "two tokens).")
    return math.exp(sum(sums) / sum(counts))


def evaluate_perplexity(model: Any, texts: Sequence[str] | str | os.PathLike, *,
                        name: str | None = None, task: str | None = None, batch_size: int = 16,
                        progress: Any = None, resamples: int = 1000, seed: int = 0):
    """A one-row tidy frame: perplexity, ``n`` = number of texts, a bootstrap 95 % interval
    (texts resampled, seeded), and ``tokens`` = predicted tokens."""
    if isinstance(texts, (str, os.PathLike)):
        task = task or Path(texts).stem
        texts = read_texts(texts)
    sums, counts = token_nll(model, texts, batch_size=batch_size, progress=progress)
    total = sum(counts)
    if total == 0:
        raise UserError("the texts are too short: no token to predict.")
    keep = [(s, c) for s, c in zip(sums, counts) if c > 0]
    lo, hi = bootstrap_perplexity_interval([s for s, _ in keep], [c for _, c in keep],
                                           resamples=resamples, seed=seed)
    label = name or (product_name(model) if isinstance(model, (str, os.PathLike)) else "model")
    return frame([row(label, task or "texts", "perplexity", math.exp(sum(sums) / total),
                      len(texts), lo, hi, tokens=total)])


# ---------------------------------------------------------------------------------------------
# side by side
# ---------------------------------------------------------------------------------------------


def sample_generations(products: Any, examples: Any, *, n: int | None = 10,
                       batch_size: int = 64, progress: Any = None):
    """A frame with ``prompt``, ``expected`` and one column of answers per product, for the
    first ``n`` examples of ``examples`` (anything :func:`dataset` accepts)."""
    import pandas as pd

    ds = dataset(examples, limit=n)
    data = {"prompt": [e.prompt for e in ds.examples], "expected": [e.expected for e in ds.examples]}
    for name, p in _products(products).items():
        if name in data:
            raise UserError(f"a product cannot be called {name!r} here (a column of the table).")
        data[name] = answer_examples(p, ds.examples, batch_size=batch_size, progress=progress,
                                     desc=f"{name} samples")
    return pd.DataFrame(data)


__all__ = [
    "COLUMNS", "Dataset", "Z95", "accuracy_row", "accuracy_table", "answer_examples",
    "bootstrap_perplexity_interval", "Example", "dataset", "evaluate", "evaluate_accuracy",
    "model_and_tokenizer", "evaluate_lm_eval", "evaluate_perplexity", "frame", "lm_eval_frame",
    "load_examples", "load_results", "perplexity", "product_name", "read_texts", "row",
    "sample_generations", "save_results", "token_nll", "wilson_interval",
]
