"""Pre-flight: model-aware checks and a resource estimate, before any weight is read.

Everything here reads ``config.json`` files and safetensors *headers* only, never tensors:

* :func:`check_models` -- do the referenced models exist, are they of one architecture family,
  do their shapes agree, are slice layer ranges inside the models, can mergekit build a mixture
  of experts from them? Returns :class:`~llmcombo.featuremodel.issues.Issue` objects whose
  ``path`` names the offending field (``merge.models[1].model``).
* :func:`estimate` / :func:`check_resources` -- disk needed for the output, a rough RAM figure,
  free space where the output goes; refuses (an error issue) when the output cannot fit.

Hub ids are checked by fetching only their ``config.json`` (from the local Hugging Face cache
when it is there). When the Hub cannot be reached the check becomes a *warning* that says so;
nothing here fails because the machine is offline.

Configurations are llmcombo configuration dicts (``{"merge": {...}}`` or ``{"moe": {...}}``);
inside ``merge`` both ``method`` (llmcombo) and ``merge_method`` (mergekit) are accepted, so a
mergekit dict wrapped as ``{"merge": mergekit_dict}`` works too.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import struct
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from llmcombo import modelref
from llmcombo.featuremodel.issues import Issue, error, warning

LOG = logging.getLogger(__name__)

#: environment overrides, in bytes (suffixes K/M/G/T accepted), to simulate a small disk or RAM
DISK_FREE_ENV = "LLMCOMBO_DISK_FREE"
RAM_AVAILABLE_ENV = "LLMCOMBO_RAM_AVAILABLE"

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "tokenizer_config.json")
DTYPE_BYTES = {"float32": 4, "float": 4, "float16": 2, "half": 2, "bfloat16": 2, "float64": 8,
               "int8": 1, "uint8": 1, "F32": 4, "F16": 2, "BF16": 2, "F64": 8, "I8": 1, "U8": 1,
               "I16": 2, "I32": 4, "I64": 8, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1}
SHAPE_KEYS = ("hidden_size", "intermediate_size", "num_attention_heads", "num_key_value_heads")
_RUNTIME_BASELINE = 450 * 2**20  # python + torch + transformers + mergekit, resident

# ---------------------------------------------------------------------------------------------
# model references in a configuration
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelSlot:
    """One place in a configuration that names a model."""

    path: str  # field path, e.g. "merge.models[1].model"
    ref: str  # as written
    role: str  # "base" | "model" | "slice" | "expert" | "shared_expert" | "tokenizer"


def config_kind(config: dict) -> str | None:
    if not isinstance(config, dict):
        return None
    for kind in ("merge", "moe"):
        if isinstance(config.get(kind), dict):
            return kind
    return None


def model_slots(config: dict) -> list[ModelSlot]:
    """Every model reference of a merge or MoE configuration, with the path of its field."""
    kind = config_kind(config)
    slots: list[ModelSlot] = []
    if kind == "merge":
        m = config["merge"]
        if isinstance(m.get("base_model"), str):
            slots.append(ModelSlot("merge.base_model", m["base_model"], "base"))
        for i, entry in enumerate(_as_list(m.get("models"))):
            ref = entry.get("model") if isinstance(entry, dict) else entry
            if isinstance(ref, str):
                slots.append(ModelSlot(f"merge.models[{i}].model", ref, "model"))
        for i, sl in enumerate(_as_list(m.get("slices"))):
            if not isinstance(sl, dict):
                continue
            for j, src in enumerate(_as_list(sl.get("sources"))):
                if isinstance(src, dict) and isinstance(src.get("model"), str):
                    slots.append(ModelSlot(f"merge.slices[{i}].sources[{j}].model", src["model"],
                                           "slice"))
            if isinstance(sl.get("base_model"), str):
                slots.append(ModelSlot(f"merge.slices[{i}].base_model", sl["base_model"], "base"))
        tok = m.get("tokenizer_source")
        if isinstance(m.get("tokenizer"), dict):
            tok = m["tokenizer"].get("source", tok)
            tpath = "merge.tokenizer.source"
        else:
            tpath = "merge.tokenizer_source"
        if isinstance(tok, str) and tok not in ("base", "union"):
            slots.append(ModelSlot(tpath, tok, "tokenizer"))
    elif kind == "moe":
        m = config["moe"]
        if isinstance(m.get("base_model"), str):
            slots.append(ModelSlot("moe.base_model", m["base_model"], "base"))
        for key, role in (("experts", "expert"), ("shared_experts", "shared_expert")):
            for i, e in enumerate(_as_list(m.get(key))):
                if isinstance(e, dict) and isinstance(e.get("source_model"), str):
                    slots.append(ModelSlot(f"moe.{key}[{i}].source_model", e["source_model"], role))
    return slots


def _as_list(value) -> list:
    return value if isinstance(value, list) else []


# ---------------------------------------------------------------------------------------------
# reading config.json (local folder, Hub cache, or Hub)
# ---------------------------------------------------------------------------------------------


@dataclass
class ModelInfo:
    """What pre-flight learned about one model reference."""

    ref: str
    resolved: str | None = None
    where: str = "local"  # "local" | "hub"
    local_dir: Path | None = None
    revision: str | None = None
    lora: str | None = None
    config: dict | None = None

    @property
    def name(self) -> str:
        return self.ref

    def get(self, key: str, default=None):
        return _cfg_get(self.config or {}, key, default)


def _cfg_get(cfg: dict, key: str, default=None):
    if key in cfg and cfg[key] is not None:
        return cfg[key]
    text = cfg.get("text_config")
    if isinstance(text, dict) and text.get(key) is not None:
        return text[key]
    if key == "num_key_value_heads":
        return _cfg_get(cfg, "num_attention_heads", default)
    return default


_reach_lock = threading.Lock()
_reach_cache: dict[str, tuple[float, bool]] = {}


def hub_reachable(timeout: float = 3.0, *, ttl: float = 60.0) -> bool:
    """True when the Hugging Face Hub endpoint accepts a TCP connection (cached for ``ttl`` s).

    huggingface_hub retries for ~25 s before giving up when offline; this probe lets pre-flight
    answer in at most ``timeout`` seconds. ``HF_HUB_OFFLINE=1`` means unreachable.
    """
    from urllib.parse import urlparse

    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    url = urlparse(constants.ENDPOINT)
    host = url.hostname or "huggingface.co"
    port = url.port or (443 if url.scheme == "https" else 80)
    key = f"{host}:{port}"
    with _reach_lock:
        hit = _reach_cache.get(key)
        if hit and time.monotonic() - hit[0] < ttl:
            return hit[1]
    try:
        with socket.create_connection((host, port), timeout=timeout):
            ok = True
    except OSError:
        ok = False
    with _reach_lock:
        _reach_cache[key] = (time.monotonic(), ok)
    return ok


def _offline_warning(path: str, ref: str) -> Issue:
    return warning(path, f"could not check {ref}: the Hugging Face Hub is not reachable (offline?)",
                   "Connect to the internet to check this model now; the merge itself will "
                   "need to download it anyway.", code="hub_unreachable")


def _split_revision(ref: str) -> tuple[str, str | None]:
    if ref.count("@") == 1:
        repo, rev = ref.split("@")
        return repo, rev
    return ref, None


def inspect_model(ref: str, path: str = "", base_dir=None) -> tuple[ModelInfo, list[Issue]]:
    """Read the ``config.json`` of one model reference; never reads weights.

    Returns the info (``config`` is None when it could not be read) and the issues found.
    """
    info = ModelInfo(ref=ref)
    issues: list[Issue] = []
    model_part, lora = modelref.split_lora(ref)
    if modelref.is_zoo(model_part):
        return _inspect_zoo(info, model_part, path)
    try:
        repo, rev = _split_revision(model_part)
        if rev is not None and modelref.is_hub_id(repo):  # owner/name@revision
            resolved = model_part
        else:
            resolved = modelref.resolve(model_part, base_dir)
    except Exception as exc:  # zoo missing, zoo model not built, ...
        issues.append(error(path, f"the model {ref} could not be found: {exc}",
                            "Check the model name; zoo models are written zoo:NAME.",
                            code="model_missing"))
        return info, issues
    info.resolved = resolved
    if lora is not None:
        info.lora = lora
        issues += _check_lora(lora, path, base_dir)

    repo, revision = _split_revision(resolved)
    if os.path.isabs(resolved) or os.path.exists(resolved) or not modelref.is_hub_id(repo):
        info.where = "local"
        issues += _read_local(info, Path(resolved), path, base_dir)
    else:
        info.where = "hub"
        info.revision = revision
        issues += _read_hub(info, repo, revision, path)
    return info, issues


def _inspect_zoo(info: ModelInfo, ref: str, path: str) -> tuple[ModelInfo, list[Issue]]:
    """``zoo:NAME`` without training the zoo: a check must stay quick."""
    try:
        from llmcombo import zoo

        folder = zoo.model_path(ref[len(modelref.ZOO_PREFIX):], build=False)
    except Exception as exc:  # UserError for an unknown name, ImportError, ...
        msg = getattr(exc, "message", None) or str(exc)
        hint = getattr(exc, "hint", None)
        return info, [error(path, f"the zoo model {ref} cannot be used: {msg}", hint,
                            code="model_missing")]
    info.resolved = str(folder)
    if not zoo.is_complete(folder.parent):
        return info, [warning(path, f"could not check {ref}: the model zoo is not built yet; it "
                              "will be trained the first time it is used (a few minutes).",
                              "Build it now with `llmcombo zoo build`.", code="zoo_not_built")]
    return info, _read_local(info, folder, path, None)


def _where_hint(base_dir) -> str:
    if base_dir is not None:
        return (f"Check the spelling. Relative paths are read from the configuration file's "
                f"folder ({base_dir}).")
    return f"Check the spelling. Relative paths are read from the current folder ({os.getcwd()})."


def _read_local(info: ModelInfo, folder: Path, path: str, base_dir) -> list[Issue]:
    if not folder.exists():
        hint = _where_hint(base_dir)
        if "/" not in info.ref and not info.ref.startswith("zoo:"):
            hint += " A Hugging Face Hub model is written owner/name."
        return [error(path, f"model folder not found: {folder}", hint, code="model_missing")]
    if not folder.is_dir():
        return [error(path, f"{folder} is a file, not a model folder.",
                      "Point to the folder that holds config.json and the weights.",
                      code="model_not_folder")]
    info.local_dir = folder
    cfg_file = folder / "config.json"
    if not cfg_file.is_file():
        return [error(path, f"the folder {folder} has no config.json, so it is not a Hugging Face "
                      "model folder.",
                      "Point to the folder that holds config.json and the *.safetensors files "
                      "(a LoRA adapter is written MODEL+ADAPTER).", code="no_config")]
    try:
        info.config = json.loads(cfg_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return [error(path, f"the config.json of {folder} cannot be read: {exc}",
                      "Repair or re-download the model.", code="bad_config")]
    if not any(p.name.endswith(WEIGHT_SUFFIXES) for p in folder.iterdir()):
        return [error(path, f"the folder {folder} has a config.json but no weight files "
                      "(*.safetensors or *.bin).",
                      "Copy or download the model's weights into the folder.",
                      code="no_weights")]
    return []


def _read_hub(info: ModelInfo, repo: str, revision: str | None, path: str) -> list[Issue]:
    from huggingface_hub import hf_hub_download, try_to_load_from_cache
    from huggingface_hub import errors as hf_errors

    try:
        cached = try_to_load_from_cache(repo, "config.json", revision=revision)
    except Exception:
        cached = None
    if isinstance(cached, str) and os.path.isfile(cached):
        try:
            info.config = json.loads(Path(cached).read_text(encoding="utf-8"))
            return []
        except (OSError, ValueError):
            pass
    if not hub_reachable():
        return [_offline_warning(path, info.ref)]
    try:
        local = hf_hub_download(repo, "config.json", revision=revision)
    except hf_errors.GatedRepoError:
        return [error(path, f"{repo} is a gated model: its owners must grant you access first.",
                      "Accept its licence on its Hugging Face page and log in (hf auth login).",
                      code="hub_gated")]
    except hf_errors.RepositoryNotFoundError:
        return [error(path, f"the model {repo} was not found on the Hugging Face Hub.",
                      "Check the spelling (owner/name). Private models need you to log in.",
                      code="hub_not_found")]
    except hf_errors.RevisionNotFoundError:
        return [error(path, f"the model {repo} has no revision {revision!r}.",
                      "Check the branch, tag or commit after the @.", code="hub_revision")]
    except hf_errors.LocalEntryNotFoundError:
        return [_offline_warning(path, info.ref)]
    except hf_errors.EntryNotFoundError:
        return [error(path, f"{repo} has no config.json, so it is not a transformers model.",
                      "Pick a model repository that has config.json.", code="no_config")]
    except Exception:  # connection reset, timeouts, proxies...
        return [_offline_warning(path, info.ref)]
    try:
        info.config = json.loads(Path(local).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return [error(path, f"the config.json of {repo} cannot be read: {exc}", code="bad_config")]
    return []


def _check_lora(lora: str, path: str, base_dir) -> list[Issue]:
    import importlib.util

    issues = []
    if importlib.util.find_spec("peft") is None:
        issues.append(error(path, "this model has a LoRA adapter (MODEL+ADAPTER), which needs the "
                            "peft package.", "Install it: pip install peft", code="lora_peft"))
    resolved = modelref.resolve(lora, base_dir)
    if os.path.isabs(resolved) or not modelref.is_hub_id(_split_revision(resolved)[0]):
        folder = Path(resolved)
        if not folder.is_dir():
            issues.append(error(path, f"LoRA adapter folder not found: {folder}",
                                _where_hint(base_dir), code="lora_missing"))
        elif not (folder / "adapter_config.json").is_file():
            issues.append(error(path, f"the folder {folder} has no adapter_config.json, so it is "
                                "not a LoRA adapter.", code="lora_not_adapter"))
    return issues


# ---------------------------------------------------------------------------------------------
# model-aware checks
# ---------------------------------------------------------------------------------------------


def check_models(config: dict, base_dir=None) -> list[Issue]:
    """Model-aware checks of a merge or MoE configuration (reads config.json files only)."""
    kind = config_kind(config)
    if kind is None:
        return []
    slots = model_slots(config)
    issues: list[Issue] = []
    infos: dict[str, ModelInfo] = {}
    for slot in slots:
        if slot.ref in infos:
            continue
        info, found = inspect_model(slot.ref, slot.path, base_dir)
        infos[slot.ref] = info
        issues += found
    loaded = [(s, infos[s.ref]) for s in slots if infos[s.ref].config is not None]
    for slot, info in loaded:
        if slot.role != "tokenizer" and not _cfg_get(info.config, "architectures") \
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


def _reference(slots, infos, roles=("base",)) -> tuple[ModelSlot, ModelInfo] | None:
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
    ref = _reference(slots, infos)
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
    if method == "passthrough" and not uses_slices and len(_as_list(m.get("models"))) > 1:
        pass  # structural: the validation of the configuration reports it
    return issues


def _fam_text(fam) -> str:
    arch, mtype = fam
    if arch and mtype:
        return f"{arch} ({mtype})"
    return str(arch or mtype or "unknown")


def _check_known_arch(slot: ModelSlot, info: ModelInfo) -> list[Issue]:
    try:
        from mergekit.architecture.json_definitions import NAME_TO_ARCH
        from mergekit.architecture.moe_defs import (AfmoeModuleArchitecture,
                                                    Glm4MoeModuleArchitecture)
    except Exception:  # pragma: no cover - mergekit layout changed
        return []
    arch = _family(info)[0]
    known = set(NAME_TO_ARCH) | {AfmoeModuleArchitecture.ARCHITECTURE_NAME,
                                 Glm4MoeModuleArchitecture.ARCHITECTURE_NAME}
    if arch and arch not in known:
        return [warning(slot.path, f"mergekit has no built-in description of the {arch} "
                        "architecture; it will try to infer the layout from the weights, which can "
                        "fail.", "Prefer a model with a well-known architecture (Llama, Mistral, "
                        "Qwen2, ...).", code="arch_unknown")]
    return []


def _check_slices(m: dict, infos) -> list[Issue]:
    issues: list[Issue] = []
    for i, sl in enumerate(_as_list(m.get("slices"))):
        if not isinstance(sl, dict):
            continue
        spans = []
        for j, src in enumerate(_as_list(sl.get("sources"))):
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
            if end <= start:
                issues.append(error(path, f"layer_range {list(lr)} is empty: the end must be "
                                    "greater than the start.",
                                    "The end is exclusive: [0, 4] means layers 0, 1, 2 and 3.",
                                    code="layer_range"))
            if n is not None and end > n:
                issues.append(error(path, f"layer_range {list(lr)} goes past the end of {name}, "
                                    f"which has {n} layers (numbered 0 to {n - 1}).",
                                    f"Use an end of at most {n}; the end is exclusive.",
                                    code="layer_range"))
            if start < 0 or end <= start or (n is not None and end > n):
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


# ---- mixture of experts ---------------------------------------------------------------------


class _ConfigView:
    """Attribute access to a config.json dict (what mergekit's MoE checks read)."""

    def __init__(self, data: dict):
        self.__dict__.update(data)

    def __getattr__(self, item):  # only called for missing attributes
        raise AttributeError(item)


class _PreloadedRef:
    """Stands in for mergekit's ModelReference: ``config()`` answers from what we already read."""

    def __init__(self, info: ModelInfo):
        self._info = info

    def config(self, trust_remote_code: bool = False):
        return _ConfigView(self._info.config or {})

    def __eq__(self, other):
        return isinstance(other, _PreloadedRef) and other._info.ref == self._info.ref

    def __hash__(self):
        return hash(self._info.ref)


class _RootRecords(logging.Filter):
    """Swallow and keep the root-logger records mergekit's MoE code logs with ``logging.x()``."""

    def __init__(self):
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def filter(self, record):
        self.records.append(record)
        return False


@contextmanager
def capture_root_logging() -> Iterator[_RootRecords]:
    """Capture records logged directly on the root logger (mergekit.moe uses ``logging.error``).

    A handler is attached so ``logging.error`` does not call ``basicConfig`` behind our back.
    """
    root = logging.getLogger()
    catcher = _RootRecords()
    handler = logging.NullHandler()
    root.addFilter(catcher)
    root.addHandler(handler)
    try:
        yield catcher
    finally:
        root.removeFilter(catcher)
        root.removeHandler(handler)


def moe_output_architectures():
    """mergekit's MoE output architectures (Mixtral, DeepSeek MoE, Qwen MoE, Qwen3 MoE, ...)."""
    from mergekit.moe import ALL_OUTPUT_ARCHITECTURES

    return list(ALL_OUTPUT_ARCHITECTURES)


def select_moe_architecture(m: dict, infos: dict[str, ModelInfo]):
    """Mirror ``mergekit.scripts.moe.select_output_arch`` on already-read configs.

    Returns ``(chosen_or_None, candidates_by_name, reasons)`` where ``reasons`` maps an
    architecture name to mergekit's explanation of why it does not fit.
    """
    from mergekit.moe.config import Expert, MoEMergeConfig

    def expert(e: dict):
        return Expert.model_construct(
            source_model=_PreloadedRef(infos[e["source_model"]]),
            positive_prompts=e.get("positive_prompts"), negative_prompts=e.get("negative_prompts"),
            noise_scale=e.get("noise_scale"), residual_scale=e.get("residual_scale"))

    experts = [expert(e) for e in _as_list(m.get("experts"))]
    shared = [expert(e) for e in _as_list(m.get("shared_experts"))] or None
    cfg = MoEMergeConfig.model_construct(
        base_model=_PreloadedRef(infos[m["base_model"]]), experts=experts, shared_experts=shared,
        gate_mode=m.get("gate_mode", "hidden"), architecture=m.get("architecture"),
        experts_per_token=m.get("experts_per_token", 2), dtype=m.get("dtype"))
    candidates = moe_output_architectures()
    if cfg.architecture:
        candidates = [a for a in candidates
                      if a.name().lower().startswith(str(cfg.architecture).lower())]
    reasons: dict[str, str] = {}
    ok = []
    for arch in candidates:
        with capture_root_logging() as caught:
            supported = arch.supports_config(cfg, explain=True)
        if supported:
            ok.append(arch)
        else:
            reasons[arch.name()] = "; ".join(r.getMessage() for r in caught.records) or \
                "not supported"
    chosen = None
    for arch in ok:  # mergekit prefers Mixtral when it fits
        if arch.name() == "Mixtral":
            chosen = arch
    if chosen is None and ok:
        chosen = ok[0]
    return chosen, candidates, reasons


def _check_moe(m: dict, slots, infos) -> list[Issue]:
    issues: list[Issue] = []
    ref = _reference(slots, infos)
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
    try:
        chosen, candidates, reasons = select_moe_architecture(m, infos)
    except Exception as exc:  # pragma: no cover - mergekit internals changed
        LOG.debug("MoE architecture check skipped: %s", exc)
        return issues
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


# ---------------------------------------------------------------------------------------------
# resources
# ---------------------------------------------------------------------------------------------


@dataclass
class InputSize:
    ref: str
    resolved: str | None
    where: str
    bytes_on_disk: int | None  # local weights, or cached Hub weights
    params: int | None


@dataclass
class Estimate:
    """Rough resource figures for running a configuration (bytes)."""

    kind: str
    inputs: list[InputSize] = field(default_factory=list)
    input_bytes: int = 0  # weights already on disk
    download_unknown: list[str] = field(default_factory=list)  # Hub models not in the cache
    output_params: int | None = None
    output_dtype: str = "float32"
    output_bytes: int | None = None
    ram_bytes: int | None = None
    out_dir: str | None = None
    disk_free: int | None = None
    ram_available: int | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def disk_needed(self) -> int | None:
        """Space the output needs where it is written (a little margin included)."""
        if self.output_bytes is None:
            return None
        return int(self.output_bytes * 1.02) + 2 * 2**20

    def summary(self) -> str:
        rows = [f"output: {fmt_bytes(self.output_bytes)} ({self.output_params or '?'} parameters, "
                f"{self.output_dtype})",
                f"inputs on disk: {fmt_bytes(self.input_bytes)}",
                f"memory: about {fmt_bytes(self.ram_bytes)}",
                f"free disk at {self.out_dir}: {fmt_bytes(self.disk_free)}"]
        if self.download_unknown:
            rows.append("to download (size unknown): " + ", ".join(self.download_unknown))
        return "\n".join(rows + self.notes)


def fmt_bytes(n: int | None) -> str:
    if n is None:
        return "unknown"
    size = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(size) < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} B"  # pragma: no cover


def parse_size(text: str | int) -> int:
    if isinstance(text, int):
        return text
    s = str(text).strip().upper().rstrip("B")
    mult = 1
    for suffix, factor in (("K", 10**3), ("M", 10**6), ("G", 10**9), ("T", 10**12)):
        if s.endswith(suffix):
            s, mult = s[:-1], factor
            break
    return int(float(s) * mult)


def _safetensors_headers(folder: Path) -> dict[str, tuple[list[int], str]] | None:
    """Tensor name -> (shape, dtype) from safetensors headers; None when there are none."""
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        return None
    out: dict[str, tuple[list[int], str]] = {}
    for f in files:
        try:
            with open(f, "rb") as fh:
                (n,) = struct.unpack("<Q", fh.read(8))
                if n > 100 * 2**20:
                    return None
                header = json.loads(fh.read(n))
        except (OSError, ValueError, struct.error):
            return None
        for name, meta in header.items():
            if name != "__metadata__" and isinstance(meta, dict):
                out[name] = (list(meta.get("shape", [])), str(meta.get("dtype", "F32")))
    return out


def _numel(shape) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


@dataclass
class _Breakdown:
    """Parameters of a dense decoder split the way merges and MoEs recombine them."""

    other: int  # embeddings, final norm, lm_head
    attn_per_layer: int  # everything in a layer except its MLP
    mlp_per_layer: int
    layers: int
    largest_tensor: int

    @property
    def total(self) -> int:
        return self.other + self.layers * (self.attn_per_layer + self.mlp_per_layer)


def _breakdown_from_headers(headers) -> _Breakdown | None:
    import re

    other, largest = 0, 0
    per_layer_attn: dict[int, int] = {}
    per_layer_mlp: dict[int, int] = {}
    pat = re.compile(r"(?:^|\.)layers\.(\d+)\.")
    for name, (shape, _dt) in headers.items():
        n = _numel(shape)
        largest = max(largest, n)
        mt = pat.search(name)
        if mt is None:
            other += n
            continue
        idx = int(mt.group(1))
        target = per_layer_mlp if ".mlp." in name else per_layer_attn
        target[idx] = target.get(idx, 0) + n
    layers = max(len(per_layer_attn), len(per_layer_mlp))
    if layers == 0:
        return _Breakdown(other, 0, 0, 0, largest)
    return _Breakdown(other, sum(per_layer_attn.values()) // layers,
                      sum(per_layer_mlp.values()) // layers, layers, largest)


def _breakdown_from_config(cfg: dict) -> _Breakdown | None:
    """A Llama-style estimate when no safetensors headers are at hand."""
    g = lambda k, d=None: _cfg_get(cfg, k, d)  # noqa: E731
    h, layers, vocab = g("hidden_size"), g("num_hidden_layers"), g("vocab_size")
    if not (h and layers and vocab):
        return None
    inter = g("intermediate_size", 4 * h)
    heads = g("num_attention_heads", 1)
    kv = g("num_key_value_heads", heads)
    head_dim = g("head_dim") or h // max(heads, 1)
    attn = h * heads * head_dim + 2 * h * kv * head_dim + heads * head_dim * h + 2 * h
    mlp = 3 * h * inter
    embed = vocab * h
    other = embed + h + (0 if g("tie_word_embeddings", False) else embed)
    return _Breakdown(other, attn, mlp, layers, max(embed, h * inter))


def _model_breakdown(info: ModelInfo) -> _Breakdown | None:
    if info.local_dir is not None:
        headers = _safetensors_headers(info.local_dir)
        if headers:
            return _breakdown_from_headers(headers)
    if info.config is not None:
        return _breakdown_from_config(info.config)
    return None


def _weights_on_disk(info: ModelInfo) -> int | None:
    folder = info.local_dir
    if folder is None and info.where == "hub":
        try:
            from huggingface_hub import try_to_load_from_cache

            cfg = try_to_load_from_cache(_split_revision(info.resolved or info.ref)[0],
                                         "config.json", revision=info.revision)
            folder = Path(cfg).parent if isinstance(cfg, str) else None
        except Exception:
            folder = None
    if folder is None:
        return None
    sizes = [p.stat().st_size for p in folder.iterdir()
             if p.is_file() and p.name.endswith(WEIGHT_SUFFIXES)]
    return sum(sizes) if sizes else None


def _output_dtype(kind: str, m: dict, ref_info: ModelInfo | None, out_dtype: str | None) -> str:
    dt = out_dtype or m.get("out_dtype") or m.get("dtype")
    if not dt and ref_info is not None and ref_info.config:
        dt = ref_info.config.get("dtype") or ref_info.config.get("torch_dtype")
    dt = str(dt or "float32").replace("torch.", "")
    return dt if dt in DTYPE_BYTES else "float32"


def _existing_parent(path: Path) -> Path:
    p = path
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def free_disk(path, override: int | None = None) -> int | None:
    """Free bytes on the filesystem that will hold ``path`` (``LLMCOMBO_DISK_FREE`` overrides)."""
    if override is not None:
        return int(override)
    env = os.environ.get(DISK_FREE_ENV)
    if env:
        return parse_size(env)
    try:
        return shutil.disk_usage(_existing_parent(Path(path).expanduser().resolve())).free
    except OSError:
        return None


def available_ram(override: int | None = None) -> int | None:
    if override is not None:
        return int(override)
    env = os.environ.get(RAM_AVAILABLE_ENV)
    if env:
        return parse_size(env)
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except Exception:  # pragma: no cover
        return None


def estimate(config: dict, base_dir=None, *, out_dtype: str | None = None, out_path=None,
             shard_size: int | None = None, disk_free: int | None = None,
             ram_available: int | None = None) -> Estimate:
    """Estimate disk and memory for running ``config``; reads config.json and headers only."""
    kind = config_kind(config) or "unknown"
    est = Estimate(kind=kind)
    if kind not in ("merge", "moe"):
        return est
    m = config[kind]
    slots = model_slots(config)
    infos: dict[str, ModelInfo] = {}
    for slot in slots:
        if slot.ref not in infos:
            infos[slot.ref] = inspect_model(slot.ref, slot.path, base_dir)[0]
    counted = set()
    for slot in slots:
        info = infos[slot.ref]
        if slot.ref in counted or slot.role == "tokenizer":
            continue
        counted.add(slot.ref)
        size = _weights_on_disk(info)
        bd = _model_breakdown(info)
        est.inputs.append(InputSize(slot.ref, info.resolved, info.where, size,
                                    bd.total if bd else None))
        if size is not None:
            est.input_bytes += size
        elif info.where == "hub":
            est.download_unknown.append(slot.ref)
    ref = _reference(slots, infos)
    ref_info = ref[1] if ref else None
    est.output_dtype = _output_dtype(kind, m, ref_info, out_dtype)
    nbytes = DTYPE_BYTES[est.output_dtype]
    bd = _model_breakdown(ref_info) if ref_info else None
    n_inputs = max(1, len(counted))
    if bd is not None:
        if kind == "merge" and m.get("slices"):
            layers = 0
            for sl in _as_list(m.get("slices")):
                srcs = _as_list(sl.get("sources")) if isinstance(sl, dict) else []
                lr = srcs[0].get("layer_range") if srcs and isinstance(srcs[0], dict) else None
                if isinstance(lr, (list, tuple)) and len(lr) == 2:
                    layers += max(0, int(lr[1]) - int(lr[0]))
            params = bd.other + layers * (bd.attn_per_layer + bd.mlp_per_layer)
        elif kind == "moe":
            n_exp = len(_as_list(m.get("experts"))) + len(_as_list(m.get("shared_experts")))
            h = ref_info.get("hidden_size") or 0
            params = bd.other + bd.layers * (bd.attn_per_layer + n_exp * bd.mlp_per_layer
                                             + n_exp * h)
        else:
            params = bd.total
        est.output_params = params
        est.output_bytes = params * nbytes
        # RAM: runtime + the output shard mergekit keeps in memory until it is flushed +
        # a few copies of the largest tensor per input (loaded, cast, merged)
        shard = min(est.output_bytes, shard_size or 5 * 10**9)
        work = bd.largest_tensor * 4 * (n_inputs + 2)
        est.ram_bytes = _RUNTIME_BASELINE + shard + work
        if kind == "moe" and m.get("gate_mode", "hidden") == "hidden":
            est.ram_bytes += bd.total * 2  # the base model is loaded (bf16) to embed prompts
            est.notes.append("gate_mode hidden loads the whole base model to read hidden states.")
    else:
        est.notes.append("The output size is unknown: no model configuration could be read.")
    if out_path is not None:
        est.out_dir = str(_existing_parent(Path(out_path).expanduser().resolve()))
        est.disk_free = free_disk(out_path, disk_free)
    est.ram_available = available_ram(ram_available)
    return est


def check_resources(config: dict, out_path, base_dir=None, *, out_dtype: str | None = None,
                    shard_size: int | None = None, disk_free: int | None = None,
                    ram_available: int | None = None,
                    est: Estimate | None = None) -> list[Issue]:
    """Refuse (an error issue) when the output cannot fit on its disk; warn about memory.

    ``disk_free`` / ``ram_available`` (or ``LLMCOMBO_DISK_FREE`` / ``LLMCOMBO_RAM_AVAILABLE``)
    replace the measured figures, to simulate a full disk in tests.
    """
    if est is None:
        est = estimate(config, base_dir, out_dtype=out_dtype, out_path=out_path,
                       shard_size=shard_size, disk_free=disk_free, ram_available=ram_available)
    else:
        est.out_dir = str(_existing_parent(Path(out_path).expanduser().resolve()))
        est.disk_free = free_disk(out_path, disk_free)
        est.ram_available = available_ram(ram_available)
    issues: list[Issue] = []
    need = est.disk_needed
    if need is not None and est.disk_free is not None and need > est.disk_free:
        issues.append(error(
            "output", f"not enough free disk space for the result: it needs about "
            f"{fmt_bytes(need)} but only {fmt_bytes(est.disk_free)} are free at {est.out_dir}.",
            "Free some space, or write the result to a folder on a bigger disk.",
            code="disk_full"))
    if est.download_unknown:
        from huggingface_hub import constants

        issues.append(warning(
            "output", "these Hub models will be downloaded first and their size is not known "
            "yet: " + ", ".join(est.download_unknown) + ".",
            f"Make sure the Hugging Face cache ({constants.HF_HUB_CACHE}) has room for them.",
            code="download_size"))
    if est.ram_bytes is not None and est.ram_available is not None \
            and est.ram_bytes > est.ram_available:
        issues.append(warning(
            "output", f"this may need about {fmt_bytes(est.ram_bytes)} of memory but only "
            f"{fmt_bytes(est.ram_available)} is available; the computer may slow down or the run "
            "may be stopped.", "Close other programs, use a smaller shard size, or run on a "
            "machine with more memory.", code="ram"))
    return issues


__all__ = [
    "DISK_FREE_ENV", "RAM_AVAILABLE_ENV", "Estimate", "InputSize", "ModelInfo", "ModelSlot",
    "available_ram", "capture_root_logging", "check_models", "check_resources", "config_kind",
    "estimate", "fmt_bytes", "free_disk", "hub_reachable", "inspect_model", "model_slots",
    "moe_output_architectures", "parse_size", "select_moe_architecture",
]
