"""One look for every panel: colours, spacing, the two-column layout that wraps on narrow screens,
disabled buttons that look disabled, and small HTML helpers (status lines, cards, disclosures).

Everything is CSS scoped under ``.llmcombo-app`` / ``.llmcombo-configurator`` plus layouts set on
the widgets, so the page needs no web font or script from the network (the icons come with the
widgets' own bundle)."""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as W

CSS = """
<style>
.llmcombo-app, .llmcombo-configurator {
  --lc-accent: #1565c0; --lc-ok: #2e7d32; --lc-err: #c62828; --lc-warn: #9a5b00;
  --lc-todo: #455a64; --lc-muted: #5f6b7a; --lc-border: #d8dee6; --lc-soft: #f5f7fa;
  --lc-info-bg: #e8f1fb; --lc-info: #0d47a1;
}
.llmcombo-app { max-width: 1560px; }
.llmcombo-app h2.llmcombo-title { margin: 2px 0 0 0; font-size: 20px; }
.llmcombo-app .llmcombo-subtitle { color: var(--lc-muted); margin: 0 0 6px 0; }
.llmcombo-issues .llmcombo-error { color: var(--lc-err); }
.llmcombo-issues .llmcombo-warning { color: var(--lc-warn); }
.llmcombo-issues .llmcombo-todo { color: var(--lc-todo); }
.llmcombo-issues .llmcombo-todo::before { content: "\\2192\\00a0"; }
.llmcombo-issues div { margin: 0 0 2px 0; line-height: 1.35; }
.llmcombo-field { margin: 2px 0 6px 0; }
.llmcombo-field-label { font-weight: 500; }
.llmcombo-field-help { color: var(--lc-muted); font-size: 12px; line-height: 1.35;
  margin: 0 0 1px 0; }
.llmcombo-section { border-left: 2px solid var(--lc-border); padding-left: 10px; margin: 4px 0; }
.llmcombo-list-item { border: 1px solid var(--lc-border); border-radius: 6px; padding: 6px 8px;
  margin: 6px 0; background: #fff; }
.llmcombo-help { color: var(--lc-muted); font-size: 90%; }
.llmcombo-yaml-preview pre { font-size: 12px; line-height: 1.35; background: var(--lc-soft);
  padding: 8px; margin: 0; white-space: pre; overflow: auto; max-height: 560px;
  border-radius: 4px; }
.llmcombo-status-error { color: var(--lc-err); }
.llmcombo-status-ok { color: var(--lc-ok); }
.llmcombo-status-todo { color: var(--lc-todo); }
.llmcombo-info { background: var(--lc-info-bg); color: var(--lc-info); border-radius: 6px;
  padding: 6px 10px; margin: 4px 0; line-height: 1.4; }
.llmcombo-card { border: 1px solid var(--lc-border); border-radius: 8px; padding: 10px 12px;
  background: #fff; margin: 4px 0 8px 0; }
.llmcombo-card h4 { margin: 0 0 6px 0; font-size: 14px; }
.llmcombo-steps { display: flex; flex-wrap: wrap; gap: 8px; margin: 0 0 10px 0; }
.llmcombo-step { flex: 1 1 170px; border: 1px solid var(--lc-border); border-radius: 8px;
  padding: 6px 10px; background: var(--lc-soft); line-height: 1.35; }
.llmcombo-step b { color: var(--lc-accent); }
.llmcombo-app table { border-collapse: collapse; }
.llmcombo-app table td, .llmcombo-app table th { padding: 2px 10px 2px 0; vertical-align: top;
  text-align: left; }
.llmcombo-app table.llmcombo-accuracy td, .llmcombo-app table.llmcombo-accuracy th {
  padding: 3px 10px; border-bottom: 1px solid var(--lc-border); }
.llmcombo-downloads { display: flex; flex-wrap: wrap; gap: 6px; margin: 6px 0; }
a.llmcombo-download { display: inline-block; padding: 4px 10px; border: 1px solid var(--lc-border);
  border-radius: 4px; text-decoration: none; color: var(--lc-accent); background: #fff;
  font-size: 12px; }
a.llmcombo-download:hover { background: var(--lc-info-bg); }
a.llmcombo-download::before { content: "\\2913\\00a0"; }
.llmcombo-app details > summary { cursor: pointer; color: var(--lc-accent); margin: 4px 0; }
.llmcombo-app details pre { font-size: 12px; background: var(--lc-soft); padding: 6px;
  white-space: pre-wrap; word-break: break-word; max-height: 360px; overflow: auto; }
.llmcombo-answer-text { font-size: 15px; font-weight: 600; }
.llmcombo-trace-sentence { margin: 4px 0; line-height: 1.45; }
/* disabled buttons look disabled, whatever their colour */
.llmcombo-app button:disabled, .llmcombo-app .jupyter-button:disabled,
.llmcombo-configurator button:disabled, .llmcombo-configurator .jupyter-button:disabled {
  opacity: 0.45 !important; filter: grayscale(80%); cursor: not-allowed; box-shadow: none; }
.llmcombo-app .widget-text input, .llmcombo-app .widget-textarea textarea,
.llmcombo-app select { min-width: 0; }
.llmcombo-app .widget-toggle-buttons .widget-toggle-button { margin-bottom: 3px; }
.llmcombo-question { font-size: 12px; }
/* HTML widgets: text lines at text height (the widgets' default is one input row per line);
   messages and help lines with nothing to say take no room */
.llmcombo-app .widget-html, .llmcombo-configurator .widget-html { min-height: 0; }
.llmcombo-app .widget-html > .widget-html-content,
.llmcombo-configurator .widget-html > .widget-html-content { line-height: 1.45; align-self: center; }
.llmcombo-app .llmcombo-field-label > .widget-html-content,
.llmcombo-configurator .llmcombo-field-label > .widget-html-content { line-height: 28px; }
.llmcombo-app .widget-html:has(> .widget-html-content:empty),
.llmcombo-configurator .widget-html:has(> .widget-html-content:empty) { display: none; }
/* side by side (a laptop screen): what comes out stays in view while the form scrolls */
@media (min-width: 1000px) {
  .llmcombo-configurator .llmcombo-right { position: sticky; top: 4px; align-self: flex-start; }
}
.llmcombo-placeholder { color: var(--lc-muted); border: 1px dashed var(--lc-border);
  border-radius: 8px; padding: 14px; }
</style>
"""


def columns(left: list, right: list, *, left_basis: str = "520px", right_basis: str = "400px",
            cls: str = "") -> W.HBox:
    """Two columns side by side that wrap into one below ``left_basis + right_basis`` (a laptop
    screen shows both; 800 px shows the right one under the left one)."""
    lcol = W.VBox(left, layout=W.Layout(flex=f"1 1 {left_basis}", min_width="0",
                                        margin="0 16px 0 0"))
    rcol = W.VBox(right, layout=W.Layout(flex=f"1 1 {right_basis}", min_width="0"))
    lcol.add_class("llmcombo-left")
    rcol.add_class("llmcombo-right")
    box = W.HBox([lcol, rcol], layout=W.Layout(flex_flow="row wrap", width="100%",
                                               align_items="flex-start"))
    if cls:
        box.add_class(cls)
    return box


def grow(width_min: str = "120px") -> W.Layout:
    """A layout for an input that takes the room it is given."""
    return W.Layout(flex="1 1 auto", width="auto", min_width=width_min)


def status(text: str, kind: str = "ok", cls: str = "") -> str:
    """A status line: ``kind`` ok (green), error (red), todo (grey), info (blue box)."""
    css = {"ok": "llmcombo-status-ok", "error": "llmcombo-status-error",
           "todo": "llmcombo-status-todo", "info": "llmcombo-info"}.get(kind, "")
    return f"<div class='{css} {cls}'>{html.escape(text)}</div>"


def card(title: str, body_html: str, cls: str = "") -> str:
    head = f"<h4>{html.escape(title)}</h4>" if title else ""
    return f"<div class='llmcombo-card {cls}'>{head}{body_html}</div>"


def disclosure(summary: str, body: str, *, pre: bool = True, cls: str = "") -> str:
    """``<details>``: the raw text behind a one-line summary."""
    inner = f"<pre>{html.escape(body)}</pre>" if pre else body
    return f"<details class='{cls}'><summary>{html.escape(summary)}</summary>{inner}</details>"


def table(rows, cls: str = "") -> str:
    """(key, value) rows as a two-column table, keys on the left."""
    body = "".join(f"<tr><th style='text-align:left;padding-right:12px'>{html.escape(str(k))}</th>"
                   f"<td>{html.escape(str(v))}</td></tr>" for k, v in rows)
    return f"<table class='{cls}'>{body}</table>"


def set_traits(widget: Any, **traits: Any) -> None:
    """Set only the traits whose value differs (nothing is sent for the others)."""
    for name, value in traits.items():
        if getattr(widget, name) != value:
            setattr(widget, name, value)
