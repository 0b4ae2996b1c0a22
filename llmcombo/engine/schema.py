"""mergekit's own models of its YAML documents: the one place a document is parsed by mergekit.

:func:`parse` is what a run hands to mergekit; :func:`check` turns mergekit's refusal into a
sentence. Both import mergekit's pydantic models, which pull in torch and transformers: the
feature model's validation never calls them (it works from the registry snapshot).
"""

from __future__ import annotations

from typing import Any

from llmcombo.errors import UserError

KINDS = ("merge", "moe")


def parse(kind: str, doc: dict) -> Any:
    """mergekit's model of a document: ``MergeConfiguration`` (merge) or ``MoEMergeConfig`` (moe).
    Raises mergekit's / pydantic's own exceptions."""
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


def dump_yaml(doc: dict) -> str:
    """A document as mergekit writes its own YAML."""
    import yaml

    from mergekit.config import ConfigYamlDumper

    return yaml.dump(doc, Dumper=ConfigYamlDumper, sort_keys=False)


def model_reference_text(ref: dict) -> str:
    """A model reference written as a mapping (``{model: {path: ..., revision: ...}, lora: ...}``)
    as mergekit's one-line form ``path@revision+lora``; raises ValueError for what mergekit cannot
    read, and for ``override_architecture`` (which a text form cannot carry)."""
    from mergekit.common import ModelReference

    parsed = ModelReference.model_validate(ref)
    if parsed.override_architecture:
        raise ValueError("override_architecture is not supported by llmcombo yet")
    return str(parsed)


def token_embedding_problem(cfg: Any) -> str | None:
    """Why mergekit refuses one ``tokenizer.tokens`` entry (None when it accepts it)."""
    from pydantic import ValidationError

    from mergekit.tokenizer.config import TokenEmbeddingConfig

    try:
        TokenEmbeddingConfig.model_validate(cfg if cfg is not None else {})
    except (ValidationError, ValueError, TypeError, RuntimeError) as exc:
        return refusal(exc)
    return None


def parse_size(text: str | int) -> int:
    """mergekit's size syntax (``5B``, ``500M``) in bytes."""
    from mergekit.common import parse_kmb

    return int(parse_kmb(text))
