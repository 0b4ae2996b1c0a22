"""The tree of plain objects that describes what the configurator form shows.

:meth:`llmcombo_widgets.viewmodel.FormModel.view` builds it for the current state; the widgets
(:mod:`llmcombo_widgets.configurator`) render it and tests read it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator

from llmcombo.featuremodel import Attribute, Feature, Issue
from llmcombo.featuremodel.types import AttrType


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

