"""mergekit's MoE builder and architecture descriptions, asked about models whose config.json
was already read (pre-flight reads config.json files only; nothing here reads weights).

:func:`select_output_architecture` mirrors ``mergekit.scripts.moe.select_output_arch``: every
output architecture mergekit ships is asked ``supports_config`` with stand-ins that answer from the
configs already read, and mergekit's own explanations of a refusal are kept.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Any, Iterator, Mapping

from llmcombo.shapes import as_list

class _ConfigView:
    """Attribute access to a config.json dict (what mergekit's MoE checks read)."""

    def __init__(self, data: dict):
        self.__dict__.update(data)

    def __getattr__(self, item):  # only called for missing attributes
        raise AttributeError(item)


class _PreloadedRef:
    """Stands in for mergekit's ModelReference: ``config()`` answers from what we already read."""

    def __init__(self, info: Any):  # an object with .ref and .config (pre-flight's ModelInfo)
        self._info = info

    def config(self, trust_remote_code: bool = False):
        return _ConfigView(self._info.config or {})

    def __eq__(self, other):
        return isinstance(other, _PreloadedRef) and other._info.ref == self._info.ref

    def __hash__(self):
        return hash(self._info.ref)


class _RootRecords(logging.Filter):
    """Swallow and keep the root-logger records mergekit's MoE code logs with ``logging.x()``."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def filter(self, record):
        self.records.append(record)
        return False


@contextmanager
def capture_root_logging() -> Iterator[_RootRecords]:
    """Capture records logged directly on the root logger (mergekit.moe uses ``logging.error``).

    A handler is attached so ``logging.error`` does not call ``basicConfig`` behind our back.
    """
    root = logging.getLogger()
    catcher = _RootRecords()
    handler = logging.NullHandler()
    root.addFilter(catcher)
    root.addHandler(handler)
    try:
        yield catcher
    finally:
        root.removeFilter(catcher)
        root.removeHandler(handler)


def moe_output_architectures():
    """mergekit's MoE output architectures (Mixtral, DeepSeek MoE, Qwen MoE, Qwen3 MoE, ...)."""
    from mergekit.moe import ALL_OUTPUT_ARCHITECTURES

    return list(ALL_OUTPUT_ARCHITECTURES)


def select_output_architecture(m: dict, infos: Mapping[str, Any]):
    """Mirror ``mergekit.scripts.moe.select_output_arch`` on already-read configs.

    Returns ``(chosen_or_None, candidates_by_name, reasons)`` where ``reasons`` maps an
    architecture name to mergekit's explanation of why it does not fit.
    """
    from mergekit.moe.config import Expert, MoEMergeConfig

    def expert(e: dict):
        return Expert.model_construct(
            source_model=_PreloadedRef(infos[e["source_model"]]),
            positive_prompts=e.get("positive_prompts"), negative_prompts=e.get("negative_prompts"),
            noise_scale=e.get("noise_scale"), residual_scale=e.get("residual_scale"))

    experts = [expert(e) for e in as_list(m.get("experts"))]
    shared = [expert(e) for e in as_list(m.get("shared_experts"))] or None
    cfg = MoEMergeConfig.model_construct(
        base_model=_PreloadedRef(infos[m["base_model"]]), experts=experts, shared_experts=shared,
        gate_mode=m.get("gate_mode", "hidden"), architecture=m.get("architecture"),
        experts_per_token=m.get("experts_per_token", 2), dtype=m.get("dtype"))
    candidates = moe_output_architectures()
    if cfg.architecture:
        candidates = [a for a in candidates
                      if a.name().lower().startswith(str(cfg.architecture).lower())]
    reasons: dict[str, str] = {}
    ok = []
    for arch in candidates:
        with capture_root_logging() as caught:
            supported = arch.supports_config(cfg, explain=True)
        if supported:
            ok.append(arch)
        else:
            reasons[arch.name()] = "; ".join(r.getMessage() for r in caught.records) or \
                "not supported"
    chosen = None
    for arch in ok:  # mergekit prefers Mixtral when it fits
        if arch.name() == "Mixtral":
            chosen = arch
    if chosen is None and ok:
        chosen = ok[0]
    return chosen, candidates, reasons
