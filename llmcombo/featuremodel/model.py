"""The feature-model metamodel: features, groups, cardinalities, global checks, the model, and the
validation that walks a configuration through it (the leaf elements, attributes and cross-tree
constraints, are in :mod:`llmcombo.featuremodel.elements`).

A *configuration* is plain data (what YAML gives): a mapping whose keys are the names of selected
child features and of set attributes; a cloneable feature's value is a list of instances; a feature
whose only content is one alternative group may be written as the chosen child's name
(``method: ties`` is short for ``method: {ties: {}}``). Validation walks the model and the data
together and returns :class:`Issue` objects; it never raises for anything the data contains.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from llmcombo.featuremodel.elements import Attribute, Constraint
from llmcombo.featuremodel.expr import Selection
from llmcombo.featuremodel.issues import Issue, dedupe, error, internal_error, warning

MANY = None  # an unbounded maximum cardinality


@dataclass
class Group:
    """A group of child features: ``alternative`` (exactly one), ``or`` (at least one), or a
    group cardinality ``[lo..hi]``."""

    children: list["Feature"]
    min: int = 1
    max: int | None = 1
    name: str | None = None

    @property
    def kind(self) -> str:
        if self.min == 1 and self.max == 1:
            return "alternative"
        if self.min == 1 and (self.max is None or self.max >= len(self.children)):
            return "or"
        return f"[{self.min}..{'*' if self.max is None else self.max}]"


def alternative(*children: "Feature", optional: bool = False, name: str | None = None) -> Group:
    return Group(list(children), 0 if optional else 1, 1, name)


def or_group(*children: "Feature", name: str | None = None) -> Group:
    return Group(list(children), 1, None, name)


# A local check runs on every instance of its feature: (value, path, context) -> issues.
LocalCheck = Callable[[dict, str, "Context"], list[Issue]]


@dataclass
class Feature:
    name: str
    label: str | None = None
    description: str | None = None
    optional: bool = False
    card: tuple[int, int | None] | None = None
    attributes: list[Attribute] = field(default_factory=list)
    children: list["Feature"] = field(default_factory=list)
    groups: list[Group] = field(default_factory=list)
    checks: list[LocalCheck] = field(default_factory=list)
    abstract: bool = False
    meta: dict = field(default_factory=dict)
    # what a key that names no attribute or child is: an "error", or a "warning" where the
    # engine behind the feature ignores keys it does not know
    unknown: str = "error"
    # the engine accepts as few as ``soft_min`` instances of a cloneable feature: fewer than
    # ``card[0]`` but at least this many is a warning (``card[0]`` stays the form's minimum)
    soft_min: int | None = None
    # each instance of a scoped (cloneable) feature is a product of its own: conditions inside
    # it see that instance's selection only, and ``constraints`` (paths under this feature) are
    # evaluated per instance (a multi-stage merge: each stage picks its own method)
    scoped: bool = False
    constraints: list[Constraint] = field(default_factory=list)
    parent: "Feature | None" = field(default=None, repr=False)
    path: str = ""

    @property
    def title(self) -> str:
        return self.label or self.name.replace("_", " ")

    @property
    def cloneable(self) -> bool:
        return self.card is not None

    @property
    def shorthand(self) -> bool:
        """True when the feature can be written as the name of its chosen alternative."""
        return (not self.attributes and not self.children and len(self.groups) == 1
                and self.groups[0].max == 1)

    def all_children(self) -> list["Feature"]:
        out = list(self.children)
        for g in self.groups:
            out += g.children
        return out

    def child(self, name: str) -> "Feature | None":
        for c in self.all_children():
            if c.name == name:
                return c
        return None

    def attribute(self, name: str) -> Attribute | None:
        for a in self.attributes:
            if a.name == name:
                return a
        return None

    def walk(self) -> Iterator["Feature"]:
        yield self
        for c in self.all_children():
            yield from c.walk()


@dataclass
class Check:
    """A global constraint written in Python, for rules a boolean expression cannot say
    (counting per instance, comparing values). ``description`` documents it in exports."""

    fn: Callable[[dict, "Context"], list[Issue]]
    description: str


@dataclass
class Context:
    """What checks get to look at: the whole configuration and its selection."""

    data: dict
    selection: Selection
    model: "FeatureModel"


class FeatureModel:
    def __init__(self, root: Feature, constraints: list[Constraint] | None = None,
                 checks: list[Check] | None = None, name: str | None = None):
        self.root = root
        self.name = name or root.name
        self.constraints = list(constraints or [])
        self.checks = list(checks or [])
        self._index: dict[str, Feature] = {}
        self._attrs: dict[str, Attribute] = {}
        self.reindex()

    # -- structure ------------------------------------------------------------------------
    def reindex(self) -> None:
        self._index.clear()
        self._attrs.clear()

        def visit(f: Feature, parent: Feature | None, prefix: str) -> None:
            f.parent = parent
            f.path = f"{prefix}.{f.name}" if prefix else f.name
            if f.path in self._index:
                raise ValueError(f"duplicate feature path {f.path}")
            self._index[f.path] = f
            for a in f.attributes:
                a.path = f"{f.path}.{a.name}"
                self._attrs[a.path] = a
            for c in f.all_children():
                visit(c, f, f.path)

        # the root's own name is not part of configuration paths
        self.root.path = ""
        self.root.parent = None
        self._index[""] = self.root
        for a in self.root.attributes:
            a.path = a.name
            self._attrs[a.path] = a
        for c in self.root.all_children():
            visit(c, self.root, "")

    def feature(self, path: str) -> Feature:
        return self._index[path]

    def find(self, path: str) -> Feature | None:
        return self._index.get(path)

    def attribute(self, path: str) -> Attribute:
        return self._attrs[path]

    def features(self) -> Iterator[Feature]:
        return self.root.walk()

    def add_branch(self, feature: Feature, group_index: int = 0) -> None:
        """Add a child to the root's alternative group (the product line's extension point)."""
        self.root.groups[group_index].children.append(feature)
        self.reindex()


    # -- validation -----------------------------------------------------------------------
    def validate(self, data: Any) -> list[Issue]:
        issues, _ = self.analyse(data)
        return issues

    def selection(self, data: Any) -> Selection:
        return self.analyse(data)[1]

    def analyse(self, data: Any) -> tuple[list[Issue], Selection]:
        walker = _Walker(self)
        if not isinstance(data, dict):
            return [error("", "The configuration must be a mapping of names to values "
                              f"(a YAML document with keys), not {type(data).__name__}.",
                          "Start from a preset or from `llmcombo import` of a mergekit YAML.",
                          "type")], Selection()
        walker.collect(self.root, data, "", "")
        sel = walker.selection
        walker.check(self.root, data, "", "")
        issues = walker.issues
        ctx = Context(data, sel, self)
        for c in self.constraints:
            try:
                ok = c.expr.evaluate(sel)
            except Exception as exc:  # a bug in a rule must not pass a configuration silently
                issues.append(internal_error(c.path, f"the rule '{c.message}'", exc))
                continue
            if not ok:
                issues.append(error(c.path, c.message, c.hint, c.code) if c.severity == "error"
                              else warning(c.path, c.message, c.hint, c.code))
        # checks read values defensively, so a wrong value (code "type") does not hide the
        # problems they find; a wrong shape (a list that is not a list) would only make them
        # report follow-ups of it
        if not any(i.code == "structure" for i in issues):
            for chk in self.checks:
                try:
                    issues += chk.fn(data, ctx)
                except Exception as exc:  # idem: report it, never accept silently
                    issues.append(internal_error("", f"the check of {chk.description or 'the model'}",
                                                 exc))
        return dedupe(issues), sel


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def normalise_instance(feature: Feature, value: Any) -> tuple[dict | None, str | None]:
    """Turn the written forms of a feature instance into a mapping (or say what is wrong)."""
    if value is None or value is True:
        return {}, None
    if isinstance(value, str) and feature.shorthand:
        return {value: {}}, None
    if isinstance(value, dict):
        return value, None
    if feature.shorthand:
        names = ", ".join(c.name for c in feature.groups[0].children)
        return None, f"must be one of {names}"
    return None, "must be a mapping of settings"


class _Walker:
    """Two passes: collect the selection (so conditions can be evaluated), then check."""

    def __init__(self, model: FeatureModel):
        self.model = model
        self.selection = Selection()
        self.issues: list[Issue] = []
        self.scopes: dict[str, Selection] = {}  # data path of a scoped instance -> its selection

    # pass 1 ---------------------------------------------------------------------------------
    def collect(self, f: Feature, value: dict, model_path: str, path: str) -> None:
        if model_path:
            self.selection.add_feature(model_path)
        if f.shorthand:
            self._assume(f, value)
        for a in f.attributes:
            if a.name in value and value[a.name] is not None:
                self.selection.set_attribute(a.path, value[a.name])
        for c in f.all_children():
            if c.name not in value or value[c.name] is False:
                continue
            raw = value[c.name]
            if c.cloneable:
                if isinstance(raw, list):
                    for i, item in enumerate(raw):
                        inst, _ = normalise_instance(c, item)
                        if inst is not None:
                            item_path = f"{_join(path, c.name)}[{i}]"
                            if c.scoped:
                                self._collect_scoped(c, inst, item_path)
                            else:
                                self.collect(c, inst, c.path, item_path)
                continue
            inst, _ = normalise_instance(c, raw)
            if inst is not None:
                self.collect(c, inst, c.path, _join(path, c.name))

    def _collect_scoped(self, c: Feature, inst: dict, item_path: str) -> None:
        outer, sub = self.selection, Selection()
        self.selection = sub
        try:
            self.collect(c, inst, c.path, item_path)
        finally:
            self.selection = outer
        self.scopes[item_path] = sub
        outer.scopes[item_path] = sub
        outer.features |= sub.features
        for k, n in sub.counts.items():
            outer.counts[k] = outer.counts.get(k, 0) + n
        for k, vals in sub.attributes.items():
            outer.attributes.setdefault(k, []).extend(vals)
        outer.assumed.update(sub.assumed)

    def _assume(self, f: Feature, value: dict) -> None:
        """A misspelled choice (``method: tie``) is an error, reported in pass 2; the rest of the
        configuration is judged as if the closest choice had been written, so one typo does not
        hide every other problem nor add warnings that only follow from it."""
        choices = {c.name: c for c in f.groups[0].children}
        if any(k in choices for k in value):
            return
        for key in value:
            close = difflib.get_close_matches(str(key), list(choices), n=1, cutoff=0.6)
            if close:
                chosen = choices[close[0]]
                self.selection.add_feature(chosen.path)
                self.selection.assumed[chosen.path] = str(key)
                return

    # pass 2 ---------------------------------------------------------------------------------
    def check(self, f: Feature, value: dict, model_path: str, path: str) -> None:
        sel = self.selection
        known = {a.name for a in f.attributes} | {c.name for c in f.all_children()}
        unknown = [k for k in value if k not in known]
        if f.shorthand and unknown:
            choices = [c.name for c in f.groups[0].children]
            for key in unknown:
                close = difflib.get_close_matches(str(key), choices, n=1, cutoff=0.6)
                self.issues.append(error(path, f"{key!s} is not a known {f.title}.",
                                         f"Did you mean {close[0]}?" if close else
                                         "Choose one of: " + ", ".join(choices) + ".", "unknown"))
            return
        for key in value:
            if key not in known:
                hint = f.meta.get("unknown_hints", {}).get(key) if isinstance(key, str) else None
                if hint is None and isinstance(key, str):
                    close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
                    if close:
                        hint = f"Did you mean {close[0]}?"
                if hint is None:
                    hint = ("Known here: " + ", ".join(sorted(known)) + ".") if known else None
                where = f.title if model_path else "the configuration"
                if f.unknown == "warning":
                    self.issues.append(warning(_join(path, str(key)), f"{key!s} is not a setting "
                                               f"of {where}, so it is ignored.", hint, "unknown"))
                else:
                    self.issues.append(error(_join(path, str(key)), f"{key!s} is not a setting of "
                                             f"{where}.", hint, "unknown"))
        for a in f.attributes:
            p = _join(path, a.name)
            if a.name in value and value[a.name] is not None:
                if not a.is_relevant(sel):
                    self.issues.append(warning(p, f"{a.title} is not used by this configuration "
                                                  "and will be ignored.", a.ignored_hint, "ignored"))
                    continue
                self.issues += a.type_for(sel).check(value[a.name], p, a.title)
            elif a.is_required(sel) and a.is_relevant(sel):
                self.issues.append(error(p, f"{a.title} is required here.",
                                         f"Set {a.title}" + (f": {a.description}" if a.description else "."),
                                         "required"))
        for c in f.children:
            if c.name not in value or value[c.name] is False:
                if not c.optional and not c.cloneable:
                    if not self._empty_ok(c):
                        self.issues.append(error(_join(path, c.name), f"{c.title} is missing.",
                                                 c.description, "required"))
                elif c.cloneable and c.card and c.card[0] > 0 and not c.optional:
                    self.issues.append(error(_join(path, c.name), f"{c.title}: add at least "
                                             f"{c.card[0]}.", c.description, "count"))
                continue
            self.check_child(c, value[c.name], path)
        for g in f.groups:
            present = [c for c in g.children if c.name in value and value[c.name] is not False]
            n = len(present)
            names = [c.name for c in g.children]
            if n < g.min or (g.max is not None and n > g.max):
                self.issues.append(self._group_issue(f, g, names, present, path))
            for c in present:
                self.check_child(c, value[c.name], path)
        for chk in f.checks:
            self.issues += chk(value, path, Context({}, sel, self.model))

    def _group_issue(self, f: Feature, g: Group, names, present, path) -> Issue:
        chosen = ", ".join(c.name for c in present)
        listing = " or ".join(names) if len(names) <= 4 else ", ".join(names)
        where = f"{f.title}" if path else "The configuration"
        if g.max == 1 and len(present) > 1:
            return error(path, f"{where} can use only one of {listing}; it has {chosen}.",
                         "Keep one and remove the others.", "group")
        if g.min == 1 and g.max == 1:
            return error(path, f"{where} needs one of {listing}.", "Choose one.", "group")
        if g.min >= 1 and not present:
            return error(path, f"{where} needs at least one of {listing}.", code="group")
        return error(path, f"{where} needs between {g.min} and {g.max if g.max is not None else 'any'} "
                           f"of {listing}; it has {len(present)}.", code="group")

    def _empty_ok(self, f: Feature) -> bool:
        """A mandatory feature may be left out when it needs nothing (all defaults)."""
        if f.card is not None:
            return f.card[0] == 0
        if any(g.min >= 1 for g in f.groups) or any(a.required for a in f.attributes):
            return False
        return all(c.optional or self._empty_ok(c) for c in f.children)

    def check_child(self, c: Feature, raw: Any, path: str) -> None:
        p = _join(path, c.name)
        if c.card is not None:
            lo, hi = c.card
            if isinstance(raw, dict) and not c.shorthand:
                raw = [raw]  # a single instance written without a list
            if not isinstance(raw, list):
                self.issues.append(error(p, f"{c.title} must be a list.", "Write one item per line "
                                            "starting with '- '.", "structure"))
                return
            if len(raw) < lo:
                make = warning if c.soft_min is not None and len(raw) >= c.soft_min else error
                self.issues.append(make(p, f"{c.title}: needs at least {lo}, has {len(raw)}.",
                                        "Add more.", "count"))
            if hi is not None and len(raw) > hi:
                self.issues.append(error(p, f"{c.title}: at most {hi} allowed, has {len(raw)}.",
                                         "Remove some.", "count"))
            for i, item in enumerate(raw):
                self._check_instance(c, item, f"{p}[{i}]")
            return
        self._check_instance(c, raw, p)

    def _check_instance(self, c: Feature, raw: Any, p: str) -> None:
        inst, problem = normalise_instance(c, raw)
        if inst is None:
            self.issues.append(error(p, f"{c.title} {problem}, not {raw!r}."[:300],
                                     c.description, "structure"))
            return
        scope = self.scopes.get(p) if c.scoped else None
        if scope is None:
            self.check(c, inst, c.path, p)
            return
        outer, self.selection = self.selection, scope
        try:
            self.check(c, inst, c.path, p)
            for con in c.constraints:
                try:
                    ok = con.expr.evaluate(scope)
                except Exception as exc:  # a bug in a rule must not pass silently
                    self.issues.append(internal_error(p, f"the rule '{con.message}'", exc))
                    continue
                if not ok:
                    where = p + con.path[len(c.path):] if con.path.startswith(c.path) else p
                    make = error if con.severity == "error" else warning
                    self.issues.append(make(where, con.message, con.hint, con.code))
        finally:
            self.selection = outer

