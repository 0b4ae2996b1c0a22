"""The lm-evaluation-harness bridge: run lm-eval tasks (``hellaswag``, ``arc_easy``, your own task
YAML files) on a single-model product and return llmcombo's tidy rows (:mod:`llmcombo.tidy`).

lm-eval is an optional extra (``pip install 'llmcombo[lm-eval]'``), imported only when a task
runs. :mod:`llmcombo.evaluate` re-exports :func:`evaluate_lm_eval` and :func:`lm_eval_frame`.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

from llmcombo.errors import OfflineError, UserError
from llmcombo.tidy import Z95, frame, product_name, row


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


__all__ = ["evaluate_lm_eval", "lm_eval_frame"]
