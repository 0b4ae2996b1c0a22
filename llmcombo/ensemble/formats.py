"""How members are prompted and read: template renderers, output readers and judge functions,
registered by name so the ensemble runtime knows no task in particular.

Built in: the outputs ``line`` (the first line) and ``text`` (everything), the judge functions
``longest`` and ``shortest``, and plain ``{input}``/``{prompt}`` templates. A task format adds its
own (the zoo registers the ``command`` output, its ``[ORDEN] {input} [COMANDO]`` template and the
``known_command`` judge: :mod:`llmcombo.zoo.plugin`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from llmcombo.errors import UserError


@dataclass(frozen=True)
class Output:
    """How an answer is read from generated text (``read``) and when two answers are the same
    vote (``key``)."""

    name: str
    description: str
    read: Callable[[str], str]
    key: Callable[[str], str]


def _line(text: str) -> str:
    text = text.strip()
    return text.splitlines()[0].strip() if text else ""


def _same_text(answer: str) -> str:
    return " ".join(answer.split()).casefold()


_OUTPUTS: dict[str, Output] = {
    "line": Output("line", "the first line of the generated text", _line, _same_text),
    "text": Output("text", "all the generated text", lambda t: t.strip(), _same_text),
}
_RENDERERS: dict[str, Callable[[str], str]] = {}  # exact template -> renderer of its {input}
_JUDGES: dict[str, tuple[str, Callable[[str, str], float]]] = {
    "longest": ("the longest answer", lambda prompt, answer: float(len(answer))),
    "shortest": ("the shortest answer", lambda prompt, answer: -float(len(answer))),
}


def _plugins() -> None:
    from llmcombo.plugins import load_plugins

    load_plugins()


def register_output(output: Output) -> None:
    _OUTPUTS[output.name] = output


def register_template(template: str, render: Callable[[str], str]) -> None:
    """Render ``template`` with ``render(input)`` instead of plain substitution (a task format
    whose prompts must be normalised, e.g. the zoo's idempotent ``[ORDEN] ... [COMANDO]``)."""
    _RENDERERS[template] = render


def register_judge(name: str, description: str, fn: Callable[[str, str], float]) -> None:
    _JUDGES[name] = (description, fn)


def outputs() -> dict[str, Output]:
    _plugins()
    return dict(_OUTPUTS)


def judges() -> dict[str, str]:
    """Judge function names -> what they prefer."""
    _plugins()
    return {name: desc for name, (desc, _fn) in _JUDGES.items()}


def judge(name: str) -> Callable[[str, str], float] | None:
    _plugins()
    found = _JUDGES.get(name)
    return found[1] if found else None


def output(name: str) -> Output:
    _plugins()
    if name not in _OUTPUTS:
        raise UserError(f"unknown output {name!r}", field="output",
                        hint="Known outputs: " + ", ".join(_OUTPUTS) + ".")
    return _OUTPUTS[name]


_PLACEHOLDER = re.compile(r"\{(input|prompt)\}")


def render(template: str, text: str, prompt: str | None = None) -> str:
    """Fill a template: ``{input}`` <- ``text``, ``{prompt}`` <- the user's original prompt (a
    registered template renders with its own function)."""
    _plugins()
    fn = _RENDERERS.get(template)
    if fn is not None:
        return fn(text)
    values = {"input": text, "prompt": text if prompt is None else prompt}
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


def read_answer(text: str, output_name: str) -> str:
    """The answer in generated ``text`` according to the member's output mode."""
    return output(output_name).read(text)


def vote_key(answer: str, output_name: str) -> str:
    """What makes two answers the same vote."""
    return output(output_name).key(answer)
