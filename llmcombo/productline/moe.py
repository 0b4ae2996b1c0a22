"""The ``moe`` family: a mixture of experts built from dense models by mergekit's MoE builder.

Errors are what mergekit's builder refuses (``is_bad_config``, the output architectures'
``supports_config`` where it does not depend on the models) or where it fails
(tests/test_engine_truth.py builds each shape); the rest is a warning:

* every gate mode but ``random`` reads the prompts: each expert needs a non-empty list of
  prompts, and the experts' prompts may not all be the same (one expert alone counts as "all the
  same"); ``random`` gates read no prompt, so prompts there are only a warning;
* experts that are all one model (sparse upcycling, to be trained afterwards) are refused by
  mergekit unless told otherwise (``--i-understand-this-is-not-useful-without-training``,
  llmcombo's ``allow_same_experts``): a warning, and none with ``random`` gates;
* ``architecture`` is matched by prefix, case-insensitively (``Mixtral``, ``qwen`` -> Qwen MoE
  and Qwen3 MoE); it is an error when no output architecture of that name accepts the shared
  experts as given.
"""

from __future__ import annotations

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
    ModelRefType,
    Not,
    StringListType,
    StringType,
    error,
    warning,
)
from llmcombo.featuremodel.issues import Issue
from llmcombo.productline.merge import coercer, dtype_attr
from llmcombo.productline.registry import moe_architectures
from llmcombo.productline.slots import ModelSlot
from llmcombo.productline.tables import GATE_MODES, PROMPTLESS_GATES
from llmcombo.shapes import as_dict, as_list, strings


def _prompts() -> StringListType:
    # mergekit wants a list (one text is refused) and builds with an empty prompt
    return StringListType(single=False, empty_items="warning")


def moe_branch() -> Feature:
    model_ref = ModelRefType()
    prompts_needed = Not(Eq("moe.gate_mode", "random"))

    def expert_attrs(shared: bool) -> list[Attribute]:
        attrs = [
            Attribute("source_model", model_ref, required=True, label="expert model"),
            Attribute("positive_prompts", _prompts(), label="positive prompts",
                      description="example prompts that this expert should handle",
                      required_when=None if shared else prompts_needed),
            Attribute("negative_prompts", _prompts(), label="negative prompts",
                      description="example prompts this expert should not handle", advanced=True),
            Attribute("noise_scale", FloatType(coerce=coercer("float", True)), label="noise scale",
                      advanced=True, description="noise added to the gate weights"),
        ]
        if shared:
            attrs.append(Attribute("residual_scale", FloatType(coerce=coercer("float", True)),
                                   label="residual scale",
                                   description="scale of the shared expert's output"))
        return attrs

    archs = moe_architectures()
    return Feature(
        "moe", label="Mixture of experts", unknown="warning",
        description="Build a mixture-of-experts model whose experts are dense models.",
        attributes=[
            Attribute("base_model", model_ref, required=True, label="base model",
                      description="provides attention, embeddings and norms"),
            Attribute("gate_mode", EnumType(GATE_MODES, labels={
                "hidden": "hidden states of the prompts (last token)",
                "cheap_embed": "token embeddings of the prompts",
                "random": "random gates", "uniform_random": "uniform random gates",
                "hidden_avg": "hidden states of the prompts (average)",
                "hidden_last": "hidden states of the prompts (last token)"}),
                default="hidden", label="gate mode",
                description="how the router weights are initialised"),
            Attribute("experts_per_token", IntType(1, None, coerce=coercer("int")), default=2,
                      label="experts per token"),
            Attribute("architecture", EnumType(("auto",) + tuple(archs), labels=dict(archs),
                                               open=True, open_type=StringType()),
                      default="auto", label="output architecture"),
            dtype_attr("dtype", "dtype", "dtype of the output model"),
        ],
        children=[
            Feature("experts", label="experts", card=(2, MANY), soft_min=1, unknown="warning",
                    attributes=expert_attrs(False),
                    description="Each expert is a dense model with prompts describing its skill."),
            Feature("shared_experts", label="shared experts", card=(1, MANY), optional=True,
                    unknown="warning", attributes=expert_attrs(True),
                    description="Experts every token goes through (Qwen MoE / DeepSeek outputs)."),
        ],
    )


def moe_constraints() -> list[Constraint]:
    return []


# ---------------------------------------------------------------------------------------------
# what each output architecture refuses whatever the models (its supports_config)
# ---------------------------------------------------------------------------------------------


def _refusals(moe: dict) -> dict[str, str]:
    """Output architecture (snapshot key) -> why mergekit's ``supports_config`` refuses this
    configuration before looking at the models; absent when it may accept it."""
    shared = [e for e in as_list(moe.get("shared_experts")) if isinstance(e, dict)]
    gate = moe.get("gate_mode") or "hidden"
    out = {}
    if shared:
        out["mixtral"] = "The Mixtral output architecture has no shared experts."
        out["qwen3"] = "The Qwen3 MoE output architecture has no shared experts."
    if len(shared) > 1:
        out["deepseek"] = "The DeepSeek MoE output architecture takes at most one shared expert."
    elif shared and (shared[0].get("positive_prompts") or shared[0].get("negative_prompts")):
        out["deepseek"] = ("The DeepSeek MoE output architecture does not gate shared experts, "
                           "so a shared expert cannot have prompts.")
    if len(shared) != 1:
        out["qwen"] = "The Qwen MoE output architecture needs exactly one shared expert."
    elif gate != "random" and not shared[0].get("positive_prompts"):
        out["qwen"] = ("The Qwen MoE output architecture gates the shared expert, so it needs "
                       "prompts (unless the gates are random).")
    return {k: v for k, v in out.items() if k in moe_architectures()}


def candidates(arch: Any) -> list[str]:
    """The output architectures mergekit tries for ``architecture`` (its prefix match)."""
    archs = moe_architectures()
    if not arch or arch == "auto":
        return list(archs)
    if not isinstance(arch, str):
        return []
    return [k for k, name in archs.items() if name.lower().startswith(arch.lower())]


def _check_architecture(moe: dict) -> list[Issue]:
    arch = moe.get("architecture")
    found = candidates(arch)
    names = ", ".join(moe_architectures().values())
    if not found:
        return [error("moe.architecture", f"mergekit has no MoE output architecture called "
                                          f"{arch!r} (it matches the start of the name).",
                      f"Choose one of: {names}, or leave it empty to let mergekit choose.",
                      "choice")]
    refused = _refusals(moe)
    if all(k in refused for k in found):
        why = " ".join(dict.fromkeys(refused[k] for k in found))
        return [error("moe.shared_experts", why + (" No other output architecture accepts these "
                                                   "shared experts." if len(found) > 1 else ""),
                      "Remove the shared experts, or give them as the output architecture needs.",
                      "architecture")]
    # architecture: qwen also matches Qwen3 MoE; say something only when the architecture
    # named exactly refuses (the others may still be built, from other models)
    forced = [k for k in found if k in refused and isinstance(arch, str) and k == arch.lower()]
    if arch and arch != "auto" and forced:
        return [warning("moe.shared_experts", " ".join(refused[k] for k in forced)
                        + " mergekit can only build the others: "
                        + ", ".join(moe_architectures()[k] for k in found if k not in refused) + ".",
                        None, "architecture")]
    return []


# ---------------------------------------------------------------------------------------------
# checks
# ---------------------------------------------------------------------------------------------

MOE_CHECK_DOC = ("experts_per_token between 1 and the number of experts; prompts for every expert "
                 "unless the gates are random, not all the same; prompts for all shared experts or "
                 "none; shared experts from the base or expert models; the output architecture")


def _int(value: Any, default: int) -> int | None:
    from llmcombo.productline.documents import coerce_scalar

    if value is None:
        return default
    ok, read, _ = coerce_scalar("int", value)
    return read if ok else None


def check_moe(data: dict, ctx: Any) -> list[Issue]:
    moe = data.get("moe")
    if not isinstance(moe, dict):
        return []
    issues: list[Issue] = []
    experts = [e for e in as_list(moe.get("experts")) if isinstance(e, dict)]
    k = _int(moe.get("experts_per_token"), 2)
    if k is not None and k >= 1 and experts and k > len(experts):
        issues.append(error("moe.experts_per_token", f"experts per token is {k}, but there are only "
                                                     f"{len(experts)} experts (mergekit refuses it).",
                            f"Use a value between 1 and {len(experts)}, or add experts.", "range"))
    gate = moe.get("gate_mode") or "hidden"
    if gate in PROMPTLESS_GATES:
        with_prompts = [i for i, e in enumerate(experts)
                        if e.get("positive_prompts") or e.get("negative_prompts")]
        if with_prompts:
            issues.append(warning("moe.gate_mode", "random gates do not read prompts: the prompts "
                                                   "of the experts are not used.",
                                  "Choose hidden or cheap_embed to route by the prompts, or remove "
                                  "them.", "ignored"))
    elif experts:
        empty = [i for i, e in enumerate(experts)
                 if isinstance(e.get("positive_prompts"), list) and not e["positive_prompts"]]
        for i in empty:
            issues.append(error(f"moe.experts[{i}].positive_prompts",
                                f"expert {i + 1} has no positive prompts; with {gate} gates "
                                "mergekit needs at least one per expert.",
                                "Add prompts typical of what this expert should handle, or use "
                                "random gates.", "prompts"))

        def key(e):
            return (tuple(strings(e.get("positive_prompts"))),
                    tuple(strings(e.get("negative_prompts"))))

        if not empty and all(isinstance(e.get("positive_prompts"), list) and e["positive_prompts"]
                             for e in experts) and all(key(e) == key(experts[0]) for e in experts):
            if len(experts) == 1:
                issues.append(error("moe.experts", f"with {gate} gates a mixture needs at least 2 "
                                                   "experts: mergekit refuses one alone (its "
                                                   "prompts are 'identical for all experts').",
                                    "Add an expert, or use random gates.", "count"))
            else:
                issues.append(error("moe.experts", "Every expert has the same prompts, so the "
                                                   "router cannot tell them apart (mergekit "
                                                   "refuses it).",
                                    "Give each expert prompts typical of what it should handle.",
                                    "prompts"))
        if len(experts) >= 2 and all(e.get("source_model") == experts[0].get("source_model")
                                     for e in experts[1:]):
            issues.append(warning("moe.experts", "All experts are the same model: without training "
                                                 "afterwards the result answers like that model at "
                                                 "a higher cost, and mergekit refuses it unless "
                                                 "told this is meant (sparse upcycling).",
                                  "To build it anyway: llmcombo merge --allow-same-experts (or "
                                  "RunOptions(allow_same_experts=True)), or use random gates.",
                                  "experts"))
    shared = [e for e in as_list(moe.get("shared_experts")) if isinstance(e, dict)]
    with_prompts = [bool(e.get("positive_prompts")) for e in shared]
    if shared and any(with_prompts) and not all(with_prompts):
        issues.append(error("moe.shared_experts", "Give prompts to every shared expert or to none.",
                            code="prompts"))
    loaded = [moe.get("base_model")] + [e.get("source_model") for e in experts]
    for i, e in enumerate(shared):
        if e.get("source_model") not in loaded:
            issues.append(error(f"moe.shared_experts[{i}].source_model",
                                "a shared expert must be the base model or one of the experts' "
                                "models: mergekit 0.1.5 reads the weights of those only, and fails "
                                "while writing this one.",
                                "Use the base model (or an expert's model) as the shared expert.",
                                "shared"))
    return issues + _check_architecture(moe)


def branch() -> tuple[Feature, list[Constraint], list[Check]]:
    return moe_branch(), moe_constraints(), [Check(check_moe, MOE_CHECK_DOC)]


def model_slots(config: dict) -> list[ModelSlot]:
    """Every model reference of a MoE configuration, with the path of its field."""
    m = as_dict(config.get("moe"))
    slots: list[ModelSlot] = []
    if isinstance(m.get("base_model"), str):
        slots.append(ModelSlot("moe.base_model", m["base_model"], "base"))
    for key, role in (("experts", "expert"), ("shared_experts", "shared_expert")):
        for i, e in enumerate(as_list(m.get(key))):
            if isinstance(e, dict) and isinstance(e.get("source_model"), str):
                slots.append(ModelSlot(f"moe.{key}[{i}].source_model", e["source_model"], role))
    return slots
