"""THE feature model of LLM combinations, built with the metamodel (:mod:`llmcombo.featuremodel`).

Each *family* of combinations is one alternative under the root: ``merge`` (weight-space merges,
:mod:`~llmcombo.productline.merge`), ``moe`` (mixtures of experts, :mod:`~llmcombo.productline.moe`),
``stages`` (multi-stage merges, :mod:`~llmcombo.productline.stages`) and the families that
plugins register. A configuration is YAML shaped like mergekit's own files, under one key per
family::

    merge:                       moe:
      method: ties                 base_model: zoo:base
      base_model: zoo:base         gate_mode: hidden
      models:                      experts:
        - model: zoo:domotica        - source_model: zoo:domotica
          parameters:                  positive_prompts: [enciende la luz]
            weight: 0.5
            density: 0.5

Merge methods, their parameters and input contracts come from the installed mergekit
(:mod:`~llmcombo.productline.registry`), so a method added to mergekit appears here without code.
"""

from __future__ import annotations

import functools
import importlib
import re
from dataclasses import dataclass
from typing import Any, Callable

from llmcombo.featuremodel import (Attribute, Check, Constraint, Feature, FeatureModel,
                                   StringType, alternative)
from llmcombo.productline import merge as _merge
from llmcombo.productline import moe as _moe
from llmcombo.productline import stages as _stages
from llmcombo.productline.merge import METHOD_PREFIX, method_name, method_path
from llmcombo.productline.registry import (MethodInfo, ParamInfo, chat_templates, merge_methods,
                                           moe_architectures)
from llmcombo.productline.slots import ModelSlot
from llmcombo.productline.tables import (DTYPES, GATE_MODES, METHOD_HELP, PARAM_HELP,
                                         RANDOM_GATES, param_domain)

Branch = Callable[[], tuple[Feature, list[Constraint], list[Check]]]
_PLACEHOLDER = re.compile(r"\$\{[^}]*\}|\{\{[^}]*\}\}|\{[A-Za-z_][A-Za-z0-9_]*\}|<[A-Z][A-Z0-9_]*>")


@dataclass(frozen=True)
class Family:
    """A family of combinations: its branch of the feature model, where its configurations name
    models, and what turns a valid configuration into the document its engine runs.

    ``generator`` is ``"module:function"``, imported on first use and called as
    ``fn(config, base_dir, resolve) -> (kind, document)`` (a family's generator may live above
    the product line: the ensembles' does)."""

    name: str
    branch: Branch
    model_slots: Callable[[dict], list[ModelSlot]]
    generator: str
    runner: str  # "mergekit" (llmcombo.run) or "ensemble" (llmcombo.ensemble) or a plugin's own
    label: str = ""
    checker: str = ""  # "module:function": fn(config, base_dir) -> model-aware issues

    def generate(self, config: dict, base_dir: Any = None, resolve: bool = True) -> tuple[str, dict]:
        return _load(self.generator)(config, base_dir, resolve)

    def check_models(self, config: dict, base_dir: Any = None) -> list:
        """Model-aware checks (pre-flight: config.json files only); none when the family has no
        checker."""
        return list(_load(self.checker)(config, base_dir)) if self.checker else []


def _load(target: str) -> Callable:
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


_FAMILIES: dict[str, Family] = {}


def register_family(family: Family) -> Family:
    """Add (or replace) a family; the feature model is rebuilt on next use."""
    _FAMILIES[family.name] = family
    if "feature_model" in globals():
        clear_caches()
    return family


def families() -> dict[str, Family]:
    """Every family, built-in and registered by plugins, by name (the configuration's key)."""
    from llmcombo.plugins import load_plugins

    load_plugins()
    return dict(_FAMILIES)


def family(name: str) -> Family | None:
    return families().get(name)


register_family(Family("merge", _merge.branch, _merge.model_slots, "llmcombo.generate:merge_document",
                       "mergekit", "Merge", "llmcombo.preflight:check_models"))
register_family(Family("moe", _moe.branch, _moe.model_slots, "llmcombo.generate:moe_document",
                       "mergekit", "Mixture of experts", "llmcombo.preflight:check_models"))
register_family(Family("stages", _stages.branch, _stages.model_slots,
                       "llmcombo.generate:stages_document", "mergekit", "Multi-stage merge",
                       "llmcombo.preflight.checks:check_stage_models"))


@functools.lru_cache(maxsize=1)
def feature_model() -> FeatureModel:
    """The feature model of every combination llmcombo can build (cached)."""
    branches, constraints, checks = [], [], []
    for fam in families().values():
        f, c, k = fam.branch()
        branches.append(f)
        constraints += c
        checks += k
    checks.append(Check(check_model_refs, "zoo:NAME references (any registered scheme) name an "
                                          "existing model"))
    root = Feature(
        "LLMCombination", label="LLM combination", abstract=True,
        attributes=[Attribute("name", StringType(), label="name",
                              description="a name for the product (used for the output folder)"),
                    Attribute("description", StringType(multiline=True), label="description")],
        groups=[alternative(*branches)],
    )
    return FeatureModel(root, constraints, checks, name="LLMCombination")


def clear_caches() -> None:
    """Forget the built feature model (after a family was registered or mergekit changed)."""
    feature_model.cache_clear()


def family_of(data: Any) -> str | None:
    """Which family a configuration belongs to (merge, moe, ensemble ...): exactly one of the
    families' keys at its top level, else None."""
    if not isinstance(data, dict):
        return None
    found = [n for n in families() if n in data]
    return found[0] if len(found) == 1 else None


def check_model_refs(data: dict, ctx: Any) -> list:
    """``zoo:domotic`` -> "there is no zoo model called 'domotic'. Did you mean zoo:domotica?"
    (mergekit and transformers cannot load such a name). Reads no file."""
    from llmcombo import modelref
    from llmcombo.featuremodel import error, warning

    issues = []
    for slot in model_slots(data):
        if slot.role == "stage":
            continue
        if _PLACEHOLDER.search(slot.ref):
            issues.append(warning(slot.path, f"{slot.ref} looks like a template placeholder that "
                                             "was not filled in; mergekit would look for a model "
                                             "of that name.", "Replace it with a folder or a Hub "
                                                              "id.", "placeholder"))
        problem = modelref.scheme_problem(slot.ref.split("+")[0])
        if problem is not None:
            issues.append(error(slot.path, problem[0], problem[1], "model_missing"))
    return issues


def model_slots(config: dict) -> list[ModelSlot]:
    """Every model reference of a configuration of any family, with the path of its field."""
    fam = family(family_of(config) or "")
    return fam.model_slots(config) if fam is not None else []


__all__ = [
    "DTYPES", "Family", "GATE_MODES", "METHOD_HELP", "METHOD_PREFIX", "MethodInfo", "ModelSlot",
    "PARAM_HELP", "ParamInfo", "RANDOM_GATES", "chat_templates", "clear_caches", "families",
    "family", "family_of", "feature_model", "merge_methods", "method_name", "method_path",
    "model_slots", "moe_architectures", "param_domain", "register_family",
]
