"""What a GGUF cannot say about a Hugging Face tokenizer, and how llmcombo makes llama.cpp
tokenize like transformers anyway.

Hugging Face added tokens may swallow the whitespace around them (``lstrip`` / ``rstrip``; the
zoo's ``[ORDEN]`` / ``[COMANDO]`` markers do): ``"[ORDEN] apaga [COMANDO]"`` becomes
``[ORDEN] ▁apaga [COMANDO]`` in transformers. llama.cpp ignores those flags (a GGUF has no field for
them) and keeps the spaces as tokens of their own. When llmcombo converts a model it writes the
flags into the GGUF under :data:`STRIP_KEY` (a JSON string), and its llama.cpp backend removes that
whitespace from the text before llama.cpp tokenizes it (:class:`StripRules`), which gives the same
token ids. Pure Python: the converter's child process and the backend both use it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

STRIP_KEY = "llmcombo.tokenizer.strip"


@dataclass(frozen=True)
class StripRules:
    """Special tokens that take the whitespace on their left (``lstrip``) / right (``rstrip``)."""

    lstrip: tuple[str, ...] = ()
    rstrip: tuple[str, ...] = ()
    _patterns: list = field(default_factory=list, compare=False, repr=False)

    def __post_init__(self) -> None:
        pats = [re.compile(r"\s+(?=" + re.escape(t) + ")") for t in self.lstrip if t]
        pats += [re.compile("(?<=" + re.escape(t) + r")\s+") for t in self.rstrip if t]
        self._patterns.extend(pats)

    def __bool__(self) -> bool:
        return bool(self.lstrip or self.rstrip)

    def apply(self, text: str) -> str:
        """``text`` without the whitespace the tokens swallow in transformers."""
        for pat in self._patterns:
            text = pat.sub("", text)
        return text

    def to_json(self) -> str:
        return json.dumps({"lstrip": list(self.lstrip), "rstrip": list(self.rstrip)},
                          ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | None) -> "StripRules":
        if not text:
            return cls()
        try:
            data = json.loads(text)
            return cls(tuple(map(str, data.get("lstrip") or ())),
                       tuple(map(str, data.get("rstrip") or ())))
        except (ValueError, AttributeError, TypeError):
            return cls()


def strip_rules(tokenizer_json: dict) -> StripRules:
    """The lstrip/rstrip special tokens of a ``tokenizer.json`` (its ``added_tokens``)."""
    added = [t for t in tokenizer_json.get("added_tokens") or [] if isinstance(t, dict)
             and isinstance(t.get("content"), str)]
    return StripRules(tuple(t["content"] for t in added if t.get("lstrip")),
                      tuple(t["content"] for t in added if t.get("rstrip")))


# Texts for the tokenization check at export: what people type (accents, ¿?, capitals, spacing,
# symbols outside a small vocabulary); the model's own special tokens are added around them.
CHECK_TEXTS = (
    "apaga la luz del salon", "Apaga la luz del salón, por favor", "¿Qué tiempo hará mañana en Málaga?",
    "ENCIENDE la Calefacción del baño", "¡oye! sube la persiana, porfa", "que tiempo hace",
    "  dos  espacios  ", " empieza con espacio", "termina con espacio ", "línea\nnueva", "tab\there",
    "Ñandú, pingüino, cigüeña €100 — 😀", "LUZ_SL OFF", "TIEMPO MADRID MANANA", "LLM1", " LLM2",
    "The quick brown fox jumps over the lazy dog.", "x = f(3) + 2 * [4, 5]; print(x)", "a", "¿",
)


def check_texts(specials: list[str]) -> list[str]:
    """:data:`CHECK_TEXTS`, alone and between pairs of the model's added special tokens (the way
    prompt templates use them: ``[ORDEN] text [COMANDO]``)."""
    out = list(CHECK_TEXTS)
    marks = [s for s in specials if s][:6]
    for i, a in enumerate(marks):
        b = marks[(i + 1) % len(marks)]
        for t in CHECK_TEXTS[:8]:
            out += [f"{a} {t} {b}", f"{a}{t}{b}", f"{a} {t} {b} LUZ_SL OFF"]
    return out
