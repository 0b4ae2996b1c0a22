"""Reading what a model reference points to: ``config.json`` of a local folder, of a zoo model, or
of a Hub model (from the local Hugging Face cache when it is there, else the Hub, with a short
timeout). Never reads weights, never downloads them."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from llmcombo import modelref
from llmcombo.errors import UserError
from llmcombo.featuremodel.issues import Issue, error, warning

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
# seconds: how long a look-up of one Hub model's config.json may take (the Hub answers in well
# under a second when it is there; huggingface_hub's own default is 10 s per request)
HUB_TIMEOUT = 4.0
HUB_WORKERS = 8  # Hub look-ups run in parallel, this many at a time
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "tokenizer_config.json")

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
        return cfg_get(self.config or {}, key, default)


def cfg_get(cfg: dict, key: str, default=None):
    if key in cfg and cfg[key] is not None:
        return cfg[key]
    text = cfg.get("text_config")
    if isinstance(text, dict) and text.get(key) is not None:
        return text[key]
    if key == "num_key_value_heads":
        return cfg_get(cfg, "num_attention_heads", default)
    return default


_reach_lock = threading.Lock()
_reach_cache: dict[str, tuple[float, bool]] = {}


def hub_reachable(timeout: float = 2.0, *, ttl: float = 60.0) -> bool:
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
    with _reach_lock:  # held while probing: parallel look-ups wait for one probe, then share it
        hit = _reach_cache.get(key)
        if hit and time.monotonic() - hit[0] < ttl:
            return hit[1]
        try:
            with socket.create_connection((host, port), timeout=timeout):
                ok = True
        except OSError:
            ok = False
        _reach_cache[key] = (time.monotonic(), ok)
    return ok


def _offline_warning(path: str, ref: str) -> Issue:
    return warning(path, f"could not check {ref}: the Hugging Face Hub is not reachable (offline?)",
                   "Connect to the internet to check this model now; the merge itself will "
                   "need to download it anyway.", code="hub_unreachable")


def split_revision(ref: str) -> tuple[str, str | None]:
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
    if modelref.split_scheme(model_part) is not None:
        return _inspect_scheme(info, model_part, path)
    try:
        repo, rev = split_revision(model_part)
        if rev is not None and modelref.is_hub_id(repo):  # owner/name@revision
            resolved = model_part
        else:
            resolved = modelref.resolve(model_part, base_dir)
    except UserError as exc:
        issues.append(error(path, f"the model {ref} could not be found: {exc.message}",
                            exc.hint or "Check the model name; zoo models are written zoo:NAME.",
                            code="model_missing"))
        return info, issues
    info.resolved = resolved
    if lora is not None:
        info.lora = lora
        issues += _check_lora(lora, path, base_dir)

    repo, revision = split_revision(resolved)
    if os.path.isabs(resolved) or os.path.exists(resolved) or not modelref.is_hub_id(repo):
        info.where = "local"
        issues += _read_local(info, Path(resolved), path, base_dir)
    else:
        info.where = "hub"
        info.revision = revision
        issues += _read_hub(info, repo, revision, path)
    return info, issues


def inspect_models(refs: list[tuple[str, str]], base_dir=None, *,
                   workers: int = HUB_WORKERS) -> dict[str, tuple[ModelInfo, list[Issue]]]:
    """:func:`inspect_model` for each ``(ref, field path)`` (the first path of a reference
    names it), Hub look-ups in parallel: a configuration of many Hub models takes about as long
    as its slowest look-up, not their sum. Returns ``{ref: (info, issues)}``."""
    from concurrent.futures import ThreadPoolExecutor

    first: dict[str, str] = {}
    for ref, path in refs:
        first.setdefault(ref, path)
    if len(first) <= 1 or workers <= 1:
        return {ref: inspect_model(ref, path, base_dir) for ref, path in first.items()}
    with ThreadPoolExecutor(max_workers=min(workers, len(first)),
                            thread_name_prefix="llmcombo-preflight") as pool:
        futures = {ref: pool.submit(inspect_model, ref, path, base_dir)
                   for ref, path in first.items()}
        return {ref: f.result() for ref, f in futures.items()}


def _inspect_scheme(info: ModelInfo, ref: str, path: str) -> tuple[ModelInfo, list[Issue]]:
    """``zoo:NAME`` (any registered scheme): the name must exist and its folder be there; never
    builds it."""
    problem = modelref.scheme_problem(ref)
    if problem is not None:
        return info, [error(path, problem[0], problem[1], code="model_missing")]
    try:
        folder = Path(modelref.resolve_scheme(ref))
    except UserError as exc:
        return info, [error(path, exc.message, exc.hint, code="model_missing")]
    info.resolved = str(folder)
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
    except (ValueError, OSError):  # an id huggingface_hub refuses, an unreadable cache
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
        local = hf_hub_download(repo, "config.json", revision=revision, etag_timeout=HUB_TIMEOUT)
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
    if os.path.isabs(resolved) or not modelref.is_hub_id(split_revision(resolved)[0]):
        folder = Path(resolved)
        if not folder.is_dir():
            issues.append(error(path, f"LoRA adapter folder not found: {folder}",
                                _where_hint(base_dir), code="lora_missing"))
        elif not (folder / "adapter_config.json").is_file():
            issues.append(error(path, f"the folder {folder} has no adapter_config.json, so it is "
                                "not a LoRA adapter.", code="lora_not_adapter"))
    return issues

