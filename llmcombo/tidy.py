"""The tidy results frame every llmcombo metric returns: its columns (``product, task, metric,
value, n, ci_low, ci_high``, extra columns kept), one row, a frame of rows, the confidence
intervals (Wilson score for accuracies, percentile bootstrap for perplexity), the default label
of a product, and reading/writing results as CSV.

:mod:`llmcombo.evaluate` (which re-exports all of this) and :mod:`llmcombo.lmeval` build their
rows here, so results of any source concatenate into one frame.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from llmcombo.errors import UserError

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
# product labels
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


__all__ = ["COLUMNS", "Z95", "accuracy_table", "bootstrap_perplexity_interval", "frame", "load_results",
           "product_name", "row", "save_results", "wilson_interval"]
