"""Run a merge or a mixture of experts: a :class:`~llmcombo.plan.Plan` -> an output folder.

::

    from llmcombo.run import run, RunOptions
    result = run(config, "out/my-merge")                  # a configuration or a Plan
    result = run_mergekit("merge", mergekit_dict, "out/x")  # or a mergekit document

This module only orchestrates; each part lives in its own place:

* **pre-flight first** -- the plan's model-aware checks (:mod:`llmcombo.preflight`, run once: a
  plan that already has them is not checked again) and the resource check run before any tensor
  is read; errors raise :class:`~llmcombo.errors.UserError` listing every problem;
* **mergekit** -- :mod:`llmcombo.engine` parses the document and runs it with the run hooks
  (progress, cancel, log capture);
* **atomic output** -- :mod:`llmcombo.outputs`: a hidden partial folder, renamed into place only
  once complete and checked; an existing output is replaced only after success;
* **one progress interface** -- :class:`~llmcombo.progress.Progress`; **cancellable** with a
  :class:`~llmcombo.progress.CancelToken` from any thread;
* **lineage** -- the output holds mergekit's YAML (``mergekit_config.yml``, or
  ``mergekit_moe_config.yml`` for MoE) and ``llmcombo_lineage.json`` (inputs as given and resolved,
  method, versions, device, time, and a ``run_id`` that changes with every run: caches of loaded
  models key on it).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import os
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmcombo.errors import UserError, raise_for_errors
from llmcombo.fsutil import dir_mode
from llmcombo.outputs import (LINEAGE_FILE, MERGE_YAML, MOE_YAML, PARTIAL_TAG, check_out,
                              cleanup_stale, nonfinite_tensors, place, verify_model_folder)
from llmcombo.plan import Plan, make_plan
from llmcombo.progress import (CancelToken, LogProgress, NullProgress, Progress, TqdmProgress,
                               as_progress, default_progress)
from llmcombo.sysinfo import PeakMemory, versions


@dataclass
class RunOptions:
    """Choices made for the user, all overridable; mapped to mergekit's ``MergeOptions``."""

    device: str = "auto"  # auto: CUDA (or XPU) when available, else CPU
    lazy_loading: bool = True  # MergeOptions.lazy_unpickle
    low_memory: bool | None = None  # MergeOptions.low_cpu_memory; None: on when VRAM > free RAM
    shard_size: str | int = "5B"  # bytes per output shard (mergekit's default)
    copy_tokenizer: bool = True
    trust_remote_code: bool = False  # runs code from model repositories: off unless allowed
    random_seed: int | None = 42  # reproducible DARE / random gates by default
    allow_crimes: bool = False  # mixing architectures
    allow_same_experts: bool = False  # MoE whose experts are all one model
    write_model_card: bool = True  # mergekit's README.md + mergekit_config.yml
    verify: bool = True  # NaN/inf scan of the written tensors
    preflight: bool = True
    num_threads: int | None = None
    verbose: bool = False  # forward mergekit's INFO lines to Progress.log
    lora_merge_cache: str | None = None  # default: ~/.cache/llmcombo/lora
    transformers_cache: str | None = None
    disk_free: int | None = None  # simulate the free disk space (tests)
    extra: dict = field(default_factory=dict)  # any other MergeOptions field, passed through
    # where the stages of a multi-stage merge keep their results (default: llmcombo's cache)
    intermediate_dir: str | None = None

    def resolved_device(self) -> str:
        import torch

        if self.device in (None, "", "auto"):
            if torch.cuda.is_available():
                return "cuda"
            if hasattr(torch, "xpu") and torch.xpu.is_available():
                return "xpu"
            return "cpu"
        return str(self.device)

    def merge_options(self) -> Any:
        """mergekit's ``MergeOptions`` for these choices."""
        from llmcombo.engine.execute import merge_options

        return merge_options(self, self.resolved_device())

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d.pop("disk_free", None)
        return d


@dataclass
class RunResult:
    path: Path
    kind: str
    method: str
    seconds: float
    device: str
    peak_rss_bytes: int | None
    peak_cuda_bytes: int | None = None
    warnings: list[str] = field(default_factory=list)
    lineage: dict = field(default_factory=dict)

    @property
    def run_id(self) -> str | None:
        return self.lineage.get("run_id")

    def __str__(self) -> str:
        mem = f"{self.peak_rss_bytes / 2**20:.0f} MiB" if self.peak_rss_bytes else "?"
        return (f"{self.kind} ({self.method}) written to {self.path} in {self.seconds:.1f} s on "
                f"{self.device}, peak memory {mem}, {len(self.warnings)} warning(s)")


def _jsonable(data: Any) -> Any:
    return json.loads(json.dumps(data, default=str))


def _preflight(plan: Plan, resolved: dict, out: Path, options: RunOptions) -> list[str]:
    from llmcombo.engine.schema import parse_size
    from llmcombo.preflight import check_resources

    plan = plan.with_preflight()
    issues = list(plan.preflight or ())
    issues += check_resources(plan.config, out, plan.base_dir, shard_size=parse_size(options.shard_size),
                              disk_free=options.disk_free)
    raise_for_errors(issues, "the run was refused before starting")
    return [i.format() for i in issues]


def _inputs(plan: Plan) -> list[dict]:
    from llmcombo import modelref

    rows = []
    for s in plan.slots:
        try:
            resolved = modelref.resolve(s.ref, plan.base_dir)
        except UserError:
            resolved = s.ref
        rows.append({"field": s.path, "role": s.role, "given": s.ref, "resolved": resolved})
    return rows


def _local_input_dirs(plan: Plan) -> list[Path]:
    dirs = []
    for row in _inputs(plan):
        p = Path(os.path.expanduser(str(row["resolved"]).split("+")[0]))
        if p.is_dir():
            dirs.append(p.resolve())
    return dirs


STAGE_MARK = "llmcombo_stage.json"


def _refs_in(doc: Any) -> list[str]:
    """Every model reference written as text in a mergekit document."""
    out: list[str] = []
    if isinstance(doc, dict):
        for k, v in doc.items():
            if k in ("model", "base_model", "tokenizer_source", "source") and isinstance(v, str):
                out.append(v)
            else:
                out += _refs_in(v)
    elif isinstance(doc, list):
        for v in doc:
            out += _refs_in(v)
    return out


def _renamed(doc: Any, names: dict[str, str]) -> Any:
    """``doc`` with every reference to a stage (its path part) renamed by ``names``."""
    from llmcombo.productline.documents import parse_reference

    if isinstance(doc, dict):
        out = {}
        for k, v in doc.items():
            if k in ("model", "base_model", "tokenizer_source", "source") and isinstance(v, str):
                try:
                    r = parse_reference(v)
                except ValueError:
                    r = None
                if r is not None and r.model.path in names:
                    v = names[r.model.path] + (f"@{r.model.revision}" if r.model.revision else "") \
                        + (f"+{r.lora}" if r.lora else "")
                out[k] = v
            else:
                out[k] = _renamed(v, names)
        return out
    if isinstance(doc, list):
        return [_renamed(v, names) for v in doc]
    return doc


def stage_plan(resolved: dict) -> tuple[dict, dict[str, str]]:
    """The documents handed to mergekit-multimerge for a multi-stage merge: every stage that is
    not the output is named after its name and its content (``mezcla-3f2a...``: its document,
    the stages it uses and the identity of its input models' weights), so the cached result of a
    stage is reused exactly while nothing it depends on changed; the output stage is unnamed (it
    goes to the output folder). Returns the documents and ``{stage name: folder name}``."""
    from llmcombo import modelref
    from llmcombo.fsutil import config_hash
    from llmcombo.outputs import model_fingerprint
    from llmcombo.productline.documents import parse_reference

    docs = [dict(d) for d in resolved["documents"]]
    final = resolved.get("final")
    names = [d.get("name") for d in docs]
    keys: dict[str, str] = {}

    def key(name: str, seen: tuple = ()) -> str:
        if name in keys:
            return keys[name]
        doc = {k: v for k, v in docs[names.index(name)].items() if k != "name"}
        inputs = {}
        for ref in _refs_in(doc):
            try:
                path = parse_reference(ref).model.path
            except ValueError:
                continue
            if path in names and path not in seen:
                inputs[ref] = key(path, seen + (name,))
            else:
                try:
                    inputs[ref] = model_fingerprint(modelref.resolve(ref.split("+")[0])) or ref
                except UserError:
                    inputs[ref] = ref
        keys[name] = f"{name}-{config_hash(doc, inputs)}"
        return keys[name]

    for n in names:
        if n:
            key(n)
    out = []
    for i, d in enumerate(docs):
        body = _renamed({k: v for k, v in d.items() if k != "name"}, keys)
        if i != final and d.get("name"):
            body = {"name": keys[d["name"]], **body}
        out.append(body)
    folders = {n: keys[n] for n in names if n and names.index(n) != final}
    return {"documents": out, "final": final}, folders


def _stage_dirs(folders: dict[str, str], root: Path) -> dict[str, Path]:
    """The cached result folder of each stage; one a run left unfinished (no mark) is removed,
    so mergekit-multimerge builds it again instead of taking half a model."""
    dirs = {n: root / f for n, f in folders.items()}
    for d in dirs.values():
        if d.exists() and not (d / STAGE_MARK).is_file():
            shutil.rmtree(d, ignore_errors=True)
    return dirs


def run(config: Any, out: str | os.PathLike, *, options: RunOptions | None = None,
        progress: Any = None, cancel: CancelToken | None = None,
        overwrite: bool = False, base_dir: Any = None) -> RunResult:
    """Run a merge or MoE (an llmcombo configuration, ``merge:`` or ``moe:``, or its
    :class:`~llmcombo.plan.Plan`) into the folder ``out``.

    Raises :class:`UserError` for anything the user can fix and
    :class:`~llmcombo.errors.Cancelled` when ``cancel`` fired.
    """
    from llmcombo.engine.execute import execute
    from llmcombo.engine.schema import check, dump_yaml

    plan = make_plan(config, base_dir=base_dir)
    if plan.runner != "mergekit":
        raise UserError(f"this configuration is a {plan.family} ({plan.kind}); `run` executes "
                        "merges, multi-stage merges and mixtures of experts.",
                        hint="Ensembles run with llmcombo.ensemble.")
    options = options or RunOptions()
    progress = as_progress(progress)
    cancel = cancel or CancelToken()
    out = Path(out).expanduser().absolute()
    resolved = plan.resolved_document()
    stage_dirs: dict[str, Path] = {}
    intermediate = None
    if plan.kind == "multimerge":
        from llmcombo.productline.registry import cache_dir

        resolved, folders = stage_plan(resolved)
        intermediate = Path(options.intermediate_dir or cache_dir() / "stages").expanduser()
        stage_dirs = _stage_dirs(folders, intermediate)
    parsed = check(plan.kind, resolved)
    check_out(out, overwrite, _local_input_dirs(plan))
    warnings_: list[str] = []
    if options.trust_remote_code:
        msg = ("trust_remote_code is on: Python code from the model repositories will run on this "
               "computer. Only allow it for repositories you trust.")
        warnings_.append(msg)
        progress.log(f"warning: {msg}")
    if options.preflight:
        found = _preflight(plan, resolved, out, options)
        for text in found:
            progress.log(text)
        warnings_ += found
    cancel.raise_if_cancelled()
    device = options.resolved_device()
    mo = options.merge_options()
    out.parent.mkdir(parents=True, exist_ok=True)
    cleanup_stale(out)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.{PARTIAL_TAG}-{os.getpid()}-", dir=out.parent))
    os.chmod(tmp, dir_mode())  # the result gets the user's usual permissions, not mkdtemp's 0700
    started = _dt.datetime.now(_dt.timezone.utc)
    t0 = time.perf_counter()
    try:
        with PeakMemory(device) as mem:
            logs = execute(plan.kind, parsed, tmp, mo, yaml_text=dump_yaml(resolved, plan.kind),
                           progress=progress, cancel=cancel, verbose=options.verbose,
                           random_seed=options.random_seed,
                           allow_same_experts=options.allow_same_experts,
                           write_model_card=options.write_model_card,
                           intermediate_dir=intermediate)
            for name, d in stage_dirs.items():
                if (d / "config.json").is_file() and not (d / STAGE_MARK).is_file():
                    (d / STAGE_MARK).write_text(json.dumps({"stage": name, "run_by": "llmcombo"})
                                                + "\n", encoding="utf-8")
            warnings_ += logs.warnings
            cancel.raise_if_cancelled()
            if options.verify:
                progress.log("checking the written model")
                problems, warns = verify_model_folder(
                    tmp, trust_remote_code=options.trust_remote_code,
                    require_tokenizer=options.copy_tokenizer, cancel=cancel)
                warnings_ += warns
                if problems:
                    raise UserError("the result failed its checks and was not kept: "
                                    + " ".join(problems),
                                    hint="Check the input models; a merge with extreme weights "
                                    "can overflow (try dtype: float32).")
        seconds = time.perf_counter() - t0
        lineage = {
            "llmcombo_lineage": 1,
            "run_id": uuid.uuid4().hex,
            "kind": plan.kind,
            "method": plan.method,
            "inputs": _inputs(plan),
            "configuration": _jsonable(dict(plan.config)),
            "mergekit_config": _jsonable(resolved),
            "versions": versions(),
            "device": device,
            "options": _jsonable(options.to_dict()),
            "started_at": started.isoformat(timespec="seconds"),
            "finished_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "seconds": round(seconds, 3),
            "peak_rss_bytes": mem.peak_rss,
            "peak_cuda_bytes": mem.peak_cuda,
        }
        if stage_dirs:
            lineage["stages"] = {n: str(d) for n, d in stage_dirs.items()}
        (tmp / LINEAGE_FILE).write_text(json.dumps(lineage, indent=2) + "\n", encoding="utf-8")
        cancel.raise_if_cancelled()
        place(tmp, out, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return RunResult(path=out, kind=plan.kind, method=plan.method, seconds=seconds, device=device,
                     peak_rss_bytes=mem.peak_rss, peak_cuda_bytes=mem.peak_cuda,
                     warnings=warnings_, lineage=lineage)


def run_mergekit(kind: str, mergekit_config: dict, out: str | os.PathLike, *,
                 options: RunOptions | None = None, progress: Progress | None = None,
                 cancel: CancelToken | None = None, overwrite: bool = False,
                 base_dir: Any = None) -> RunResult:
    """Run a mergekit document (``kind`` ``"merge"`` or ``"moe"``) into the folder ``out``, as it
    is: mergekit's own checks apply (and pre-flight's), not the feature model's, as with
    ``mergekit-yaml``."""
    from llmcombo.configuration import is_mergekit_document
    from llmcombo.importer import as_configuration

    if kind not in ("merge", "moe", "multimerge"):
        raise UserError(f"unknown kind of run {kind!r}: expected 'merge', 'moe' or 'multimerge'.")
    found = is_mergekit_document(mergekit_config)
    if found != kind:
        raise UserError(f"this is not a mergekit {kind} document"
                        + (f" (it reads as a {found} document)." if found else "."))
    data = mergekit_config if kind == "multimerge" else dict(mergekit_config)
    config = as_configuration(data, base_dir=base_dir)
    plan = make_plan(config, base_dir=base_dir, issues=[])
    return run(plan, out, options=options, progress=progress, cancel=cancel, overwrite=overwrite)


__all__ = [
    "LINEAGE_FILE", "MERGE_YAML", "MOE_YAML", "CancelToken", "LogProgress", "NullProgress",
    "Progress", "RunOptions", "RunResult", "TqdmProgress", "cleanup_stale", "default_progress",
    "nonfinite_tensors", "run", "run_cached", "run_mergekit", "verify_model_folder",
]


def run_cached(config: Any, cache_dir: str | os.PathLike, *, name: str | None = None,
               progress: Any = False, options: RunOptions | None = None) -> Path:
    """Run a merge / MoE into ``cache_dir/NAME-HASH`` unless that folder is already there. The
    hash covers the configuration and the identity of every input model's weights
    (:func:`llmcombo.outputs.model_fingerprint`), so changing either builds anew. Returns the
    model folder."""
    from llmcombo import modelref
    from llmcombo.fsutil import config_hash
    from llmcombo.outputs import model_fingerprint

    plan = make_plan(config)
    inputs = {}
    for slot in plan.slots:
        try:
            inputs[slot.ref] = model_fingerprint(modelref.resolve(slot.ref, plan.base_dir)) or slot.ref
        except UserError:
            inputs[slot.ref] = slot.ref
    digest = config_hash(dict(plan.config), inputs)
    label = name or plan.name or "model"
    out = Path(cache_dir) / f"{label}-{digest}"
    if (out / "config.json").is_file():
        return out
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    run(plan, out, options=options, progress=progress, overwrite=out.exists())
    return out
