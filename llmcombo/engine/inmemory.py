"""Merges computed in memory: mergekit's planner and executor write every merged tensor straight
into a loaded transformers model, with no output folder, no safetensors written and no model
loaded back. This is what a search does for each trial (mergekit's own ``mergekit-evolve`` does the
same in its ``InMemoryMergeEvaluator``); a merge that should be kept is run with
:func:`llmcombo.run.run`, which writes, verifies and places a model folder.

::

    target = InMemoryTarget.for_document(doc, options)       # the output's architecture, once
    seconds = target.merge(doc)                               # the merged weights, in place
    target.model                                              # a transformers model, eval mode

Only whole-model merges whose output has the inputs' architecture and vocabulary can be done in
memory (no slices, no tokenizer building), and only methods that draw no random masks (DARE and
DELLA draw them in an order that differs in memory); :class:`NotInMemory` says why another one
cannot, and the caller merges it on disk instead. Weights that come out NaN or infinite raise
:class:`~llmcombo.errors.UserError`, like :func:`llmcombo.run.run` refuses such an output.
"""

from __future__ import annotations

import time
from typing import Any

from llmcombo.engine.hooks import run_hooks
from llmcombo.errors import UserError
from llmcombo.progress import CancelToken, NullProgress

# Methods that draw random masks: mergekit seeds its RNG once per merge and draws in the order its
# executor runs the tensors, which is not the same for an in-memory plan as for a plan to disk, so
# the same seed would give another model than `llmcombo merge`. They are merged on disk.
RANDOM_METHODS = frozenset({"dare_ties", "dare_linear", "della", "della_linear"})


class NotInMemory(Exception):
    """This merge cannot be computed into a loaded model (the reason is the message)."""


def unsupported_reason(doc: dict) -> str | None:
    """Why the mergekit document ``doc`` cannot be merged in memory, or None when it can."""
    if doc.get("merge_method") in RANDOM_METHODS:
        return (f"{doc['merge_method']} draws random masks in the order mergekit runs the "
                "tensors, which differs in memory; on disk its model is the one `llmcombo merge` "
                "writes")
    if doc.get("slices") or doc.get("modules"):
        return "layer slices change the output's shape"
    if doc.get("tokenizer_source") or doc.get("tokenizer"):
        return "building a tokenizer changes the embeddings"
    if not doc.get("models"):
        return "no models to merge"
    return None


def _planned_tensors(planner: Any, out_dtype: str | None) -> list:
    """mergekit's in-memory plan. mergekit 0.1.5's ``plan_in_memory`` cannot build its
    ``ReturnTensor`` tasks with pydantic 2.11+ (it re-validates the generic ``Task[Tensor]`` field
    by instantiating the abstract class); the same tasks are then built without re-validation."""
    from mergekit.io.tasks import ReturnTensor

    try:
        return planner.plan_in_memory()
    except TypeError:
        planner._plan()  # noqa: SLF001 - what plan_in_memory itself calls first
        return [ReturnTensor.model_construct(weight_info=w, tensor_task=t,
                                             dtype=w.force_dtype or out_dtype)
                for w, t in planner._tensors]  # noqa: SLF001


class InMemoryTarget:
    """A transformers model (the merge output's architecture, built once) that successive merges
    overwrite. ``merge_options``: mergekit's ``MergeOptions``
    (:meth:`llmcombo.run.RunOptions.merge_options`)."""

    def __init__(self, model: Any, merge_options: Any):
        self.model = model
        self.options = merge_options
        # every name, tied ones too (an output head tied to the embeddings is one tensor)
        self._params = dict(model.named_parameters(remove_duplicate=False))
        self._shapes = {k: tuple(v.shape) for k, v in self._params.items()}

    @classmethod
    def for_document(cls, doc: dict, merge_options: Any) -> InMemoryTarget:
        """An empty model shaped like the output of ``doc`` (its weights are written by
        :meth:`merge`)."""
        import torch
        import transformers
        from mergekit.architecture import get_architecture_info
        from mergekit.merge import _model_out_config
        from transformers.initialization import no_init_weights

        from llmcombo.engine.schema import parse

        reason = unsupported_reason(doc)
        if reason:
            raise NotInMemory(reason)
        parsed = parse("merge", doc)
        with run_hooks(NullProgress(), CancelToken()):
            arch = get_architecture_info(parsed, merge_options)
            cfg = _model_out_config(parsed, arch, trust_remote_code=merge_options.trust_remote_code)
        dtype = getattr(torch, str(doc.get("out_dtype") or doc.get("dtype") or "float32"))
        with no_init_weights():
            model = transformers.AutoModelForCausalLM.from_config(
                cfg, dtype=dtype, trust_remote_code=merge_options.trust_remote_code)
        model = model.to(merge_options.device).eval().requires_grad_(False)
        return cls(model, merge_options)

    def merge(self, doc: dict, cancel: CancelToken | None = None) -> float:
        """Compute the merge ``doc`` (a mergekit document, references resolved) into
        :attr:`model`; returns the seconds it took. Raises :class:`NotInMemory` when the output
        does not fit this model (then nothing usable is left in it: merge again or on disk) and
        :class:`UserError` when a merged tensor has NaN or infinite values."""
        import torch
        from mergekit.architecture import get_architecture_info
        from mergekit.graph import Executor
        from mergekit.io.tasks import LoaderCache
        from mergekit.merge import _model_out_config
        from mergekit.plan import MergePlanner

        from llmcombo.engine.schema import parse

        reason = unsupported_reason(doc)
        if reason:
            raise NotInMemory(reason)
        t0 = time.perf_counter()
        opts = self.options
        parsed = parse("merge", doc)
        written: set[int] = set()
        bad: list[str] = []
        with run_hooks(NullProgress(), cancel or CancelToken()), torch.no_grad():
            if opts.random_seed is not None:  # as run_merge does: DARE and friends draw masks
                import transformers

                transformers.trainer_utils.set_seed(opts.random_seed)
            arch = get_architecture_info(parsed, opts)
            LoaderCache().setup(options=opts)
            cfg = _model_out_config(parsed, arch, trust_remote_code=opts.trust_remote_code)
            tasks = _planned_tensors(MergePlanner(parsed, arch, opts, cfg), parsed.out_dtype)
            device = opts.device if str(opts.device).startswith(("cuda", "xpu")) else "cpu"
            executor = Executor(tasks, math_device=device, storage_device=device)
            for task, value in executor.run(quiet=True):
                name = task.weight_info.name
                if value is None:
                    continue  # an optional tensor the inputs do not have
                param = self._params.get(name)
                if param is None or tuple(value.shape) != self._shapes[name]:
                    raise NotInMemory(f"the merged tensor {name} does not fit the model")
                if not torch.isfinite(value).all():
                    bad.append(name)
                param.data.copy_(value.to(param.dtype))
                written.add(id(param))
        missing = sorted(n for n, p in self._params.items() if id(p) not in written)
        if missing:
            raise NotInMemory(f"the merge wrote no value for {missing[0]}"
                              + (f" and {len(missing) - 1} more" if len(missing) > 1 else ""))
        if bad:
            raise UserError(f"the merged weights contain NaN or infinite values ({bad[0]}"
                            + (f" and {len(bad) - 1} more tensors" if len(bad) > 1 else "") + ").",
                            hint="Extreme weights overflow; keep weights and lambda moderate or "
                                 "compute in float32.")
        return time.perf_counter() - t0


__all__ = ["InMemoryTarget", "NotInMemory", "unsupported_reason"]
