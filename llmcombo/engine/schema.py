"""mergekit's own models of its YAML documents: the one place a document is parsed by mergekit.

:func:`parse` is what a run hands to mergekit; :func:`check` turns mergekit's refusal into a
sentence. Both import mergekit's pydantic models, which pull in torch and transformers: validation
never calls them -- it uses the reproduction in :mod:`llmcombo.productline.documents`, which a test
checks against these on every corpus file.
"""

from __future__ import annotations

from typing import Any

from llmcombo.errors import UserError

KINDS = ("merge", "moe", "multimerge")


def parse(kind: str, doc: dict) -> Any:
    """mergekit's model of a document: ``MergeConfiguration`` (merge), ``MoEMergeConfig`` (moe),
    or for a multi-stage merge (``{"documents": [...]}``) the list of each stage's
    ``MergeConfiguration`` (its ``name`` is mergekit-multimerge's, not the configuration's).
    Raises mergekit's / pydantic's own exceptions."""
    if kind == "multimerge":
        from mergekit.config import MergeConfiguration

        return [MergeConfiguration.model_validate({k: v for k, v in d.items() if k != "name"})
                for d in doc["documents"]]
    if kind == "merge":
        from mergekit.config import MergeConfiguration

        return MergeConfiguration.model_validate(doc)
    if kind == "moe":
        from mergekit.moe.config import MoEMergeConfig

        return MoEMergeConfig.model_validate(doc)
    raise UserError(f"unknown kind of mergekit document {kind!r}: expected one of {', '.join(KINDS)}.")


def refusal(exc: BaseException) -> str:
    """mergekit's (or pydantic's) reason for refusing a document, in one line."""
    lines = [ln for ln in str(exc).strip().splitlines() if ln.strip()]
    return lines[-1].strip() if lines else type(exc).__name__


def check(kind: str, doc: dict, what: str = "the configuration") -> Any:
    """:func:`parse`, with a refusal raised as :class:`UserError`."""
    try:
        return parse(kind, doc)
    except UserError:
        raise
    except Exception as exc:  # pydantic ValidationError, RuntimeError from mergekit's validators
        raise UserError(f"mergekit does not accept {what}: {refusal(exc)}",
                        hint="Run `llmcombo validate` on it for details.") from None


def dump_yaml(doc: dict, kind: str = "merge") -> str:
    """A document as mergekit writes its own YAML (a multi-stage merge: one document per stage,
    separated by ``---``)."""
    import yaml

    from mergekit.config import ConfigYamlDumper

    if kind == "multimerge":
        return yaml.dump_all(doc["documents"], Dumper=ConfigYamlDumper, sort_keys=False)
    return yaml.dump(doc, Dumper=ConfigYamlDumper, sort_keys=False)



def parse_size(text: str | int) -> int:
    """mergekit's size syntax (``5B``, ``500M``) in bytes."""
    from mergekit.common import parse_kmb

    return int(parse_kmb(text))
