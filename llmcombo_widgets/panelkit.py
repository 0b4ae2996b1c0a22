"""What the dashboard's panels share: the progress bar and log of a run (:class:`WidgetProgress`,
llmcombo's ``Progress`` protocol on ipywidgets), a folder to save into (:class:`SaveBox`) and the
text of an error."""

from __future__ import annotations

import html
import time

import ipywidgets as W

from llmcombo_widgets.theme import grow, status


def error_text(exc: BaseException) -> str:
    msg = getattr(exc, "message", None) or str(exc)
    hint = getattr(exc, "hint", None)
    return msg + (f" {hint}" if hint else "")


class SaveBox:
    """A folder the user chooses (shown in full) and a button that saves into it; the status
    line says the full path of what was written."""

    def __init__(self, default_folder: str, label: str, save, cls: str):
        self.save = save  # save(folder: Path) -> list[Path]
        self.folder = W.Text(value=str(default_folder), description="Folder", layout=grow("180px"),
                             style={"description_width": "52px"})
        self.folder.add_class(f"{cls}-folder")
        self.button = W.Button(description=label, icon="save", layout=W.Layout(width="auto"))
        self.button.add_class(cls)
        self.button.on_click(lambda _b: self.do())
        self.status = W.HTML()
        self.status.add_class(f"{cls}-status")
        self.widget = W.VBox([W.HBox([self.folder, self.button], layout=W.Layout(width="100%")),
                              self.status])

    def clear(self) -> None:
        """Forget the last "Saved: ..." line (what it names is not what is shown any more)."""
        self.status.value = ""

    def do(self) -> None:
        from llmcombo_widgets.downloads import resolve_folder

        folder = resolve_folder(self.folder.value, self.folder.value or ".")
        try:
            written = self.save(folder)
        except Exception as exc:  # shown, never raised into the widget machinery
            self.status.value = status(error_text(exc), "error")
            return
        self.status.value = ("<div class='llmcombo-status-ok'>Saved: "
                             + ", ".join(f"<code>{html.escape(str(p))}</code>" for p in written)
                             + "</div>")


class WidgetProgress:
    """llmcombo's ``Progress`` protocol (start/update/log/close) on ipywidgets: a progress bar,
    the current phase and a log. Usable on its own: ``run(config, out, progress=WidgetProgress())``
    in a notebook, then display ``.widget``."""

    def __init__(self, log_lines: int = 12):
        self.bar = W.FloatProgress(value=0.0, min=0.0, max=1.0, description="",
                                   layout=W.Layout(width="420px"))
        self.bar.add_class("llmcombo-progress")
        self.label = W.HTML()
        self.label.add_class("llmcombo-progress-label")
        self.log_view = W.HTML()
        self.log_view.add_class("llmcombo-log")
        self.widget = W.VBox([W.HBox([self.bar, self.label]), self.log_view])
        self._phases: list[list] = []
        self._log: list[str] = []
        self._keep = log_lines
        self._last = 0.0
        self._finished = False

    def _show(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < 0.1:
            return
        self._last = now
        if self._phases:
            outer = next((p for p in self._phases if p[1]), self._phases[-1])
            desc, total, done = outer
            if total:
                self.bar.value = min(1.0, done / total)
                self.label.value = f"{html.escape(self._phases[-1][0])}: {done}/{total}"
            else:
                self.label.value = html.escape(self._phases[-1][0])

    def start(self, total: int | None, desc: str) -> None:
        self._phases.append([desc, total, 0])
        if len(self._phases) == 1:
            self.bar.bar_style = ""
            self.bar.value = 0.0
            if self._finished:  # a new run: the last one's log goes
                self._log, self._finished = [], False
                self.log_view.value = ""
        self._show(force=True)

    def update(self, n: int = 1) -> None:
        if self._phases:
            self._phases[-1][2] += n
        self._show()

    def log(self, msg: str) -> None:
        self._log.append(str(msg))
        self._log = self._log[-self._keep:]
        self.log_view.value = ("<pre style='font-size:11px;max-height:180px;overflow:auto;margin:0'>"
                               + html.escape("\n".join(self._log)) + "</pre>")

    def close(self) -> None:
        self._show(force=True)  # the last update may have been throttled away
        if self._phases:
            self._phases.pop()
            if self._phases:
                self._show(force=True)

    def finish(self, ok: bool) -> None:
        self._phases = []
        self._finished = True
        if ok:
            self.bar.value = 1.0
        self.bar.bar_style = "success" if ok else "danger"
