"""The zoo as a plugin (entry point ``llmcombo.plugins``): ``zoo:NAME`` model references, the two
zoo tasks as named tasks for evaluation, and the zoo's prompt/answer format for ensembles (the
``[ORDEN] {input} [COMANDO]`` template, the ``command`` output, the ``known_command`` judge)."""

from __future__ import annotations

from llmcombo import modelref
from llmcombo.datasets import register_task
from llmcombo.ensemble.formats import Output, register_judge, register_output, register_template
from llmcombo.zoo import store
from llmcombo.zoo import tasks as T

modelref.register_scheme(modelref.Scheme(
    "zoo", names=lambda: store.MODEL_NAMES, folder=store.model_path,
    missing_hint="The zoo ships with llmcombo; if LLMCOMBO_ZOO_DIR points elsewhere, build that "
                 "zoo with `llmcombo zoo build DIR` (a few minutes) or unset LLMCOMBO_ZOO_DIR."))

def _loader(name: str):
    return lambda split: T.get_task(name).split(split)


for _name in T.TASK_NAMES:  # splits: train, validation (what a search tunes on), test
    register_task(_name, _loader(_name))

register_output(Output("command", "a command (zoo task format: text after [COMANDO], upper-cased)",
                       T.parse_command, T.normalize_command))
register_template(T.DEFAULT_TEMPLATE, T.format_prompt)


def _known_command():
    known = {T.normalize_command(c) for n in T.TASK_NAMES for c in T.get_task(n).commands}
    return lambda prompt, answer: float(T.normalize_command(answer) in known)


_KNOWN = None


def _judge_known(prompt: str, answer: str) -> float:
    global _KNOWN
    if _KNOWN is None:
        _KNOWN = _known_command()
    return _KNOWN(prompt, answer)


register_judge("known_command", "1 when the answer is a command of one of the zoo tasks' grammars, "
               "else 0", _judge_known)
