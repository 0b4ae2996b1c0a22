"""Validation of configurations: the feature model's rules, then the model-aware checks.

Never raises for anything a configuration contains; returns issues (errors block generation,
warnings don't). :func:`llmcombo.plan.make_plan` turns a valid configuration into a plan.
"""

from __future__ import annotations

from typing import Any

from llmcombo.featuremodel.issues import Issue, error


def validate(config: Any) -> list[Issue]:
    """The feature model's rules only (fast; no file or network access): for forms."""
    from llmcombo.productline import feature_model

    return feature_model().validate(dict(config) if isinstance(config, dict) else config)


def validate_full(config: Any, *, preflight: bool = True, base_dir: Any = None) -> list[Issue]:
    """The feature model's rules, mergekit's own schema (merges and MoEs), then (``preflight``)
    the checks that read each referenced model's config.json (never weights)."""
    from llmcombo.errors import UserError
    from llmcombo.plan import make_plan

    issues = validate(config)
    if any(i.is_error for i in issues):
        return issues
    if base_dir is None:
        base_dir = getattr(config, "base_dir", None)
    plan = make_plan(config, base_dir=base_dir, issues=issues)
    if plan.runner == "mergekit":
        from llmcombo.engine.schema import check

        try:
            check(plan.kind, plan.document)
        except UserError as exc:
            return issues + [error("", exc.message, exc.hint, "mergekit")]
    if preflight:
        issues = issues + list(plan.with_preflight().preflight or ())
    return issues
