"""Validation of configurations: the feature model's rules, mergekit's schema, then the
model-aware checks.

Never raises for anything a configuration contains; returns issues (errors block generation,
warnings don't). :func:`llmcombo.plan.make_plan` turns a valid configuration into a plan.
Nothing here imports mergekit, torch or transformers: mergekit's schema is the reproduction in
:mod:`llmcombo.productline.documents` (a test checks both agree on every corpus file), and the
model-aware checks read ``config.json`` files only.
"""

from __future__ import annotations

from typing import Any

from llmcombo.featuremodel.issues import Issue, error


def validate(config: Any) -> list[Issue]:
    """The feature model's rules only (fast; no file or network access): for forms."""
    from llmcombo.productline import feature_model

    return feature_model().validate(dict(config) if isinstance(config, dict) else config)


def _config_path(kind: str, doc_path: str, document: dict, index: int | None = None) -> str:
    """A path in a generated mergekit document as the path of the configuration's field."""
    from llmcombo.featuremodel import paths as P

    tokens: list[P.Token] = P.parse(doc_path)
    if kind == "moe":
        return P.fmt(["moe", *tokens])
    prefix: list[P.Token] = ["merge"] if index is None else ["stages", index, "merge"]
    if tokens[:1] == ["merge_method"]:
        tokens = ["method", *tokens[1:]]
    elif tokens[:1] == ["name"] and index is not None:
        return P.fmt(["stages", index, "name"])
    elif tokens[:1] == ["modules"] and len(tokens) > 1:
        names = list((document.get("modules") or {}).keys())
        pos = names.index(tokens[1]) if tokens[1] in names else 0
        tokens = ["modules", pos, *tokens[2:]]
    return P.fmt(prefix + tokens)


def schema_issues(config: Any, base_dir: Any = None) -> list[Issue]:
    """What mergekit's own document schema refuses in the document generated from ``config``
    (merges, MoEs, multi-stage merges), as errors at the configuration's fields."""
    from llmcombo.productline import family, family_of
    from llmcombo.productline.documents import problems

    fam = family(family_of(config) or "")
    if fam is None or fam.runner != "mergekit":
        return []
    try:
        kind, doc = fam.generate(config, base_dir, False)
    except Exception:  # noqa: BLE001 - a shape the generator cannot read: the rules said why
        return []
    issues: list[Issue] = []
    parts: list[tuple[int | None, str, dict]]
    if kind == "multimerge":
        parts = [(i, "merge", {k: v for k, v in d.items() if k != "name"})
                 for i, d in enumerate(doc["documents"])]
    else:
        parts = [(None, kind, doc)]
    original = getattr(config, "original", None)
    if original is not None and not _unchanged(original, config):
        original = None  # edited since it was imported: the generated document is what counts
    if original is not None:  # the file as written: what mergekit-yaml itself would read
        from llmcombo.configuration import Documents

        docs = list(original) if isinstance(original, Documents) else [original]
        parts = [(i if kind == "multimerge" else None, kind if kind != "multimerge" else "merge",
                  {k: v for k, v in d.items() if k not in ("name", "description")})
                 for i, d in enumerate(docs) if isinstance(d, dict)] + parts
    for index, k, d in parts:
        for path, message in problems(k, d):
            where = _config_path(k, path, d, index)
            if not _covered(where, issues):
                issues.append(error(where, f"mergekit refuses this: {message}.",
                                    "See mergekit's configuration format.", "mergekit"))
    return issues


def _unchanged(original: Any, config: Any) -> bool:
    from llmcombo.errors import UserError
    from llmcombo.importer import import_mergekit

    try:
        return dict(import_mergekit(original)) == dict(config)
    except UserError:
        return False


def _covered(path: str, by: list[Issue]) -> bool:
    return any(i.is_error and (path == i.path or path.startswith(i.path + ".")
                               or path.startswith(i.path + "[") or i.path.startswith(path + ".")
                               or i.path.startswith(path + "[") or not i.path)
               for i in by)


def validate_full(config: Any, *, preflight: bool = True, base_dir: Any = None) -> list[Issue]:
    """The feature model's rules, mergekit's own schema (merges, MoEs and multi-stage merges),
    then (``preflight``) the checks that read each referenced model's config.json (never
    weights). Every independent error is reported in one pass: mergekit's schema adds only what
    the rules did not already say about the same field."""
    from llmcombo.plan import make_plan

    issues = validate(config)
    if base_dir is None:
        base_dir = getattr(config, "base_dir", None)
    issues += [i for i in schema_issues(config, base_dir) if not _covered(i.path, issues)]
    if any(i.is_error for i in issues):
        return issues
    if preflight:
        plan = make_plan(config, base_dir=base_dir, issues=issues)
        issues = issues + list(plan.with_preflight().preflight or ())
    return issues
