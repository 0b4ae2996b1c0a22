"""Validation of configurations: the feature model's rules, then the model-aware checks.

Never raises for anything a configuration contains; returns issues (errors block generation,
warnings don't).
"""

from __future__ import annotations

from typing import Any

from llmcombo.featuremodel.issues import Issue, error


def validate(config: Any) -> list[Issue]:
    """The feature model's rules only (fast; no file or network access): for forms."""
    from llmcombo.productline import feature_model

    return feature_model().validate(dict(config) if isinstance(config, dict) else config)


def validate_full(config: Any, *, preflight: bool = True, base_dir=None) -> list[Issue]:
    """The feature model's rules, mergekit's own schema, then (``preflight``) the checks that read
    each referenced model's config.json (never weights)."""
    issues = validate(config)
    if any(i.is_error for i in issues):
        return issues
    from llmcombo.errors import UserError
    from llmcombo.generate import to_mergekit

    if base_dir is None:
        base_dir = getattr(config, "base_dir", None)
    try:
        to_mergekit(config, base_dir, resolve=False, validate=False)
    except UserError as exc:
        return issues + [error("", exc.message, exc.hint, "mergekit")]
    if preflight:
        from llmcombo.preflight import check_models

        issues += check_models(dict(config), base_dir=base_dir)
    return issues
