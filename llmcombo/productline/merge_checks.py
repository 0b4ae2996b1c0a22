"""The checks of the ``merge`` family that a constraint cannot express (the feature model's
:class:`~llmcombo.featuremodel.Check` of :mod:`llmcombo.productline.merge`): mergekit's input
contract per group of inputs (how many models, the base model counting as one, duplicates, the
base among a slice's sources), required parameters per input, DELLA's density +/- epsilon, chat
templates mergekit cannot read, null values, modules given twice.

As everywhere in the product line: an error only where mergekit refuses the document or fails
while merging (tests/test_engine_truth.py), a warning for what it runs but probably not as meant.
"""

from __future__ import annotations

import difflib
from typing import Any

from llmcombo.featuremodel import error, scalars_of, warning
from llmcombo.featuremodel.issues import Issue
from llmcombo.productline.registry import MethodInfo, chat_templates, merge_methods
from llmcombo.productline.tables import PARAM_HELP
from llmcombo.shapes import as_dict, as_list, params_of

ROOT = "merge"


def method_name(merge: Any) -> str | None:
    """The method of a ``merge`` mapping as written: ``method: ties`` or ``method: {ties: ...}``."""
    m = as_dict(merge).get("method")
    if isinstance(m, dict) and len(m) == 1:
        return str(next(iter(m)))
    return m if isinstance(m, str) else None


def effective_method(merge: Any) -> str | None:
    """The method the rest of a configuration is judged against: the one written when mergekit
    has it, else the closest name (``tie`` -> ``ties``; the typo itself is an error), else None."""
    name = method_name(merge)
    methods = merge_methods()
    if name is None or name in methods:
        return name
    close = difflib.get_close_matches(name, list(methods), n=1, cutoff=0.6)
    return close[0] if close else None


MERGE_CHECK_DOC = ("each merge method's number of inputs (mergekit's input contract, the base model "
                   "counting as an input), required per-model and global parameters, DELLA's "
                   "density +/- epsilon within (0, 1), chat templates mergekit can read, "
                   "duplicate inputs and module names")


def _need_text(lo: int, hi: int | None) -> str:
    if hi == lo:
        return f"exactly {lo}"
    if hi is None:
        return f"at least {lo}"
    return f"between {lo} and {hi}"


def _ref_key(ref: Any) -> Any:
    """A model reference compared the way mergekit compares them (path, revision, LoRA)."""
    from llmcombo.productline.documents import parse_reference

    try:
        return str(parse_reference(ref))
    except (ValueError, TypeError):
        return repr(ref)


def _has_value(setting: Any) -> bool:
    """Whether a parameter setting gives a value (mergekit reads ``[]`` and ``None`` as none)."""
    return setting is not None and setting != []


def _catch_all(setting: Any) -> bool:
    """Whether a setting gives a value for every tensor: a scalar or gradient does; a list of
    filtered entries does only when one of them has no filter (or ``*``)."""
    entries = [setting] if isinstance(setting, dict) else setting
    if isinstance(entries, list) and entries and all(isinstance(e, dict) for e in entries):
        return any(e.get("filter") in (None, "*") for e in entries)
    return True


def _first(name: str, scopes: list[dict]) -> Any:
    for sc in scopes:
        if name in sc and _has_value(sc[name]):
            return sc[name]
    return None


class _Container:
    """One list of inputs mergekit validates as a group: the ``models`` (of the merge or of a
    module), or one slice's ``sources``."""

    def __init__(self, path: str, key: str, entries: list, base: Any, scopes: list[dict],
                 scope_paths: list[str]):
        self.path, self.key, self.entries, self.base = path, key, entries, base
        self.scopes, self.scope_paths = scopes, scope_paths


def _containers(merge: dict, root: str) -> list[_Container]:
    base = merge.get("base_model")
    top = params_of(merge)
    out: list[_Container] = []

    def add_inputs(holder: dict, prefix: str, outer: list[dict], outer_paths: list[str]):
        if "models" in holder and "slices" not in holder:
            out.append(_Container(f"{prefix}.models", "models", as_list(holder.get("models")),
                                  base, outer, outer_paths))
        elif "slices" in holder and "models" not in holder:
            for si, s in enumerate(as_list(holder.get("slices"))):
                if not isinstance(s, dict):
                    continue
                sp = f"{prefix}.slices[{si}]"
                out.append(_Container(f"{sp}.sources", "slices", as_list(s.get("sources")),
                                      s.get("base_model") or base, [params_of(s)] + outer,
                                      [f"{sp}.parameters"] + outer_paths))

    if "modules" in merge and "models" not in merge and "slices" not in merge:
        for k, mod in enumerate(as_list(merge.get("modules"))):
            if isinstance(mod, dict):
                mp = f"{root}.modules[{k}]"
                add_inputs(mod, mp, [params_of(mod), top], [f"{mp}.parameters", f"{root}.parameters"])
    else:
        add_inputs(merge, root, [top], [f"{root}.parameters"])
    return out


def _check_inputs(info: MethodInfo, c: _Container, root: str) -> list[Issue]:
    """One group of inputs against the method's contract (mergekit's ``validate_ids``): input
    counts, duplicates, the base among the inputs, required parameters per input."""
    issues: list[Issue] = []
    entries = [e for e in c.entries if isinstance(e, dict)]
    refs = [e.get("model") for e in entries]
    keys = [_ref_key(r) for r in refs]
    base_key = _ref_key(c.base) if c.base is not None else None
    base_added = False
    if c.key == "models" and c.base is not None and base_key not in keys:
        keys = keys + [base_key]  # mergekit adds the base model as one more input
        base_added = True
    dupes = sorted({str(r) for r, k in zip(refs, keys) if keys.count(k) > 1})
    if dupes:
        issues.append(error(c.path, f"{', '.join(dupes)} is listed more than once; mergekit stops "
                                    "with 'Duplicate merge inputs'.", "List each model once.",
                            "duplicate"))
    if c.key == "slices" and c.base is not None and info.base != "ignored" and base_key not in keys:
        issues.append(error(c.path, f"The base model {c.base} is not among this slice's sources "
                                    "(mergekit: 'Base input is not present in merge inputs').",
                            "Add a source from the base model, or change the base model.", "base"))
    has_base = c.base is not None and base_key in keys and info.base != "ignored"
    count, non_base = len(keys), len(keys) - int(has_base)
    what = "models" if c.key == "models" else "sources"
    base_note = " (the base model counts as one)" if info.base != "ignored" else ""
    if count < info.min_inputs or (info.max_inputs is not None and count > info.max_inputs):
        need = _need_text(info.min_inputs, info.max_inputs)
        issues.append(error(c.path, f"{info.pretty_name} takes {need} "
                                    f"input model(s){base_note}; this configuration has {count}.",
                            "Add or remove " + what + "." if info.max_inputs != 1 else
                            "Passthrough copies one model per slice: use slices with one source each.",
                            "count"))
    if info.min_non_base is not None or info.max_non_base is not None:
        lo, hi = info.min_non_base or 0, info.max_non_base
        if non_base < lo or (hi is not None and non_base > hi):
            issues.append(error(c.path, f"{info.pretty_name} takes {_need_text(lo, hi)} model(s) "
                                        f"besides the base model; this configuration has {non_base}.",
                                f"Add or remove {what}.", "count"))
    if base_added and info.base == "ignored":
        issues.append(warning(f"{root}.base_model", f"{info.pretty_name} does not use a base model; "
                                                    "mergekit will add it as one more input.",
                              "Remove base_model, or list it under models with its weight.", "base"))
    for p in info.input_params:
        shared_setting = _first(p.name, c.scopes)
        for i, e in enumerate(entries):
            if p.scope == "non_base" and c.base is not None and _ref_key(e.get("model")) == base_key \
                    and info.base != "ignored":
                continue
            own = params_of(e).get(p.name)
            setting = own if _has_value(own) else shared_setting
            where = f"{c.path}[{i}].parameters.{p.name}"
            if p.required and setting is None:
                issues.append(error(where, f"{info.pretty_name} needs a {p.name} for "
                                           f"{e.get('model')}; mergekit stops with 'Missing "
                                           f"required parameter {p.name}'.",
                                    f"Set {p.name} for this model, or once in the merge "
                                    "parameters for all models.", "required"))
            elif p.required and not _catch_all(setting) and not (
                    _has_value(own) and shared_setting is not None and _catch_all(shared_setting)):
                issues.append(warning(where, f"every filter of {p.name} for {e.get('model')} names "
                                             "part of the tensors; a tensor none of them matches "
                                             "has no value, and mergekit stops there.",
                                      "Add an entry without a filter as the last one: "
                                      "{value: ...}.", "required"))
        if base_added and p.scope == "input" and p.required and shared_setting is None:
            issues.append(error(f"{c.scope_paths[-1]}.{p.name}",
                                f"{info.pretty_name} needs a {p.name} for the base model too "
                                "(mergekit adds it as an input).",
                                "Set it in the merge parameters, or list the base under models.",
                                "required"))
    for p in info.shared_params:
        for i, e in enumerate(entries):
            if p.name in params_of(e):
                issues.append(warning(f"{c.path}[{i}].parameters.{p.name}",
                                      f"{p.name} is one value for the whole merge; a value per "
                                      "model is ignored.", "Set it in the merge parameters.",
                                      "ignored"))
        if p.required and _first(p.name, c.scopes) is None:
            issues.append(error(f"{c.scope_paths[-1]}.{p.name}",
                                f"{info.pretty_name} needs {p.name}"
                                + (f" ({PARAM_HELP[p.name]})" if p.name in PARAM_HELP else "")
                                + "; mergekit stops without it.",
                                f"Set {p.name} in the merge parameters.", "required"))
    return issues


def _check_nulls(merge: dict, root: str) -> list[Issue]:
    """``weight:`` with nothing after it is null, which mergekit's document refuses."""
    issues = []
    holders = [(f"{root}.parameters", merge)]
    for c in _containers(merge, root):
        for i, e in enumerate(c.entries):
            holders.append((f"{c.path}[{i}].parameters", e))
    for k, mod in enumerate(as_list(merge.get("modules"))):
        holders.append((f"{root}.modules[{k}].parameters", mod))
    for i, s in enumerate(as_list(merge.get("slices"))):
        holders.append((f"{root}.slices[{i}].parameters", s))
    seen = set()
    for path, holder in holders:
        for name, value in params_of(holder).items():
            if value is None and (path, name) not in seen:
                seen.add((path, name))
                issues.append(error(f"{path}.{name}", f"{name} has no value (null), which "
                                                      "mergekit's configuration refuses.",
                                    f"Give {name} a value, or remove it.", "type"))
    return issues


# --- DELLA ------------------------------------------------------------------------------------

def _number(v: Any) -> float | None:
    from llmcombo.productline.documents import coerce_scalar

    ok, read, _ = coerce_scalar("float", v)
    return float(read) if ok and read is not None else None


def _at(setting: Any, t: float) -> float | None:
    """A scalar or gradient at layer position ``t`` in [0, 1] (mergekit's interpolation)."""
    if isinstance(setting, list):
        vals = [_number(v) for v in setting]
        if not vals or None in vals:
            return None
        scaled = t * (len(vals) - 1)
        i0 = int(scaled)
        i1 = min(len(vals) - 1, i0 + 1)
        frac = scaled - i0
        return (1 - frac) * vals[i0] + frac * vals[i1]  # type: ignore[operator]
    return _number(setting)


def _filtered(setting: Any) -> bool:
    return isinstance(setting, dict) or (isinstance(setting, list) and any(isinstance(v, dict)
                                                                           for v in setting))


def _della_fails(d: float, e: float) -> bool:
    """mergekit's DELLA keeps each entry with probability in [d - e, d + e]: it raises when
    d +/- e leaves (0, 1) (for 0 < d < 1), and torch refuses a probability outside [0, 1]."""
    if not 0 < d < 1:
        return False
    if e >= 0:
        return d + e >= 1 or d - e <= 0
    return d + e < 0 or d - e > 1


def _check_della(info: MethodInfo, merge: dict, root: str) -> list[Issue]:
    eps_info, dens_info = info.param("epsilon"), info.param("density")
    if eps_info is None or dens_info is None:
        return []
    issues: list[Issue] = []
    for c in _containers(merge, root):
        for i, e in enumerate(c.entries):
            if not isinstance(e, dict):
                continue
            own = params_of(e)
            dens = own["density"] if _has_value(own.get("density")) else _first("density", c.scopes)
            eps = own["epsilon"] if _has_value(own.get("epsilon")) else _first("epsilon", c.scopes)
            dens = dens_info.default if dens is None else dens
            eps = eps_info.default if eps is None else eps
            path = f"{c.path}[{i}].parameters.epsilon"
            if _filtered(dens) or _filtered(eps):
                pairs = [(d, x) for d in scalars_of(dens) for x in scalars_of(eps)]
                bad = [(d, x) for d, x in pairs if _number(d) is not None and _number(x) is not None
                       and _della_fails(_number(d), _number(x))]  # type: ignore[arg-type]
                if bad:
                    issues.append(warning(path, f"For the tensors where density is {bad[0][0]} and "
                                                f"epsilon {bad[0][1]}, mergekit stops: density minus "
                                                "epsilon and density plus epsilon must both be in "
                                                "(0, 1).", "Use a smaller epsilon.", "range"))
                continue
            for k in range(201):
                d, x = _at(dens, k / 200), _at(eps, k / 200)
                if d is not None and x is not None and _della_fails(d, x):
                    issues.append(error(path, f"With density {d:g}, epsilon {x:g} puts keep "
                                              "probabilities outside (0, 1): density minus epsilon "
                                              "and density plus epsilon must both be in (0, 1), or "
                                              "mergekit stops.",
                                        f"Use epsilon below {min(d, 1 - d):g}.", "range"))
                    break
    return issues


def _check_chat_template(merge: dict, root: str) -> list[Issue]:
    """mergekit reads ``auto``, a template name it ships, or a Jinja template (text of 20
    characters or more with a ``{``); anything else stops it ('Invalid chat template')."""
    ct = merge.get("chat_template")
    if not isinstance(ct, str) or not ct or ct == "auto":
        return []
    known = chat_templates()
    if len(ct) < 256 and "\n" not in ct and "{" not in ct and ct in known:
        return []
    if len(ct) < 20 or "{" not in ct:
        close = difflib.get_close_matches(ct, list(known), n=1, cutoff=0.6)
        return [error(f"{root}.chat_template", f"{ct[:60]!r} is not a chat template mergekit "
                                               "knows, and it is not a Jinja template; mergekit "
                                               "stops with 'Invalid chat template'.",
                      (f"Did you mean {close[0]}? " if close else "")
                      + "Use auto, one of " + ", ".join(known) + ", or a Jinja template.",
                      "template")]
    return []


def _check_modules(merge: dict, root: str) -> list[Issue]:
    names = [m.get("name") for m in as_list(merge.get("modules")) if isinstance(m, dict)]
    dupes = sorted({str(n) for n in names if n is not None and names.count(n) > 1})
    if dupes:  # a mergekit file cannot say it: YAML keeps the last of two equal keys
        return [warning(f"{root}.modules", f"the module {', '.join(dupes)} is listed more than "
                                           "once; mergekit's modules are a mapping, so the last "
                                           "one replaces the others.", "Give each module once.",
                        "duplicate")]
    return []


def check_merge(data: dict, ctx: Any) -> list[Issue]:
    return merge_issues(data.get(ROOT), ROOT)


def merge_issues(merge: Any, root: str = ROOT) -> list[Issue]:
    """What :func:`check_merge` finds in one ``merge`` mapping whose path is ``root``."""
    if not isinstance(merge, dict):
        return []
    issues = _check_chat_template(merge, root) + _check_modules(merge, root) \
        + _check_nulls(merge, root)
    name = effective_method(merge)
    info = merge_methods().get(name) if name else None
    if info is None:
        return issues
    for c in _containers(merge, root):
        issues += _check_inputs(info, c, root)
    return issues + _check_della(info, merge, root)


