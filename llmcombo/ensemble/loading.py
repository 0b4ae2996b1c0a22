"""Loading models once: where a model reference points (:func:`locate`), which backend runs it
(:func:`backend_of`), and the cache that shares one loaded copy between ensembles
(:func:`load_model`, :func:`cached_models`, :func:`clear_cache`).

Two backends: ``transformers`` (this module loads a :class:`LoadedModel`) and ``llama_cpp``
(:mod:`llmcombo.ensemble.llama_backend`: a GGUF file, or a model folder converted once).

Models are cached by ``(resolved path, device, dtype)``: two ensembles that name the same model
share one copy in memory. The cache is small: it keeps the ``LLMCOMBO_MODEL_CACHE`` (default 8)
most recently used models and forgets older ones (a product that still holds a model keeps using
it). :func:`clear_cache` frees them. What is asked of a loaded model (generate, embed, score) is in
:mod:`llmcombo.ensemble.members`, which also re-exports the names of this module.
"""

from __future__ import annotations

import os
import sys
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from llmcombo import modelref
from llmcombo.errors import OfflineError, UserError

_CACHE: "OrderedDict[tuple[str, str, str], LoadedModel]" = OrderedDict()
_CACHE_LOCK = threading.Lock()
DEFAULT_CACHE_SIZE = 8


def cache_size() -> int:
    """How many models the cache keeps (``LLMCOMBO_MODEL_CACHE``, default 8, at least 1)."""
    raw = os.environ.get("LLMCOMBO_MODEL_CACHE", "")
    try:
        return max(1, int(raw)) if raw.strip() else DEFAULT_CACHE_SIZE
    except ValueError:
        raise UserError(f"LLMCOMBO_MODEL_CACHE must be a whole number of models, not {raw!r}.",
                        field="LLMCOMBO_MODEL_CACHE", hint="Set it to 8, or unset it.") from None


@dataclass
class LoadedModel:
    """A causal LM and its tokenizer, ready for batched left-padded generation."""

    path: str
    device: str
    dtype: str
    model: Any
    tokenizer: Any
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    content: str | None = None  # the weights' fingerprint when loaded (a folder), else None

    @property
    def stop_ids(self) -> set[int]:
        tok = self.tokenizer
        return {i for i in (tok.eos_token_id, tok.pad_token_id) if i is not None}

    @property
    def parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())


def pick_device(device: str | None = "auto") -> str:
    import torch

    device = device or "auto"
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError("device is cuda, but no CUDA GPU is available here.",
                        field="ensemble.device", hint="Use device: auto or cpu.")
    return device


def _torch_dtype(dtype: str | None, device: str):
    import torch

    if dtype in (None, "auto"):
        return torch.float32 if device == "cpu" else "auto"
    return getattr(torch, dtype)


def _hub_cached(repo: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        hit = try_to_load_from_cache(repo, "config.json")
        return isinstance(hit, str) and os.path.isfile(hit)
    except Exception:
        return False


def locate(ref: str, base_dir=None) -> tuple[str, bool]:
    """``(what transformers should load, local_files_only)`` for a model reference; raises
    :class:`UserError` for a missing folder and :class:`OfflineError` for a hub id that is not
    cached while the Hub is unreachable."""
    if not isinstance(ref, str) or not ref.strip():
        raise UserError(f"a model must be a folder, a hub id or zoo:NAME, not {ref!r}.")
    path = modelref.resolve(ref, base_dir)
    if os.path.isdir(path):
        if not os.path.isfile(os.path.join(path, "config.json")):
            raise UserError(f"the folder {path} has no config.json, so it is not a model folder.",
                            hint="Point to the folder holding config.json and the weights.")
        return path, True
    if modelref.is_hub_id(path.split("@")[0]):
        from llmcombo.preflight import models as pm

        if _hub_cached(path):
            return path, not pm.hub_reachable()
        if not pm.hub_reachable():
            raise OfflineError(f"the model {ref} is on the Hugging Face Hub, which cannot be "
                               "reached from here (offline?), and it is not in the local cache.",
                               hint="Download it once while online, or use a local folder or a "
                                    "zoo model (zoo:domotica).")
        return path, False
    raise UserError(f"model folder not found: {path}",
                    hint="Check the spelling; a Hugging Face model is written owner/name and a zoo "
                         "model zoo:NAME.")


BACKENDS = ("transformers", "llama_cpp")


def backend_of(ref: Any, backend: str | None = None) -> str:
    """The backend a member uses: the one it names, else ``llama_cpp`` for a ``.gguf`` file and
    ``transformers`` for everything else."""
    if backend:
        if backend not in BACKENDS:
            raise UserError(f"unknown backend {backend!r}", field="backend",
                            hint=f"Use {' or '.join(BACKENDS)}.")
        return backend
    return "llama_cpp" if isinstance(ref, str) and ref.lower().endswith(".gguf") else "transformers"


def load_model(ref: str, base_dir=None, device: str | None = "auto",
               dtype: str | None = "auto", *, backend: str | None = None,
               threads: int | None = None, quant: str | None = None) -> Any:
    """The model ``ref`` (folder, hub id, ``zoo:NAME``; with ``backend="llama_cpp"`` also a
    ``.gguf`` file), loaded once per (path, device, dtype, content): a folder that a new run
    replaced (or whose weights changed) is loaded again, never served from the cache
    (:func:`llmcombo.outputs.model_fingerprint`). ``llama_cpp`` gives a
    :class:`~llmcombo.ensemble.llama_backend.LlamaCppModel` (``threads``, ``quant`` of the
    cached conversion); the functions of this module accept both."""
    from llmcombo.outputs import model_fingerprint

    if backend_of(ref, backend) == "llama_cpp":
        from llmcombo.ensemble.llama_backend import load_llama

        return load_llama(ref, base_dir, quant=quant or "f16", threads=threads,
                          cache_size=cache_size())
    if isinstance(ref, str) and ref.lower().endswith(".gguf"):
        raise UserError(f"{ref} is a GGUF file, which the transformers backend cannot load.",
                        field="backend", hint="Use backend: llama_cpp for GGUF files.")

    dev = pick_device(device)
    path, local_only = locate(ref, base_dir)
    key = (os.path.abspath(path) if os.path.isdir(path) else path, dev, dtype or "auto")
    content = model_fingerprint(path) if os.path.isdir(path) else None
    with _CACHE_LOCK:
        hit = _CACHE.get(key)
        if hit is not None and hit.content == content:
            _CACHE.move_to_end(key)
            return hit
        from transformers import AutoModelForCausalLM, AutoTokenizer

        try:
            tok = AutoTokenizer.from_pretrained(path, local_files_only=local_only)
            model = AutoModelForCausalLM.from_pretrained(path, dtype=_torch_dtype(dtype, dev),
                                                         local_files_only=local_only)
        except OSError as exc:
            if not local_only:
                raise OfflineError(f"could not download {ref} from the Hugging Face Hub: {exc}",
                                   hint="Check the name and your connection.") from None
            raise UserError(f"could not load the model {ref}: {exc}") from None
        except ValueError as exc:  # not a causal LM, unknown architecture...
            raise UserError(f"{ref} cannot be loaded as a text-generation model: {exc}",
                            hint="Ensembles need causal language models "
                                 "(AutoModelForCausalLM).") from None
        # transformers wraps PreTrainedModel.to with functools.wraps; typeshed's _Wrapped is not a
        # descriptor, so mypy reads the call as the unbound function (dev taken for self)
        model.to(dev)  # type: ignore[arg-type]
        model.eval()
        tok.padding_side = "left"
        if tok.pad_token_id is None:
            tok.pad_token = tok.eos_token
        lm = LoadedModel(key[0], dev, dtype or "auto", model, tok, content=content)
        _CACHE[key] = lm
        while len(_CACHE) > cache_size():
            _CACHE.popitem(last=False)  # least recently used
        return lm


def cached_models() -> list[tuple[str, ...]]:
    """Keys ``(path, device, dtype)`` of the cached transformers models, least recently used
    first, then ``(gguf, quant)`` of the llama.cpp ones."""
    llama = sys.modules.get("llmcombo.ensemble.llama_backend")
    return list(_CACHE) + (llama.cached_models() if llama else [])


def clear_cache() -> None:
    """Forget every loaded model (frees memory once nothing else holds them)."""
    with _CACHE_LOCK:
        _CACHE.clear()
    llama = sys.modules.get("llmcombo.ensemble.llama_backend")
    if llama is not None:
        llama.clear_cache()
