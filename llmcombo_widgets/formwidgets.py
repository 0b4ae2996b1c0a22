"""The widgets of the view tree's nodes: a field (label, typed input, help, messages), and the
keyed rendering of sections, toggles, choices and lists that the Configurator is made of.

Rendering is a keyed reconciliation, like a virtual DOM: every node of the view tree has a key
(its data path); the widget made for a key is kept and *updated* on the next render (value,
options, messages, children), and only nodes that did not exist before get new widgets. Setting a
trait to the value it already has sends nothing to the browser, so switching the merge method
only touches the fields that appear, disappear or change their domain.

A node that leaves the view is *hidden* (``layout.display = "none"``), not taken out of its box:
the browser's widget manager re-creates every child view after the first change in a box's
children list, so removing the base model field when switching TIES -> Linear would rebuild the
whole models list in the page. Hidden widgets keep their place, and showing them again (Linear
-> TIES) is a style change. A box's children only change when a node is shown for the first time.
"""

from __future__ import annotations

import html
import threading
from typing import Any, Callable

import ipywidgets as W

from llmcombo_widgets.render import issues_html, mount, slug
from llmcombo_widgets.theme import grow
from llmcombo_widgets.theme import set_traits as _set
from llmcombo_widgets.viewmodel import (
    ChoiceView,
    FieldView,
    FormModel,
    ListView,
    SectionView,
    ToggleView,
    check_model_ref,
)


def _issues() -> W.HTML:
    """Where a node's messages go (:func:`~llmcombo_widgets.render.issues_html`)."""
    issues = W.HTML()
    issues.add_class("llmcombo-issues")
    return issues


def _node_box(kind: str, key: str) -> W.VBox:
    """The box of a section, toggle, choice or list: ``llmcombo-KIND llmcombo-KIND-<key>``."""
    box = W.VBox()
    box.add_class(f"llmcombo-{kind}")
    box.add_class(f"llmcombo-{kind}-{slug(key)}")
    return box


class FieldWidget:
    """Label, typed input, messages (and for model references a Check button)."""

    def __init__(self, fv: FieldView, form: FormRendering):
        self.key = fv.key
        self.kind = fv.kind
        self.signature = fv.signature
        self.form = form  # the Configurator
        self.label = W.HTML(layout=W.Layout(width="160px", min_width="110px", flex="0 1 160px"))
        self.label.add_class("llmcombo-field-label")
        layout = grow("140px")
        k = fv.kind
        if k in ("enum", "bool"):
            self.input = W.Dropdown(options=[c[0] for c in fv.choices], layout=layout)
            self.input.observe(self._on_index, "index")
        elif k in ("text", "string_list", "mapping"):
            self.input = W.Textarea(continuous_update=False,
                                    layout=W.Layout(flex="1 1 auto", width="auto", min_width="140px",
                                                    height="64px"))
            self.input.observe(self._on_text, "value")
        elif k == "model":
            # typed references are checked while typing ("did you mean zoo:domotica?")
            self.input = W.Combobox(options=form.options_now, ensure_option=False,
                                    continuous_update=True, layout=layout)
            self.input.observe(self._on_text, "value")
        elif k == "enum_open":
            self.input = W.Combobox(options=[str(c[1]) for c in fv.choices], ensure_option=False,
                                    continuous_update=False, layout=layout)
            self.input.observe(self._on_text, "value")
        else:
            self.input = W.Text(continuous_update=False, layout=layout)
            self.input.observe(self._on_text, "value")
        self.input.add_class("llmcombo-input")
        self.input.add_class(f"llmcombo-input-{k}")
        self.issues = _issues()
        self.help = W.HTML(layout=W.Layout(margin="0 0 0 164px"))
        self.help.add_class("llmcombo-field-help")
        row = [self.label, self.input]
        self.info = None
        if k == "model":
            self.check = W.Button(description="Check", layout=W.Layout(width="72px", flex="0 0 72px"),
                                  tooltip="read the model's config.json: architecture, layers, size")
            self.check.add_class("llmcombo-check")
            self.check.on_click(self._on_check)
            self.info = W.HTML()
            self.info.add_class("llmcombo-model-info")
            row.append(self.check)
        self.row = W.HBox(row, layout=W.Layout(width="100%", align_items="center"))
        parts = [self.row, self.help, self.issues] + ([self.info] if self.info is not None else [])
        self.box = W.VBox(parts)
        self.box.add_class("llmcombo-field")
        self.box.add_class(f"llmcombo-key-{slug(fv.key)}")
        self.box.add_class(f"llmcombo-kind-{k}")
        self.fv = fv

    def update(self, fv: FieldView) -> None:
        self.fv = fv
        star = ' <span style="color:#c62828">*</span>' if fv.required else ""
        label = f"{html.escape(fv.label)}{star}"
        _set(self.label, value=label)
        tip = fv.description or fv.label
        if fv.kind in ("enum", "bool"):
            index = next((i for i, c in enumerate(fv.choices) if c[1] == fv.value
                          and type(c[1]) is type(fv.value)), 0)
            # the labels follow the selection ("(default: yes)"): updated in place
            _set(self.input, options=tuple(c[0] for c in fv.choices))
            _set(self.input, index=index, tooltip=tip)
        else:
            _set(self.input, value=fv.text, placeholder=fv.placeholder, tooltip=tip)
            if fv.kind == "enum_open":
                _set(self.input, options=tuple(str(c[1]) for c in fv.choices))
            elif fv.kind == "model":
                _set(self.input, options=self.form.options_now)
        _set(self.help, value=html.escape(fv.help, quote=False))
        _set(self.issues, value=issues_html(fv.issues, self.form.vm.revealed))

    def hide(self) -> None:
        """The field left the form: its widget stays (hidden) for when it comes back; its
        messages (and a model's details) go, so nothing stale is left in the page."""
        _set(self.issues, value="")
        if self.info is not None:
            _set(self.info, value="")

    # events -> view-model
    def _on_text(self, change) -> None:
        if self.form.syncing:
            return
        self.form.act(lambda: self.form.vm.set_text(self.key, change["new"]))

    def _on_index(self, change) -> None:
        if self.form.syncing or change["new"] is None:
            return
        value = self.fv.choices[change["new"]][1]
        self.form.act(lambda: self.form.vm.set_value(self.key, value))

    def _on_check(self, _button) -> None:
        info = self.info
        assert info is not None  # the Check button and the info line come together (model fields)
        ref = self.input.value
        info.value = f"<span class='llmcombo-help'>checking {html.escape(ref)} …</span>"
        base_dir = self.form.vm.base_dir

        def work():
            try:
                summary = check_model_ref(ref, base_dir)
                text = html.escape(summary.text())
                cls = "llmcombo-status-ok" if summary.ok else (
                    "llmcombo-info" if summary.missing_zoo else "llmcombo-status-error")
            except Exception as exc:  # never let a check break the form
                cls, text = "llmcombo-status-error", html.escape(f"{type(exc).__name__}: {exc}")
            info.value = f"<div class='{cls}'>{text}</div>"

        threading.Thread(target=work, daemon=True).start()


class FormRendering:
    """The Configurator's rendering of the view tree into widgets kept by key (``_fields`` for
    the fields, ``_boxes`` for the rest); user events go to :meth:`act`."""

    vm: FormModel
    syncing: bool
    options_now: tuple[str, ...]  # the model fields' options of this render
    act: Callable[[Callable[[], Any]], None]  # run a view-model action, showing its errors
    _fields: dict[str, FieldWidget]
    _boxes: dict[str, dict]
    _dead: set  # replaced widgets, dropped from their boxes
    _shown: set[str]  # field keys in the last render

    def _render(self, node: Any) -> W.Widget:
        if isinstance(node, FieldView):
            return self._render_field(node)
        if isinstance(node, SectionView):
            return self._render_section(node)
        if isinstance(node, ToggleView):
            return self._render_toggle(node)
        if isinstance(node, ChoiceView):
            return self._render_choice(node)
        if isinstance(node, ListView):
            return self._render_list(node)
        raise TypeError(node)  # pragma: no cover

    def _render_field(self, fv: FieldView) -> W.Widget:
        fw = self._fields.get(fv.key)
        if fw is None or fw.signature != fv.signature:
            if fw is not None:
                self._dead.add(fw.box)
            fw = FieldWidget(fv, self)
            self._fields[fv.key] = fw
        fw.update(fv)
        self._shown.add(fv.key)
        return fw.box

    def _entry(self, kind: str, key: str, make: Callable[[], dict]) -> dict:
        k = f"{kind}:{key}"
        e = self._boxes.get(k)
        if e is None:
            e = make()
            self._boxes[k] = e
        return e

    def _render_section(self, sec: SectionView) -> W.Widget:
        def make():
            title = W.HTML()
            issues = _issues()
            remove = W.Button(description="remove", icon="trash", layout=W.Layout(width="100px"))
            remove.add_class("llmcombo-remove")
            box = _node_box("section", sec.key)
            e = {"title": title, "issues": issues, "remove": remove, "box": box,
                 "header": W.HBox([title, remove])}
            remove.on_click(lambda _b: self.act(lambda: self._remove(e)))
            return e

        e = self._entry("section", sec.key, make)
        e["list_key"], e["index"] = sec.key.rsplit("[", 1)[0], sec.index
        if sec.index is not None:
            title = f"<b>{html.escape(sec.title)} {sec.index + 1}</b>"
        elif sec.key:
            title = f"<b>{html.escape(sec.title)}</b>"
            if sec.description:
                title += f" <span class='llmcombo-help'>{html.escape(sec.description)}</span>"
        else:
            title = ""
        _set(e["title"], value=title)
        _set(e["remove"], disabled=not sec.removable)
        e["remove"].layout.display = None if sec.index is not None else "none"
        _set(e["issues"], value=issues_html(sec.issues, self.vm.revealed))
        kids = [e["header"], e["issues"]] if title or sec.index is not None else [e["issues"]]
        # inside a family, its decisions come first (the merge method, then models or slices):
        # the meaning of the other fields depends on them. The root keeps name and description
        # on top.
        first = [p for p in sec.parts if sec.key and _is_decision(p)]
        first += [p for p in sec.parts if sec.key and isinstance(p, ChoiceView)
                  and not p.multiple and p not in first]
        kids += [self._render(p) for p in first]
        kids += [self._render(f) for f in sec.fields]
        kids += [self._render(p) for p in sec.parts if p not in first]
        if sec.index is not None:
            e["box"].add_class("llmcombo-list-item")
        mount(e["box"], kids, self._dead)
        return e["box"]

    def _remove(self, e: dict) -> None:
        self.vm.remove_item(e["list_key"], e["index"])

    def _render_toggle(self, t: ToggleView) -> W.Widget:
        def make():
            cb = W.Checkbox(description=t.title, indent=False)
            cb.add_class("llmcombo-toggle-input")
            issues = _issues()
            box = _node_box("toggle", t.key)
            key = t.key
            cb.observe(lambda ch: None if self.syncing else self.act(
                lambda: self.vm.set_toggle(key, ch["new"])), "value")
            return {"cb": cb, "issues": issues, "box": box}

        e = self._entry("toggle", t.key, make)
        _set(e["cb"], value=t.on, tooltip=t.description or t.title)
        _set(e["issues"], value=issues_html(t.issues, self.vm.revealed))
        kids = [e["cb"], e["issues"]]
        if t.body is not None:
            kids.append(self._render(t.body))
        mount(e["box"], kids, self._dead)
        return e["box"]

    def _render_choice(self, c: ChoiceView) -> W.Widget:
        sig = tuple(c.options)

        def make():
            if c.multiple:
                inp = W.VBox([W.Checkbox(description=label, indent=False, value=False)
                              for label, _name in c.options])
                for cb, (_label, name) in zip(inp.children, c.options):
                    cb.observe(lambda ch, n=name: self._on_multi(c.instance, c.group_index, n, ch), "value")
            else:
                inp = W.ToggleButtons(options=list(c.options), value=None,
                                      tooltips=[c.descriptions.get(n, "") for _l, n in c.options],
                                      style={"button_width": "auto"})
                inst, gi = c.instance, c.group_index
                inp.observe(lambda ch: None if self.syncing or ch["new"] is None else self.act(
                    lambda: self.vm.choose(inst, ch["new"], gi)), "value")
            inp.add_class("llmcombo-choice-input")
            help_ = W.HTML()
            help_.add_class("llmcombo-help")
            box = _node_box("choice", c.instance)
            return {"input": inp, "help": help_, "box": box, "sig": sig}

        e = self._entry("choice", c.key, make)
        if e["sig"] != sig:  # the options changed (a plugin added a family): rebuild
            self._dead.add(self._boxes.pop(f"choice:{c.key}")["box"])
            e = self._entry("choice", c.key, make)
        if c.multiple:
            for cb, (_label, name) in zip(e["input"].children, c.options):
                _set(cb, value=name in c.chosen)
        else:
            _set(e["input"], value=c.chosen[0] if c.chosen else None)
        with_body = {b.key.rsplit(".", 1)[-1] for b in c.bodies}
        label = {n: lab for lab, n in c.options}
        helps = [f"{html.escape(label.get(n, n))}: {html.escape(c.descriptions[n], quote=False)}"
                 for n in c.chosen if c.descriptions.get(n) and n not in with_body]
        _set(e["help"], value="<br>".join(helps))
        kids = [e["input"], e["help"]] + [self._render(b) for b in c.bodies]
        mount(e["box"], kids, self._dead)
        return e["box"]

    def _on_multi(self, instance: str, gi: int, name: str, change) -> None:
        if self.syncing:
            return
        choice = self.vm.choice(instance, gi)
        chosen = list(choice.chosen) if choice else []
        if change["new"] and name not in chosen:
            chosen.append(name)
        elif not change["new"] and name in chosen:
            chosen.remove(name)
        self.act(lambda: self.vm.choose(instance, chosen, gi))

    def _render_list(self, lv: ListView) -> W.Widget:
        def make():
            title = W.HTML()
            add = W.Button(description="add", icon="plus", layout=W.Layout(width="90px"))
            add.add_class("llmcombo-add")
            key = lv.key
            add.on_click(lambda _b: self.act(lambda: self.vm.add_item(key)))
            issues = _issues()
            box = _node_box("list", lv.key)
            return {"title": title, "add": add, "issues": issues, "box": box,
                    "header": W.HBox([title, add])}

        e = self._entry("list", lv.key, make)
        limits = [f"at least {lv.minimum}"] if lv.minimum else []
        if lv.maximum is not None:
            limits.append(f"at most {lv.maximum}")
        count = f"{len(lv.items)} so far" + (f"; {', '.join(limits)}" if limits else "")
        _set(e["title"], value=f"<b>{html.escape(lv.title)}</b> <span class='llmcombo-help'>"
                               f"({count})</span>")
        _set(e["add"], disabled=not lv.can_add)
        _set(e["issues"], value=issues_html(lv.issues, self.vm.revealed))
        mount(e["box"], [e["header"], e["issues"]] + [self._render(s) for s in lv.items], self._dead)
        return e["box"]


def _is_decision(part: Any) -> bool:
    """A mandatory part that is nothing but a choice (the merge method)."""
    return (isinstance(part, SectionView) and not part.fields and len(part.parts) == 1
            and isinstance(part.parts[0], ChoiceView) and not part.parts[0].multiple)
