"""The ``stages`` family: a multi-stage merge, what ``mergekit-multimerge`` runs.

A mergekit-multi file is several YAML documents, each a merge configuration with a ``name``;
a later document uses an earlier one's result by writing its name where a model goes. In an
llmcombo configuration that is a list of named stages, each holding an ordinary ``merge``::

    stages:
      - name: mezcla-ties
        merge: {method: ties, base_model: zoo:base, models: [...]}
      - merge:                      # the last stage (unnamed, or named) is the output
          method: slerp
          base_model: zoo:base
          models: [{model: zoo:base}, {model: mezcla-ties}]
          parameters: {t: 0.5}

Each stage is validated as a merge of its own (a scoped feature: one stage's method does not make
another stage's parameters relevant). Across stages, what mergekit-multimerge refuses is an error:
two stages with one name, more than one unnamed stage, a cycle of stages using each other. The
output is the unnamed stage, else the last stage that no other stage uses.
"""

from __future__ import annotations

from typing import Any

from llmcombo.featuremodel import MANY, Attribute, Check, Constraint, Feature, StringType, error, warning
from llmcombo.featuremodel.issues import Issue
from llmcombo.productline import merge as _merge
from llmcombo.productline.slots import ModelSlot
from llmcombo.shapes import as_dict, as_list

ROOT = "stages"
MERGE_ROOT = f"{ROOT}.merge"


def _stage_check(value: dict, path: str, ctx: Any) -> list[Issue]:
    from llmcombo.productline.merge_checks import merge_issues

    return merge_issues(value.get("merge"), f"{path}.merge")


def stages_branch() -> Feature:
    stage_merge = _merge.merge_branch(root=MERGE_ROOT)
    return Feature(
        ROOT, label="Multi-stage merge", card=(1, MANY), scoped=True, unknown="warning",
        description="Merges that run one after the other: a later stage can take an earlier "
                    "stage's result as a model, by its name (mergekit-multimerge).",
        attributes=[Attribute("name", StringType(), label="stage name",
                              description="how later stages refer to this result; the output "
                                          "stage may stay unnamed")],
        children=[stage_merge],
        constraints=_merge.merge_constraints(root=MERGE_ROOT),
        checks=[_stage_check],
    )


def _name(stage: Any) -> str | None:
    """A stage's name when it is text (another value is reported by the name's type)."""
    name = stage.get("name") if isinstance(stage, dict) else None
    return name if isinstance(name, str) and name else None


def stage_names(config: Any) -> list[str]:
    return [s["name"] for s in as_list(as_dict(config).get(ROOT))
            if isinstance(s, dict) and isinstance(s.get("name"), str) and s["name"]]


def _ref_path(ref: Any) -> str | None:
    """The path part of a model reference (what mergekit-multimerge compares with the names)."""
    from llmcombo.productline.documents import parse_reference

    try:
        return parse_reference(ref).model.path
    except (ValueError, TypeError):
        return None


def uses(stage: dict, names: set[str]) -> list[tuple[str, str]]:
    """``(field path under the stage, stage name)`` for each model reference of a stage that
    names another stage."""
    out = []
    for slot in _merge.merge_slots(as_dict(stage.get("merge")), "merge"):
        p = _ref_path(slot.ref)
        if p in names:
            out.append((slot.path, p))
    return out


def dependencies(config: Any) -> dict[str, set[str]]:
    """Stage name -> the stage names it uses ("" for the unnamed stage)."""
    names = set(stage_names(config))
    deps: dict[str, set[str]] = {}
    for s in as_list(as_dict(config).get(ROOT)):
        if isinstance(s, dict):
            deps[_name(s) or ""] = {n for _p, n in uses(s, names)}
    return deps


def final_index(config: Any) -> int | None:
    """The stage whose result is the output: the unnamed one, else the last stage no other
    stage uses, else the last stage."""
    stages = [s for s in as_list(as_dict(config).get(ROOT))]
    if not stages:
        return None
    for i, s in enumerate(stages):
        if isinstance(s, dict) and s.get("name") is None:
            return i
    used = set().union(*dependencies(config).values()) if stages else set()
    for i in range(len(stages) - 1, -1, -1):
        s = stages[i]
        if isinstance(s, dict) and _name(s) not in used:
            return i
    return len(stages) - 1


def _cycle(deps: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for d in sorted(deps.get(n, ())):
            if state.get(d) == 1:
                return stack[stack.index(d):] + [d]
            if d not in state:
                found = visit(d)
                if found:
                    return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(deps):
        if n not in state:
            found = visit(n)
            if found:
                return found
    return None


STAGES_CHECK_DOC = ("stage names are unique, at most one stage is unnamed, no stage uses itself "
                    "through others (mergekit-multimerge refuses each)")


def check_stages(data: dict, ctx: Any) -> list[Issue]:
    stages = data.get(ROOT)
    if not isinstance(stages, list):
        return []
    issues: list[Issue] = []
    seen: dict[str, int] = {}
    unnamed = []
    for i, s in enumerate(stages):
        if not isinstance(s, dict):
            continue
        name = _name(s)
        if s.get("name") is None or s.get("name") == "":
            unnamed.append(i)
            continue
        if name is None:
            continue  # not text: the name's own check says so
        if name in seen:
            issues.append(error(f"{ROOT}[{i}].name", f"two stages are named {name!r} (stages "
                                                     f"{seen[name] + 1} and {i + 1}); "
                                                     "mergekit-multimerge refuses duplicate names.",
                                "Give each stage its own name.", "duplicate"))
        else:
            seen[name] = i
    for i in unnamed[1:]:
        issues.append(error(f"{ROOT}[{i}].name", "more than one stage has no name; "
                                                 "mergekit-multimerge allows one unnamed stage "
                                                 "(the output).",
                            "Name every stage but the output.", "required"))
    cycle = _cycle(dependencies(data))
    if cycle:
        where = next((i for i, s in enumerate(stages) if (_name(s) or "") == cycle[0]), 0)
        issues.append(error(f"{ROOT}[{where}].merge", "these stages use each other in a circle: "
                                                      + " -> ".join(cycle)
                                                      + "; mergekit-multimerge cannot order them.",
                            "A stage can only use stages that do not use it.", "cycle"))
    if len(stages) == 1 and isinstance(stages[0], dict) and stages[0].get("name") is None:
        issues.append(warning(ROOT, "a multi-stage merge with one stage is an ordinary merge.",
                              "Write it as merge: ... instead.", "stages"))
    return issues


def branch() -> tuple[Feature, list[Constraint], list[Check]]:
    return stages_branch(), [], [Check(check_stages, STAGES_CHECK_DOC)]


def model_slots(config: dict) -> list[ModelSlot]:
    """Every model reference of every stage; a reference to another stage has the role
    ``stage`` (it is not a folder or a Hub id)."""
    names = set(stage_names(config))
    slots: list[ModelSlot] = []
    for i, s in enumerate(as_list(as_dict(config).get(ROOT))):
        if not isinstance(s, dict):
            continue
        for slot in _merge.merge_slots(as_dict(s.get("merge")), f"{ROOT}[{i}].merge"):
            role = "stage" if _ref_path(slot.ref) in names else slot.role
            slots.append(ModelSlot(slot.path, slot.ref, role))
    return slots
