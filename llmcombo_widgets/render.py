"""Small helpers for rendering with ipywidgets: CSS-safe slugs of data paths, issue messages as
HTML, and keyed mounting (children shown in order; those that left stay in the box, hidden)."""

from __future__ import annotations

import html
import re
from typing import Any, Callable

import ipywidgets as W


def slug(key: str) -> str:
    """A CSS-class-safe form of a data path."""
    s = re.sub(r"[^A-Za-z0-9_-]+", "-", key).strip("-")
    return s or "root"


def issues_html(issues, revealed: Callable[[Any], bool] | None = None) -> str:
    """Messages as HTML: errors in red (``llmcombo-error``), warnings in amber; an error the
    user has not reached yet (``revealed`` says no) is shown as something to do, not in red."""
    rows = []
    for i in issues:
        if i.is_error:
            cls = "llmcombo-error" if revealed is None or revealed(i) else "llmcombo-todo"
        else:
            cls = "llmcombo-warning"
        hint = f" <i>{html.escape(i.hint)}</i>" if i.hint else ""
        rows.append(f'<div class="{cls}">{html.escape(i.message)}{hint}</div>')
    return "".join(rows)


def set_children(box: W.Box, children: list) -> None:
    """Give ``box`` these children, sending nothing when they are the ones it has."""
    new = tuple(children)
    if box.children != new:
        box.children = new


def _display(widget: W.Widget, shown: bool) -> None:
    want = None if shown else "none"
    if widget.layout.display != want:
        widget.layout.display = want


def mount(box: W.Box, kids: list, dead: set) -> None:
    """Show ``kids`` in ``box`` in this order; children shown before and not now stay in the box,
    hidden. ``dead`` holds replaced widgets, which are dropped."""
    order = [w for w in box.children if w not in dead]
    merged = list(order)
    at = {w: i for i, w in enumerate(merged)}
    last = -1
    for k in kids:
        i = at.get(k)
        if i is None:  # first time shown: right after the previous visible one
            merged.insert(last + 1, k)
            at = {w: j for j, w in enumerate(merged)}
            last += 1
        elif i > last:
            last = i
        else:  # the order changed: the visible ones in order, the hidden ones after them
            shown = set(kids)
            merged = list(kids) + [w for w in order if w not in shown]
            break
    shown = set(kids)
    for w in merged:
        if w not in shown:
            _display(w, False)
    for k in kids:
        _display(k, True)
    set_children(box, merged)
