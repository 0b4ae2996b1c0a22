"""Model-aware checks of a merge or MoE configuration (config.json files only): do the models
exist, are they of one architecture family, do their shapes agree, are slice layer ranges inside
the models, can mergekit build a mixture of experts from them, is there a tokenizer to copy?"""

from __future__ import annotations

import logging
from pathlib import Path

from llmcombo.featuremodel.issues import Issue, error, warning
from llmcombo.preflight.models import TOKENIZER_FILES, ModelInfo, inspect_models
from llmcombo.productline import ModelSlot, family_of, model_slots
from llmcombo.shapes import as_list

LOG = logging.getLogger(__name__)
SHAPE_KEYS = ("hidden_size", "intermediate_size", "num_attention_heads", "num_key_value_heads")

def check_models(config: dict, base_dir=None) -> list[Issue]:
    """Model-aware checks of a merge or MoE configuration (reads config.json files only)."""
    kind = family_of(config)
    if kind not in ("merge", "moe") or not isinstance(config.get(kind), dict):
        return []
    slots = model_slots(config)
    issues: list[Issue] = []
    infos: dict[str, ModelInfo] = {}
    for ref, (info, found) in inspect_models([(s.ref, s.path) for s in slots], base_dir).items():
        infos[ref] = info
        issues += found
    loaded = [(s, infos[s.ref]) for s in slots if infos[s.ref].config is not None]
    for slot, info in loaded:
        if slot.role != "tokenizer" and not info.get("architectures") \
                and kind == "merge":
            issues.append(error(slot.path, f"the config.json of {info.name} does not say which "
                                "architecture it is (no \"architectures\" entry), which mergekit "
                                "needs to merge it.",
                                "Add for example \"architectures\": [\"LlamaForCausalLM\"] to its "
                                "config.json, or re-save the model with transformers.",
                                code="no_architecture"))
    if kind == "merge":
        issues += _check_merge(config["merge"], slots, infos)
    else:
        issues += _check_moe(config["moe"], slots, infos)
    issues += _check_tokenizers(kind, config[kind], slots, infos)
    return _dedupe(issues)


def _dedupe(issues: list[Issue]) -> list[Issue]:
    seen, out = set(), []
    for i in issues:
        key = (i.severity, i.path, i.message)
        if key not in seen:
            seen.add(key)
            out.append(i)
    return out


def _family(info: ModelInfo) -> tuple[str | None, str | None]:
    archs = info.get("architectures") or [None]
    return (archs[0], info.get("model_type"))


def reference_model(slots, infos, roles=("base",)) -> tuple[ModelSlot, ModelInfo] | None:
    for role in roles:
        for s in slots:
            if s.role == role and infos[s.ref].config is not None:
                return s, infos[s.ref]
    for s in slots:
        if s.role != "tokenizer" and infos[s.ref].config is not None:
            return s, infos[s.ref]
    return None


def _nice(key: str) -> str:
    return {"hidden_size": "hidden size", "intermediate_size": "feed-forward (intermediate) size",
            "num_attention_heads": "number of attention heads",
            "num_key_value_heads": "number of key/value heads",
            "num_hidden_layers": "number of layers", "vocab_size": "vocabulary size"}.get(key, key)


def _check_merge(m: dict, slots, infos) -> list[Issue]:
    issues: list[Issue] = []
    uses_slices = bool(m.get("slices"))
    method = m.get("method", m.get("merge_method"))
    ref = reference_model(slots, infos)
    if ref is None:
        return issues
    ref_slot, ref_info = ref
    ref_family = _family(ref_info)
    shape_keys = SHAPE_KEYS if uses_slices else SHAPE_KEYS + ("num_hidden_layers",)
    tokenizer_set = bool(m.get("tokenizer_source") or m.get("tokenizer"))
    allow_crimes = bool(m.get("allow_crimes"))
    reported = set()
    for slot in slots:
        info = infos[slot.ref]
        if slot.role == "tokenizer" or info.config is None or slot.ref in reported:
            continue
        if info is ref_info:
            issues += _check_known_arch(slot, info)
            continue
        reported.add(slot.ref)
        fam = _family(info)
        # a config.json without "architectures" is already reported (no_architecture)
        if fam != ref_family and not allow_crimes and None not in (fam[0], ref_family[0]):
            issues.append(error(
                slot.path,
                f"{info.name} is a {_fam_text(fam)} model but {ref_info.name} is a "
                f"{_fam_text(ref_family)} model; mergekit only merges models of the same "
                "architecture family.",
                "Pick models that share one architecture (for example all fine-tunes of the same "
                "base model).", code="arch_mismatch"))
            continue
        for key in shape_keys:
            a, b = info.get(key), ref_info.get(key)
            if a is not None and b is not None and a != b:
                if key == "num_hidden_layers":
                    hint = ("Merging whole models needs the same depth; to combine models of "
                            "different depths use slices (passthrough / frankenmerge).")
                else:
                    hint = "Merge models fine-tuned from the same base model; their weights have "\
                           "the same shapes."
                issues.append(error(
                    slot.path,
                    f"{info.name} has {_nice(key)} {a} but {ref_info.name} has {b}; their weights "
                    "have different shapes and cannot be merged.", hint, code="shape_mismatch"))
        va, vb = info.get("vocab_size"), ref_info.get("vocab_size")
        if va is not None and vb is not None and va != vb and not tokenizer_set:
            issues.append(warning(
                slot.path,
                f"{info.name} has a vocabulary of {va} tokens but {ref_info.name} has {vb}; "
                "without a tokenizer choice the embeddings may not line up.",
                "Set tokenizer_source: union (keep the tokens of all models) or "
                "tokenizer_source: base (keep the base model's tokens).", code="vocab_mismatch"))
    if uses_slices:
        issues += _check_slices(m, infos)
    issues += _check_modules(m, ref_slot, ref_info)
    if method == "passthrough" and not uses_slices and len(as_list(m.get("models"))) > 1:
        pass  # structural: the validation of the configuration reports it
    return issues


def _check_modules(m: dict, ref_slot: ModelSlot, ref_info: ModelInfo) -> list[Issue]:
    """mergekit merges each module of a multi-module model (a language model, a vision tower
    ...) by the name its description of the architecture gives it: a module of another name
    stops the merge (a KeyError), and slices only work for single-module models."""
    from llmcombo.productline.registry import modules_of

    arch, mtype = _family(ref_info)
    known = modules_of(arch, mtype) if arch else None
    if known is None:
        return []
    issues = []
    for k, mod in enumerate(as_list(m.get("modules"))):
        name = mod.get("name") if isinstance(mod, dict) else None
        if isinstance(name, str) and name not in known:
            issues.append(error(f"merge.modules[{k}].name",
                                f"{arch} models have no module {name!r}; mergekit's description "
                                f"of them has {', '.join(known)}.",
                                f"Use one of: {', '.join(known)}.", "module"))
    if m.get("slices") and len(known) > 1:
        issues.append(error("merge.slices", f"{arch} models have several modules "
                                            f"({', '.join(known)}); mergekit only stacks slices "
                                            "of single-module models.",
                            "Write the slices under modules: one entry per module.", "module"))
    return issues


def _fam_text(fam) -> str:
    arch, mtype = fam
    if arch and mtype:
        return f"{arch} ({mtype})"
    return str(arch or mtype or "unknown")


def _check_known_arch(slot: ModelSlot, info: ModelInfo) -> list[Issue]:
    from llmcombo.productline.registry import architectures

    arch = _family(info)[0]
    known = architectures()  # from the snapshot: no mergekit import
    if arch and arch not in known:
        return [warning(slot.path, f"mergekit has no built-in description of the {arch} "
                        "architecture; it will try to infer the layout from the weights, which can "
                        "fail.", "Prefer a model with a well-known architecture (Llama, Mistral, "
                        "Qwen2, ...).", code="arch_unknown")]
    return []


def _check_slices(m: dict, infos) -> list[Issue]:
    issues: list[Issue] = []
    for i, sl in enumerate(as_list(m.get("slices"))):
        if not isinstance(sl, dict):
            continue
        spans = []
        for j, src in enumerate(as_list(sl.get("sources"))):
            if not isinstance(src, dict):
                continue
            path = f"merge.slices[{i}].sources[{j}].layer_range"
            lr = src.get("layer_range")
            if not (isinstance(lr, (list, tuple)) and len(lr) == 2
                    and all(isinstance(x, int) and not isinstance(x, bool) for x in lr)):
                issues.append(error(path, "layer_range must be two whole numbers [start, end].",
                                    "For example [0, 4] takes the first four layers.",
                                    code="layer_range"))
                continue
            start, end = lr
            info = infos.get(src.get("model"))
            n = info.get("num_hidden_layers") if info is not None and info.config else None
            name = info.name if info is not None else src.get("model")
            if start < 0:
                issues.append(error(path, f"layer_range {list(lr)} starts before the first layer "
                                    "(layers are numbered from 0).", "Use a start of 0 or more.",
                                    code="layer_range"))
            if end <= start:  # mergekit stacks no layer for it (a warning: it runs)
                issues.append(warning(path, f"layer_range {list(lr)} is empty: the end must be "
                                      "greater than the start, or this source adds no layer.",
                                      "The end is exclusive: [0, 4] means layers 0, 1, 2 and 3.",
                                      code="layer_range"))
            if n is not None and end > n:
                issues.append(error(path, f"layer_range {list(lr)} goes past the end of {name}, "
                                    f"which has {n} layers (numbered 0 to {n - 1}).",
                                    f"Use an end of at most {n}; the end is exclusive.",
                                    code="layer_range"))
            if start < 0 or (n is not None and end > n):
                continue
            spans.append((j, end - start))
        if len({s for _, s in spans}) > 1:
            first = spans[0][1]
            for j, span in spans[1:]:
                if span != first:
                    issues.append(error(
                        f"merge.slices[{i}].sources[{j}].layer_range",
                        f"this source spans {span} layers but the first source of the slice spans "
                        f"{first}; all sources of one slice must span the same number of layers.",
                        "Make the layer ranges of the slice equally long.", code="layer_range"))
    return issues


def _check_moe(m: dict, slots, infos) -> list[Issue]:
    issues: list[Issue] = []
    ref = reference_model(slots, infos)
    if ref is None:
        return issues
    ref_slot, ref_info = ref
    base_ok = ref_slot.role == "base"
    for slot in slots:
        info = infos[slot.ref]
        if info.config is None or info is ref_info:
            continue
        for key in SHAPE_KEYS + ("num_hidden_layers",):
            a, b = info.get(key), ref_info.get(key)
            if a is not None and b is not None and a != b:
                hint = ("Use experts fine-tuned from the base model, so every expert has the same "
                        "shape and depth.")
                issues.append(error(
                    slot.path,
                    f"{info.name} has {_nice(key)} {a} but the base model {ref_info.name} has {b}; "
                    "an expert must have the same shape and depth as the base model.", hint,
                    code="shape_mismatch"))
        va, vb = info.get("vocab_size"), ref_info.get("vocab_size")
        if va is not None and vb is not None and va != vb:
            issues.append(warning(
                slot.path,
                f"{info.name} has a vocabulary of {va} tokens but the base model has {vb}; the MoE "
                "uses the base model's tokenizer and embeddings, so this expert may misread tokens.",
                "Use experts that share the base model's tokenizer.", code="vocab_mismatch"))
    # which MoE architecture mergekit would build (needs every config)
    needed = [s for s in slots if s.role in ("base", "expert", "shared_expert")]
    if not base_ok or any(infos[s.ref].config is None for s in needed) or not m.get("experts"):
        return issues
    from llmcombo.engine.moe import moe_output_architectures, select_output_architecture

    chosen, candidates, reasons = select_output_architecture(m, infos)
    names = ", ".join(a.name() for a in moe_output_architectures())
    if not candidates:
        issues.append(error("moe.architecture",
                            f"mergekit has no MoE output architecture called "
                            f"{m.get('architecture')!r}.",
                            f"Choose one of: {names} (or leave it empty to let mergekit choose).",
                            code="moe_arch_unknown"))
    elif chosen is None:
        path = "moe.architecture" if m.get("architecture") else "moe.base_model"
        why = " ".join(f"{name}: {text}." for name, text in reasons.items())
        issues.append(error(path, "mergekit cannot build a mixture of experts from these models. "
                            + why,
                            "Mixtral and DeepSeek MoE need Llama or Mistral models; Qwen MoE needs "
                            "Qwen2, Llama or Mistral models and exactly one shared expert; Qwen3 "
                            "MoE needs Qwen3 models.", code="moe_unsupported"))
    elif chosen.name().lower().startswith("deepseek"):
        issues.append(warning("moe.architecture" if m.get("architecture") else "moe.base_model",
                              "the result will be a DeepSeek MoE model, which transformers can "
                              "only load with code downloaded from the Hub (trust_remote_code).",
                              "Use the Mixtral architecture (no shared experts) for a model that "
                              "loads offline.", code="moe_remote_code"))
    return issues


def _has_tokenizer(folder: Path) -> bool:
    return any((folder / f).is_file() for f in TOKENIZER_FILES)


def _check_tokenizers(kind: str, m: dict, slots, infos) -> list[Issue]:
    """The output needs a tokenizer: check that the model it comes from has one (local only)."""
    issues = []
    tok = m.get("tokenizer_source") or (m.get("tokenizer") or {}).get("source")
    if kind == "moe":
        donors = [s for s in slots if s.role == "base"][:1]
    elif tok == "union":
        donors = [s for s in slots if s.role != "tokenizer"]
    elif tok and tok != "base":
        donors = [s for s in slots if s.role == "tokenizer"]
    else:
        donors = ([s for s in slots if s.role == "base"] or
                  [s for s in slots if s.role != "tokenizer"])[:1]
    seen = set()
    for slot in donors:
        info = infos[slot.ref]
        if slot.ref in seen or info.local_dir is None or info.config is None:
            continue
        seen.add(slot.ref)
        if not _has_tokenizer(info.local_dir):
            issues.append(error(slot.path, f"{info.name} has no tokenizer files (tokenizer.json, "
                                "tokenizer.model, ...), and the result needs its tokenizer.",
                                "Copy the tokenizer files of the original model into the folder.",
                                code="no_tokenizer"))
    return issues



def check_stage_models(config: dict, base_dir=None) -> list[Issue]:
    """Model-aware checks of a multi-stage merge: each stage as a merge of its own, leaving out
    the references to other stages (their results do not exist before the run)."""
    from llmcombo.featuremodel import paths as P

    issues: list[Issue] = []
    for i, stage in enumerate(as_list(config.get("stages"))):
        if not isinstance(stage, dict) or not isinstance(stage.get("merge"), dict):
            continue
        stage_refs = {s.path.removeprefix(f"stages[{i}].") for s in model_slots(config)
                      if s.role == "stage" and s.path.startswith(f"stages[{i}].")}
        for issue in check_models({"merge": stage["merge"]}, base_dir):
            if any(issue.path == r or issue.path.startswith(r + ".") for r in stage_refs):
                continue
            path = P.join(f"stages[{i}]", issue.path) if issue.path else f"stages[{i}]"
            issues.append(Issue(issue.severity, path, issue.message, issue.hint, issue.code))
    return issues
