"""Resources: disk needed for the output, a rough memory figure, free space where the output goes
(reads config.json files and safetensors *headers* only)."""

from __future__ import annotations

import json
import os
import shutil
import struct
from dataclasses import dataclass, field
from pathlib import Path

from llmcombo.featuremodel.issues import Issue, error, warning
from llmcombo.preflight.checks import reference_model
from llmcombo.preflight.models import (WEIGHT_SUFFIXES, ModelInfo, cfg_get, inspect_models,
                                      split_revision)
from llmcombo.productline import family_of, model_slots
from llmcombo.shapes import as_list

#: environment overrides, in bytes (suffixes K/M/G/T accepted), to simulate a small disk or RAM
DISK_FREE_ENV = "LLMCOMBO_DISK_FREE"
RAM_AVAILABLE_ENV = "LLMCOMBO_RAM_AVAILABLE"

DTYPE_BYTES = {"float32": 4, "float": 4, "float16": 2, "half": 2, "bfloat16": 2, "float64": 8,
               "int8": 1, "uint8": 1, "F32": 4, "F16": 2, "BF16": 2, "F64": 8, "I8": 1, "U8": 1,
               "I16": 2, "I32": 4, "I64": 8, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1}
_RUNTIME_BASELINE = 450 * 2**20  # python + torch + transformers + mergekit, resident

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
    g = lambda k, d=None: cfg_get(cfg, k, d)  # noqa: E731
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


def model_size(info: ModelInfo) -> tuple[int | None, int | None]:
    """``(parameters, bytes of weights on disk)`` of a model pre-flight has read (headers and
    config.json only; None where unknown)."""
    bd = _model_breakdown(info)
    return (bd.total if bd is not None else None), _weights_on_disk(info)


def _weights_on_disk(info: ModelInfo) -> int | None:
    folder = info.local_dir
    if folder is None and info.where == "hub":
        try:
            from huggingface_hub import try_to_load_from_cache

            cfg = try_to_load_from_cache(split_revision(info.resolved or info.ref)[0],
                                         "config.json", revision=info.revision)
            folder = Path(cfg).parent if isinstance(cfg, str) else None
        except (ValueError, OSError):
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
    kind = family_of(config) or "unknown"
    est = Estimate(kind=kind)
    if kind not in ("merge", "moe") or not isinstance(config.get(kind), dict):
        return est
    m = config[kind]
    slots = model_slots(config)
    infos: dict[str, ModelInfo] = {
        ref: found[0] for ref, found in inspect_models([(s.ref, s.path) for s in slots],
                                                       base_dir).items()}
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
    ref = reference_model(slots, infos)
    ref_info = ref[1] if ref else None
    est.output_dtype = _output_dtype(kind, m, ref_info, out_dtype)
    nbytes = DTYPE_BYTES[est.output_dtype]
    bd = _model_breakdown(ref_info) if ref_info else None
    n_inputs = max(1, len(counted))
    if bd is not None:
        if kind == "merge" and m.get("slices"):
            layers = 0
            for sl in as_list(m.get("slices")):
                srcs = as_list(sl.get("sources")) if isinstance(sl, dict) else []
                lr = srcs[0].get("layer_range") if srcs and isinstance(srcs[0], dict) else None
                if isinstance(lr, (list, tuple)) and len(lr) == 2:
                    layers += max(0, int(lr[1]) - int(lr[0]))
            params = bd.other + layers * (bd.attn_per_layer + bd.mlp_per_layer)
        elif kind == "moe":
            n_exp = len(as_list(m.get("experts"))) + len(as_list(m.get("shared_experts")))
            h = (ref_info.get("hidden_size") if ref_info else None) or 0
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

