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
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from llmcombo.datasets import (Dataset, Example, dataset, load_examples, normalize_answer,
                               read_texts, task_names)
from llmcombo.errors import OfflineError, UserError
from llmcombo.progress import as_progress, phase

COLUMNS = ["product", "task", "metric", "value", "n", "ci_low", "ci_high"]
Z95 = 1.959963984540054


# ---------------------------------------------------------------------------------------------
# intervals
# ---------------------------------------------------------------------------------------------


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a proportion ``successes / n`` (95 % by default).
    ``n == 0`` gives ``(nan, nan)``."""
    if n <= 0:
        return (math.nan, math.nan)
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be between 0 and n, not {successes} of {n}")
    p = successes / n
    denom = 1 + z * z / n
    center = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    lo = 0.0 if successes == 0 else max(0.0, center - half)
    hi = 1.0 if successes == n else min(1.0, center + half)
    return (lo, hi)


def bootstrap_perplexity_interval(nll_sums: Sequence[float], token_counts: Sequence[int], *,
                                  resamples: int = 1000, seed: int = 0,
                                  level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap of ``exp(sum nll / sum tokens)`` resampling whole texts."""
    import numpy as np

    nll = np.asarray(nll_sums, dtype=np.float64)
    tok = np.asarray(token_counts, dtype=np.float64)
    if len(nll) == 0:
        return (math.nan, math.nan)
    if len(nll) == 1:
        v = math.exp(nll[0] / tok[0])
        return (v, v)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(nll), size=(resamples, len(nll)))
    stats = np.exp(nll[idx].sum(1) / np.maximum(tok[idx].sum(1), 1))
    alpha = (1 - level) / 2
    lo, hi = np.quantile(stats, [alpha, 1 - alpha])
    return (float(lo), float(hi))


def row(product: str, task: str, metric: str, value: float, n: int, ci_low: float = math.nan,
        ci_high: float = math.nan, **extra: Any) -> dict:
    """One tidy result row (extra columns are allowed and kept)."""
    return {"product": product, "task": task, "metric": metric, "value": float(value), "n": int(n),
            "ci_low": float(ci_low), "ci_high": float(ci_high), **extra}


def frame(rows: Iterable[dict]):
    """A results frame with the standard columns first."""
    import pandas as pd

    df = pd.DataFrame(list(rows))
    if df.empty:
        return pd.DataFrame(columns=COLUMNS)
    for c in COLUMNS:
        if c not in df.columns:
            df[c] = math.nan
    return df[COLUMNS + [c for c in df.columns if c not in COLUMNS]]


# ---------------------------------------------------------------------------------------------
# products
# ---------------------------------------------------------------------------------------------


def product_name(x: Any) -> str:
    """A readable default name for a product reference."""
    if isinstance(x, (str, os.PathLike)):
        s = str(x)
        if s.startswith("zoo:"):
            return s[4:]
        p = Path(s)
        return p.stem if p.suffix.lower() in (".yaml", ".yml", ".json") else (p.name or s)
    if isinstance(x, Mapping):
        return str(x.get("name") or next((k for k in ("ensemble", "kind") if k in x), "product"))
    return getattr(x, "name", None) or type(x).__name__.lower()


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


# ---------------------------------------------------------------------------------------------
# saving
# ---------------------------------------------------------------------------------------------


def accuracy_table(df):
    """Accuracy as a wide table: one row per product (in order of appearance), one column per
    task."""
    d = df[df["metric"] == "accuracy"]
    wide = d.pivot_table(index="product", columns="task", values="value", sort=False)
    wide.columns.name = wide.index.name = None
    return wide


def save_results(df, path: str | os.PathLike) -> Path:
    """Write a results frame as CSV atomically (temporary file + rename)."""
    from llmcombo.fsutil import atomic_write

    return atomic_write(path, df.to_csv(index=False))


def load_results(path: str | os.PathLike):
    """Read a results CSV written by :func:`save_results` (checks the standard columns)."""
    import pandas as pd

    p = Path(path)
    if not p.is_file():
        raise UserError(f"results file not found: {p}")
    df = pd.read_csv(p)
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise UserError(f"{p} is not a results file: missing columns {', '.join(missing)}.")
    return df


# ---------------------------------------------------------------------------------------------
# lm-evaluation-harness bridge
# ---------------------------------------------------------------------------------------------

_OFFLINE_WORDS = ("connection", "offline", "resolve", "network", "unreachable", "timed out",
                  "max retries", "couldn't reach", "could not reach", "hf_hub_offline",
                  "name or service not known", "temporary failure")


def _looks_offline(exc: BaseException) -> bool:
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    text = f"{type(exc).__name__}: {exc}".lower()
    return any(w in text for w in _OFFLINE_WORDS)


def evaluate_lm_eval(product: Any, tasks: Sequence[str] | str, *, name: str | None = None,
                     limit: int | float | None = None, num_fewshot: int | None = None,
                     batch_size: int | str = 8, device: str | None = None,
                     include_path: str | os.PathLike | None = None, **kwargs: Any):
    """Run lm-evaluation-harness tasks (``hellaswag``, ``arc_easy``...) on a single-model product
    and return tidy rows (one per task and metric; the interval is value +- 1.96 x the harness's
    standard error).

    Needs the ``lm-eval`` extra (``pip install 'llmcombo[lm-eval]'``) and the tasks' datasets
    (downloaded from the Hugging Face Hub, or already in the datasets cache). ``include_path``
    is a folder of your own lm-eval task YAML files (e.g. ``dataset_path: json`` with local
    ``data_files``), which run fully offline. Raises :class:`UserError` when lm-eval is not
    installed, the product is an ensemble or a task is unknown, and :class:`OfflineError` when
    the data cannot be downloaded.
    """
    try:
        import lm_eval  # noqa: F401
    except ImportError:
        raise UserError("lm-evaluation-harness is not installed, so lm-eval tasks cannot run.",
                        hint="pip install 'llmcombo[lm-eval]'  (llmcombo's own task accuracy "
                             "needs nothing extra: llmcombo.evaluate.evaluate)") from None
    from llmcombo import modelref
    from llmcombo.ensemble import products as P

    if isinstance(tasks, str):
        tasks = [tasks]
    tasks = [str(t) for t in tasks]
    if not tasks:
        raise UserError("no lm-eval task given.", hint="e.g. tasks=['arc_easy']")
    if isinstance(product, P.SingleModel):
        ref = product.member.model_ref
    elif isinstance(product, (str, os.PathLike)) and not (
            Path(product).is_file() and Path(product).suffix.lower() in (".yaml", ".yml", ".json")):
        ref = str(product)
    else:
        raise UserError("lm-eval scores one language model; ensembles (pipeline, vote, router) "
                        "have no single set of log-probabilities.",
                        hint="Run it on a model folder, zoo:NAME or a hub id.")
    pretrained = modelref.resolve(ref)
    label = name or product_name(product if isinstance(product, (str, os.PathLike)) else ref)
    if include_path is not None and not Path(include_path).is_dir():
        raise UserError(f"include_path {include_path} is not a folder of lm-eval task YAML files.",
                        hint="Point it at the folder that holds your task .yaml files.")
    manager = None
    try:
        from lm_eval.tasks import TaskManager

        manager = (TaskManager(include_path=str(include_path)) if include_path is not None
                   else TaskManager())
        known = set(manager.all_tasks)
    except Exception:  # older or stripped-down harness: let simple_evaluate judge
        known = None
    if manager is not None:
        kwargs.setdefault("task_manager", manager)
    if known is not None:
        unknown = [t for t in tasks if t not in known]
        if unknown:
            import difflib

            close = difflib.get_close_matches(unknown[0], sorted(known), n=3)
            raise UserError(f"unknown lm-eval task(s): {', '.join(unknown)}",
                            hint=("did you mean " + ", ".join(close) + "?") if close else
                            "list them with `lm_eval --tasks list`")
    model_args = f"pretrained={pretrained},dtype=float32"
    if device is None:  # lm-eval's hf model defaults to cuda, even on a CPU-only machine
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        results = lm_eval.simple_evaluate(model="hf", model_args=model_args, tasks=tasks,
                                          num_fewshot=num_fewshot, limit=limit,
                                          batch_size=batch_size, device=device, **kwargs)
    except Exception as exc:
        if _looks_offline(exc):
            raise OfflineError(f"lm-eval could not get the data of {', '.join(tasks)}: {exc}",
                               hint="lm-eval downloads each task's dataset from the Hugging Face "
                                    "Hub; run once while online (it is cached), or evaluate on "
                                    "the zoo tasks / your own JSONL offline (HF_HUB_OFFLINE=1 "
                                    "makes this fail at once instead of retrying).") from None
        raise
    return lm_eval_frame(results, label)


# bookkeeping entries of a task's results (lm-eval 0.4.x), not metrics
_LM_EVAL_NOT_METRICS = {"alias", "sample_len", "sample_count", "samples"}
# metrics that are proportions: their normal-approximation interval is clipped to [0, 1]
_LM_EVAL_PROPORTIONS = {"acc", "acc_norm", "exact_match", "em", "f1", "mc1", "mc2", "mcc",
                        "acc_mutual_info"}


def lm_eval_frame(results: Mapping, product: str):
    """Tidy rows from the dict ``lm_eval.simple_evaluate`` returns."""
    rows = []
    n_samples = results.get("n-samples") or {}
    for task, metrics in (results.get("results") or {}).items():
        n = n_samples.get(task, {}).get("effective") if isinstance(n_samples, Mapping) else None
        for key, value in metrics.items():
            if key in _LM_EVAL_NOT_METRICS or "_stderr" in key or isinstance(value, bool) or \
                    not isinstance(value, (int, float)):
                continue
            metric, _, filt = key.partition(",")
            err = metrics.get(f"{metric}_stderr,{filt}" if filt else f"{metric}_stderr")
            lo = hi = math.nan
            if isinstance(err, (int, float)) and math.isfinite(err):
                lo, hi = value - Z95 * err, value + Z95 * err
                if value >= 0:
                    lo = max(0.0, lo)
                if metric in _LM_EVAL_PROPORTIONS:
                    hi = min(1.0, hi)
            rows.append(row(product, task, metric, value, int(n) if n is not None else -1, lo, hi,
                            source="lm-eval"))
    return frame(rows)


__all__ = [
    "COLUMNS", "Dataset", "accuracy_row", "answer_examples", "bootstrap_perplexity_interval",
    "Example", "dataset", "evaluate", "evaluate_accuracy", "model_and_tokenizer",
    "evaluate_lm_eval", "evaluate_perplexity", "frame", "lm_eval_frame", "load_examples",
    "load_results", "perplexity", "product_name", "read_texts", "row", "sample_generations",
    "save_results", "token_nll", "wilson_interval",
]
