"""The form's view: the tree of what it shows for the current state (:mod:`.viewtree`), built
by walking the feature model and the data together; every issue is attached to the nearest
visible node of its path."""

from __future__ import annotations

from typing import Any

from llmcombo.featuremodel import Attribute, EnumType, Feature, Issue, normalise_instance
from llmcombo.featuremodel import paths as P
from llmcombo_widgets.fieldtext import describe_domain, domain_words, field_kind, format_value
from llmcombo_widgets.formstate import FormState
from llmcombo_widgets.viewtree import (
    ChoiceView,
    FieldView,
    ListView,
    SectionView,
    ToggleView,
    walk_views,
)


class FormViewing(FormState):
    """The view tree of the form and the lookups on it (node, field, choice, issues_at)."""

    def view(self) -> SectionView:
        """The tree of what the form shows for the current state (cached until a change)."""
        if self._view is None:
            self._view = self._section(self.model.root, self.data, "")
            self._index = {}
            for node in walk_views(self._view):
                if isinstance(node, ChoiceView):
                    continue
                if isinstance(node, ToggleView) and node.on:
                    continue  # its body section takes the issues
                self._index.setdefault(node.key, node)
            for issue in self.issues:
                self._node_for(issue.path).issues.append(issue)
        return self._view

    def _node_for(self, path: str) -> Any:
        for candidate in P.ancestors(path):
            node = self._index.get(candidate)
            if node is not None:
                return node
        return self._view

    def node(self, key: str) -> Any:
        """The visible node with data path ``key`` (a field, section, list or toggle), or None."""
        self.view()
        return self._index.get(key)

    def field(self, key: str) -> FieldView | None:
        node = self.node(key)
        return node if isinstance(node, FieldView) else None

    def visible_fields(self) -> list[FieldView]:
        return [n for n in walk_views(self.view()) if isinstance(n, FieldView)]

    def choice(self, instance: str, group_index: int = 0) -> ChoiceView | None:
        for n in walk_views(self.view()):
            if isinstance(n, ChoiceView) and n.instance == instance and n.group_index == group_index:
                return n
        return None

    def issues_at(self, key: str) -> list[Issue]:
        """The issues shown at the visible node ``key``."""
        node = self.node(key)
        return list(node.issues) if node is not None else []

    def messages_at(self, key: str) -> list[str]:
        return [i.message for i in self.issues_at(key)]

    def _field(self, a: Attribute, inst: dict, key: str) -> FieldView | None:
        sel = self.selection
        value = inst.get(a.name) if isinstance(inst, dict) else None
        relevant = a.is_relevant(sel)
        if value is None and (not relevant or (a.advanced and not self.show_advanced)):
            return None
        t = a.type_for(sel)
        kind = field_kind(t, a)
        default = a.default_for(sel)
        required = a.is_required(sel)
        choices: list[tuple[str, Any]] = []
        if kind == "enum":
            assert isinstance(t, EnumType)  # field_kind says so
            unset = f"(default: {default})" if default is not None else "(not set)"
            choices = [(unset, None)] + [(str(t.labels.get(c, c)) if t.labels else str(c), c)
                                         for c in t.choices]
            if value is not None and value not in list(t.choices):
                choices.append((f"{value} (not valid)", value))
        elif kind == "enum_open":
            assert isinstance(t, EnumType)
            choices = [(str(c), c) for c in t.choices]
        elif kind == "bool":
            unset = f"(default: {'yes' if default else 'no'})" if default is not None else "(not set)"
            choices = [(unset, None), ("yes", True), ("no", False)]
            if value is not None and not isinstance(value, bool):
                choices.append((f"{value} (not valid)", value))
        words = domain_words(t)
        placeholder = words or ("text" if kind in ("string", "text") else describe_domain(t))
        if kind in ("string", "text") and not required:
            placeholder = "optional"
        if kind == "model":
            placeholder = "zoo:NAME, a folder, or owner/name on the Hub"
        if default is not None and kind not in ("enum", "bool"):
            placeholder = f"default {format_value(kind, default)}"
        elif required:
            placeholder = f"required: {placeholder}"
        return FieldView(
            key=key, attribute=a, kind=kind, label=a.title,
            description=a.description or "", domain=t, default=default, required=required,
            advanced=a.advanced, relevant=relevant, value=value,
            text=format_value(kind, value), placeholder=placeholder, choices=choices, words=words)

    def _section(self, f: Feature, raw: Any, key: str, index: int | None = None,
                 removable: bool = False) -> SectionView:
        inst, _problem = normalise_instance(f, raw) if key else (raw, None)
        if not isinstance(inst, dict):
            inst = {}
        sec = SectionView(key=key, feature=f, title=f.title, description=f.description or "",
                          index=index, removable=removable)
        for a in f.attributes:
            fv = self._field(a, inst, P.join(key, a.name))
            if fv is not None:
                sec.fields.append(fv)
        for c in f.children:
            ckey = P.join(key, c.name)
            present = c.name in inst and inst[c.name] is not False
            if c.cloneable:
                sec.parts.append(self._list(c, inst.get(c.name) if present else None, ckey))
            elif c.optional:
                body = self._section(c, inst[c.name], ckey) if present else None
                sec.parts.append(ToggleView(ckey, c, c.title, c.description or "", present, body))
            else:
                sec.parts.append(self._section(c, inst.get(c.name), ckey))
        for gi, g in enumerate(f.groups):
            picked = [c for c in g.children if c.name in inst and inst[c.name] is not False]
            multiple = g.max is None or g.max > 1
            choice = ChoiceView(
                key=f"{key}#{gi}", instance=key, group_index=gi, multiple=multiple,
                options=[(c.title, c.name) for c in g.children],
                descriptions={c.name: c.description or "" for c in g.children},
                chosen=[c.name for c in picked])
            for c in picked:
                ckey = P.join(key, c.name)
                if c.cloneable:
                    choice.bodies.append(self._list(c, inst[c.name], ckey))
                elif c.attributes or c.children or c.groups:
                    choice.bodies.append(self._section(c, inst[c.name], ckey))
            sec.parts.append(choice)
        return sec

    def _list(self, f: Feature, raw: Any, key: str) -> ListView:
        items = raw if isinstance(raw, list) else ([raw] if isinstance(raw, dict) else [])
        assert f.card is not None  # _list is called for cloneable features only
        lo, hi = f.card
        minimum = 0 if f.optional else lo
        sections = [self._section(f, item, f"{key}[{i}]", index=i, removable=len(items) > minimum)
                    for i, item in enumerate(items)]
        return ListView(key, f, f.title, f.description or "", sections, minimum, hi)
