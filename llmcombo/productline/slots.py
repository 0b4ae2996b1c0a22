"""Where a configuration names models: every family lists its model slots the same way."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelSlot:
    """One place in a configuration that names a model."""

    path: str  # field path, e.g. "merge.models[1].model"
    ref: str  # as written
    role: str  # "base" | "model" | "slice" | "expert" | "shared_expert" | "tokenizer" | "member" ...
