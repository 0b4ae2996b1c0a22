"""A plan: what validation hands to every later stage, so nothing navigates raw dicts again.

::

    from llmcombo.plan import make_plan
    plan = make_plan(load_any("ties.yaml"))   # raises UserError listing every error
    plan.family, plan.kind                    # "merge", "merge"
    plan.slots                                # every model reference, with the path of its field
    plan.document                             # the engine's document, references as written
    plan.resolved_document()                  # ... with references resolved to folders
    plan = plan.with_preflight()              # model-aware checks, run once and kept

:func:`llmcombo.run.run`, pre-flight, the hub, evaluation and the widgets take a :class:`Plan`
(or a configuration, which they turn into one). A plan is frozen: changing a configuration means
making a new plan.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from llmcombo.configuration import Configuration
from llmcombo.errors import raise_for_errors
from llmcombo.featuremodel.issues import Issue
from llmcombo.fsutil import config_hash
from llmcombo.productline import Family, ModelSlot, family, family_of, feature_model


@dataclass(frozen=True)
class Plan:
    """A valid configuration, parsed once.

    ``family``: the configuration's family (merge, moe, ensemble, ...); ``runner``: what runs it
    (``mergekit`` or ``ensemble``); ``kind``: the document's kind (``merge``, ``moe``, ``vote``
    ...); ``config``: a private copy of the configuration; ``document``: the engine's document
    with model references as written; ``slots``: every model reference; ``base_dir``: the folder
    relative paths are read from; ``warnings``: what validation found that does not block;
    ``preflight``: the model-aware issues once :meth:`with_preflight` ran them (None before).
    """

    family: str
    runner: str
    kind: str
    config: Configuration
    document: dict
    slots: tuple[ModelSlot, ...]
    base_dir: Path | None = None
    warnings: tuple[Issue, ...] = ()
    preflight: tuple[Issue, ...] | None = field(default=None, compare=False)

    @property
    def name(self) -> str | None:
        name = self.config.get("name")
        return str(name) if name else None

    @property
    def method(self) -> str:
        """``ties`` for a merge, ``moe/hidden`` for a MoE, the kind for anything else."""
        if self.kind == "merge":
            return str(self.document.get("merge_method"))
        if self.kind == "moe":
            return f"moe/{self.document.get('gate_mode', 'hidden')}"
        return self.kind

    @property
    def hash(self) -> str:
        """A stable hash of the configuration (cache keys, default folder names)."""
        return config_hash(dict(self.config))

    def _family(self) -> Family:
        fam = family(self.family)
        assert fam is not None, f"family {self.family} is no longer registered"
        return fam

    def resolved_document(self) -> dict:
        """The document with every model reference resolved (``zoo:NAME`` and relative folders
        become absolute folders). Never trains or downloads: a missing zoo raises
        :class:`~llmcombo.errors.UserError` naming the command that builds it."""
        _kind, doc = self._family().generate(self.config, self.base_dir, True)
        return doc

    def with_preflight(self) -> "Plan":
        """This plan with the model-aware checks of :func:`llmcombo.preflight.check_models` (or
        the family's own) recorded in ``preflight``; run once, then kept."""
        if self.preflight is not None:
            return self
        return replace(self, preflight=tuple(model_issues(self.config, self.base_dir)))

    @property
    def issues(self) -> list[Issue]:
        return list(self.warnings) + list(self.preflight or ())


def model_issues(config: dict, base_dir: Any = None) -> list[Issue]:
    """Model-aware checks of a configuration of any family (reads config.json files only)."""
    fam = family(family_of(config) or "")
    return fam.check_models(config, base_dir) if fam is not None else []


def make_plan(config: Any, *, base_dir: Any = None, issues: list[Issue] | None = None) -> Plan:
    """Validate ``config`` with the feature model and parse it into a :class:`Plan`; raises
    :class:`~llmcombo.errors.UserError` listing every error. ``issues``: the feature model's
    issues when the caller already has them (the form validates on every change; ``[]`` hands a
    document to its engine as it is, as :func:`llmcombo.run.run_mergekit` does). A plan passed
    in is returned as it is."""
    if isinstance(config, Plan):
        return config
    if not isinstance(config, Configuration):
        config = Configuration(dict(config) if isinstance(config, dict) else config)
    if base_dir is None:
        base_dir = config.base_dir
    if issues is None:
        issues = feature_model().validate(dict(config))
    raise_for_errors(issues)
    name = family_of(config)
    fam = family(name or "")
    if fam is None:  # pragma: no cover - validation reports a missing family
        raise_for_errors([Issue("error", "", "the configuration names no family of combinations.")])
        raise AssertionError
    private = Configuration(copy.deepcopy(dict(config)), base_dir=base_dir, source=config.source,
                            imported_from=config.imported_from)
    kind, document = fam.generate(private, base_dir, False)
    return Plan(family=fam.name, runner=fam.runner, kind=kind, config=private, document=document,
                slots=tuple(fam.model_slots(private)),
                base_dir=Path(base_dir) if base_dir is not None else None,
                warnings=tuple(i for i in issues if not i.is_error))


__all__ = ["Plan", "make_plan", "model_issues"]
