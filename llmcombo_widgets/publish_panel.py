"""The Publish tab: the model card of a run and its upload to the Hugging Face Hub (a dry run
first); the token is used once and cleared."""

from __future__ import annotations

import html

import ipywidgets as W

from llmcombo_widgets.downloads import links
from llmcombo_widgets.jobs import CANCELLED, DONE, FAILED, RUNNING, Job
from llmcombo_widgets.panelkit import error_text
from llmcombo_widgets.theme import card, columns, disclosure, grow, status
from llmcombo_widgets.theme import set_traits as _set
from llmcombo_widgets.publish_model import PublishModel


class PublishPanel:
    def __init__(self, model: PublishModel):
        self.model = model
        self.runs = W.Dropdown(description="Model", layout=grow("220px"),
                               style={"description_width": "60px"})
        self.runs.add_class("llmcombo-publish-runs")
        self.runs.observe(lambda ch: self.show_card(), "value")
        self.folder = W.Text(placeholder="or the full path of another model folder",
                             layout=grow("220px"))
        self.folder.add_class("llmcombo-publish-folder")
        other = W.Accordion(children=[self.folder], selected_index=None)
        other.set_title(0, "Another folder")
        self.repo = W.Text(description="Repo id", placeholder="your-name/my-merge",
                           layout=grow("220px"), style={"description_width": "60px"})
        self.repo.add_class("llmcombo-publish-repo")
        self.license = W.Dropdown(options=model.LICENSES, value=model.license, description="License",
                                  layout=W.Layout(width="240px"), style={"description_width": "60px"})
        self.private = W.Checkbox(value=model.private, description="private repository", indent=False,
                                  layout=W.Layout(width="auto"))
        self.dry_run = W.Checkbox(value=model.dry_run, description="dry run (write the model card, "
                                  "upload nothing)", indent=False, layout=W.Layout(width="auto"))
        self.dry_run.add_class("llmcombo-publish-dry-run")
        self.token = W.Password(description="Token", placeholder="hf_… (only for a real upload)",
                                layout=grow("220px"), style={"description_width": "60px"})
        self.token.add_class("llmcombo-token")
        self.publish_btn = W.Button(description="Publish", button_style="primary", icon="upload")
        self.publish_btn.add_class("llmcombo-publish")
        self.publish_btn.on_click(lambda _b: self.publish())
        self.status = W.HTML()
        self.status.add_class("llmcombo-publish-status")
        self.card = W.HTML()
        self.card.add_class("llmcombo-publish-card")
        self.widget = columns(
            [W.HTML("<b>Publish to the Hugging Face Hub</b> <span class='llmcombo-help'>(the token "
                    "is used once and cleared; it is never saved or shown)</span>"),
             self.runs, other, self.repo,
             W.HBox([self.license, self.private], layout=W.Layout(flex_flow="row wrap")),
             self.dry_run, self.token, self.publish_btn, self.status],
            [self.card], cls="llmcombo-publish-panel")
        model.job.subscribe(self._on_job)
        for w in (self.repo, self.license):
            w.observe(lambda ch: self.show_card(), "value")

    def chosen_folder(self) -> str:
        return self.folder.value.strip() or (self.runs.value or "")

    def refresh(self) -> None:
        options = self.model.labels()
        _set(self.runs, options=options)
        values = [v for _l, v in options]
        if values and self.runs.value not in values:
            self.runs.value = values[0]
        self.show_card()

    def show_card(self) -> None:
        folder = self.chosen_folder()
        if not folder:
            _set(self.card, value=status("No model yet: run a merge first (Run tab), then "
                                         "publish it here.", "todo"))
            return
        try:
            text = self.model.card(folder, self.repo.value.strip() or None, self.license.value)
        except Exception as exc:
            _set(self.card, value=status(error_text(exc), "error"))
            return
        from llmcombo_widgets.downloads import text_download

        _set(self.card, value=card(
            "Model card", links([text_download("README.md", text, "model card (README.md)")])
            + disclosure("read the model card", text, cls="llmcombo-card-text")))

    def publish(self) -> None:
        token = self.token.value
        self.token.value = ""  # cleared at once: never kept in the widget or the notebook
        m = self.model
        m.folder, m.repo_id = self.chosen_folder(), self.repo.value.strip()
        m.license, m.private, m.dry_run = self.license.value, self.private.value, self.dry_run.value
        self.status.value = "<i>publishing …</i>"
        m.start(token or None)
        del token

    def _on_job(self, job: Job) -> None:
        if job.status == RUNNING:
            _set(self.publish_btn, disabled=True)
            return
        _set(self.publish_btn, disabled=False)
        if job.status == DONE:
            r = job.result
            text = getattr(r, "summary", None)
            text = text() if callable(text) else (text or str(r))
            self.status.value = (f"<div class='llmcombo-status-ok llmcombo-publish-done' "
                                 f"style='white-space: pre-line'>{html.escape(str(text))}</div>")
        elif job.status in (FAILED, CANCELLED):
            self.status.value = status(job.error or "", "error")
