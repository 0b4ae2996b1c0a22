"""Measurements of models that explain results: what fine-tuning changed (task-vector norms per
layer and tensor kind) and where a mixture of experts sends tokens (routing shares). Each returns a
tidy pandas frame; :mod:`llmcombo.plots` draws them."""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from llmcombo.errors import UserError

_LAYER = re.compile(r"(?:^|\.)layers\.(\d+)\.(.+)$")


def _kind(rest: str) -> str:
    parts = [p for p in rest.split(".") if p not in ("weight", "bias", "self_attn", "mlp")]
    return ".".join(parts) or rest


def _read_tensors(folder: str | os.PathLike) -> dict:
    from safetensors.torch import load_file

    from llmcombo import modelref

    path = Path(modelref.resolve(str(folder)))
    files = sorted(path.glob("*.safetensors")) if path.is_dir() else []
    if not files:
        raise UserError(f"no .safetensors weights in {path}",
                        hint="Task vectors are read from local safetensors model folders.")
    out = {}
    for f in files:
        out.update(load_file(str(f)))
    return out


def task_vector_norms(base: str | os.PathLike, models: Mapping[str, str | os.PathLike]):
    """Per model, layer and tensor kind: ``norm`` = ||theta_model - theta_base|| (Frobenius) and
    ``relative`` = norm / ||theta_base||, read with safetensors. Tensors outside the decoder
    layers (embeddings, final norm, lm_head) get ``layer = -1`` and their own kind."""
    import pandas as pd
    import torch

    base_t = _read_tensors(base)
    rows = []
    for name, folder in models.items():
        tensors = _read_tensors(folder)
        acc: dict[tuple[int, str], list[float]] = {}
        for key, w in tensors.items():
            if key not in base_t:
                continue
            b = base_t[key].to(torch.float64)
            if b.shape != w.shape:
                raise UserError(f"{name}: {key} has shape {tuple(w.shape)}, the base "
                                f"{tuple(b.shape)}; a task vector needs the same architecture.")
            m = _LAYER.search(key)
            layer, kind = (int(m.group(1)), _kind(m.group(2))) if m else \
                (-1, key.removeprefix("model.").removesuffix(".weight"))
            diff = float(torch.sum((w.to(torch.float64) - b) ** 2))
            ref = float(torch.sum(b ** 2))
            a = acc.setdefault((layer, kind), [0.0, 0.0])
            a[0] += diff
            a[1] += ref
        for (layer, kind), (d2, b2) in sorted(acc.items()):
            rows.append({"model": name, "layer": layer, "kind": kind, "norm": math.sqrt(d2),
                         "relative": math.sqrt(d2) / math.sqrt(b2) if b2 > 0 else math.nan})
    return pd.DataFrame(rows, columns=["model", "layer", "kind", "norm", "relative"])


def _gate_modules(model) -> list[tuple[int, Any]]:
    """``(layer, router module)`` for every sparse MoE block of a Mixtral-style model."""
    gates = []
    for name, module in model.named_modules():
        m = re.search(r"layers\.(\d+)\.(?:block_sparse_moe|mlp)\.gate$", name)
        if m:
            gates.append((int(m.group(1)), module))
    return sorted(gates, key=lambda x: x[0])


def moe_routing_share(model: Any, prompt_sets: Mapping[str, Sequence[str]], *,
                      template: str | Callable[[str], str] | None = None, batch_size: int = 32):
    """Share of (real, non-padding) tokens routed to each expert, per layer and prompt set, in a
    Mixtral-style MoE (hooks on the router/gate of every layer; top-k = the model's
    ``num_experts_per_tok``). ``model`` is a folder / ``zoo:``-style reference or a
    ``(model, tokenizer)`` pair. ``template``: a function that formats a prompt (the zoo's
    ``format_prompt``), a text with ``{input}``, or None (prompts as they are).
    Rows: ``prompt_set, layer, expert, tokens, share``."""
    import pandas as pd
    import torch

    from llmcombo import evaluate as ev

    lm, tok = ev.model_and_tokenizer(model)
    gates = _gate_modules(lm)
    if not gates:
        raise UserError("this model has no mixture-of-experts gates (router modules) to read.",
                        hint="Routing shares need a Mixtral-style MoE, e.g. the output of "
                             "llmcombo merge on a moe: configuration.")
    n_experts = int(getattr(lm.config, "num_local_experts", 0) or
                    getattr(lm.config, "num_experts", 0))
    top_k = int(getattr(lm.config, "num_experts_per_tok", 1) or 1)
    captured: dict[int, torch.Tensor] = {}

    def hook(layer):
        def fn(module, inputs, output):
            logits = output[0] if isinstance(output, tuple) else output
            captured[layer] = logits.detach().float().reshape(-1, logits.shape[-1])
        return fn

    handles = [mod.register_forward_hook(hook(layer)) for layer, mod in gates]
    rows = []
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    try:
        with torch.inference_mode():
            for set_name, prompts in prompt_sets.items():
                counts = torch.zeros((len(gates), n_experts), dtype=torch.float64)
                texts = [template(p) if callable(template) else
                         (template.replace("{input}", p) if template else p) for p in prompts]
                for start in range(0, len(texts), batch_size):
                    ids_list = tok(texts[start: start + batch_size])["input_ids"]
                    width = max(len(x) for x in ids_list)
                    ids = torch.full((len(ids_list), width), pad, dtype=torch.long)
                    mask = torch.zeros((len(ids_list), width), dtype=torch.long)
                    for i, seq in enumerate(ids_list):  # right padding
                        ids[i, : len(seq)] = torch.tensor(seq)
                        mask[i, : len(seq)] = 1
                    captured.clear()
                    lm(input_ids=ids.to(lm.device), attention_mask=mask.to(lm.device))
                    real = mask.reshape(-1).bool()
                    for li, (layer, _) in enumerate(gates):
                        logits = captured[layer].cpu()
                        if logits.shape[0] != real.shape[0]:
                            raise RuntimeError(f"router of layer {layer} saw {logits.shape[0]} "
                                               f"tokens, expected {real.shape[0]}")
                        chosen = torch.topk(logits[real], top_k, dim=-1).indices.reshape(-1)
                        counts[li] += torch.bincount(chosen, minlength=n_experts).double()
                for li, (layer, _) in enumerate(gates):
                    total = float(counts[li].sum())
                    for e in range(n_experts):
                        rows.append({"prompt_set": set_name, "layer": layer, "expert": e,
                                     "tokens": int(counts[li, e]),
                                     "share": float(counts[li, e]) / total if total else math.nan})
    finally:
        for h in handles:
            h.remove()
    return pd.DataFrame(rows, columns=["prompt_set", "layer", "expert", "tokens", "share"])
