"""The tasks of a search, split honestly: the search sees only the *validation* split of each task;
the *test* split is read once, for the final report.

* a registered task (the zoo's ``domotica``, ``tiempo``) brings its own splits
  (:func:`llmcombo.datasets.task_examples`);
* a JSONL/CSV file (:func:`llmcombo.datasets.load_examples`) is split by a seeded shuffle:
  examples whose prompts are the same text (ignoring case, accents and punctuation) stay on one
  side, so no test prompt was seen during the search.
"""

from __future__ import annotations

import random
import re
import unicodedata
from dataclasses import dataclass, field

from llmcombo.datasets import Example, load_examples, task_examples
from llmcombo.errors import UserError


@dataclass
class TaskData:
    """One task's examples: ``validation`` (the search), ``test`` (the report), ``train`` (only
    for a router's example prompts; empty for files)."""

    name: str
    validation: list[Example]
    test: list[Example]
    train: list[Example] = field(default_factory=list)
    source: str = ""

    def split(self, split: str) -> list[Example]:
        if split not in ("validation", "test"):
            raise ValueError(f"a search evaluates on 'validation' or 'test', not {split!r}")
        return self.validation if split == "validation" else self.test


def _key(text: str) -> str:
    text = unicodedata.normalize("NFKD", str(text).lower())
    text = "".join(c for c in text if not unicodedata.combining(c))
    return " ".join(re.sub(r"[^\w\s]", " ", text).split())


def split_examples(examples: list[Example], share: float, seed: int, name: str
                   ) -> tuple[list[Example], list[Example]]:
    """``(validation, test)``: a seeded shuffle of the distinct prompts, ``share`` of them (at
    least one, at most all but one) to validation; repeated prompts stay together."""
    groups: dict[str, list[Example]] = {}
    for e in examples:
        groups.setdefault(_key(e.prompt), []).append(e)
    keys = sorted(groups)
    if len(keys) < 2:
        raise UserError(f"task {name}: its examples have {len(keys)} distinct prompt; a "
                        "validation and a test split need at least two.",
                        hint="Add examples (a few dozen give usable accuracies).")
    random.Random(f"llmcombo-search-split:{name}:{seed}").shuffle(keys)
    n_val = min(len(keys) - 1, max(1, round(share * len(keys))))
    val = [e for k in keys[:n_val] for e in groups[k]]
    test = [e for k in keys[n_val:] for e in groups[k]]
    return val, test


def load_tasks(doc: dict) -> list[TaskData]:
    """The tasks of a search document (:func:`llmcombo.search.spec.to_document`), limited to
    ``evaluation.limit`` validation and ``evaluation.test_limit`` test examples per task."""
    ev = doc["evaluation"]
    out = []
    for t in doc["tasks"]:
        if t.get("task") is not None:
            try:
                val = task_examples(t["task"], "validation")
            except UserError:  # a registered task that knows no validation split
                val = []
            test = task_examples(t["task"], "test")
            if not val:
                raise UserError(f"the task {t['task']} has no validation split, so a search "
                                "could only tune on its test split.",
                                field="search.tasks",
                                hint="Give its examples as a file (file: PATH): it is split into "
                                     "validation and test.")
            try:
                train = task_examples(t["task"], "train")
            except UserError:
                train = []
            source = f"task {t['task']}"
        else:
            examples = load_examples(t["file"])
            val, test = split_examples(examples, float(t.get("validation", 0.5)),
                                       int(doc["seed"]), t["name"])
            train, source = [], f"file {t['file']}"
        if ev.get("limit"):
            val = val[: int(ev["limit"])]
        if ev.get("test_limit"):
            test = test[: int(ev["test_limit"])]
        out.append(TaskData(t["name"], list(val), list(test), list(train), source))
    return out


__all__ = ["TaskData", "load_tasks", "split_examples"]
