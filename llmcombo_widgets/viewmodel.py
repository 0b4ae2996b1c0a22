"""The view-model of the configurator: form state, validation and actions in plain Python.

The state is the configuration dict (shaped like the YAML files) plus its selection. For any
state, :meth:`FormModel.view` walks the feature model and the data together and returns a tree of
plain objects describing what the form shows:

* :class:`SectionView` -- one feature instance: its visible attribute fields and its parts;
* :class:`ToggleView` -- an optional feature (on/off, and its section when on);
* :class:`ChoiceView` -- a group of alternatives (one choice) or an or-group (several);
* :class:`ListView` -- a cloneable feature: its instances, with add/remove within cardinality;
* :class:`FieldView` -- one attribute: the domain in force, default, required flag, the text
  shown, the issues that point at it.

Nothing here is written for a particular merge parameter: a feature added to the model shows up
in the tree. Validation runs on every change (it takes well under a millisecond); every issue is
attached to the nearest visible node of its path. Widgets (``llmcombo_widgets.configurator``)
render this tree and forward user events to the actions below; tests drive the actions directly.
This module never imports ipywidgets.
"""

from __future__ import annotations

import copy
import json
import math
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from llmcombo.featuremodel import (
    Attribute,
    BoolType,
    EnumType,
    Feature,
    FeatureModel,
    GradientType,
    Issue,
    MappingType,
    ModelRefType,
    NumberType,
    RangeType,
    Selection,
    StringListType,
    StringType,
    normalise_instance,
)
from llmcombo.featuremodel import paths as P
from llmcombo.featuremodel.types import AttrType

# ---------------------------------------------------------------------------------------------
# the view tree
# ---------------------------------------------------------------------------------------------


@dataclass
class FieldView:
    key: str  # data path, e.g. merge.models[1].parameters.density
    attribute: Attribute
    kind: str  # number | gradient | bool | enum | enum_open | string | text | model |
    #            string_list | range | mapping
    label: str
    description: str
    domain: AttrType
    default: Any
    required: bool
    advanced: bool
    relevant: bool
    value: Any  # None when not set
    text: str  # what a text input shows
    placeholder: str
    choices: list[tuple[str, Any]] = field(default_factory=list)  # enum / bool options
    issues: list[Issue] = field(default_factory=list)
    words: str = ""  # the accepted values in words ("a number between 0 and 1")

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self.issues if i.is_error]

    @property
    def help(self) -> str:
        """The plain-language line shown beside the field: what it does, then what it takes."""
        parts = [self.description.rstrip(".")] if self.description else []
        if self.words:
            parts.append(self.words)
        if self.kind == "model" and self.description:
            parts = parts[:1]  # the description already says what a model reference is
        text = "; ".join(parts)
        return text[:1].upper() + text[1:] + "." if text else ""

    @property
    def signature(self) -> tuple:
        """What decides the widget type (a change rebuilds the widget; anything else, choices
        included, updates it in place)."""
        return (self.kind,)


@dataclass
class SectionView:
    key: str  # data path of the feature instance ("" is the root)
    feature: Feature
    title: str
    description: str
    fields: list[FieldView] = field(default_factory=list)
    parts: list[Any] = field(default_factory=list)  # ToggleView | ChoiceView | ListView | SectionView
    issues: list[Issue] = field(default_factory=list)
    removable: bool = False  # an instance of a list that may shrink
    index: int | None = None  # position in its list


@dataclass
class ToggleView:
    key: str  # data path of the optional feature
    feature: Feature
    title: str
    description: str
    on: bool
    body: SectionView | None = None
    issues: list[Issue] = field(default_factory=list)  # when off; when on, the body has them


@dataclass
class ChoiceView:
    key: str  # "<instance path>#<group index>"
    instance: str  # data path of the feature owning the group
    group_index: int
    multiple: bool  # an or-group
    options: list[tuple[str, str]]  # (label, name)
    descriptions: dict[str, str]
    chosen: list[str]
    bodies: list[Any] = field(default_factory=list)  # SectionView | ListView per chosen child
    issues: list[Issue] = field(default_factory=list)


@dataclass
class ListView:
    key: str  # data path of the list
    feature: Feature
    title: str
    description: str
    items: list[SectionView]
    minimum: int
    maximum: int | None
    issues: list[Issue] = field(default_factory=list)

    @property
    def can_add(self) -> bool:
        return self.maximum is None or len(self.items) < self.maximum

    @property
    def can_remove(self) -> bool:
        return len(self.items) > self.minimum


def walk_views(node: Any) -> Iterator[Any]:
    """Every node of a view tree, depth first."""
    yield node
    if isinstance(node, SectionView):
        yield from node.fields
        for p in node.parts:
            yield from walk_views(p)
    elif isinstance(node, ToggleView):
        if node.body is not None:
            yield from walk_views(node.body)
    elif isinstance(node, ChoiceView):
        for b in node.bodies:
            yield from walk_views(b)
    elif isinstance(node, ListView):
        for it in node.items:
            yield from walk_views(it)


# ---------------------------------------------------------------------------------------------
# typed text <-> values
# ---------------------------------------------------------------------------------------------


def field_kind(t: AttrType, attribute: Attribute) -> str:
    if isinstance(t, GradientType):
        return "gradient"
    if isinstance(t, NumberType):
        return "number"
    if isinstance(t, BoolType):
        return "bool"
    if isinstance(t, EnumType):
        return "enum_open" if t.open else "enum"
    if isinstance(t, ModelRefType):
        return "model"
    if isinstance(t, StringListType):
        return "string_list"
    if isinstance(t, RangeType):
        return "range"
    if isinstance(t, MappingType):
        return "mapping"
    if isinstance(t, StringType) and t.multiline:
        return "text"
    return "string"


def _num(x: Any) -> str:
    if isinstance(x, bool):
        return "true" if x else "false"
    if isinstance(x, float):
        if math.isfinite(x) and x.is_integer() and abs(x) < 1e15:
            return f"{x:.1f}"
        return repr(x)
    return str(x)


def format_value(kind: str, value: Any) -> str:
    """The text a field shows for a value (``""`` when unset)."""
    if value is None:
        return ""
    if kind == "string_list":
        return "\n".join(value) if isinstance(value, list) else str(value)
    if kind == "mapping":
        from llmcombo.configuration import dump_yaml

        return dump_yaml(value).rstrip("\n") if isinstance(value, dict) else str(value)
    if isinstance(value, (bool, int, float)):
        return _num(value)
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return str(value)


def _number(text: str) -> Any:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return None


def parse_text(kind: str, text: str) -> Any:
    """The value of what was typed. ``""`` means unset (None). Text that does not read as the
    field's type is kept as text, so validation explains what is wrong with it in words."""
    import yaml

    if text is None:
        return None
    if kind in ("string", "text", "model", "enum_open", "enum"):
        return text if text.strip() else None
    stripped = text.strip()
    if not stripped:
        return None
    if kind == "string_list":
        return [line for line in text.splitlines() if line.strip()]
    if kind in ("number", "gradient"):
        n = _number(stripped)
        if n is not None:
            return n
    if kind == "bool":
        low = stripped.lower()
        if low in ("true", "yes", "on"):
            return True
        if low in ("false", "no", "off"):
            return False
        return stripped
    try:
        value = yaml.safe_load(stripped)
    except yaml.YAMLError:
        return stripped
    if kind == "gradient" and isinstance(value, list):
        value = [_number(v) if isinstance(v, str) and _number(v) is not None else v for v in value]
    return value


def describe_domain(t: AttrType) -> str:
    if isinstance(t, GradientType):
        return f"{describe_domain(t.element)}, or a per-layer list like [0, 0.5, 1]"
    return t.describe()


def _n(x: float) -> str:
    return f"{x:g}"


def number_words(t: NumberType) -> str:
    """An interval in words, for people who do not read ``(0, 1]``."""
    what = "a whole number" if t.integer else "a number"
    lo, hi = t.minimum, t.maximum
    if lo is None and hi is None:
        return f"any {what[2:] if what.startswith('a ') else what}"
    if lo is not None and hi is not None:
        if not t.min_open and not t.max_open:
            return f"{what} between {_n(lo)} and {_n(hi)}"
        if t.min_open and not t.max_open:
            return f"{what} above {_n(lo)}, up to {_n(hi)}"
        if not t.min_open and t.max_open:
            return f"{what} from {_n(lo)} up to, but not, {_n(hi)}"
        return f"{what} between {_n(lo)} and {_n(hi)}, but not {_n(lo)} or {_n(hi)} themselves"
    if lo is not None:
        return f"{what} above {_n(lo)}" if t.min_open else f"{what}, {_n(lo)} or more"
    return f"{what} below {_n(hi)}" if t.max_open else f"{what}, {_n(hi)} or less"


def domain_words(t: AttrType) -> str:
    """What a field accepts, in words (``describe_domain`` writes intervals as ``(0, 1]``)."""
    if isinstance(t, GradientType):
        inner = domain_words(t.element)
        if isinstance(t.element, BoolType):
            return inner
        return f"{inner} (or one value per layer, like [0, 0.5, 1])"
    if isinstance(t, NumberType):
        return number_words(t)
    if isinstance(t, BoolType):
        return "yes or no"
    if isinstance(t, ModelRefType):
        return "a model: zoo:NAME, a folder on this computer, or a Hub id like owner/name"
    if isinstance(t, StringListType):
        return "one entry per line"
    if isinstance(t, RangeType):
        return "two whole numbers [start, end], the end not included"
    if isinstance(t, EnumType) and not t.open:
        return ""  # the dropdown lists them
    return ""


# ---------------------------------------------------------------------------------------------
# heavy imports, ahead of need
# ---------------------------------------------------------------------------------------------

# The live mergekit YAML checks the generated document with mergekit's pydantic models; importing
# them pulls in torch, transformers and peft (10 s or more on a small machine). The form itself
# needs none of it, so the dashboard is built without them and :func:`preload` imports them in a
# thread while the user fills the form: the first valid configuration does not freeze the page.
PRELOAD_MODULES = ("mergekit.config", "mergekit.moe.config")


class Preload:
    """Imports ``modules`` in a daemon thread, ``delay`` seconds after it is made or at once when
    :meth:`now` is called (the user started editing). An import error is left for the code that
    needs the module to report."""

    def __init__(self, modules: tuple[str, ...] = PRELOAD_MODULES, delay: float = 0.0):
        import threading

        self.modules = tuple(modules)
        self._go = threading.Event()
        if delay <= 0:
            self._go.set()
        self.thread = threading.Thread(target=self._work, args=(delay,), name="llmcombo-preload",
                                       daemon=True)
        self.thread.start()

    def _work(self, delay: float) -> None:
        import importlib

        self._go.wait(delay)
        for name in self.modules:
            try:
                importlib.import_module(name)
            except Exception:  # noqa: BLE001 - reported where the module is used
                pass

    def now(self) -> None:
        self._go.set()

    def wait(self, timeout: float | None = None) -> bool:
        self._go.set()
        self.thread.join(timeout)
        return not self.thread.is_alive()


def preload(modules: tuple[str, ...] = PRELOAD_MODULES, delay: float = 0.0) -> Preload:
    """Start importing ``modules`` in the background (see :class:`Preload`)."""
    return Preload(modules, delay)


# ---------------------------------------------------------------------------------------------
# the form model
# ---------------------------------------------------------------------------------------------

Listener = Callable[["FormModel"], None]


class FormModel:
    """Form state + validation + actions. ``data`` is the configuration dict."""

    def __init__(self, data: dict | None = None, *, model: FeatureModel | None = None,
                 base_dir: str | os.PathLike | None = None, show_advanced: bool = False):
        if model is None:
            from llmcombo.productline import feature_model

            model = feature_model()
        self.model = model
        self.base_dir = base_dir
        self.show_advanced = show_advanced
        self.data: dict = {}
        self.issues: list[Issue] = []
        self.selection = Selection()
        self.message: str = ""  # the outcome of the last action (load, save, generate ...)
        self.message_is_error = False
        self.generated: str | None = None
        # where the user has been: errors elsewhere are shown as "to do", not in red, until the
        # user edits that field, loads a configuration or asks to generate
        self.touched: set[str] = set()
        self.reveal_all = data is not None  # a configuration given to the form is "loaded"
        self._stash: dict[Any, Any] = {}
        self._listeners: list[Listener] = []
        self._view: SectionView | None = None
        self._index: dict[str, Any] = {}
        self._previews: dict[str, str] = {}  # yaml / mergekit text of the current state
        self._set(data if data is not None else self.initial_data())

    # -- state ------------------------------------------------------------------------------
    def initial_data(self) -> dict:
        """A new configuration: the first family with its mandatory parts, nothing filled."""
        root = self.model.root
        first = root.groups[0].children[0] if root.groups and root.groups[0].children else None
        return {first.name: self.default_instance(first)} if first else {}

    def default_instance(self, f: Feature) -> Any:
        """A fresh instance of ``f``: its mandatory lists with their minimum number of items."""
        if f.cloneable:
            return [self.default_instance_item(f) for _ in range(f.card[0])]
        return self.default_instance_item(f)

    def default_instance_item(self, f: Feature) -> Any:
        inst: dict = {}
        for c in f.children:
            if c.cloneable and not c.optional and c.card[0] > 0:
                inst[c.name] = [self.default_instance_item(c) for _ in range(c.card[0])]
        for g in f.groups:
            if g.min >= 1 and g.max == 1 and len(g.children) <= 4:
                # a small alternative group starts on its first choice (models vs slices)
                first = g.children[0]
                if first.cloneable or first.attributes or first.children or first.groups:
                    inst[first.name] = self.default_instance(first)
        return inst

    def subscribe(self, fn: Listener) -> Callable[[], None]:
        """Call ``fn(self)`` after every change; returns an unsubscribe function."""
        self._listeners.append(fn)
        return lambda: self._listeners.remove(fn) if fn in self._listeners else None

    def _set(self, data: dict, *, keep_stash: bool = False) -> None:
        self.data = data
        if not keep_stash:
            self._stash = {}
        self._revalidate()

    def _revalidate(self) -> None:
        self.issues, self.selection = self.model.analyse(self.data)
        self.issues = self.issues + self._model_name_hints()
        self._view = None
        self._index = {}
        self._previews = {}

    def _changed(self) -> None:
        self._revalidate()
        for fn in list(self._listeners):
            fn(self)

    def _model_name_hints(self) -> list[Issue]:
        """A model written without its scheme (``domotica``) that is no folder here and close
        to a known reference: "did you mean zoo:domotica?" (a warning: the engine would take it
        for a Hub id or a folder). Reads no weights."""
        from llmcombo import modelref
        from llmcombo.featuremodel import warning
        from llmcombo.productline import model_slots

        try:
            slots = model_slots(self.data)
        except Exception:  # a half-typed configuration: the feature model reports it
            return []
        if not slots:
            return []
        known = modelref.known_refs()
        bare = {r.split(":", 1)[1]: r for r in known}
        out = []
        for slot in slots:
            ref = slot.ref.strip()
            if not ref or modelref.split_scheme(ref) is not None or "/" in ref or "\\" in ref:
                continue
            if os.path.exists(os.path.join(str(self.base_dir or "."), ref)):
                continue
            import difflib

            close = difflib.get_close_matches(ref.lower(), list(bare), n=1, cutoff=0.6)
            if close:
                out.append(warning(slot.path, f"{ref} is not a folder here, and a Hub id is "
                                              f"written owner/name: did you mean {bare[close[0]]}?",
                                   f"Known models: {', '.join(known)}.", "model_name"))
        return out

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self.issues if i.is_error]

    @property
    def warnings(self) -> list[Issue]:
        return [i for i in self.issues if not i.is_error]

    def touch(self, key: str) -> None:
        """The user edited ``key``: its messages are shown in full from now on."""
        if key:
            self.touched.add(key)

    def revealed(self, issue: Issue) -> bool:
        """Whether an error is shown as an error (red) or still as something to do: errors show
        once the user edited the field (or a field inside it, or the part it belongs to), loaded
        a configuration, or asked to generate."""
        if self.reveal_all or not issue.is_error:
            return True
        path = issue.path
        for key in self.touched:
            k = key
            if path == k or path.startswith((k + ".", k + "[")) or k.startswith((path + ".", path + "[")):
                return True
        return False

    @property
    def shown_errors(self) -> list[Issue]:
        """The errors shown in red."""
        return [i for i in self.errors if self.revealed(i)]

    @property
    def todo(self) -> list[Issue]:
        """The errors not shown in red yet: things still to fill in."""
        return [i for i in self.errors if not self.revealed(i)]

    @property
    def can_generate(self) -> bool:
        return not self.errors

    @property
    def family(self) -> str | None:
        names = [c.name for c in self.model.root.groups[0].children]
        found = [n for n in names if n in self.data]
        return found[0] if len(found) == 1 else None

    def configuration(self):
        """The configuration as an :class:`llmcombo.configuration.Configuration` (a dict)."""
        from llmcombo.configuration import Configuration

        return Configuration(copy.deepcopy(self.data), base_dir=self.base_dir)

    @property
    def yaml_preview(self) -> str:
        """The configuration as YAML (what Save writes)."""
        text = self._previews.get("yaml")
        if text is None:
            from llmcombo.configuration import dump_yaml

            text = self._previews["yaml"] = dump_yaml(self.data)
        return text

    @property
    def mergekit_preview(self) -> str:
        """The generated mergekit YAML / ensemble spec, or why it cannot be generated yet."""
        if not self.can_generate:
            n = len(self.errors)
            return f"# fix {n} error{'s' if n != 1 else ''} to see the generated configuration"
        text = self._previews.get("mergekit")
        if text is None:
            try:
                text = self._generate_valid()
            except Exception as exc:  # a UserError from mergekit's own schema
                text = f"# {getattr(exc, 'message', exc)}"
            self._previews["mergekit"] = text
        return text

    def _generate_valid(self, resolve: bool = False) -> str:
        """The core's generator on a state already known to have no errors (the feature model's
        validation has run on this state: it is not repeated)."""
        from llmcombo.configuration import dump_yaml
        from llmcombo.generate import to_document

        _kind, doc = to_document(self.configuration(), self.base_dir, resolve=resolve,
                                 validate=False)
        return dump_yaml(doc)

    # -- the view ---------------------------------------------------------------------------
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
            unset = f"(default: {default})" if default is not None else "(not set)"
            choices = [(unset, None)] + [(str(t.labels.get(c, c)) if t.labels else str(c), c)
                                         for c in t.choices]
            if value is not None and value not in list(t.choices):
                choices.append((f"{value} (not valid)", value))
        elif kind == "enum_open":
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
            present = [c for c in g.children if c.name in inst and inst[c.name] is not False]
            multiple = g.max is None or g.max > 1
            choice = ChoiceView(
                key=f"{key}#{gi}", instance=key, group_index=gi, multiple=multiple,
                options=[(c.title, c.name) for c in g.children],
                descriptions={c.name: c.description or "" for c in g.children},
                chosen=[c.name for c in present])
            for c in present:
                ckey = P.join(key, c.name)
                if c.cloneable:
                    choice.bodies.append(self._list(c, inst[c.name], ckey))
                elif c.attributes or c.children or c.groups:
                    choice.bodies.append(self._section(c, inst[c.name], ckey))
            sec.parts.append(choice)
        return sec

    def _list(self, f: Feature, raw: Any, key: str) -> ListView:
        items = raw if isinstance(raw, list) else ([raw] if isinstance(raw, dict) else [])
        lo, hi = f.card
        minimum = 0 if f.optional else lo
        sections = [self._section(f, item, f"{key}[{i}]", index=i, removable=len(items) > minimum)
                    for i, item in enumerate(items)]
        return ListView(key, f, f.title, f.description or "", sections, minimum, hi)

    # -- data access ------------------------------------------------------------------------
    def get(self, key: str, default: Any = None) -> Any:
        return P.get(self.data, key, default)

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
        if f.card[1] is not None and len(items) >= f.card[1]:
            raise ValueError(f"{f.title}: at most {f.card[1]} allowed")
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
        minimum = 0 if f.optional else f.card[0]
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
        for fn in list(self._listeners):
            fn(self)

    # load / save / import / presets ---------------------------------------------------------
    def _say(self, text: str, error: bool = False) -> None:
        self.message = text
        self.message_is_error = error

    def load_data(self, data: Any, source: str = "") -> bool:
        """Replace the form with a configuration (a mergekit document is imported)."""
        from llmcombo.errors import UserError
        from llmcombo.importer import as_configuration

        try:
            cfg = as_configuration(copy.deepcopy(data))
        except UserError as exc:
            self._say(f"Could not load {source or 'the configuration'}: {exc.message}", True)
            for fn in list(self._listeners):
                fn(self)
            return False
        if cfg.base_dir is not None:
            self.base_dir = cfg.base_dir
        imported = " (imported from a mergekit YAML)" if cfg.imported_from == "mergekit" else ""
        self.reveal_all = True  # a loaded configuration shows all its problems at once
        self._set(dict(cfg))
        self._say(f"Loaded {source or 'the configuration'}{imported}.")
        self._changed()
        return True

    def load_yaml(self, text: str, source: str = "") -> bool:
        """Load YAML text: an llmcombo configuration or a mergekit YAML (detected)."""
        from llmcombo.configuration import parse_yaml_text
        from llmcombo.errors import UserError

        try:
            data = parse_yaml_text(text, source or "the YAML")
        except UserError as exc:
            self._say(exc.message + (f" {exc.hint}" if exc.hint else ""), True)
            for fn in list(self._listeners):
                fn(self)
            return False
        return self.load_data(data, source)

    def load_file(self, path: str | os.PathLike) -> bool:
        from llmcombo.configuration import read_yaml_file
        from llmcombo.errors import UserError

        try:
            data = read_yaml_file(path)
        except UserError as exc:
            self._say(exc.message, True)
            for fn in list(self._listeners):
                fn(self)
            return False
        ok = self.load_data(data, str(path))
        if ok:
            self.base_dir = os.path.dirname(os.path.abspath(path))
        return ok

    def import_mergekit(self, text: str, source: str = "the mergekit YAML") -> bool:
        """Import a mergekit YAML (merge or MoE) into the form."""
        from llmcombo.configuration import is_mergekit_document, parse_yaml_text
        from llmcombo.errors import UserError

        try:
            data = parse_yaml_text(text, source)
        except UserError as exc:
            self._say(exc.message, True)
            for fn in list(self._listeners):
                fn(self)
            return False
        if not is_mergekit_document(data):
            self._say(f"{source} is not a mergekit YAML: it has no merge_method (merge) and no "
                      "base_model + experts (MoE).", True)
            for fn in list(self._listeners):
                fn(self)
            return False
        return self.load_data(data, source)

    def save(self, path: str | os.PathLike) -> str:
        """Write the configuration as YAML (atomically); returns the path."""
        from llmcombo.fsutil import atomic_write

        atomic_write(path, self.yaml_preview)
        self._say(f"Saved to {path}.")
        for fn in list(self._listeners):
            fn(self)
        return str(path)

    @staticmethod
    def presets() -> list[str]:
        from llmcombo.configuration import list_presets

        return list_presets()

    def apply_preset(self, name: str) -> bool:
        from llmcombo.configuration import load_preset
        from llmcombo.errors import UserError

        try:
            data = load_preset(name)
        except UserError as exc:
            self._say(exc.message, True)
            return False
        return self.load_data(dict(data), f"preset {name}")

    # generate ---------------------------------------------------------------------------------
    def generate_yaml(self, resolve: bool = False) -> str:
        """The generated mergekit YAML / ensemble spec (the core's ``generate_yaml``).

        Raises :class:`llmcombo.errors.UserError` while the configuration has errors."""
        from llmcombo.generate import generate_yaml

        return generate_yaml(self.configuration(), self.base_dir, resolve=resolve)

    def generate(self, path: str | os.PathLike | None = None, resolve: bool = False) -> str | None:
        """Generate (and write to ``path`` when given). Returns the text, or None when the
        configuration cannot be generated (the reason is in :attr:`message`)."""
        from llmcombo.errors import UserError

        if not self.can_generate:
            self.reveal_all = True
            self._say(f"Fix the {len(self.errors)} error(s) first.", True)
            for fn in list(self._listeners):
                fn(self)
            return None
        try:
            text = self.generate_yaml(resolve=resolve)
        except UserError as exc:
            self._say(exc.message, True)
            for fn in list(self._listeners):
                fn(self)
            return None
        if path is not None:
            from llmcombo.fsutil import atomic_write

            atomic_write(path, text if text.endswith("\n") else text + "\n")
            self._say(f"Generated {path}.")
        else:
            self._say("Generated.")
        self.generated = text
        for fn in list(self._listeners):
            fn(self)
        return text

    # model references ---------------------------------------------------------------------------
    def check_model(self, key: str) -> ModelSummary:
        """Read config.json of the model named at field ``key`` (never weights)."""
        return check_model_ref(self.get(key), self.base_dir)

    def model_fields(self) -> list[FieldView]:
        return [f for f in self.visible_fields() if f.kind == "model"]


# ---------------------------------------------------------------------------------------------
# model check (config.json, via pre-flight)
# ---------------------------------------------------------------------------------------------


@dataclass
class ModelSummary:
    ref: str
    ok: bool
    architecture: str = ""
    layers: int | None = None
    hidden_size: int | None = None
    vocab_size: int | None = None
    parameters: int | None = None
    size_bytes: int | None = None
    where: str = ""
    messages: list[str] = field(default_factory=list)
    missing_zoo: bool = False  # a zoo: model of a zoo that is not built: information, not an error

    def text(self) -> str:
        if not self.ok:
            return "; ".join(self.messages) or f"{self.ref}: could not be read"
        from llmcombo.preflight import fmt_bytes

        parts = [self.architecture or "unknown architecture"]
        if self.layers is not None:
            parts.append(f"{self.layers} layers")
        if self.hidden_size is not None:
            parts.append(f"hidden {self.hidden_size}")
        if self.parameters:
            parts.append(f"{self.parameters / 1e6:.2f}M parameters")
        if self.size_bytes:
            parts.append(fmt_bytes(self.size_bytes) + " on disk")
        if self.where:
            parts.append(self.where)
        text = ", ".join(parts)
        if self.messages:
            text += " (" + "; ".join(self.messages) + ")"
        return text


def check_model_ref(ref: Any, base_dir=None) -> ModelSummary:
    """Architecture, layers and size of a model reference from its config.json (pre-flight's
    reader: local folder, zoo:NAME or the Hub's config.json only)."""
    if not isinstance(ref, str) or not ref.strip():
        return ModelSummary(str(ref or ""), False, messages=["Type a model first."])
    from llmcombo import modelref, preflight

    parts = modelref.split_scheme(ref.strip())
    if parts is not None and modelref.scheme_problem(ref.strip()) is None:
        try:
            modelref.resolve_scheme(ref.strip())
        except Exception as exc:  # the scheme's models are not there yet (the zoo not built)
            hint = getattr(exc, "hint", None)
            return ModelSummary(ref, False, missing_zoo=True, messages=[
                f"{ref} is not on this computer yet: the {parts[0]} has not been built."
                + (f" {hint}" if hint else "")])
    info, issues = preflight.inspect_model(ref, "", base_dir)
    msgs = [i.message for i in issues]
    if info.config is None:
        return ModelSummary(ref, False, messages=msgs or [f"{ref}: no config.json found."])
    archs = info.config.get("architectures") or []
    summary = ModelSummary(
        ref, True, architecture=", ".join(archs) if archs else str(info.config.get("model_type", "")),
        layers=info.get("num_hidden_layers"), hidden_size=info.get("hidden_size"),
        vocab_size=info.get("vocab_size"), where=info.where,
        messages=[i.message for i in issues if not i.is_error])
    summary.parameters, summary.size_bytes = preflight.model_size(info)
    return summary
