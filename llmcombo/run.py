"""Run a merge or a mixture of experts in-process through mergekit's Python API.

::

    from llmcombo.run import run, RunOptions, CancelToken
    result = run(config, "out/my-merge")                  # an llmcombo configuration dict
    result = run_mergekit("merge", mergekit_dict, "out/x")  # or a mergekit document

What a run guarantees:

* **pre-flight first** -- :func:`llmcombo.preflight.check_models` and
  :func:`~llmcombo.preflight.check_resources` run before any tensor is read; errors raise
  :class:`~llmcombo.errors.UserError` listing every problem.
* **atomic output** -- mergekit writes into a hidden sibling folder
  (``.NAME.llmcombo-partial-PID-XXXX``); it is renamed to ``out`` only once it is complete and
  checked (no NaN/inf in the saved tensors, ``config.json`` loads with ``AutoConfig``, a tokenizer
  is there). An existing ``out`` is never touched unless ``overwrite=True``, and then it is
  replaced only after success. A run that was killed leaves at most that clearly named partial
  folder, which the next run for the same output removes.
* **one progress interface** -- :class:`Progress` (``start/update/log/close``); :class:`TqdmProgress`
  for terminals, :class:`LogProgress` for plain logs; the notebook widgets implement the same four
  methods.
* **cancellable** -- :class:`CancelToken.cancel` from any thread stops the run at the next tensor
  and raises :class:`~llmcombo.errors.Cancelled`; nothing is left behind.
* **lineage** -- the output holds mergekit's YAML (``mergekit_config.yml``, or
  ``mergekit_moe_config.yml`` for MoE) and ``llmcombo_lineage.json`` (inputs as given and resolved,
  method, versions, device, time).

How progress and cancel reach inside mergekit
---------------------------------------------
mergekit reports progress only through ``tqdm.tqdm(...)`` calls on the ``tqdm`` module its files
import (``Executor._run`` iterates one bar over the task schedule: loads, merges and saves of each
tensor). We swap that module attribute, *in mergekit's modules only*, for a copy of the tqdm module
whose ``tqdm``/``trange`` forward to the current run's :class:`Progress` and check its
:class:`CancelToken` before every item, and restore the attributes when the last run ends.
The alternative -- re-implementing ``run_merge`` around ``MergePlanner``/``Executor`` -- would
copy ~100 lines of mergekit (config-out, tokenizer, tagalong files, model card) that change
between releases and still leave the MoE builder (which has no executor) unhooked. The patch is
the same technique mergekit's own ``evo`` uses (``mergekit.evo.monkeypatch.monkeypatch_tqdm``);
the per-run state lives in a ``ContextVar`` so code outside a run (or another thread's run) sees
plain tqdm.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import datetime as _dt
import json
import logging
import math
import os
import platform
import re
import shutil
import sys
import tempfile
import threading
import time
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Protocol, runtime_checkable

from llmcombo import __version__
from llmcombo.errors import Cancelled, UserError

LOG = logging.getLogger(__name__)

LINEAGE_FILE = "llmcombo_lineage.json"
MERGE_YAML = "mergekit_config.yml"
MOE_YAML = "mergekit_moe_config.yml"
PARTIAL_TAG = "llmcombo-partial"
OLD_TAG = "llmcombo-old"

# ---------------------------------------------------------------------------------------------
# progress and cancel
# ---------------------------------------------------------------------------------------------


@runtime_checkable
class Progress(Protocol):
    """What a run reports. Phases may nest (a tokenizer build inside the tensor loop):
    ``start`` opens a phase, ``close`` ends the innermost open one."""

    def start(self, total: int | None, desc: str) -> None: ...

    def update(self, n: int = 1) -> None: ...

    def log(self, msg: str) -> None: ...

    def close(self) -> None: ...


class TqdmProgress:
    """tqdm bars on stderr (the terminal default); nested phases get their own line."""

    def __init__(self, file=None, leave: bool = False):
        self.file = file
        self.leave = leave
        self._bars: list = []

    def start(self, total: int | None, desc: str) -> None:
        import tqdm

        self._bars.append(tqdm.tqdm(total=total, desc=desc, file=self.file, leave=self.leave,
                                    position=len(self._bars), dynamic_ncols=True))

    def update(self, n: int = 1) -> None:
        if self._bars:
            self._bars[-1].update(n)

    def log(self, msg: str) -> None:
        import tqdm

        tqdm.tqdm.write(msg, file=self.file or sys.stderr)

    def close(self) -> None:
        if self._bars:
            self._bars.pop().close()


class LogProgress:
    """Plain lines through ``logging`` (or ``print_fn``), one every ``step`` of a phase."""

    def __init__(self, logger: logging.Logger | None = None, print_fn=None, step: float = 0.1):
        self.logger = logger or LOG
        self.print_fn = print_fn
        self.step = step
        self._phases: list[list] = []  # [desc, total, n, next_report]

    def _emit(self, msg: str) -> None:
        if self.print_fn is not None:
            self.print_fn(msg)
        else:
            self.logger.info(msg)

    def start(self, total: int | None, desc: str) -> None:
        self._phases.append([desc, total, 0, self.step])
        self._emit(f"{desc}: started" + (f" ({total} steps)" if total else ""))

    def update(self, n: int = 1) -> None:
        if not self._phases:
            return
        phase = self._phases[-1]
        phase[2] += n
        desc, total, done, nxt = phase
        if total and done / total >= nxt:
            self._emit(f"{desc}: {done}/{total} ({done / total:.0%})")
            while phase[3] <= done / total:
                phase[3] += self.step

    def log(self, msg: str) -> None:
        self._emit(msg)

    def close(self) -> None:
        if self._phases:
            desc, total, done, _ = self._phases.pop()
            self._emit(f"{desc}: done ({done} steps)")


class NullProgress:
    def start(self, total, desc):
        pass

    def update(self, n=1):
        pass

    def log(self, msg):
        pass

    def close(self):
        pass


def default_progress() -> Progress:
    """tqdm bars in a terminal, plain log lines elsewhere."""
    try:
        tty = sys.stderr.isatty()
    except (AttributeError, ValueError):
        tty = False
    return TqdmProgress() if tty else LogProgress()


class CancelToken:
    """Cancel a run from another thread: ``token.cancel()``; the run raises :class:`Cancelled`."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise Cancelled("the run was cancelled; nothing was written.")


# ---------------------------------------------------------------------------------------------
# the tqdm hook (see the module docstring for why)
# ---------------------------------------------------------------------------------------------


class _RunContext:
    def __init__(self, progress: Progress, cancel: CancelToken):
        self.progress = progress
        self.cancel = cancel
        self._open: list[int] = []
        self.steps = 0

    def check(self) -> None:
        self.cancel.raise_if_cancelled()

    def open(self, bar, total, desc) -> None:
        self._open.append(id(bar))
        self.progress.start(total, desc)

    def update(self, n) -> None:
        self.steps += n
        self.progress.update(n)

    def close(self, bar) -> None:
        if id(bar) not in self._open:
            return
        while self._open:  # close inner phases left open, then this one
            top = self._open.pop()
            self.progress.close()
            if top == id(bar):
                break

    def close_all(self) -> None:
        while self._open:
            self._open.pop()
            self.progress.close()


_CURRENT: contextvars.ContextVar[_RunContext | None] = contextvars.ContextVar(
    "llmcombo_run", default=None)


def _real_tqdm_module():
    import tqdm

    return tqdm


class _HookedTqdm(_real_tqdm_module().tqdm):
    """tqdm that, inside a run, shows nothing itself and reports to the run's Progress."""

    def __init__(self, iterable=None, *args, **kwargs):
        ctx = _CURRENT.get()
        self._llm_ctx = ctx
        self._llm_open = False
        if ctx is None:
            super().__init__(iterable, *args, **kwargs)
            return
        desc = kwargs.get("desc") or (args[0] if args and isinstance(args[0], str) else None)
        total = kwargs.get("total")
        if total is None and iterable is not None:
            try:
                total = len(iterable)
            except TypeError:
                total = None
        kwargs["disable"] = True
        super().__init__(iterable, *args, **kwargs)
        ctx.check()
        ctx.open(self, total, desc or "working")
        self._llm_open = True

    def __iter__(self):
        ctx = self._llm_ctx
        if ctx is None:
            yield from super().__iter__()
            return
        try:
            for obj in self.iterable:
                ctx.check()  # tensor granularity: before each load / merge / save task
                yield obj
                ctx.update(1)
        finally:
            self.close()

    def update(self, n=1):
        ctx = self._llm_ctx
        if ctx is None:
            return super().update(n)
        ctx.check()
        ctx.update(n)
        return True

    def close(self):
        ctx = getattr(self, "_llm_ctx", None)
        if ctx is not None and self._llm_open:
            self._llm_open = False
            ctx.close(self)
        return super().close()


def _hooked_trange(*args, **kwargs):
    return _HookedTqdm(range(*args), **kwargs)


_patch_lock = threading.Lock()
_patch_count = 0
_patched: list[tuple[types.ModuleType, str, Any]] = []


def _import_mergekit_progress_modules() -> None:
    import importlib

    for name in ("mergekit.merge", "mergekit.graph", "mergekit.tokenizer.build",
                 "mergekit.multigpu_executor", "mergekit.scripts.moe", "mergekit.moe.common",
                 "mergekit.moe.router"):
        try:
            importlib.import_module(name)
        except Exception:  # pragma: no cover - optional parts (e.g. missing extras)
            pass


def _install_tqdm_hook() -> None:
    real = _real_tqdm_module()
    shim = types.ModuleType("tqdm")
    shim.__dict__.update(vars(real))
    shim.tqdm = _HookedTqdm
    shim.trange = _hooked_trange
    for name, mod in list(sys.modules.items()):
        if mod is None or not (name == "mergekit" or name.startswith("mergekit.")):
            continue
        d = getattr(mod, "__dict__", {})
        for attr, val in list(d.items()):
            if val is real:
                repl = shim
            elif val is real.tqdm:
                repl = _HookedTqdm
            elif val is real.trange:
                repl = _hooked_trange
            else:
                continue
            _patched.append((mod, attr, val))
            setattr(mod, attr, repl)


@contextlib.contextmanager
def _tqdm_hook(ctx: _RunContext) -> Iterator[None]:
    global _patch_count
    _import_mergekit_progress_modules()
    with _patch_lock:
        if _patch_count == 0:
            _install_tqdm_hook()
        _patch_count += 1
    token = _CURRENT.set(ctx)
    try:
        yield
    finally:
        _CURRENT.reset(token)
        ctx.close_all()
        with _patch_lock:
            _patch_count -= 1
            if _patch_count == 0:
                while _patched:
                    mod, attr, val = _patched.pop()
                    setattr(mod, attr, val)


# ---------------------------------------------------------------------------------------------
# mergekit's log records
# ---------------------------------------------------------------------------------------------


def _mergekit_dir() -> str:
    import mergekit

    return os.path.dirname(os.path.abspath(mergekit.__file__))


class _MergekitLog(logging.Handler):
    """Collects mergekit's records (its named loggers and its bare ``logging.x()`` calls)."""

    def __init__(self, progress: Progress, verbose: bool):
        super().__init__(logging.DEBUG)
        self.progress = progress
        self.verbose = verbose
        self.prefix = _mergekit_dir()
        self.warnings: list[str] = []
        self.errors: list[str] = []
        # why mergekit's MoE builder passed over an output architecture it tried (Qwen, DeepSeek
        # ... when building a Mixtral): not warnings about the result; kept for a failure message
        self.probing: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if not str(record.pathname).startswith(self.prefix):
            return
        try:
            msg = record.getMessage()
        except Exception:  # pragma: no cover
            return
        probing = record.funcName == "supports_config"
        if probing:
            self.probing.append(msg)
        elif record.levelno >= logging.ERROR:
            self.errors.append(msg)
        elif record.levelno >= logging.WARNING:
            self.warnings.append(msg)
        if (record.levelno >= logging.WARNING and not probing) or self.verbose:
            try:
                self.progress.log(f"mergekit: {msg}")
            except Exception:  # pragma: no cover - a broken UI must not break the run
                pass


class _Swallow(logging.Filter):
    """mergekit's MoE code logs with bare ``logging.error()`` (the root logger): hand those
    records to our collector only, instead of every handler of the application."""

    def __init__(self, handler: _MergekitLog):
        super().__init__()
        self.handler = handler

    def filter(self, record):
        if str(record.pathname).startswith(self.handler.prefix):
            self.handler.handle(record)
            return False
        return True


def _not_mergekits_torch_dtype(record: logging.LogRecord) -> bool:
    """mergekit 0.1.5 sets ``config.torch_dtype``, which transformers 5 reports as deprecated on
    every merge: a note about mergekit's code, nothing the user can act on."""
    return "`torch_dtype` is deprecated" not in str(record.msg)


@contextlib.contextmanager
def _capture_mergekit_logs(progress: Progress, verbose: bool) -> Iterator[_MergekitLog]:
    root = logging.getLogger()
    mk_logger = logging.getLogger("mergekit")
    tf_config_logger = logging.getLogger("transformers.configuration_utils")
    handler = _MergekitLog(progress, verbose)
    swallow = _Swallow(handler)
    old_level = mk_logger.level
    root.addHandler(handler)  # also keeps logging.error() from calling basicConfig()
    root.addFilter(swallow)
    tf_config_logger.addFilter(_not_mergekits_torch_dtype)
    if verbose:
        mk_logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.removeFilter(swallow)
        tf_config_logger.removeFilter(_not_mergekits_torch_dtype)
        mk_logger.setLevel(old_level)


# ---------------------------------------------------------------------------------------------
# options and result
# ---------------------------------------------------------------------------------------------


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

    def resolved_device(self) -> str:
        import torch

        if self.device in (None, "", "auto"):
            if torch.cuda.is_available():
                return "cuda"
            if hasattr(torch, "xpu") and torch.xpu.is_available():
                return "xpu"
            return "cpu"
        return str(self.device)

    def merge_options(self):
        """mergekit's ``MergeOptions`` for these choices."""
        from mergekit.common import parse_kmb
        from mergekit.options import MergeOptions

        device = self.resolved_device()
        low = self.low_memory
        if low is None:
            low = _accelerator_bigger_than_ram(device)
        values = dict(
            device=device, cuda=device.startswith("cuda"), lazy_unpickle=self.lazy_loading,
            low_cpu_memory=bool(low), out_shard_size=parse_kmb(self.shard_size),
            copy_tokenizer=self.copy_tokenizer, trust_remote_code=self.trust_remote_code,
            random_seed=self.random_seed, allow_crimes=self.allow_crimes,
            write_model_card=self.write_model_card, num_threads=self.num_threads,
            lora_merge_cache=self.lora_merge_cache or str(
                Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser()
                / "llmcombo" / "lora"),
            transformers_cache=self.transformers_cache, quiet=False,
        )
        values.update(self.extra)
        try:
            return MergeOptions(**values)
        except Exception as exc:
            raise UserError(f"invalid run options: {exc}") from None

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d.pop("disk_free", None)
        return d


def _accelerator_bigger_than_ram(device: str) -> bool:
    if not device.startswith("cuda"):
        return False
    try:
        import psutil
        import torch

        free, _total = torch.cuda.mem_get_info()
        return free > psutil.virtual_memory().available
    except Exception:
        return False


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

    def __str__(self) -> str:
        mem = f"{self.peak_rss_bytes / 2**20:.0f} MiB" if self.peak_rss_bytes else "?"
        return (f"{self.kind} ({self.method}) written to {self.path} in {self.seconds:.1f} s on "
                f"{self.device}, peak memory {mem}, {len(self.warnings)} warning(s)")


# ---------------------------------------------------------------------------------------------
# peak memory
# ---------------------------------------------------------------------------------------------


def _vm_hwm() -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return None


class _PeakMemory:
    """Peak RSS during a block: the kernel's high-water mark when it rose during the block,
    else the largest sampled RSS (sampled every ``interval`` s)."""

    def __init__(self, device: str, interval: float = 0.05):
        self.device = device
        self.interval = interval
        self.peak_rss: int | None = None
        self.peak_cuda: int | None = None
        self._stop = threading.Event()

    def _sample(self, proc) -> None:
        while not self._stop.wait(self.interval):
            try:
                self._max = max(self._max, proc.memory_info().rss)
            except Exception:  # pragma: no cover
                return

    def __enter__(self):
        self._hwm0 = _vm_hwm()
        self._max = 0
        self._thread = None
        try:
            import psutil

            proc = psutil.Process()
            self._max = proc.memory_info().rss
            self._thread = threading.Thread(target=self._sample, args=(proc,), daemon=True,
                                            name="llmcombo-peak-rss")
            self._thread.start()
        except Exception:  # pragma: no cover
            pass
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.reset_peak_memory_stats()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        hwm = _vm_hwm()
        peak = self._max or None
        if hwm is not None and self._hwm0 is not None and hwm > self._hwm0:
            peak = max(peak or 0, hwm)
        self.peak_rss = peak
        if self.device.startswith("cuda"):
            import torch

            self.peak_cuda = int(torch.cuda.max_memory_allocated())
        return False


# ---------------------------------------------------------------------------------------------
# output folder handling
# ---------------------------------------------------------------------------------------------


_SIBLING = re.compile(r"^\.(?P<name>.+)\.(?P<tag>" + PARTIAL_TAG + "|" + OLD_TAG
                      + r")-(?P<pid>\d+)-[^/]*$")


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        import psutil

        return psutil.pid_exists(pid)
    except Exception:  # pragma: no cover
        try:
            os.kill(pid, 0)
        except OSError:
            return False
        return True


def cleanup_stale(out) -> list[Path]:
    """Remove what killed runs for ``out`` left behind (partial folders of dead processes).

    A left-over *previous* result (``.NAME.llmcombo-old-*``, the crash fell between the two renames
    of an overwrite) is put back in place when ``out`` is missing. Returns the paths removed.
    """
    out = Path(out)
    removed: list[Path] = []
    if not out.parent.is_dir():
        return removed
    for p in out.parent.iterdir():
        mt = _SIBLING.match(p.name)
        if not mt or mt.group("name") != out.name or _pid_alive(int(mt.group("pid"))):
            continue
        if mt.group("tag") == OLD_TAG and not out.exists():
            try:
                os.rename(p, out)
                continue
            except OSError:
                pass
        shutil.rmtree(p, ignore_errors=True)
        removed.append(p)
    return removed


def _looks_replaceable(folder: Path) -> bool:
    if not any(folder.iterdir()):
        return True
    return any((folder / f).exists() for f in ("config.json", LINEAGE_FILE, MERGE_YAML, MOE_YAML))


def _check_out(out: Path, overwrite: bool, input_dirs: list[Path]) -> None:
    if out.exists() and not out.is_dir():
        raise UserError(f"the output {out} is a file, not a folder.",
                        hint="Choose a folder name for the result.")
    if out.exists() and not overwrite:
        raise UserError(f"the output folder already exists: {out}",
                        hint="Choose another folder, or allow replacing it (overwrite=True, "
                        "--overwrite).")
    if out.exists() and not _looks_replaceable(out):
        raise UserError(f"refusing to replace {out}: it is not empty and does not look like a "
                        "model folder.", hint="Choose a new folder for the result.")
    for d in input_dirs:
        if d == out or out in d.parents:
            raise UserError(f"the output {out} would replace one of the input models ({d}).",
                            hint="Write the result to a new folder.")


def _place(tmp: Path, out: Path, overwrite: bool) -> None:
    """Rename the finished folder into place; an old output is replaced only now."""
    old = None
    if out.exists():
        if not overwrite:
            raise UserError(f"the output folder {out} appeared while the run was working; the "
                            "result was not written.", hint="Run again with another folder.")
        old = out.parent / f".{out.name}.{OLD_TAG}-{os.getpid()}-{os.urandom(4).hex()}"
        os.rename(out, old)
    try:
        os.rename(tmp, out)
    except OSError:
        if old is not None:
            os.rename(old, out)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# checking the written model
# ---------------------------------------------------------------------------------------------


_FLOAT_DTYPES = {"F32": "float32", "F16": "float16", "BF16": "bfloat16", "F64": "float64"}


def _chunk_finite(values) -> bool:
    """True when every element is finite: a cheap sum first (finite sum => all finite, as an
    inf or NaN always propagates), then the exact element-wise test only if the sum is not."""
    import torch

    if math.isfinite(values.sum(dtype=torch.float32 if values.element_size() < 8
                                else torch.float64).item()):
        return True
    return bool(torch.isfinite(values).all())


def nonfinite_tensors(path, *, chunk_bytes: int = 64 * 2**20,
                      cancel: CancelToken | None = None) -> list[str]:
    """Names of the tensors of a safetensors file that hold NaN or inf.

    The file is read with plain ``read`` calls into one reusable buffer rather than memory-mapped:
    mapping it would add the whole file to the process's resident memory (RSS), reading keeps the
    extra memory at ``chunk_bytes``.
    """
    import struct

    import torch

    bad: list[str] = []
    with open(path, "rb", buffering=0) as fh:
        (n,) = struct.unpack("<Q", fh.read(8))
        header = json.loads(fh.read(n))
        base = 8 + n
        entries = sorted(((meta["data_offsets"][0], meta["data_offsets"][1], name,
                           meta["dtype"]) for name, meta in header.items()
                          if name != "__metadata__"), key=lambda e: e[0])
        buf = bytearray(chunk_bytes)
        view = memoryview(buf)
        for start, end, name, dtype in entries:
            if dtype not in _FLOAT_DTYPES or end <= start:
                continue
            tdtype = getattr(torch, _FLOAT_DTYPES[dtype])
            item = torch.empty((), dtype=tdtype).element_size()
            step = (chunk_bytes // item) * item
            fh.seek(base + start)
            pos = start
            while pos < end:
                if cancel is not None:
                    cancel.raise_if_cancelled()
                want = min(step, end - pos)
                got = fh.readinto(view[:want])
                if not got:
                    raise OSError(f"{path} is truncated")
                got -= got % item
                if not _chunk_finite(torch.frombuffer(buf, dtype=tdtype, count=got // item)):
                    bad.append(name)
                    break
                pos += got
                fh.seek(base + pos)
    return bad


def verify_model_folder(folder, *, trust_remote_code: bool = False, require_tokenizer: bool = True,
                        scan_tensors: bool = True, cancel: CancelToken | None = None
                        ) -> tuple[list[str], list[str]]:
    """Check a written model folder; returns ``(problems, warnings)`` (sentences)."""
    folder = Path(folder)
    problems: list[str] = []
    warns: list[str] = []
    cfg_file = folder / "config.json"
    if not cfg_file.is_file():
        problems.append("no config.json was written.")
    else:
        try:
            raw = json.loads(cfg_file.read_text(encoding="utf-8"))
        except ValueError as exc:
            raw = None
            problems.append(f"config.json is not valid JSON ({exc}).")
        if raw is not None:
            if raw.get("auto_map") and not trust_remote_code:
                warns.append("config.json needs code from the model's repository "
                             "(trust_remote_code) to load; it was not loaded to check it.")
            else:
                try:
                    from transformers import AutoConfig

                    AutoConfig.from_pretrained(str(folder), trust_remote_code=trust_remote_code)
                except Exception as exc:
                    problems.append(f"config.json does not load with transformers ({exc}).")
    weights = sorted(folder.glob("*.safetensors"))
    others = [p for p in folder.iterdir() if p.suffix in (".bin", ".pt", ".pth")]
    if not weights and not others:
        problems.append("no weight files were written.")
    if others and not weights:
        warns.append("the weights are pickled (*.bin) and were not scanned for NaN/inf.")
    if scan_tensors and weights:
        bad: list[str] = []
        for wf in weights:
            try:
                bad += nonfinite_tensors(wf, cancel=cancel)
            except (OSError, ValueError, KeyError) as exc:
                problems.append(f"{wf.name} cannot be read back ({exc}).")
        if bad:
            more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
            problems.append("these tensors contain NaN or infinite values: "
                            + ", ".join(bad[:5]) + more + ".")
    if require_tokenizer and not any((folder / f).is_file() for f in
                                     ("tokenizer.json", "tokenizer.model", "vocab.json")):
        problems.append("no tokenizer was written (tokenizer.json / tokenizer.model).")
    return problems, warns


# ---------------------------------------------------------------------------------------------
# running
# ---------------------------------------------------------------------------------------------


def _versions() -> dict:
    from importlib import metadata

    out = {"llmcombo": __version__, "python": platform.python_version()}
    for pkg in ("mergekit", "torch", "transformers", "huggingface_hub", "safetensors"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:  # pragma: no cover
            out[pkg] = None
    return out


def _jsonable(data):
    return json.loads(json.dumps(data, default=str))


def _yaml_text(doc: dict) -> str:
    import yaml

    try:
        from mergekit.config import ConfigYamlDumper

        return yaml.dump(doc, Dumper=ConfigYamlDumper, sort_keys=False)
    except Exception:  # pragma: no cover
        return yaml.safe_dump(doc, sort_keys=False)


def _parse(kind: str, doc: dict):
    try:
        if kind == "merge":
            from mergekit.config import MergeConfiguration

            return MergeConfiguration.model_validate(doc)
        if kind == "moe":
            from mergekit.moe.config import MoEMergeConfig

            return MoEMergeConfig.model_validate(doc)
    except Exception as exc:
        lines = [ln for ln in str(exc).strip().splitlines() if ln.strip()]
        raise UserError(f"mergekit does not accept the configuration: "
                        f"{lines[-1] if lines else type(exc).__name__}",
                        hint="Run `llmcombo validate` on it for details.") from None
    raise UserError(f"unknown kind of run {kind!r}: expected 'merge' or 'moe'.")


def _method(kind: str, doc: dict) -> str:
    if kind == "merge":
        return str(doc.get("merge_method"))
    return f"moe/{doc.get('gate_mode', 'hidden')}"


def _format_issues(issues) -> str:
    return "\n".join("  - " + i.format() for i in issues)


def _preflight(kind, doc, source_config, out: Path, base_dir, options: RunOptions, progress):
    from llmcombo import preflight

    config = source_config if source_config is not None else {kind: doc}
    issues = list(preflight.check_models(dict(config), base_dir=base_dir))
    from mergekit.common import parse_kmb

    issues += preflight.check_resources(dict(config), out, base_dir,
                                        shard_size=parse_kmb(options.shard_size),
                                        disk_free=options.disk_free)
    errors = [i for i in issues if i.is_error]
    if len(errors) == 1:
        e = errors[0]
        raise UserError(f"the run was refused before starting: {e.path or '(configuration)'}: "
                        f"{e.message}" + (f" Hint: {e.hint}" if e.hint else ""))
    if errors:
        raise UserError(f"the run was refused before starting, {len(errors)} problems:\n"
                        + _format_issues(errors))
    return [i.format() for i in issues]


def _inputs(kind: str, doc: dict, source_config, base_dir) -> list[dict]:
    from llmcombo.preflight import model_slots

    resolved = {s.path: s.ref for s in model_slots({kind: doc})}
    given = model_slots(dict(source_config)) if source_config is not None else None
    rows = []
    for s in (given if given is not None else model_slots({kind: doc})):
        rows.append({"field": s.path, "role": s.role, "given": s.ref,
                     "resolved": resolved.get(s.path, s.ref)})
    return rows


def _local_input_dirs(kind: str, doc: dict) -> list[Path]:
    from llmcombo.preflight import model_slots

    dirs = []
    for s in model_slots({kind: doc}):
        p = Path(os.path.expanduser(s.ref.split("+")[0]))
        if p.is_dir():
            dirs.append(p.resolve())
    return dirs


def run_mergekit(kind: str, mergekit_config: dict, out, *, options: RunOptions | None = None,
                 progress: Progress | None = None, cancel: CancelToken | None = None,
                 overwrite: bool = False, base_dir=None, source_config: dict | None = None
                 ) -> RunResult:
    """Run a mergekit document (``kind`` ``"merge"`` or ``"moe"``) into the folder ``out``.

    ``source_config`` (the llmcombo configuration it came from, if any) is used for pre-flight
    messages and the lineage. Raises :class:`UserError` for anything the user can fix and
    :class:`Cancelled` when ``cancel`` fired.
    """
    options = options or RunOptions()
    progress = progress if progress is not None else default_progress()
    cancel = cancel or CancelToken()
    out = Path(out).expanduser().absolute()
    doc = dict(mergekit_config)
    parsed = _parse(kind, doc)
    _check_out(out, overwrite, _local_input_dirs(kind, doc))
    warnings_: list[str] = []
    if options.trust_remote_code:
        msg = ("trust_remote_code is on: Python code from the model repositories will run on this "
               "computer. Only allow it for repositories you trust.")
        warnings_.append(msg)
        progress.log(f"warning: {msg}")
    if options.preflight:
        found = _preflight(kind, doc, source_config, out, base_dir, options, progress)
        for text in found:
            progress.log(text)
        warnings_ += found
    cancel.raise_if_cancelled()
    mo = options.merge_options()
    out.parent.mkdir(parents=True, exist_ok=True)
    cleanup_stale(out)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.{PARTIAL_TAG}-{os.getpid()}-",
                                dir=out.parent))
    started = _dt.datetime.now(_dt.timezone.utc)
    t0 = time.perf_counter()
    ctx = _RunContext(progress, cancel)
    yaml_text = _yaml_text(doc)
    try:
        with _PeakMemory(mo.device) as mem:
            with _capture_mergekit_logs(progress, options.verbose) as logs, _tqdm_hook(ctx):
                try:
                    _execute(kind, parsed, tmp, mo, options, yaml_text)
                except SystemExit as exc:
                    reason = (" ".join(logs.errors + logs.probing)
                              or f"mergekit stopped (exit status {exc.code}).")
                    raise UserError(f"mergekit refused the configuration: {reason}") from None
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
            "kind": kind,
            "method": _method(kind, doc),
            "inputs": _inputs(kind, doc, source_config, base_dir),
            "configuration": _jsonable(dict(source_config)) if source_config is not None else None,
            "mergekit_config": _jsonable(doc),
            "versions": _versions(),
            "device": mo.device,
            "options": _jsonable(options.to_dict()),
            "started_at": started.isoformat(timespec="seconds"),
            "finished_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "seconds": round(seconds, 3),
            "peak_rss_bytes": mem.peak_rss,
            "peak_cuda_bytes": mem.peak_cuda,
        }
        (tmp / LINEAGE_FILE).write_text(json.dumps(lineage, indent=2) + "\n", encoding="utf-8")
        cancel.raise_if_cancelled()
        _place(tmp, out, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return RunResult(path=out, kind=kind, method=lineage["method"], seconds=seconds,
                     device=mo.device, peak_rss_bytes=mem.peak_rss, peak_cuda_bytes=mem.peak_cuda,
                     warnings=warnings_, lineage=lineage)


def _execute(kind: str, parsed, tmp: Path, mo, options: RunOptions, yaml_text: str) -> None:
    if kind == "merge":
        from mergekit.merge import run_merge

        run_merge(parsed, str(tmp), mo, config_source=yaml_text)
        return
    import transformers

    from mergekit.scripts.moe import build

    if options.random_seed is not None:
        transformers.set_seed(options.random_seed)
    build(parsed, str(tmp), mo, device=mo.device, allow_all_same=options.allow_same_experts,
          verbose=True)
    if options.write_model_card:
        (tmp / MOE_YAML).write_text(yaml_text, encoding="utf-8")


def run(config: dict, out, *, options: RunOptions | None = None, progress: Progress | None = None,
        cancel: CancelToken | None = None, overwrite: bool = False, base_dir=None) -> RunResult:
    """Run an llmcombo configuration (``merge:`` or ``moe:``) into the folder ``out``."""
    from llmcombo.generate import to_mergekit

    if base_dir is None:
        base_dir = getattr(config, "base_dir", None)
    kind, doc = to_mergekit(config, base_dir)
    if kind not in ("merge", "moe"):
        raise UserError(f"this configuration is a {kind}; `run` executes merges and mixtures of "
                        "experts.", hint="Ensembles run with llmcombo.ensemble.")
    return run_mergekit(kind, doc, out, options=options, progress=progress, cancel=cancel,
                        overwrite=overwrite, base_dir=base_dir, source_config=config)


__all__ = [
    "CancelToken", "LogProgress", "NullProgress", "Progress", "RunOptions", "RunResult",
    "TqdmProgress", "cleanup_stale", "default_progress", "run", "run_mergekit",
    "verify_model_folder",
]
