"""What runs one trial: build the product and measure it. A :class:`Worker` lives as long as the
search (in this process, in each process of the local pool, or in each Ray actor), so what it
loads is loaded once:

* merges are computed **in memory** (:class:`llmcombo.engine.inmemory.InMemoryTarget`): mergekit's
  planner writes the merged tensors into one model kept by the worker -- no folder written, no
  model loaded back; mergekit keeps the parents' weight files open between trials. A merge that
  cannot be done in memory runs on disk (:func:`llmcombo.run.run`, verified) into a temporary
  folder removed afterwards;
* ensembles and parents answer through :func:`llmcombo.ensemble.load_product`, whose model cache
  keeps each parent loaded once.

:meth:`Worker.run` never raises: a product that cannot be built or answered (out of memory, NaN
weights, a refusal of mergekit) comes back as ``{"status": "failed", "error": reason}`` and the
search goes on. Jobs and results are plain dicts, so they travel to other processes and to Ray.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from typing import Any, Sequence

from llmcombo.datasets import Example
from llmcombo.ensemble.products import Answer, Product
from llmcombo.errors import UserError


def _examples(rows: Sequence) -> list[Example]:
    return [e if isinstance(e, Example) else Example(str(e[0]), str(e[1])) for e in rows]


def failure_reason(exc: BaseException) -> str:
    """One line saying why a trial failed."""
    text = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    oom = isinstance(exc, MemoryError) or "out of memory" in str(exc).lower() or \
        type(exc).__name__ == "OutOfMemoryError"
    if oom:
        return f"out of memory: {text}"
    if isinstance(exc, UserError):
        return text
    return f"{type(exc).__name__}: {text}"


class Worker:
    """Builds and measures products for one search. ``payload``: ``{"doc": the search document,
    "tasks": {name: {"validation": [(prompt, expected)], "test": [...]}}, "threads": N}``."""

    def __init__(self, payload: dict):
        import torch
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # a "Loading weights" bar per model load is noise here
        self.doc = payload["doc"]
        self.tasks = {name: {split: _examples(rows) for split, rows in splits.items()}
                      for name, splits in payload["tasks"].items()}
        threads = payload.get("threads")
        if threads:
            torch.set_num_threads(int(threads))
        self._target: Any = None
        self._target_broken = False
        self._tokenizers: dict[str, Any] = {}
        self._options: Any = None
        self.stats = {"in_memory": 0, "on_disk": 0}

    # -- building -------------------------------------------------------------------------------
    def _run_options(self):
        from llmcombo.run import RunOptions

        if self._options is None:
            self._options = RunOptions(device=self.doc["device"], write_model_card=False,
                                       preflight=False)
        return self._options

    def _tokenizer(self, path: str):
        tok = self._tokenizers.get(path)
        if tok is None:
            from transformers import AutoTokenizer

            tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
            tok.padding_side = "left"
            if tok.pad_token_id is None:
                tok.pad_token = tok.eos_token
            self._tokenizers[path] = tok
        return tok

    def _merge_in_memory(self, doc: dict) -> tuple[Any, float] | None:
        """The merged model (kept by the worker) and the merge's seconds; None when this merge
        cannot be computed in memory."""
        from llmcombo.engine.inmemory import InMemoryTarget, NotInMemory, unsupported_reason

        if self._target_broken or unsupported_reason(doc):
            return None
        try:
            if self._target is None:
                self._target = InMemoryTarget.for_document(doc, self._run_options().merge_options())
            seconds = self._target.merge(doc)
        except NotInMemory:
            self._target = None  # its weights are half-written: build a fresh one next time
            return None
        return self._target.model, seconds

    def _product(self, job: dict, scratch: list[str]) -> tuple[Any, float, bool | None]:
        """``(product, merge seconds, merged in memory)`` of a job."""
        from llmcombo.ensemble import load_product, members
        from llmcombo.ensemble.products import SingleModel

        ev = self.doc["evaluation"]
        fmt = {"template": ev["template"], "output": ev["output"],
               "max_new_tokens": int(ev["max_new_tokens"])}
        if job["kind"] == "model":
            return SingleModel(job["config"]["model"], device=self.doc["device"], **fmt), 0.0, None
        if job["kind"] == "ensemble":
            return load_product(job["config"], device=self.doc["device"]), 0.0, None
        from llmcombo.generate import merge_document

        _kind, doc = merge_document(job["config"], None, True)
        built = self._merge_in_memory(doc)
        if built is not None:
            model, seconds = built
            self.stats["in_memory"] += 1
            tok_src = doc.get("base_model") or doc["models"][0]["model"]
            device = str(next(model.parameters()).device)
            lm = members.LoadedModel(f"<in-memory merge {job.get('hash', '')}>", device, "auto",
                                     model, self._tokenizer(tok_src))
            return _InMemoryModel(lm, **fmt), seconds, True
        from llmcombo.run import run

        folder = tempfile.mkdtemp(prefix="llmcombo-trial-")
        scratch.append(folder)
        t0 = time.perf_counter()
        out = os.path.join(folder, "model")
        run(job["config"], out, options=self._run_options(), progress=False)
        self.stats["on_disk"] += 1
        return SingleModel(out, device=self.doc["device"], **fmt), time.perf_counter() - t0, False

    # -- measuring ------------------------------------------------------------------------------
    def run(self, job: dict) -> dict:
        """Build the product of ``job`` (``{"kind": merge | ensemble | model, "config": ...,
        "split": validation | test}``) and measure its accuracy on every task's split."""
        from llmcombo.evaluate import accuracy_row, answer_examples

        t0 = time.perf_counter()
        split = job.get("split", "validation")
        result: dict[str, Any] = {"id": job.get("id"), "hash": job.get("hash"), "status": "ok",
                                  "error": None, "acc": {}, "correct": {}, "n": {},
                                  "ci_low": {}, "ci_high": {}, "merge_s": 0.0, "eval_s": 0.0,
                                  "prompts": 0, "pid": os.getpid()}
        scratch: list[str] = []
        try:
            product, result["merge_s"], result["in_memory"] = self._product(job, scratch)
            t1 = time.perf_counter()
            for name, splits in self.tasks.items():
                examples = splits[split]
                answers = answer_examples(product, examples,
                                          batch_size=int(self.doc["evaluation"]["batch_size"]),
                                          progress=False)
                r = accuracy_row(job.get("name") or "trial", name, answers,
                                 [e.expected for e in examples])
                result["acc"][name] = r["value"]
                result["correct"][name] = r["correct"]
                result["n"][name] = r["n"]
                result["ci_low"][name], result["ci_high"][name] = r["ci_low"], r["ci_high"]
                result["prompts"] += len(examples)
            result["eval_s"] = time.perf_counter() - t1
        except Exception as exc:  # a failed trial: recorded with its reason, the search goes on
            result.update(status="failed", error=failure_reason(exc))
        finally:
            for folder in scratch:
                shutil.rmtree(folder, ignore_errors=True)
        result["latency_s"] = result["eval_s"] / result["prompts"] if result["prompts"] else None
        result["worker_s"] = time.perf_counter() - t0
        return result


class _InMemoryModel(Product):
    """A merged model held in memory, answering like :class:`llmcombo.ensemble.SingleModel`."""

    kind = "model"

    def __init__(self, lm: Any, *, template: str, output: str, max_new_tokens: int):
        self.lm, self.template, self.output, self.max_new_tokens = lm, template, output, \
            max_new_tokens

    def members(self) -> list:
        return []

    def answer_batch(self, prompts: Sequence[str]) -> list[Answer]:
        from llmcombo.ensemble import members
        from llmcombo.ensemble.formats import render

        rendered = [render(self.template, p) for p in prompts]
        gens = members.generate(self.lm, rendered, max_new_tokens=self.max_new_tokens,
                                output=self.output)
        return [Answer(g[0].answer, {"kind": "model", "member": self.lm.path}) for g in gens]


__all__ = ["Worker", "failure_reason"]
