"""The ``moe`` family: a mixture of experts built from dense models by mergekit's MoE builder."""

from __future__ import annotations

from typing import Any

from llmcombo.featuremodel import (
    MANY, Attribute, Check, Constraint, CountCmp, EnumType, Eq, Feature, FloatType, IntType,
    IsSet, ModelRefType, Not, Or, Sel, StringListType, error,
)
from llmcombo.featuremodel.issues import Issue
from llmcombo.productline.merge import dtype_attr
from llmcombo.productline.registry import moe_architectures
from llmcombo.productline.slots import ModelSlot
from llmcombo.productline.tables import GATE_MODES, RANDOM_GATES
from llmcombo.shapes import as_dict, as_list, strings


def moe_branch() -> Feature:
    model_ref = ModelRefType()
    prompts_needed = Not(Or((Eq("moe.gate_mode", "random"), Eq("moe.gate_mode", "uniform_random"))))

    def expert_attrs(shared: bool) -> list[Attribute]:
        attrs = [
            Attribute("source_model", model_ref, required=True, label="expert model"),
            Attribute("positive_prompts", StringListType(min_items=1), label="positive prompts",
                      description="example prompts that this expert should handle",
                      required_when=None if shared else prompts_needed),
            Attribute("negative_prompts", StringListType(), label="negative prompts",
                      description="example prompts this expert should not handle", advanced=True),
            Attribute("noise_scale", FloatType(0.0, None), label="noise scale", advanced=True,
                      description="noise added to the gate weights"),
        ]
        if shared:
            attrs.append(Attribute("residual_scale", FloatType(), label="residual scale",
                                   description="scale of the shared expert's output"))
        return attrs

    archs = moe_architectures()
    return Feature(
        "moe", label="Mixture of experts",
        description="Build a mixture-of-experts model whose experts are dense models.",
        attributes=[
            Attribute("base_model", model_ref, required=True, label="base model",
                      description="provides attention, embeddings and norms"),
            Attribute("gate_mode", EnumType(GATE_MODES, labels={
                "hidden": "hidden states of the prompts", "cheap_embed": "token embeddings of the prompts",
                "random": "random gates", "uniform_random": "uniform random gates"}),
                default="hidden", label="gate mode",
                description="how the router weights are initialised"),
            Attribute("experts_per_token", IntType(1, None), default=2, label="experts per token"),
            Attribute("architecture", EnumType(("auto",) + tuple(archs), labels=dict(archs)),
                      default="auto", label="output architecture"),
            dtype_attr("dtype", "dtype", "dtype of the output model"),
        ],
        children=[
            Feature("experts", label="experts", card=(2, MANY), attributes=expert_attrs(False),
                    description="Each expert is a dense model with prompts describing its skill."),
            Feature("shared_experts", label="shared experts", card=(1, MANY), optional=True,
                    attributes=expert_attrs(True),
                    description="Experts every token goes through (Qwen MoE / DeepSeek outputs)."),
        ],
    )


def moe_constraints() -> list[Constraint]:
    out = []
    archs = moe_architectures()
    if "mixtral" in archs:
        out.append(Constraint.excludes(Eq("moe.architecture", "mixtral"), Sel("moe.shared_experts"),
                                       "The Mixtral output architecture has no shared experts.",
                                       "moe.shared_experts",
                                       "Remove the shared experts or choose deepseek or qwen."))
    if "qwen3" in archs:
        out.append(Constraint.excludes(Eq("moe.architecture", "qwen3"), Sel("moe.shared_experts"),
                                       "The Qwen3 MoE output architecture has no shared experts.",
                                       "moe.shared_experts", "Remove the shared experts."))
    if "qwen" in archs:
        out.append(Constraint.requires(Eq("moe.architecture", "qwen"), CountCmp("moe.shared_experts", "==", 1),
                                       "The Qwen MoE output architecture needs exactly one shared expert.",
                                       "moe.shared_experts", "Add one shared expert."))
    if "deepseek" in archs:
        out.append(Constraint.requires(Eq("moe.architecture", "deepseek"), CountCmp("moe.shared_experts", "<=", 1),
                                       "The DeepSeek MoE output architecture takes at most one shared expert.",
                                       "moe.shared_experts", "Keep one shared expert."))
        out.append(Constraint.excludes(Eq("moe.architecture", "deepseek"), IsSet("moe.shared_experts.positive_prompts"),
                                       "The DeepSeek MoE output architecture does not gate shared experts, "
                                       "so a shared expert cannot have prompts.",
                                       "moe.shared_experts", "Remove the shared expert's prompts."))
    return out


MOE_CHECK_DOC = ("experts_per_token between 1 and the number of experts; experts must differ in "
                 "prompts and models; prompts for all shared experts or none")


def check_moe(data: dict, ctx: Any) -> list[Issue]:
    moe = data.get("moe")
    if not isinstance(moe, dict):
        return []
    issues: list[Issue] = []
    experts = [e for e in as_list(moe.get("experts")) if isinstance(e, dict)]
    k = moe.get("experts_per_token", 2)
    if isinstance(k, int) and not isinstance(k, bool) and experts and k > len(experts):
        issues.append(error("moe.experts_per_token", f"experts per token is {k}, but there are only "
                                                     f"{len(experts)} experts.",
                            f"Use a value between 1 and {len(experts)}, or add experts.", "range"))
    gate = moe.get("gate_mode", "hidden")
    if gate not in RANDOM_GATES and len(experts) >= 2:
        def key(e):
            return (tuple(strings(e.get("positive_prompts"))),
                    tuple(strings(e.get("negative_prompts"))))
        if all(key(e) == key(experts[0]) for e in experts[1:]) and key(experts[0])[0]:
            issues.append(error("moe.experts", "Every expert has the same prompts, so the router "
                                               "cannot tell them apart.",
                                "Give each expert prompts typical of what it should handle.", "prompts"))
    if len(experts) >= 2 and all(e.get("source_model") == experts[0].get("source_model") for e in experts[1:]):
        issues.append(error("moe.experts", "All experts are the same model: the result would cost "
                                           "more and answer exactly the same.",
                            "Use different expert models.", "experts"))
    shared = [e for e in as_list(moe.get("shared_experts")) if isinstance(e, dict)]
    with_prompts = [bool(e.get("positive_prompts")) for e in shared]
    if shared and any(with_prompts) and not all(with_prompts):
        issues.append(error("moe.shared_experts", "Give prompts to every shared expert or to none.",
                            code="prompts"))
    arch = moe.get("architecture", "auto")
    if arch == "qwen" and shared and gate not in RANDOM_GATES and not shared[0].get("positive_prompts"):
        issues.append(error("moe.shared_experts[0].positive_prompts",
                            "The Qwen MoE output architecture gates the shared expert, so it needs "
                            "prompts.", "Add positive prompts to the shared expert.", "prompts"))
    return issues



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
