"""Model check: architecture, layers and size of a model reference from its config.json (via
pre-flight; never weights)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class ModelSummary:
    ref: str
    ok: bool
    architecture: str = ""
    layers: int | None = None
    hidden_size: int | None = None
    vocab_size: int | None = None
    parameters: int | None = None
    size_bytes: int | None = None
    where: str = ""
    messages: list[str] = field(default_factory=list)
    missing_zoo: bool = False  # a zoo: model of a zoo that is not built: information, not an error

    def text(self) -> str:
        if not self.ok:
            return "; ".join(self.messages) or f"{self.ref}: could not be read"
        from llmcombo.preflight import fmt_bytes

        parts = [self.architecture or "unknown architecture"]
        if self.layers is not None:
            parts.append(f"{self.layers} layers")
        if self.hidden_size is not None:
            parts.append(f"hidden {self.hidden_size}")
        if self.parameters:
            parts.append(f"{self.parameters / 1e6:.2f}M parameters")
        if self.size_bytes:
            parts.append(fmt_bytes(self.size_bytes) + " on disk")
        if self.where:
            parts.append(self.where)
        text = ", ".join(parts)
        if self.messages:
            text += " (" + "; ".join(self.messages) + ")"
        return text


def check_model_ref(ref: Any, base_dir=None) -> ModelSummary:
    """Architecture, layers and size of a model reference from its config.json (pre-flight's
    reader: local folder, zoo:NAME or the Hub's config.json only)."""
    if not isinstance(ref, str) or not ref.strip():
        return ModelSummary(str(ref or ""), False, messages=["Type a model first."])
    from llmcombo import modelref, preflight

    parts = modelref.split_scheme(ref.strip())
    if parts is not None and modelref.scheme_problem(ref.strip()) is None:
        try:
            modelref.resolve_scheme(ref.strip())
        except Exception as exc:  # the scheme's models are not there yet (the zoo not built)
            hint = getattr(exc, "hint", None)
            return ModelSummary(ref, False, missing_zoo=True, messages=[
                f"{ref} is not on this computer yet: the {parts[0]} has not been built."
                + (f" {hint}" if hint else "")])
    info, issues = preflight.inspect_model(ref, "", base_dir)
    msgs = [i.message for i in issues]
    if info.config is None:
        return ModelSummary(ref, False, messages=msgs or [f"{ref}: no config.json found."])
    archs = info.config.get("architectures") or []
    summary = ModelSummary(
        ref, True, architecture=", ".join(archs) if archs else str(info.config.get("model_type", "")),
        layers=info.get("num_hidden_layers"), hidden_size=info.get("hidden_size"),
        vocab_size=info.get("vocab_size"), where=info.where,
        messages=[i.message for i in issues if not i.is_error])
    summary.parameters, summary.size_bytes = preflight.model_size(info)
    return summary
