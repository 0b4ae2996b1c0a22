"""The form's editing actions: set a value or typed text, switch an optional part, choose an
alternative, add or remove a list item. Values that a choice makes irrelevant are put aside and
come back when they are relevant again."""

from __future__ import annotations

from typing import Any, Iterator

from llmcombo.featuremodel import Attribute, Feature, normalise_instance
from llmcombo.featuremodel import paths as P
from llmcombo_widgets.fieldtext import parse_text
from llmcombo_widgets.formview import FormViewing


class FormEditing(FormViewing):
    """The actions the form's widgets forward user events to."""

    # -- data access ------------------------------------------------------------------------
    def _container(self, tokens: list, create: bool = True) -> Any:
        """The dict or list at ``tokens``, normalising shorthand names and creating dicts."""
        cur: Any = self.data
        for i, t in enumerate(tokens):
            if isinstance(t, int):
                if not isinstance(cur, list) or t >= len(cur):
                    raise KeyError(P.fmt(tokens[: i + 1]))
                if not isinstance(cur[t], dict):
                    cur[t] = {} if cur[t] in (None, True) else cur[t]
                cur = cur[t]
                continue
            nxt = cur.get(t) if isinstance(cur, dict) else None
            if isinstance(nxt, str):  # shorthand alternative: method: ties
                nxt = {nxt: {}}
                cur[t] = nxt
            if nxt is None or nxt is True:
                if not create:
                    raise KeyError(P.fmt(tokens[: i + 1]))
                nxt = {}
                cur[t] = nxt
            cur = nxt
        return cur

    @staticmethod
    def _order(f: Feature, inst: dict) -> None:
        """Keep keys in the feature model's order (attributes, children, groups), so the YAML
        reads like the presets whatever order the fields were filled in."""
        names = [a.name for a in f.attributes] + [c.name for c in f.all_children()]
        rank = {n: i for i, n in enumerate(names)}
        items = sorted(inst.items(), key=lambda kv: rank.get(kv[0], len(rank)))
        if [k for k, _ in items] != list(inst):
            inst.clear()
            inst.update(items)

    def _order_at(self, tokens: list, container: dict) -> None:
        mp = ".".join(t for t in tokens if isinstance(t, str))
        f = self.model.root if not mp else self.model.find(mp)
        if f is not None and isinstance(container, dict):
            self._order(f, container)

    def _reshorthand(self, key: str) -> None:
        """Write ``{ties: {}}`` back as ``ties`` where the feature allows it."""
        try:
            f = self.model.feature(P.model_path(key))
        except KeyError:
            return
        value = P.get(self.data, key)
        if f.shorthand and isinstance(value, dict) and len(value) == 1:
            (name, inner), = value.items()
            if inner in ({}, None, True):
                tokens = P.parse(key)
                parent = self._container(tokens[:-1])
                parent[tokens[-1]] = name

    # -- actions ----------------------------------------------------------------------------
    def set_value(self, key: str, value: Any) -> None:
        """Set the attribute at data path ``key`` (None or ``""`` removes it)."""
        tokens = P.parse(key)
        if not tokens:
            raise ValueError("set_value needs the path of an attribute")
        container = self._container(tokens[:-1])
        if value is None or (isinstance(value, str) and value == ""):
            container.pop(tokens[-1], None)
        else:
            new = tokens[-1] not in container
            container[tokens[-1]] = value
            if new:
                self._order_at(tokens[:-1], container)
        self._stash.pop(("attr", key), None)
        self.touch(key)
        self._changed()

    def set_text(self, key: str, text: str) -> None:
        """Set a field from what was typed into it (parsed for the field's type)."""
        fv = self.field(key)
        kind = fv.kind if fv is not None else "string"
        self.set_value(key, parse_text(kind, text))

    def set_toggle(self, key: str, on: bool) -> None:
        """Switch the optional feature at ``key`` on (an empty instance) or off (removed)."""
        tokens = P.parse(key)
        container = self._container(tokens[:-1])
        name = tokens[-1]
        if on:
            if name not in container or container[name] is False:
                stashed = self._stash.pop(("feature", key), None)
                container[name] = stashed if stashed is not None else {}
                self._order_at(tokens[:-1], container)
        elif name in container:
            self._stash[("feature", key)] = container.pop(name)
        self._changed()

    def choose(self, instance: str, name: str | list[str], group_index: int = 0) -> None:
        """Choose ``name`` in the alternative group ``group_index`` of the feature instance at
        ``instance`` (for an or-group, ``name`` is the list of chosen names). Values that the new
        choice makes irrelevant are put aside and come back when they are relevant again."""
        feature = self.model.root if instance == "" else self.model.feature(P.model_path(instance))
        group = feature.groups[group_index]
        wanted = [name] if isinstance(name, str) else list(name)
        by_name = {c.name: c for c in group.children}
        unknown = [n for n in wanted if n not in by_name]
        if unknown:
            raise ValueError(f"{', '.join(unknown)} is not a choice of {feature.title}")
        inst = self._container(P.parse(instance)) if instance else self.data
        for c in group.children:
            if c.name in inst and c.name not in wanted:
                self._stash[("feature", P.join(instance, c.name))] = inst.pop(c.name)
        for n in wanted:
            if n in inst:
                continue
            c = by_name[n]
            stashed = self._stash.pop(("feature", P.join(instance, n)), None)
            inst[n] = stashed if stashed is not None else self.default_instance(c)
        self._order(feature, inst)
        if instance:
            self._reshorthand(instance)
        else:  # another family: what was said about the previous one no longer applies
            self._say("")
            self.generated = None
        if instance:  # a choice inside a family (the method), not the family itself
            self.touch(P.join(instance, wanted[0]) if len(wanted) == 1 else instance)
        self._revalidate()
        self._put_aside_irrelevant()
        self._changed()

    def _attribute_slots(self) -> Iterator[tuple[str, Attribute, dict]]:
        """Every (data path, attribute, containing dict) of the present feature instances."""

        def visit(f: Feature, raw: Any, key: str):
            inst, _ = normalise_instance(f, raw) if key else (raw, None)
            if not isinstance(inst, dict):
                return
            for a in f.attributes:
                yield P.join(key, a.name), a, inst
            for c in f.all_children():
                if c.name not in inst or inst[c.name] is False:
                    continue
                ckey = P.join(key, c.name)
                if c.cloneable:
                    items = inst[c.name] if isinstance(inst[c.name], list) else []
                    for i, item in enumerate(items):
                        if isinstance(item, dict):
                            yield from visit(c, item, f"{ckey}[{i}]")
                else:
                    yield from visit(c, inst[c.name], ckey)

        yield from visit(self.model.root, self.data, "")

    def _put_aside_irrelevant(self) -> None:
        sel = self.selection
        for key, a, inst in list(self._attribute_slots()):
            relevant = a.is_relevant(sel)
            if not relevant and inst.get(a.name) is not None:
                self._stash[("attr", key)] = inst.pop(a.name)
            elif relevant and a.name not in inst and ("attr", key) in self._stash:
                inst[a.name] = self._stash.pop(("attr", key))

    def add_item(self, key: str) -> int:
        """Append an instance to the cloneable feature at ``key``; returns its index."""
        f = self.model.feature(P.model_path(key))
        tokens = P.parse(key)
        container = self._container(tokens[:-1])
        items = container.get(tokens[-1])
        if isinstance(items, dict):
            items = [items]
        if not isinstance(items, list):
            items = []
        card = f.card
        assert card is not None, f"{key} is not a list"  # add buttons are on lists only
        if card[1] is not None and len(items) >= card[1]:
            raise ValueError(f"{f.title}: at most {card[1]} allowed")
        items.append(self.default_instance_item(f))
        container[tokens[-1]] = items
        self._stash.clear()  # indices moved
        self._changed()
        return len(items) - 1

    def remove_item(self, key: str, index: int) -> None:
        """Remove instance ``index`` of the cloneable feature at ``key`` (within cardinality)."""
        f = self.model.feature(P.model_path(key))
        tokens = P.parse(key)
        container = self._container(tokens[:-1])
        items = container.get(tokens[-1])
        if not isinstance(items, list) or not 0 <= index < len(items):
            raise IndexError(f"{key} has no item {index}")
        if f.optional:
            minimum = 0
        else:
            assert f.card is not None, f"{key} is not a list"  # remove buttons are on lists only
            minimum = f.card[0]
        if len(items) <= minimum:
            raise ValueError(f"{f.title}: needs at least {minimum}")
        items.pop(index)
        if not items and f.optional:
            container.pop(tokens[-1])
        self._stash.clear()
        self.touch(key)
        self._changed()

    def set_show_advanced(self, on: bool) -> None:
        self.show_advanced = bool(on)
        self._view = None
        self._notify()
