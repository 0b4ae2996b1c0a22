"""View-model of the Ensembles panel (plain Python, no ipywidgets): the built-in ensembles of the
zoo's models with their questions, and asking a product (an ensemble, a model, a run, the
ensemble in Configure) a prompt."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from llmcombo_widgets.content import ZOO_PRODUCTS, content_key
from llmcombo_widgets.jobs import Job
from llmcombo_widgets.run_model import RunModel
from llmcombo_widgets.viewmodel import FormModel


@dataclass(frozen=True)
class EnsembleExample:
    """A built-in ensemble of the zoo's models, with questions it answers (and their answers:
    a test checks that it does)."""

    name: str
    title: str
    description: str
    config: dict
    questions: tuple[tuple[str, str], ...]


ROUTES = [{"label": "LLM1", "model": "zoo:domotica"}, {"label": "LLM2", "model": "zoo:tiempo"}]


def _examples() -> tuple[EnsembleExample, ...]:
    from llmcombo.zoo.experiments import vote_config

    vote = vote_config(["zoo:domotica", "zoo:tiempo"], 3, temperature=0.7, seed=0,
                       tie_break="likelihood")
    return (
        EnsembleExample(
            "zoo-router", "Router: a selector picks the specialist",
            "The selector model reads the question and answers LLM1 (home automation) or LLM2 "
            "(weather); that specialist answers. Below 60 % confidence the home-automation model "
            "answers (the fallback).",
            {"name": "zoo-router", "ensemble": {"router": {
                "selector": {"kind": "label_model", "model": "zoo:selector", "threshold": 0.6},
                "fallback": "LLM1", "routes": [dict(r) for r in ROUTES]}}},
            (("apaga la luz del salon", "LUZ_SL OFF"),
             ("que tiempo hace mañana en madrid", "TIEMPO MADRID MANANA"),
             ("sube la persiana de la cocina", "PERSIANA_CO UP"),
             ("va a llover el sabado en sevilla", "LLUVIA SEVILLA SABADO"))),
        EnsembleExample(
            "zoo-vote", "Vote: both specialists answer, the majority wins",
            "Each specialist answers three times (sampled at temperature 0.7); the most frequent "
            "command wins. A specialist asked outside its task scatters its answers or repeats "
            "a wrong one; a tie goes to the answer the models found more likely.",
            dict(vote, name="zoo-vote"),
            (("apaga la luz del salon", "LUZ_SL OFF"),
             ("que tiempo hace mañana en madrid", "TIEMPO MADRID MANANA"),
             ("enciende la tele del comedor", "TV_CM ON"),
             ("hara viento en bilbao el domingo", "VIENTO BILBAO DOMINGO"))),
        EnsembleExample(
            "zoo-pipeline", "Pipeline: draft, then check (home automation)",
            "A pipeline passes one model's answer on to the next. Here the home-automation model "
            "drafts a command, then reads its draft next to the order and writes the final "
            "command. (The zoo has no model that rewrites free text, so both stages are the same "
            "specialist; a real pipeline would chain, say, speech-to-text and then commands.)",
            {"name": "zoo-pipeline", "ensemble": {"pipeline": {"stages": [
                {"model": "zoo:domotica"},
                {"model": "zoo:domotica", "template": "{input} [ORDEN] {prompt} [COMANDO]"}]}}},
            (("apaga la luz del salon", "LUZ_SL OFF"),
             ("sube la persiana de la cocina", "PERSIANA_CO UP"),
             ("pon la calefaccion del dormitorio a 21", "CALEF_DO SET 21"),
             ("enciende la tele del comedor", "TV_CM ON"))),
    )


EXAMPLES: tuple[EnsembleExample, ...] = ()


def ensemble_examples() -> dict[str, EnsembleExample]:
    global EXAMPLES
    if not EXAMPLES:
        EXAMPLES = _examples()
    return {e.name: e for e in EXAMPLES}


ENSEMBLE_EXAMPLES = ("zoo-router", "zoo-vote", "zoo-pipeline")
FORM_SOURCE = "(the ensemble in Configure)"


def example_ensembles() -> dict[str, dict]:
    """The seed's home-automation example: two specialists and a selector from the zoo."""
    return {name: e.config for name, e in ensemble_examples().items()}


class PlaygroundModel:
    """Ask a product a prompt; see the answer, how it was reached in words, and the raw trace.
    Products are cached by content (:func:`content_key`): a model folder that a new run replaced
    is loaded again."""

    def __init__(self, form: FormModel | None = None, run: RunModel | None = None):
        self.form = form
        self.run_model = run
        self.source: str = "zoo-router"
        self.answer = None
        self.error: str | None = None
        self._products: dict[tuple[str, str], Any] = {}
        self.job = Job("ask")

    def sources(self) -> list[str]:
        out = list(example_ensembles())
        if self.form is not None and self.form.family == "ensemble":
            out.insert(0, FORM_SOURCE)
        out += [f"zoo:{n}" for n in ZOO_PRODUCTS]
        if self.run_model is not None:
            out += [str(r.path) for r in self.run_model.history()]
        return out

    def labels(self) -> list[tuple[str, str]]:
        """(what the picker shows, source) for every source."""
        from llmcombo_widgets.words import model_words

        ex = ensemble_examples()
        runs = {str(r.path): r for r in self.run_model.history()} if self.run_model else {}
        out = []
        for src in self.sources():
            if src in ex:
                out.append((f"{ex[src].title}", src))
            elif src in runs:
                out.append((f"your model: {runs[src].label()}", src))
            elif src.startswith("zoo:"):
                out.append((f"one model: {model_words(src)}", src))
            else:
                out.append((src, src))
        return out

    def example(self, source: str | None = None) -> EnsembleExample | None:
        return ensemble_examples().get(source or self.source)

    def questions(self, source: str | None = None) -> list[str]:
        ex = self.example(source)
        return [q for q, _ in ex.questions] if ex else []

    def config(self, source: str | None = None) -> Any:
        """What the product is made from: a configuration dict, or a model reference."""
        source = source or self.source
        if source == FORM_SOURCE and self.form is not None:
            return self.form.configuration()
        ex = self.example(source)
        return ex.config if ex else source

    def spec_yaml(self, source: str | None = None) -> str:
        """The ensemble's own configuration as YAML (or the model it is)."""
        from llmcombo.configuration import dump_yaml

        cfg = self.config(source)
        return dump_yaml(dict(cfg)) if isinstance(cfg, dict) else f"model: {cfg}\n"

    def product(self, source: str | None = None):
        from llmcombo.ensemble import load_product

        source = source or self.source
        cfg = self.config(source)
        if source == FORM_SOURCE:
            return load_product(cfg)  # not cached: the form changes
        key = (source, content_key(cfg))
        if key not in self._products:
            for old in [k for k in self._products if k[0] == source]:
                del self._products[old]  # the folder was replaced: forget the old copy
            self._products[key] = load_product(cfg)
        return self._products[key]

    def ask(self, prompt: str, source: str | None = None):
        """The answer to ``prompt`` (an :class:`llmcombo.ensemble.Answer`), synchronously."""
        from llmcombo.errors import UserError

        self.error = None
        try:
            self.answer = self.product(source).answer(prompt)
        except UserError as exc:
            self.answer, self.error = None, exc.message
        return self.answer

    def start(self, prompt: str, source: str | None = None, background: bool = True) -> Job:
        return self.job.run(lambda job: self.product(source).answer(prompt), background=background)


def trace_rows(trace: dict) -> list[tuple[str, str]]:
    """A readable flat view of an answer's trace."""
    import json

    rows = []
    for k, v in (trace or {}).items():
        if isinstance(v, (dict, list)):
            text = json.dumps(v, ensure_ascii=False, default=str)
            if len(text) > 400:
                text = text[:397] + "..."
        else:
            text = str(v)
        rows.append((str(k), text))
    return rows
