"""The ensemble branch of the feature model: runtime compositions of models.

Three kinds, an alternative group under ``ensemble``; each is configured, validated, generated and
run like a merge::

    ensemble:                          ensemble:                      ensemble:
      pipeline:                          vote:                          router:
        stages:                            members:                       selector:
          - model: zoo:base                  - model: zoo:domotica          kind: label_model
            template: "... {input} ..."    samples: 5                       model: zoo:selector
            output: text                   sampling:                        threshold: 0.6
          - model: zoo:domotica              temperature: 1.2             routes:
                                             seed: 0                        - label: LLM1
                                           tie_break: likelihood              model: zoo:domotica
                                                                            - label: LLM2
                                                                              model: zoo:tiempo
                                                                          fallback: LLM1

Every place that names a model (a pipeline stage, a vote member, a route, a judge) is a *member*:
``model`` plus how the model is prompted and read:

``template``
    the text the model receives; ``{input}`` is replaced by the member's input (the user's prompt,
    or the previous stage's answer in a pipeline; ``{prompt}`` is always the user's original
    prompt). Default ``[ORDEN] {input} [COMANDO]``: the zoo's task format
    (:func:`llmcombo.zoo.tasks.format_prompt`), so raw user text goes in and a command comes out.
``output``
    how the answer is read from the generated text: ``command`` (the zoo's commands:
    :func:`llmcombo.zoo.tasks.parse_command`, cut at the end of the line, upper-cased), ``line`` (the
    first line, stripped) or ``text`` (everything, stripped).
``max_new_tokens``
    the most tokens the member may generate.
``backend``
    ``transformers`` (default) or ``llama_cpp``: llama.cpp through llama-cpp-python (the
    ``[llama]`` extra), for a ``.gguf`` file (always llama_cpp) or a model folder converted once
    to a cached GGUF of type ``quant`` (default f16); ``threads`` sets llama.cpp's CPU threads
    (default 1 for models under 50M parameters). The selector and a judge take them too.

:func:`to_spec` (registered with :func:`llmcombo.generate.register_generator`) turns a valid
configuration into the *ensemble spec*: the same content with every default filled in and model
references resolved; :func:`llmcombo.ensemble.load_product` runs it.
"""

from __future__ import annotations

from typing import Any

from llmcombo.featuremodel import Check
from llmcombo.ensemble.backends import backend_spec
from llmcombo.ensemble.branch import (
    DEFAULT_TEMPLATE, DEVICES, DTYPES, E, JUDGE_KIND, ROUTER, SEL_KIND, SELECTOR_KINDS, TIE_RULES,
    VOTE, _kind_of, ensemble_branch, ensemble_constraints, member_attributes, model_slots,
)
from llmcombo.ensemble.rules import CHECK_DOC, _norm_label, check_ensemble, check_models
from llmcombo.productline import Family, register_family
from llmcombo.shapes import as_list as _as_list

# the branch (llmcombo.ensemble.branch) and its checks (llmcombo.ensemble.rules) live in their own
# modules; their public names stay importable from here, as before the split
__all__ = [
    "CHECK_DOC", "DEFAULT_TEMPLATE", "DEVICES", "DTYPES", "E", "FAMILY", "JUDGE_KIND", "ROUTER",
    "SEL_KIND", "SELECTOR_KINDS", "SPEC_VERSION", "TIE_RULES", "VOTE", "check_ensemble",
    "check_models", "ensemble_branch", "ensemble_constraints", "is_spec", "member_attributes",
    "model_slots", "to_spec",
]

SPEC_VERSION = 1


def _branch():
    return ensemble_branch(), ensemble_constraints(), [Check(check_ensemble, CHECK_DOC)]


# ---------------------------------------------------------------------------------------------
# generation: configuration -> ensemble spec
# ---------------------------------------------------------------------------------------------


def _member_spec(m: dict, base_dir, resolve: bool) -> dict:
    from llmcombo import modelref

    ref = m["model"]
    return {
        "model": modelref.resolve(ref, base_dir) if resolve else ref,
        "ref": ref,
        "template": m.get("template") or DEFAULT_TEMPLATE,
        "output": m.get("output") or "command",
        "max_new_tokens": int(m.get("max_new_tokens") or 24),
        **backend_spec(m),
    }


def to_spec(config: dict, base_dir=None, resolve: bool = True) -> tuple[str, dict]:
    """``(kind, spec)`` of a valid ensemble configuration: every default filled in, model
    references resolved (``zoo:NAME`` -> its folder) unless ``resolve=False``."""
    from llmcombo import modelref
    from llmcombo.errors import UserError

    ens = config.get(E)
    if not isinstance(ens, dict) or (kind := _kind_of(ens)) is None:
        raise UserError("an ensemble configuration needs exactly one of pipeline, vote or router.",
                        field=E)
    body = ens[kind]
    spec: dict[str, Any] = {"llmcombo_ensemble": SPEC_VERSION, "kind": kind,
                            "device": ens.get("device") or "auto",
                            "dtype": ens.get("dtype") or "auto"}
    if config.get("name"):
        spec["name"] = config["name"]

    def ref(r):
        return modelref.resolve(r, base_dir) if resolve and isinstance(r, str) else r

    if kind == "pipeline":
        spec["stages"] = [_member_spec(m, base_dir, resolve) for m in _as_list(body["stages"])]
    elif kind == "vote":
        members = [_member_spec(m, base_dir, resolve) for m in _as_list(body["members"])]
        s = body.get("sampling") or {}
        spec["members"] = members
        spec["samples"] = int(body.get("samples") or (3 if len(members) == 1 else 1))
        spec["sampling"] = {"temperature": float(s.get("temperature", 1.0)),
                            "top_k": int(s.get("top_k", 0)), "top_p": float(s.get("top_p", 1.0)),
                            "seed": s.get("seed")}
        spec["decide"] = body.get("decide") or "majority"
        spec["tie_break"] = body.get("tie_break") or "first"
        j = body.get("judge")
        if isinstance(j, dict):
            judge = {"kind": j["kind"]}
            if j["kind"] == "model":
                judge.update(model=ref(j["model"]), ref=j["model"],
                             template=j.get("template") or DEFAULT_TEMPLATE, **backend_spec(j))
            else:
                judge["function"] = j["function"]
            spec["judge"] = judge
    else:
        sel = dict(body["selector"])
        selector: dict[str, Any] = {"kind": sel["kind"],
                                    "threshold": float(sel.get("threshold", 0.5))}
        if sel["kind"] != "keywords":
            selector.update(model=ref(sel["model"]), ref=sel["model"], **backend_spec(sel))
        if sel["kind"] in ("label_model", "embedding"):
            selector["template"] = sel.get("template") or DEFAULT_TEMPLATE
        if sel["kind"] == "embedding":
            selector["layer"] = int(sel.get("layer", -1))
            selector["temperature"] = float(sel.get("temperature", 0.05))
        routes = []
        for r in _as_list(body["routes"]):
            route = {"label": _norm_label(r["label"]), **_member_spec(r, base_dir, resolve)}
            for key in ("examples", "keywords"):
                if r.get(key):
                    route[key] = [r[key]] if isinstance(r[key], str) else list(r[key])
            routes.append(route)
        spec["selector"] = selector
        spec["routes"] = routes
        spec["fallback"] = _norm_label(body.get("fallback") or routes[0]["label"])
    return kind, spec


def is_spec(data: Any) -> bool:
    """True for a generated ensemble spec (not a configuration)."""
    return isinstance(data, dict) and "llmcombo_ensemble" in data and "kind" in data


FAMILY = register_family(Family(
    E, _branch, model_slots, "llmcombo.ensemble.spec:to_spec", "ensemble", "Ensemble",
    "llmcombo.ensemble.spec:check_models"))
