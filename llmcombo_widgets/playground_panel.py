"""The Ensembles tab: ask an ensemble (or one model, a run, the ensemble in Configure) a
question; the answer and how it was reached, in words."""

from __future__ import annotations

import html

import ipywidgets as W

from llmcombo_widgets.jobs import CANCELLED, DONE, FAILED, RUNNING, Job
from llmcombo_widgets.panelkit import error_text
from llmcombo_widgets.theme import card, columns, disclosure, grow, status
from llmcombo_widgets.theme import set_traits as _set
from llmcombo_widgets.playground_model import FORM_SOURCE, PlaygroundModel


class PlaygroundPanel:
    def __init__(self, model: PlaygroundModel):
        self.model = model
        self.source = W.Dropdown(options=model.labels(), value=model.source, description="Ask",
                                 layout=grow("260px"), style={"description_width": "40px"})
        self.source.add_class("llmcombo-playground-source")
        self.source.observe(self._on_source, "value")
        self.about = W.HTML()
        self.about.add_class("llmcombo-playground-about")
        self.questions = W.HBox(layout=W.Layout(flex_flow="row wrap"))
        self.questions.add_class("llmcombo-questions")
        self.prompt = W.Text(value="apaga la luz del salon", description="Prompt",
                             layout=grow("200px"), style={"description_width": "52px"})
        self.prompt.add_class("llmcombo-prompt")
        self.prompt.on_submit(lambda _w: self.ask())
        self.ask_btn = W.Button(description="Ask", button_style="success", icon="comment",
                                layout=W.Layout(width="90px"))
        self.ask_btn.add_class("llmcombo-ask")
        self.ask_btn.on_click(lambda _b: self.ask())
        self.answer = W.HTML("<div class='llmcombo-placeholder'>Pick a question or type one, "
                             "then Ask: the answer and how it was reached appear here.</div>")
        self.answer.add_class("llmcombo-answer")
        self.trace = W.HTML()
        self.trace.add_class("llmcombo-trace")
        self.widget = columns(
            [W.HTML("<b>Ask an ensemble</b> <span class='llmcombo-help'>(router, vote and pipeline "
                    "over the zoo's specialists, one model, your merges, or the ensemble in "
                    "Configure)</span>"),
             self.source, self.about, self.questions,
             W.HBox([self.prompt, self.ask_btn], layout=W.Layout(width="100%"))],
            [self.answer, self.trace], cls="llmcombo-playground-panel")
        model.job.subscribe(self._on_job)
        self._show_source()

    def refresh(self) -> None:
        labels = self.model.labels()
        _set(self.source, options=labels)
        values = [v for _l, v in labels]
        if self.source.value not in values:
            self.source.value = values[0]
        self._show_source()

    def _on_source(self, change) -> None:
        if change["new"] is not None:
            self.model.source = change["new"]
            self._show_source()

    def _show_source(self) -> None:
        src = self.source.value
        ex = self.model.example(src)
        text = f"<div class='llmcombo-field-help'>{html.escape(ex.description)}</div>" if ex else ""
        if src == FORM_SOURCE or ex is not None:
            try:
                text += disclosure("this ensemble's configuration (YAML)", self.model.spec_yaml(src),
                                   cls="llmcombo-ensemble-spec")
            except Exception as exc:
                text += status(error_text(exc), "error")
        _set(self.about, value=text)
        buttons = []
        for q in self.model.questions(src):
            b = W.Button(description=q, tooltip="ask this", layout=W.Layout(width="auto"))
            b.add_class("llmcombo-question")
            b.on_click(lambda _b, q=q: self._ask_question(q))
            buttons.append(b)
        self.questions.children = tuple(buttons)

    def _ask_question(self, q: str) -> None:
        self.prompt.value = q
        self.ask()

    def ask(self) -> None:
        if self.model.job.running:
            return
        self.answer.value = "<i>thinking … (the first question loads the models)</i>"
        self.trace.value = ""
        self.model.start(self.prompt.value, self.source.value)

    def _on_job(self, job: Job) -> None:
        from llmcombo_widgets.words import trace_html

        if job.status == RUNNING:
            _set(self.ask_btn, disabled=True)
            return
        _set(self.ask_btn, disabled=False)
        if job.status == DONE and job.result is not None:
            a = job.result
            self.answer.value = card("Answer", f"<code class='llmcombo-answer-text'>"
                                               f"{html.escape(a.text) or '(empty)'}</code>")
            self.trace.value = card("How it was reached", trace_html(a.trace), "llmcombo-trace-card")
        elif job.status in (FAILED, CANCELLED):
            hint = f" {job.hint}" if job.hint else ""
            self.answer.value = status(f"{job.error or ''}{hint}", "error")
