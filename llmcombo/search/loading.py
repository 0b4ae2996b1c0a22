"""Reading a search specification: the validated plan (with the budget overrides applied), the
model references written so that any worker can load them, and the hash that tells whether two
searches are the same study (what ``resume`` checks)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from llmcombo.errors import UserError, raise_for_errors
from llmcombo.fsutil import config_hash

SPEC_KEYS = ("models", "base_model", "tasks", "objective", "cost", "sampler", "seed", "space",
             "evaluation", "dtype")  # what makes two searches the same study (not the budget)


def load_spec(spec: Any, *, trials: int | None = None, minutes: float | None = None,
              workers: int | None = None):
    """The validated plan of a search specification (a path, a dict or a Configuration), with
    the budget overrides applied first (so ``trials=0`` is refused like ``trials: 0``)."""
    from llmcombo.configuration import Configuration
    from llmcombo.importer import load_any
    from llmcombo.plan import Plan, make_plan

    if isinstance(spec, Plan):
        config = spec.config
    elif isinstance(spec, (str, Path)):
        config = load_any(spec)
    else:
        config = spec
    if not isinstance(config, dict) or "search" not in config:
        raise UserError("this is not a search specification: it has no 'search' key.",
                        hint="Start from the example in the README's Search section, or pick "
                             "Search in the form.")
    base_dir = getattr(config, "base_dir", None)
    data = copy.deepcopy(dict(config))
    body = data["search"] if isinstance(data["search"], dict) else {}
    for key, value in (("trials", trials), ("minutes", minutes), ("workers", workers)):
        if value is not None:
            body[key] = value
    data["search"] = body
    cfg = Configuration(data, base_dir=base_dir, source=getattr(config, "source", None))
    from llmcombo.productline import feature_model

    issues = feature_model().validate(dict(cfg))
    raise_for_errors(issues, "the search specification is not valid")
    plan = make_plan(cfg, issues=issues).with_preflight()
    raise_for_errors(plan.preflight or (), "the search was refused before any trial")
    return plan


def resolution(plan) -> dict[str, str]:
    """Written model reference -> what a worker anywhere can load (absolute folders; zoo: and hub
    ids stay as written)."""
    import os

    from llmcombo import modelref

    out = {}
    for slot in plan.slots:
        try:
            path = modelref.resolve(slot.ref, plan.base_dir)
        except UserError:
            continue
        if os.path.isdir(path) and not slot.ref.startswith("zoo:"):
            out[slot.ref] = os.path.abspath(path)
    return out


def substitute(data: Any, mapping: dict[str, str]) -> Any:
    if isinstance(data, dict):
        return {k: substitute(v, mapping) for k, v in data.items()}
    if isinstance(data, list):
        return [substitute(v, mapping) for v in data]
    if isinstance(data, str):
        return mapping.get(data, data)
    return data


def spec_hash(doc: dict) -> str:
    return config_hash({k: doc.get(k) for k in SPEC_KEYS})


__all__ = ["SPEC_KEYS", "load_spec", "resolution", "spec_hash", "substitute"]
