"""Progress, cancel and log capture inside mergekit, without copying mergekit's code.

mergekit reports progress only through ``tqdm.tqdm(...)`` calls on the ``tqdm`` module its files
import (``Executor._run`` iterates one bar over the task schedule: loads, merges and saves of each
tensor). :func:`run_hooks` swaps that module attribute, *in mergekit's modules only*, for a copy of
the tqdm module whose ``tqdm``/``trange`` forward to the current run's
:class:`~llmcombo.progress.Progress` and check its :class:`~llmcombo.progress.CancelToken` before
every item, and restores the attributes when the last run ends. Re-implementing ``run_merge``
around ``MergePlanner``/``Executor`` instead would copy ~100 lines of mergekit (config-out,
tokenizer, tagalong files, model card) that change between releases and still leave the MoE
builder (which has no executor) unhooked. The patch is the technique mergekit's own ``evo`` uses
(``mergekit.evo.monkeypatch.monkeypatch_tqdm``); the per-run state lives in a ``ContextVar`` so
code outside a run (or another thread's run) sees plain tqdm.

mergekit's log records (its named loggers and its bare ``logging.x()`` calls on the root logger)
are collected by :class:`MergekitLog` during the run instead of reaching the application's
handlers.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import sys
import threading
import types
from typing import Any, Iterator

from llmcombo.progress import CancelToken, Progress

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


def _real_tqdm_module() -> Any:
    import tqdm

    return tqdm


_TqdmBase: Any = _real_tqdm_module().tqdm


class _HookedTqdm(_TqdmBase):
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
    shim: Any = types.ModuleType("tqdm")
    shim.__dict__.update(vars(real))
    shim.tqdm = _HookedTqdm
    shim.trange = _hooked_trange
    for name, mod in list(sys.modules.items()):
        if mod is None or not (name == "mergekit" or name.startswith("mergekit.")):
            continue
        d = getattr(mod, "__dict__", {})
        for attr, val in list(d.items()):
            repl: Any
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


class MergekitLog(logging.Handler):
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

    def __init__(self, handler: MergekitLog):
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
def _capture_mergekit_logs(progress: Progress, verbose: bool) -> Iterator[MergekitLog]:
    root = logging.getLogger()
    mk_logger = logging.getLogger("mergekit")
    tf_config_logger = logging.getLogger("transformers.configuration_utils")
    handler = MergekitLog(progress, verbose)
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



@contextlib.contextmanager
def run_hooks(progress: Progress, cancel: CancelToken, verbose: bool = False
              ) -> Iterator[MergekitLog]:
    """Inside the block mergekit reports to ``progress``, stops at ``cancel``, and its log
    records are collected (the yielded :class:`MergekitLog`)."""
    ctx = _RunContext(progress, cancel)
    with _capture_mergekit_logs(progress, verbose) as logs, _tqdm_hook(ctx):
        yield logs
