"""Data to measure products on: prompt/expected pairs from named tasks or the user's files.

* :class:`Example` -- one prompt and the answer expected for it;
* :func:`load_examples` -- a JSONL or CSV file of ``prompt``/``expected`` pairs, with a message
  naming the line and what to write when a row is wrong;
* :func:`register_task` / :func:`task_names` -- named tasks (the zoo registers ``domotica`` and
  ``tiempo``); :func:`dataset` accepts a task name, a file, or pairs;
* :func:`normalize_answer` -- the exact-match key (upper-case, single spaces).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from llmcombo.errors import UserError


@dataclass(frozen=True)
class Example:
    prompt: str  # what the user says
    expected: str  # the answer expected


def normalize_answer(s: str) -> str:
    """Strip, upper-case, collapse whitespace: the exact-match key of accuracy."""
    return " ".join(str(s).upper().split())


# name -> loader(split) -> examples; split is "train", "validation" or "test"
_TASKS: dict[str, Callable[[str], Sequence[Example]]] = {}


def register_task(name: str, loader: Callable[[str], Sequence[Example]]) -> None:
    """Make ``name`` a task that :func:`dataset` (and everything that evaluates) accepts;
    ``loader(split)`` returns its examples for ``"train"``, ``"validation"`` or ``"test"``."""
    _TASKS[name] = loader


def _load_plugins() -> None:
    from llmcombo.plugins import load_plugins

    load_plugins()


def task_names() -> tuple[str, ...]:
    """The names of every registered task."""
    _load_plugins()
    return tuple(_TASKS)


def task_examples(name: str, split: str = "test") -> list[Example]:
    """The examples of a registered task's ``split``."""
    _load_plugins()
    if name not in _TASKS:
        raise UserError(f"unknown task {name!r}", hint=f"Known tasks: {', '.join(_TASKS) or 'none'}; "
                                                      "or give a .jsonl/.csv file of prompt/expected pairs.")
    return list(_TASKS[name](split))


@dataclass(frozen=True)
class Dataset:
    """A named list of examples (``name`` is what the ``task`` column says)."""

    name: str
    examples: list  # of Example


def load_examples(path: str | os.PathLike) -> list:
    """``prompt``/``expected`` pairs from a JSONL file (one JSON object per line) or a CSV file
    (a header row naming the columns ``prompt`` and ``expected``), as
    :class:`Example`. Raises :class:`UserError` for a missing file, another format,
    a missing column, an unreadable line or an empty file."""
    p = Path(path).expanduser()
    if not p.exists():
        raise UserError(f"evaluation file not found: {p}", hint="Check the path.")
    if p.is_dir():
        raise UserError(f"{p} is a folder, not an evaluation file.",
                        hint="Give a .jsonl or .csv file of prompt/expected pairs.")
    suffix = p.suffix.lower()
    hint = ("Each row needs a 'prompt' (what the user says) and an 'expected' (the right answer), "
            "e.g. {\"prompt\": \"apaga la luz del salon\", \"expected\": \"LUZ_SL OFF\"}.")
    rows: list[tuple[Any, Any]] = []
    if suffix in (".jsonl", ".ndjson"):
        for i, obj in read_jsonl(p, hint):
            if not isinstance(obj, dict):
                raise UserError(f"{p}, line {i}: expected a JSON object, found "
                                f"{type(obj).__name__}.", hint=hint)
            missing = [k for k in ("prompt", "expected") if k not in obj]
            if missing:
                raise UserError(f"{p}, line {i}: missing {' and '.join(repr(m) for m in missing)}"
                                f" (found: {', '.join(map(repr, obj)) or 'nothing'}).", hint=hint)
            rows.append((obj["prompt"], obj["expected"]))
    elif suffix in (".csv", ".tsv"):
        import pandas as pd

        try:
            df = pd.read_csv(p, dtype=str, keep_default_na=False,
                             sep="\t" if suffix == ".tsv" else ",")
        except pd.errors.EmptyDataError:
            raise UserError(f"{p} is empty.", hint=hint) from None
        except (pd.errors.ParserError, UnicodeDecodeError) as exc:
            raise UserError(f"{p} cannot be read as {suffix[1:].upper()}: {exc}",
                            hint=hint) from None
        cols = {c.strip().lower(): c for c in df.columns}
        missing = [k for k in ("prompt", "expected") if k not in cols]
        if missing:
            raise UserError(f"{p} has no {' and no '.join(repr(m) for m in missing)} column "
                            f"(columns: {', '.join(map(repr, df.columns))}).", hint=hint)
        rows = list(zip(df[cols["prompt"]], df[cols["expected"]]))
    else:
        raise UserError(f"{p}: unknown evaluation file type {suffix or '(none)'!r}.",
                        hint="Use .jsonl (one {\"prompt\": ..., \"expected\": ...} per line) or "
                             ".csv with columns prompt,expected.")
    if not rows:
        raise UserError(f"{p} has no examples.", hint=hint)
    out = []
    for i, (prompt, expected) in enumerate(rows, 1):
        if not isinstance(prompt, str) or not prompt.strip():
            raise UserError(f"{p}, example {i}: the prompt is empty or not text.", hint=hint)
        if expected is None or isinstance(expected, (dict, list)):
            raise UserError(f"{p}, example {i}: the expected answer must be text.", hint=hint)
        out.append(Example(prompt, str(expected)))
    return out


def dataset(source: Any, *, split: str = "test", limit: int | None = None) -> Dataset:
    """A :class:`Dataset` from a zoo task name (its held-out ``split``), a JSONL/CSV path, a
    :class:`Dataset`, or a list of :class:`~Example` / ``(prompt, expected)``
    pairs. ``limit`` keeps the first ``limit`` examples (the zoo test splits are in a seeded
    random order, so that is a random subset)."""
    if isinstance(source, Dataset):
        ds = source
    elif isinstance(source, str) and source in task_names():
        ds = Dataset(source, task_examples(source, split))
    elif isinstance(source, (str, os.PathLike)):
        p = Path(source)
        if isinstance(source, str) and p.suffix == "" and not p.exists():
            raise UserError(f"unknown task {source!r}",
                            hint=f"Use a task ({', '.join(task_names())}) or a .jsonl/.csv "
                                 "file of prompt/expected pairs.")
        ds = Dataset(p.stem, load_examples(p))
    elif isinstance(source, Sequence):
        exs = []
        for e in source:
            if isinstance(e, Example) or (hasattr(e, "prompt") and hasattr(e, "expected")):
                exs.append(Example(str(e.prompt), str(e.expected)))
            elif isinstance(e, (tuple, list)) and len(e) == 2:
                exs.append(Example(str(e[0]), str(e[1])))
            else:
                raise UserError(f"an example must be a (prompt, expected) pair, not {e!r}.")
        ds = Dataset("examples", exs)
    else:
        raise UserError(f"cannot evaluate on {type(source).__name__}.",
                        hint="Give a zoo task name, a .jsonl/.csv file or (prompt, expected) pairs.")
    if limit is not None:
        ds = Dataset(ds.name, ds.examples[: max(0, int(limit))])
    return ds


def _utf8_lines(p: Path, hint: str | None = None) -> list[str]:
    try:
        return p.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise UserError(f"{p} is not UTF-8 text.", hint=hint) from None


def read_jsonl(p: Path, hint: str | None = None) -> Iterator[tuple[int, Any]]:
    """``(line number, value)`` for every non-empty line of a JSON Lines file."""
    for i, line in enumerate(_utf8_lines(p, hint), 1):
        if not line.strip():
            continue
        try:
            yield i, json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(f"{p}, line {i}: not valid JSON ({exc.msg}).", hint=hint) from None


def read_texts(path: str | os.PathLike) -> list[str]:
    """Texts from a file: ``.jsonl`` (the ``text`` field of each line) or plain text (one text per
    non-empty line)."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise UserError(f"text file not found: {p}", hint="Check the path.")
    if p.suffix.lower() in (".jsonl", ".ndjson"):
        texts = []
        for i, obj in read_jsonl(p):
            if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
                raise UserError(f"{p}, line {i}: needs a \"text\" field.",
                                hint='Write one {"text": "..."} per line.')
            texts.append(obj["text"])
    else:
        texts = [line for line in _utf8_lines(p) if line.strip()]
    if not texts:
        raise UserError(f"{p} has no texts.")
    return texts
