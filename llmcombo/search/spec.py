"""The ``search`` family: a search specification is a configuration like any other, so it is
validated with messages that name the field, shown in the generic form and written as YAML::

    name: best-of-both
    search:
      models:                      # the parents (at least two)
        - model: zoo:domotica
        - model: zoo:tiempo
      base_model: zoo:base         # their common ancestor (task-vector methods need it)
      tasks:                       # a registered task (its validation and test splits) ...
        - task: domotica
        - task: tiempo
      # - file: orders.jsonl       # ... or a JSONL/CSV file, split into validation/test (seeded)
      #   validation: 0.5
      objective: worst             # worst-case share of each task's best parent kept | mean | pareto
      trials: 40                   # the budget: trials ...
      minutes: 15                  # ... and/or wall-clock minutes
      seed: 0
      space:                       # optional; default: every merge method that applies
        methods: [ties, dare_ties, task_arithmetic]
        gradient_points: 3         # per-layer gradients with 3 points
        filters: [self_attn, mlp]  # separate values for attention and MLP tensors
        ensembles: [vote, router]  # runtime ensembles of the parents on the same plot

:func:`to_document` (the family's generator) fills every default and lists the merge methods that
apply to these parents; :func:`check_models` (pre-flight) checks that the parents can be merged
(config.json files) and that task files exist and parse. :func:`llmcombo.search.search` runs it.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any

from llmcombo.featuremodel import (
    MANY,
    Attribute,
    Check,
    Constraint,
    EnumType,
    Eq,
    Feature,
    FloatType,
    IntType,
    MappingType,
    ModelRefType,
    StringListType,
    StringType,
    error,
    warning,
)
from llmcombo.featuremodel.issues import Issue
from llmcombo.productline import Family, ModelSlot, register_family
from llmcombo.shapes import as_dict, as_list

SPEC_VERSION = 1
S = "search"
OBJECTIVES = {
    "worst": "the smallest share, over the tasks, of the best parent's accuracy that the product "
             "keeps (keeps both skills)",
    "mean": "the mean share of the best parent's accuracy kept over the tasks",
    "pareto": "every task's accuracy (and the cost) at once: a Pareto front",
}
COSTS = {"none": "no cost objective",
         "models": "how many models answer each prompt (1 for a merge)",
         "latency": "seconds per answer on the validation prompts"}
SAMPLERS = {"auto": "TPE", "tpe": "Tree-structured Parzen Estimator (Optuna's default)",
            "cmaes": "CMA-ES over the numeric parameters (one objective; best with one method)",
            "nsga2": "NSGA-II, a genetic algorithm for several objectives",
            "random": "random search (a baseline)"}
DEVICES = ("auto", "cpu", "cuda")
DEFAULT_TRIALS = 30
DEFAULT_TEMPLATE = "[ORDEN] {input} [COMANDO]"


# ---------------------------------------------------------------------------------------------
# the branch
# ---------------------------------------------------------------------------------------------


def _task_choices() -> tuple[str, ...]:
    from llmcombo.datasets import task_names

    return task_names()


def _check_ranges(value: dict, path: str, label: str) -> list[Issue]:
    issues = []
    for name, rng in value.items():
        ok = (isinstance(rng, (list, tuple)) and len(rng) == 2
              and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in rng)
              and rng[0] < rng[1])
        if not ok:
            issues.append(error(f"{path}.{name}", f"the range of {name} must be [low, high] with "
                                                  f"low < high, not {rng!r}.",
                                "Write it like weight: [0.0, 1.5].", "type"))
    return issues


def search_branch() -> Feature:
    from llmcombo.ensemble.formats import outputs

    outs = {n: o.description for n, o in outputs().items()}
    models = Feature(
        "models", label="parents", card=(2, MANY),
        description="The models to combine (at least two), e.g. specialists fine-tuned from one "
                    "base.",
        attributes=[Attribute("model", ModelRefType(), required=True, label="model",
                              description="a local folder, a Hugging Face id or zoo:NAME")])
    tasks = Feature(
        "tasks", label="tasks", card=(1, MANY),
        description="What the products are measured on: a registered task (its validation split "
                    "for the search, its test split for the report) or a JSONL/CSV file of "
                    "prompt/expected pairs, split into validation and test.",
        attributes=[
            Attribute("task", EnumType(_task_choices(), open=True, open_type=StringType()),
                      label="task", description="a registered task (the zoo's: domotica, tiempo)"),
            Attribute("file", StringType(), label="file",
                      description="a .jsonl or .csv file with prompt and expected columns"),
            Attribute("name", StringType(), label="name",
                      description="the task's name in tables and plots (default: the task or "
                                  "the file's name)"),
            Attribute("validation", FloatType(0.0, 1.0, min_open=True, max_open=True),
                      default=0.5, label="validation share",
                      description="files: the share of examples the search sees; the rest is "
                                  "the test split for the report (seeded)"),
        ])
    space = Feature(
        "space", label="search space", optional=True,
        description="What the search may try (default: every merge method of the installed "
                    "mergekit that applies to the parents, each numeric parameter over its "
                    "domain).",
        attributes=[
            Attribute("methods", StringListType(), label="merge methods",
                      description="only these merge methods (default: all that apply; an "
                                  "empty list: none, only ensembles)"),
            Attribute("gradient_points", IntType(1, 32), default=1, label="gradient points",
                      description="1: one value per parameter; k: a per-layer gradient of k "
                                  "values (as mergekit-evolve)"),
            Attribute("filters", StringListType(), label="tensor filters",
                      description="separate values for tensors whose name contains each "
                                  "filter, e.g. self_attn, mlp (and one for the rest)"),
            Attribute("ensembles", StringListType(), label="ensembles",
                      description="also try runtime ensembles of the parents: vote, router"),
            Attribute("router_selector", ModelRefType(), label="router selector",
                      description="a label model answering LLM1, LLM2 ... in the order of the "
                                  "tasks (default: an embedding selector on example prompts)"),
            Attribute("ranges", MappingType(checker=_check_ranges), label="ranges",
                      advanced=True,
                      description="search range per parameter, e.g. weight: [0, 1.5] (default: "
                                  "the parameter's domain, [0, 1] for weights)"),
        ])
    evaluation = Feature(
        "evaluation", label="evaluation", optional=True,
        description="How products are measured (exact match of the answer).",
        attributes=[
            Attribute("limit", IntType(1, None), label="validation prompts per task",
                      description="at most this many validation prompts per task and trial "
                                  "(default: all)"),
            Attribute("test_limit", IntType(1, None), label="test prompts per task",
                      description="at most this many test prompts per task in the report "
                                  "(default: all)"),
            Attribute("batch_size", IntType(1, 4096), default=64, label="batch size",
                      advanced=True),
            Attribute("template", StringType(must_contain="{input}", multiline=True),
                      default=DEFAULT_TEMPLATE, label="prompt template",
                      description="the text each model receives; {input} is the prompt"),
            Attribute("output", EnumType(tuple(outs), labels=outs), default="command",
                      label="read the answer as"),
            Attribute("max_new_tokens", IntType(1, 4096), default=24, label="max new tokens",
                      advanced=True),
        ])
    return Feature(
        S, label="Search",
        description="Find the best combination of the parents: merges (and optionally ensembles) "
                    "sampled from the feature model, chosen on a validation split, reported on a "
                    "test split.",
        attributes=[
            Attribute("base_model", ModelRefType(), label="base model",
                      description="the parents' common ancestor (task-vector methods need it)"),
            Attribute("objective", EnumType(tuple(OBJECTIVES), labels=OBJECTIVES),
                      default="worst", label="objective"),
            Attribute("cost", EnumType(tuple(COSTS), labels=COSTS), default="none",
                      label="cost objective", when=Eq(f"{S}.objective", "pareto"),
                      ignored_hint="A cost is a further objective of a pareto search; set "
                                   "objective: pareto or remove it.",
                      description="pareto: also minimise this cost"),
            Attribute("sampler", EnumType(tuple(SAMPLERS), labels=SAMPLERS), default="auto",
                      label="sampler", description="how Optuna picks the next trial"),
            Attribute("trials", IntType(1, None), default=DEFAULT_TRIALS, label="trials",
                      description="how many products to try (the budget)"),
            Attribute("minutes", FloatType(0.0, None, min_open=True), label="minutes",
                      description="stop starting trials after this many minutes"),
            Attribute("seed", IntType(0, None), default=0, label="seed",
                      description="same seed and sampler: the same study"),
            Attribute("workers", IntType(1, 256), default=1, label="trials at once",
                      description="trials run together (processes of the local pool, or Ray "
                                  "workers); part of the study's definition"),
            Attribute("device", EnumType(DEVICES), default="auto", label="device",
                      description="auto: a GPU when there is one"),
            Attribute("dtype", EnumType(("float32", "float16", "bfloat16")), default="float32",
                      label="merge dtype", advanced=True),
        ],
        children=[models, tasks, space, evaluation],
    )


def search_constraints() -> list[Constraint]:
    return [Constraint.excludes(
        Eq(f"{S}.sampler", "cmaes"), Eq(f"{S}.objective", "pareto"),
        "CMA-ES optimises one objective; a pareto search has one per task.", f"{S}.sampler",
        "Use tpe or nsga2 for a pareto search, or objective worst / mean with CMA-ES.")]


CHECK_DOC = ("each task is a registered task or a file (not both); task names are unique; the "
             "parents are distinct and the base is not one of them; listed merge methods exist "
             "and apply to the parents; ensembles are vote or router; the space is not empty")


def _check_tasks(body: dict) -> list[Issue]:
    issues: list[Issue] = []
    known = _task_choices()
    names: dict[str, int] = {}
    for i, t in enumerate(as_list(body.get("tasks"))):
        if not isinstance(t, dict):
            continue
        path = f"{S}.tasks[{i}]"
        has_task, has_file = t.get("task") is not None, t.get("file") is not None
        if has_task == has_file:
            issues.append(error(path, "each task is either a registered task (task: NAME) or a "
                                      "file (file: PATH)" + (", not both." if has_task else "."),
                                f"Known tasks: {', '.join(known) or 'none'}; or a .jsonl/.csv "
                                "file of prompt/expected pairs.", "task"))
            continue
        if has_task and isinstance(t["task"], str) and t["task"] not in known:
            close = difflib.get_close_matches(t["task"], known, n=1, cutoff=0.6)
            issues.append(error(f"{path}.task", f"there is no task called {t['task']!r}.",
                                f"Did you mean {close[0]}?" if close else
                                f"Known tasks: {', '.join(known) or 'none'}; or give a file.",
                                "task"))
        if has_task and t.get("validation") is not None:
            issues.append(warning(f"{path}.validation", "a registered task has its own "
                                                        "validation and test splits; the "
                                                        "validation share is only for files.",
                                  "Remove it.", "ignored"))
        name = t.get("name") or (t.get("task") if has_task else
                                 Path(str(t.get("file"))).stem)
        if isinstance(name, str):
            if name in names:
                issues.append(error(f"{path}.name", f"two tasks are called {name!r} (tasks "
                                                    f"{names[name] + 1} and {i + 1}).",
                                    "Give one of them another name.", "duplicate"))
            names.setdefault(name, i)
    return issues


def _check_space(body: dict, data: dict) -> list[Issue]:
    from llmcombo.productline import merge_methods
    from llmcombo.search.space import ENSEMBLES, applicable_methods

    issues: list[Issue] = []
    raw = [m.get("model") for m in as_list(body.get("models")) if isinstance(m, dict)]
    refs = [r for r in raw if isinstance(r, str)]
    if len(refs) != len(raw) or len(refs) < 2:
        return issues
    base = body.get("base_model") if isinstance(body.get("base_model"), str) else None
    dupes = sorted({r for r in refs if refs.count(r) > 1})
    if dupes:
        issues.append(error(f"{S}.models", f"{', '.join(dupes)} is listed more than once.",
                            "List each parent once.", "duplicate"))
    if base in refs:
        issues.append(error(f"{S}.base_model", f"the base model {base} is also one of the "
                                               "parents.",
                            "List only the fine-tuned models as parents; the base is their "
                            "common ancestor.", "base"))
    if issues:
        return issues
    space = as_dict(body.get("space"))
    known = merge_methods()
    listed = space.get("methods")
    ok, why = applicable_methods(refs, base)
    if isinstance(listed, list):
        for j, name in enumerate(listed):
            if not isinstance(name, str):
                continue
            if name not in known:
                close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
                issues.append(error(f"{S}.space.methods[{j}]",
                                    f"{name} is not a merge method of the installed mergekit.",
                                    f"Did you mean {close[0]}?" if close else
                                    "Known methods: " + ", ".join(known) + ".", "unknown"))
            elif name not in ok:
                issues.append(error(f"{S}.space.methods[{j}]",
                                    f"{name} does not apply to these parents: {why[name]}",
                                    "Remove it, or change the parents or the base model.",
                                    "inapplicable"))
    methods = [m for m in (listed if isinstance(listed, list) else ok) if m in ok]
    ensembles = space.get("ensembles") or []
    if isinstance(ensembles, list):
        for j, name in enumerate(ensembles):
            if isinstance(name, str) and name not in ENSEMBLES:
                close = difflib.get_close_matches(name, ENSEMBLES, n=1, cutoff=0.5)
                issues.append(error(f"{S}.space.ensembles[{j}]",
                                    f"{name} is not an ensemble a search can try.",
                                    f"Did you mean {close[0]}?" if close else
                                    "Use vote and/or router.", "unknown"))
    if space.get("router_selector") is not None and "router" not in (ensembles or []):
        issues.append(warning(f"{S}.space.router_selector", "a router selector is set but the "
                                                            "space has no router.",
                              "Add router to ensembles, or remove it.", "ignored"))
    if not methods and not [e for e in ensembles if e in ENSEMBLES] and not any(
            i.is_error for i in issues):
        detail = ("no merge method applies to these parents"
                  + (" without a base model" if base is None else "")
                  if not isinstance(listed, list) or listed else "the methods list is empty")
        issues.append(error(f"{S}.space", f"the search space is empty: {detail} and no "
                                          "ensemble is allowed, so there is nothing to try.",
                            "List merge methods that apply (or remove methods: to use all "
                            "of them), or add ensembles: [vote, router].", "empty"))
    for j, f in enumerate(space.get("filters") or []):
        if isinstance(f, str) and not f.strip():
            issues.append(error(f"{S}.space.filters[{j}]", "a tensor filter is empty.",
                                "Write part of a tensor name, e.g. self_attn or mlp.", "empty"))
    return issues


def check_search(data: dict, ctx: Any) -> list[Issue]:
    body = data.get(S)
    if not isinstance(body, dict):
        return []
    issues = _check_tasks(body) + _check_space(body, data)
    tasks = [t for t in as_list(body.get("tasks")) if isinstance(t, dict)]
    if body.get("objective") == "pareto" and len(tasks) < 2 and body.get("cost") in (None, "none"):
        issues.append(warning(f"{S}.objective", "a pareto search of one task and no cost has "
                                                "one objective: it is a plain search.",
                              "Add a task or a cost, or use objective: worst.", "pareto"))
    return issues


def _branch():
    return search_branch(), search_constraints(), [Check(check_search, CHECK_DOC)]


# ---------------------------------------------------------------------------------------------
# model slots, generation, model-aware checks
# ---------------------------------------------------------------------------------------------


def model_slots(config: dict) -> list[ModelSlot]:
    body = config.get(S) if isinstance(config, dict) else None
    if not isinstance(body, dict):
        return []
    out = []
    if isinstance(body.get("base_model"), str):
        out.append(ModelSlot(f"{S}.base_model", body["base_model"], "base"))
    for i, m in enumerate(as_list(body.get("models"))):
        if isinstance(m, dict) and isinstance(m.get("model"), str):
            out.append(ModelSlot(f"{S}.models[{i}].model", m["model"], "model"))
    sel = as_dict(body.get("space")).get("router_selector")
    if isinstance(sel, str):
        out.append(ModelSlot(f"{S}.space.router_selector", sel, "selector"))
    return out


def _task_file(path: str, base_dir: Any) -> str:
    p = Path(os.path.expanduser(path))
    if not p.is_absolute() and base_dir is not None:
        p = Path(base_dir) / p
    return str(p.absolute())


def to_document(config: dict, base_dir: Any = None, resolve: bool = True) -> tuple[str, dict]:
    """``("search", document)``: the specification with every default filled in, the merge
    methods that apply listed, task files made absolute and (``resolve``) model references
    resolved. Reads no file."""
    from llmcombo import modelref
    from llmcombo.search.space import applicable_methods

    body = config[S]

    def ref(r):
        return modelref.resolve(r, base_dir) if resolve and isinstance(r, str) else r

    refs = [m["model"] for m in as_list(body["models"])]
    base = body.get("base_model")
    space = as_dict(body.get("space"))
    ev = as_dict(body.get("evaluation"))
    ok, _why = applicable_methods(refs, base)
    listed = space.get("methods")
    methods = [m for m in (listed if isinstance(listed, list) else ok) if m in ok]
    tasks = []
    for t in as_list(body["tasks"]):
        if t.get("task") is not None:
            tasks.append({"name": t.get("name") or t["task"], "task": t["task"]})
        else:
            tasks.append({"name": t.get("name") or Path(str(t["file"])).stem,
                          "file": _task_file(t["file"], base_dir),
                          "validation": float(t.get("validation", 0.5))})
    objective = body.get("objective") or "worst"
    sampler = body.get("sampler") or "auto"
    doc = {
        "llmcombo_search": SPEC_VERSION,
        "name": config.get("name") or "search",
        "models": [ref(r) for r in refs],
        "refs": list(refs),
        "base_model": ref(base) if base else None,
        "base_ref": base,
        "tasks": tasks,
        "objective": objective,
        "cost": (body.get("cost") or "none") if objective == "pareto" else "none",
        "sampler": "tpe" if sampler == "auto" else sampler,
        "trials": int(body.get("trials") or DEFAULT_TRIALS),
        "minutes": float(body["minutes"]) if body.get("minutes") is not None else None,
        "seed": int(body.get("seed") or 0),
        "workers": int(body.get("workers") or 1),
        "device": body.get("device") or "auto",
        "dtype": body.get("dtype") or "float32",
        "space": {"methods": methods,
                  "gradient_points": int(space.get("gradient_points") or 1),
                  "filters": [str(f) for f in (space.get("filters") or [])],
                  "ensembles": [e for e in (space.get("ensembles") or [])],
                  "router_selector": ref(space.get("router_selector")),
                  "ranges": dict(space.get("ranges") or {})},
        "evaluation": {"limit": ev.get("limit"), "test_limit": ev.get("test_limit"),
                       "batch_size": int(ev.get("batch_size") or 64),
                       "template": ev.get("template") or DEFAULT_TEMPLATE,
                       "output": ev.get("output") or "command",
                       "max_new_tokens": int(ev.get("max_new_tokens") or 24)},
    }
    return "search", doc


def check_models(config: dict, base_dir: Any = None) -> list[Issue]:
    """Pre-flight of a search (config.json files and task files only): can the parents be merged
    (one architecture, same shapes: :func:`llmcombo.preflight.check_models` on their merge), do
    the task files exist and hold prompt/expected pairs?"""
    from llmcombo.datasets import load_examples
    from llmcombo.errors import UserError
    from llmcombo.preflight import check_models as merge_checks

    body = config.get(S)
    if not isinstance(body, dict):
        return []
    issues: list[Issue] = []
    refs = [m.get("model") for m in as_list(body.get("models")) if isinstance(m, dict)]
    probe: dict[str, Any] = {"method": "task_arithmetic" if body.get("base_model") else "linear",
                             "models": [{"model": r, "parameters": {"weight": 1.0}}
                                        for r in refs]}
    if body.get("base_model"):
        probe["base_model"] = body["base_model"]
    for i in merge_checks({"merge": probe}, base_dir):
        path = i.path.replace("merge.models", f"{S}.models").replace("merge.base_model",
                                                                     f"{S}.base_model")
        if path.startswith("merge"):
            path = f"{S}.models"
        issues.append(Issue(i.severity, path, i.message, i.hint, i.code))
    for j, t in enumerate(as_list(body.get("tasks"))):
        if not isinstance(t, dict) or not isinstance(t.get("file"), str):
            continue
        try:
            examples = load_examples(_task_file(t["file"], base_dir))
        except UserError as exc:
            issues.append(error(f"{S}.tasks[{j}].file", exc.message, exc.hint, "task_file"))
            continue
        if len(examples) < 2:
            issues.append(error(f"{S}.tasks[{j}].file", f"{t['file']} has {len(examples)} "
                                                        "example; a validation and a test split "
                                                        "need at least two.",
                                "Add examples (a few dozen give usable accuracies).", "task_file"))
    return issues


FAMILY = register_family(Family(S, _branch, model_slots, "llmcombo.search.spec:to_document",
                                "search", "Search", "llmcombo.search.spec:check_models"))
