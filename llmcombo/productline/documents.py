"""mergekit's YAML documents as a schema that imports no part of mergekit.

mergekit's own models of its documents (``mergekit.config.MergeConfiguration``,
``mergekit.moe.config.MoEMergeConfig``) import ``mergekit.common``, which imports torch,
transformers and peft: 6-18 s on a small machine, too slow for a linter. The pydantic models below
describe the same documents -- the same fields, types, defaults and validators, so pydantic
coerces values exactly as it does for mergekit (``"1e-5"`` stays text where mergekit keeps text,
``2.0`` becomes ``2`` where mergekit wants a whole number) and refuses what mergekit refuses.
``tests/test_corpus.py`` checks on every corpus file that these models and mergekit's accept and
refuse the same documents and read them the same way; a mergekit upgrade that changes its schema
fails that test.

Besides the documents: :func:`coerce_scalar` (how mergekit reads one merge parameter value: the
parameter's declared type through pydantic, when the merge runs), :func:`model_reference_text`
(``{model: {path, revision}, lora}`` -> ``path@revision+lora``) and :func:`parse_reference`.
"""

from __future__ import annotations

import functools
from typing import Any, Dict, List, Literal, Optional, Tuple, Union

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError, model_serializer, model_validator

KINDS = ("merge", "moe")


class _Model(BaseModel):
    """mergekit's documents ignore keys they do not know (pydantic's default)."""

    model_config = ConfigDict(extra="ignore")


class ModelPath(_Model):
    model_config = ConfigDict(frozen=True)
    path: str
    revision: Optional[str] = None

    @model_validator(mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        if isinstance(value, str):
            if value.count("@") > 1:
                raise ValueError(f"Invalid model path - multiple @: {value}")
            if "@" in value:
                path, rev = value.split("@")
                return {"path": path, "revision": rev}
            return {"path": value}
        return value

    def __str__(self) -> str:
        return f"{self.path}@{self.revision}" if self.revision else self.path


class ModelReference(_Model):
    """A model: ``path``, ``path@revision``, ``path+lora`` or the mapping form."""

    model_config = ConfigDict(frozen=True)
    model: ModelPath
    lora: Optional[ModelPath] = None
    override_architecture: Optional[str] = None

    @model_validator(mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        if isinstance(value, str):
            chunks = value.split("+")
            if len(chunks) == 1:
                return {"model": value}
            if len(chunks) == 2:
                return {"model": chunks[0], "lora": chunks[1]}
            raise ValueError(f"Can't parse {value}")
        return value

    @model_serializer()
    def _dump(self):
        if self.override_architecture is not None:
            return {"model": self.model, "lora": self.lora,
                    "override_architecture": self.override_architecture}
        text = str(self)
        if '"' in text or " " in text:
            return {"model": self.model, "lora": self.lora, "override_architecture": None}
        return text

    def __str__(self) -> str:
        return f"{self.model}+{self.lora}" if self.lora else str(self.model)


ScalarParameter = Union[bool, int, float, str]
ScalarOrGradient = Union[ScalarParameter, List[ScalarParameter]]


class ConditionalParameter(_Model):
    value: ScalarOrGradient
    filter: Optional[str] = None


ParameterSetting = Union[ConditionalParameter, List[ConditionalParameter], ScalarOrGradient]
Parameters = Optional[Dict[str, ParameterSetting]]


class InputSliceDefinition(_Model):
    model: ModelReference
    layer_range: Tuple[int, int]
    parameters: Parameters = None


class InputModelDefinition(_Model):
    model: ModelReference
    parameters: Parameters = None


class OutputSliceDefinition(_Model):
    sources: List[InputSliceDefinition]
    base_model: Optional[ModelReference] = None
    residual_weight: Optional[float] = None
    parameters: Parameters = None


class OutputModuleDefinition(_Model):
    slices: Optional[List[OutputSliceDefinition]] = None
    models: Optional[List[InputModelDefinition]] = None
    parameters: Parameters = None

    @model_validator(mode="after")
    def _one_of(self):
        if (not self.slices and not self.models) or (self.slices and self.models):
            raise ValueError("Must specify either output slices or models to merge")
        return self


class ModelTokenEmbedding(_Model):
    model_config = ConfigDict(frozen=True)
    kind: Literal["model_token"]
    model: ModelReference
    token_id: Optional[int] = None
    token: Optional[str] = None

    @model_validator(mode="after")
    def _one_token(self):
        if self.token_id is None and self.token is None:
            raise ValueError("token_id or token must be specified")
        if self.token_id is not None and self.token is not None:
            raise ValueError("only one of token_id or token may be specified")
        return self


class ZeroEmbedding(_Model):
    model_config = ConfigDict(frozen=True)
    kind: Literal["zero"]


class TokenEmbeddingConfig(_Model):
    model_config = ConfigDict(frozen=True)
    source: Union[ModelTokenEmbedding, ZeroEmbedding, ModelReference, None] = None
    force: bool = False


class TokenizerConfig(_Model):
    model_config = ConfigDict(frozen=True)
    source: Union[ModelReference, Literal["union"], Literal["base"]] = "union"
    tokens: Optional[Dict[str, TokenEmbeddingConfig]] = None
    pad_to_multiple_of: Optional[int] = None


class MergeConfiguration(_Model):
    modules: Optional[Dict[str, OutputModuleDefinition]] = None
    slices: Optional[List[OutputSliceDefinition]] = None
    models: Optional[List[InputModelDefinition]] = None
    merge_method: str
    base_model: Optional[ModelReference] = None
    dtype: Optional[str] = None
    tokenizer_source: Union[Literal["union"], Literal["base"], ModelReference, None] = None
    tokenizer: Optional[TokenizerConfig] = None
    chat_template: Optional[str] = None
    out_dtype: Optional[str] = None
    parameters: Parameters = None

    @model_validator(mode="after")
    def _inputs(self):
        if sum(bool(x) for x in (self.modules, self.slices, self.models)) != 1:
            raise ValueError("Exactly one of 'models', 'slices', or 'modules' must be present")
        return self

    @model_validator(mode="after")
    def _tokenizer(self):
        if self.tokenizer_source and self.tokenizer:
            raise ValueError("Cannot specify both tokenizer_source and tokenizer")
        return self


class Expert(_Model):
    source_model: ModelReference
    positive_prompts: Optional[List[str]] = None
    negative_prompts: Optional[List[str]] = None
    noise_scale: Optional[float] = None
    residual_scale: Optional[float] = None


class MoEMergeConfig(_Model):
    base_model: ModelReference
    experts: List[Expert]
    gate_mode: str = "hidden"
    dtype: Optional[str] = None
    experts_per_token: int = 2
    shared_experts: Optional[List[Expert]] = None
    architecture: Optional[str] = None


# ---------------------------------------------------------------------------------------------
# parsing
# ---------------------------------------------------------------------------------------------


def parse(kind: str, doc: Any) -> BaseModel:
    """The document read as mergekit reads it; raises pydantic's ``ValidationError``."""
    if kind == "merge":
        return MergeConfiguration.model_validate(doc)
    if kind == "moe":
        return MoEMergeConfig.model_validate(doc)
    raise ValueError(f"unknown kind of mergekit document {kind!r}: expected merge or moe")


def _loc(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str) and not part.startswith(("function-", "union[", "tagged-union[")) \
                and part not in ("str", "int", "float", "bool", "list[...]", "tuple[int, int]",
                                 "ConditionalParameter", "list[ConditionalParameter]",
                                 "literal['union']", "literal['base']", "ModelReference",
                                 "ModelTokenEmbedding", "ZeroEmbedding", "none"):
            out = f"{out}.{part}" if out else part
    return out


def problems(kind: str, doc: Any) -> list[tuple[str, str]]:
    """Why mergekit refuses ``doc`` as ``(path, message)`` pairs, the paths in the document's
    own keys (``models[1].parameters.weight``); empty when mergekit accepts it. One pair per
    place: pydantic explains a union that fails every way once per member, which says nothing
    more to a user than the first."""
    try:
        parse(kind, doc)
    except ValidationError as exc:
        out: dict[str, str] = {}
        for err in exc.errors(include_url=False):
            path = _loc(tuple(err.get("loc", ())))
            msg = str(err.get("msg", "")).removeprefix("Value error, ")
            out.setdefault(path, msg)
        return list(out.items())
    except (ValueError, TypeError) as exc:
        return [("", str(exc))]
    return []


def accepts(kind: str, doc: Any) -> bool:
    return not problems(kind, doc)


# ---------------------------------------------------------------------------------------------
# model references and parameter values
# ---------------------------------------------------------------------------------------------


def parse_reference(ref: Any) -> ModelReference:
    """A model reference as mergekit reads it (text or mapping); raises ``ValueError``
    (pydantic's ValidationError is one) for what mergekit cannot read."""
    return ModelReference.model_validate(ref)


def model_reference_text(ref: Any) -> str:
    """``{model: {path: P, revision: R}, lora: L}`` as mergekit's one-line form ``P@R+L``;
    raises ValueError for what mergekit cannot read, and for ``override_architecture`` (which a
    text form cannot carry)."""
    parsed = parse_reference(ref)
    if parsed.override_architecture:
        raise ValueError("override_architecture is not supported by llmcombo yet")
    return str(parsed)


_PY_TYPES = {"float": float, "int": int, "bool": bool, "str": str}


@functools.cache
def _adapter(kind: str, nullable: bool) -> TypeAdapter:
    t: Any = _PY_TYPES.get(kind, float)
    return TypeAdapter(Optional[t] if nullable else t)


def coerce_scalar(kind: str, value: Any, nullable: bool = False) -> tuple[bool, Any, str]:
    """How mergekit reads one value of a merge parameter declared as ``kind`` (float, int, bool,
    str): ``(ok, value_as_read, reason_when_not_ok)``. mergekit validates each value with the
    parameter's type through pydantic when the merge runs, so ``"1e-5"`` reads as ``1e-05``,
    ``1.0`` as ``True`` for a bool and ``20.0`` as ``20`` for a whole number."""
    try:
        return True, _adapter(kind, nullable).validate_python(value), ""
    except ValidationError as exc:
        errs = exc.errors(include_url=False)
        return False, value, str(errs[0]["msg"]) if errs else "not a valid value"


__all__ = ["KINDS", "MergeConfiguration", "MoEMergeConfig", "ModelReference", "accepts",
           "coerce_scalar", "model_reference_text", "parse", "parse_reference", "problems"]
