"""Running a parsed mergekit document: a merge (``run_merge``) or a mixture of experts (the MoE
builder), with llmcombo's options mapped to mergekit's ``MergeOptions`` and the run hooks
(progress, cancel, log capture) around it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmcombo.engine.hooks import MergekitLog, run_hooks
from llmcombo.productline.registry import cache_dir
from llmcombo.errors import UserError
from llmcombo.progress import CancelToken, Progress

MERGE_YAML = "mergekit_config.yml"
MOE_YAML = "mergekit_moe_config.yml"


def accelerator_bigger_than_ram(device: str) -> bool:
    if not device.startswith("cuda"):
        return False
    try:
        import psutil
        import torch

        free, _total = torch.cuda.mem_get_info()
        return bool(free > psutil.virtual_memory().available)
    except (ImportError, RuntimeError, AttributeError):
        return False


def merge_options(options: Any, device: str) -> Any:
    """mergekit's ``MergeOptions`` for llmcombo's :class:`~llmcombo.run.RunOptions`."""
    from mergekit.common import parse_kmb
    from mergekit.options import MergeOptions

    low = options.low_memory
    if low is None:
        low = accelerator_bigger_than_ram(device)
    values = dict(
        device=device, cuda=device.startswith("cuda"), lazy_unpickle=options.lazy_loading,
        low_cpu_memory=bool(low), out_shard_size=parse_kmb(options.shard_size),
        copy_tokenizer=options.copy_tokenizer, trust_remote_code=options.trust_remote_code,
        random_seed=options.random_seed, allow_crimes=options.allow_crimes,
        write_model_card=options.write_model_card, num_threads=options.num_threads,
        lora_merge_cache=options.lora_merge_cache or str(cache_dir() / "lora"),
        transformers_cache=options.transformers_cache, quiet=False,
    )
    values.update(options.extra)
    try:
        return MergeOptions(**values)
    except Exception as exc:  # pydantic's ValidationError and friends: a wrong option name/value
        raise UserError(f"invalid run options: {exc}") from None


def _multimerge(yaml_text: str, out: Path, mo: Any, intermediate_dir: Path | None) -> None:
    """mergekit-multimerge's own API: read the documents (``load_config`` finds which stage uses
    which), build its task graph (``make_tasks``) and execute it. Named stages go to
    ``intermediate_dir/NAME`` and are skipped when already there (its ``lazy`` mode: the caller
    names each stage after its content, so a folder there is the result of the same stage); the
    unnamed stage goes to ``out``."""
    from mergekit.graph import Executor
    from mergekit.scripts.multimerge import load_config, make_tasks

    if intermediate_dir is None:
        raise UserError("a multi-stage merge needs a folder for the results of its stages.")
    intermediate_dir.mkdir(parents=True, exist_ok=True)
    configs, deps = load_config(yaml_text, str(intermediate_dir))
    tasks = make_tasks(configs, deps, mo, str(intermediate_dir), str(out), True)
    Executor(tasks, math_device="cpu", storage_device="cpu").execute(desc="Merging stages")


def execute(kind: str, parsed: Any, out: Path, mo: Any, *, yaml_text: str, progress: Progress,
            cancel: CancelToken, verbose: bool = False, random_seed: int | None = None,
            allow_same_experts: bool = False, write_model_card: bool = True,
            intermediate_dir: Path | None = None) -> MergekitLog:
    """Run ``parsed`` (from :func:`llmcombo.engine.schema.parse`) into the folder ``out``;
    returns mergekit's collected log (``warnings``, ``errors``). A mergekit ``SystemExit`` (its
    way of refusing) becomes a :class:`UserError` with mergekit's reason. A multi-stage merge
    (``kind`` multimerge) runs from ``yaml_text`` with mergekit-multimerge's API; its named
    stages land in ``intermediate_dir``."""
    with run_hooks(progress, cancel, verbose) as logs:
        try:
            if kind == "merge":
                from mergekit.merge import run_merge

                run_merge(parsed, str(out), mo, config_source=yaml_text)
            elif kind == "moe":
                import transformers

                from mergekit.scripts.moe import build

                if random_seed is not None:
                    transformers.set_seed(random_seed)
                build(parsed, str(out), mo, device=mo.device, allow_all_same=allow_same_experts,
                      verbose=True)
                if write_model_card:
                    (out / MOE_YAML).write_text(yaml_text, encoding="utf-8")
            elif kind == "multimerge":
                _multimerge(yaml_text, out, mo, intermediate_dir)
            else:
                raise UserError(f"unknown kind of run {kind!r}: expected 'merge', 'moe' or "
                                "'multimerge'.")
        except SystemExit as exc:
            reason = (" ".join(logs.errors + logs.probing)
                      or f"mergekit stopped (exit status {exc.code}).")
            raise UserError(f"mergekit refused the configuration: {reason}") from None
    return logs
