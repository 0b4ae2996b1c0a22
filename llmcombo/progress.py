"""One progress protocol for every long piece of work, and one way to cancel it.

Long work (a merge, an evaluation, training the zoo, a search) reports through a
:class:`Progress`: ``start(total, desc)`` opens a phase (phases may nest), ``update(n)`` advances
the innermost one, ``log(msg)`` writes a line, ``close()`` ends the innermost phase. Adapters:

* :class:`TqdmProgress` -- bars on a terminal;
* :class:`LogProgress` -- plain lines with percentage, elapsed time and an estimate, at a steady
  pace (CI logs, ``nohup``, ``| tee``): never silent for minutes, never a line per step;
* :class:`CallbackProgress` -- ``fn(done, total, desc)``, for scripts;
* :class:`NullProgress` -- nothing;
* the widgets' bars implement the same four methods (``llmcombo_widgets``).

:func:`as_progress` turns whatever a caller passed (None, False, a Progress, a callable) into a
Progress; :func:`default_progress` picks bars on a terminal and lines elsewhere.
:class:`CancelToken` stops work from another thread at its next step.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any, Callable, Protocol, runtime_checkable

from llmcombo.errors import Cancelled


@runtime_checkable
class Progress(Protocol):
    """What long work reports. ``start`` opens a phase, ``close`` ends the innermost open one."""

    def start(self, total: int | None, desc: str) -> None: ...

    def update(self, n: int = 1) -> None: ...

    def log(self, msg: str) -> None: ...

    def close(self) -> None: ...


class NullProgress:
    """Reports nothing."""

    def start(self, total: int | None, desc: str) -> None:
        pass

    def update(self, n: int = 1) -> None:
        pass

    def log(self, msg: str) -> None:
        pass

    def close(self) -> None:
        pass


class TqdmProgress:
    """tqdm bars on stderr (the terminal default); nested phases get their own line."""

    def __init__(self, file: Any = None, leave: bool = False):
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


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


class _Phase:
    __slots__ = ("desc", "total", "done", "t0", "last", "shown")

    def __init__(self, desc: str, total: int | None, now: float):
        self.desc, self.total, self.done, self.t0, self.last = desc, total, 0, now, now
        self.shown = False


class LogProgress:
    """Plain lines for logs: ``desc: 37% (37/100), 1m12s elapsed, about 2m03s left``.

    A phase writes a line every ``interval`` seconds while it advances and one when it ends,
    so a long step is never silent; a phase that ends within ``interval`` seconds writes nothing,
    so quick steps are not noisy. ``print_fn`` receives the lines (default: stderr).
    """

    def __init__(self, print_fn: Callable[[str], None] | None = None, interval: float = 10.0,
                 clock: Callable[[], float] = time.monotonic):
        self.print_fn = print_fn
        self.interval = interval
        self.clock = clock
        self._phases: list[_Phase] = []

    def _emit(self, msg: str) -> None:
        if self.print_fn is not None:
            self.print_fn(msg)
        else:
            print(msg, file=sys.stderr, flush=True)

    def start(self, total: int | None, desc: str) -> None:
        self._phases.append(_Phase(desc, total, self.clock()))

    def _line(self, p: _Phase, now: float) -> str:
        elapsed = now - p.t0
        if p.total:
            frac = min(1.0, p.done / p.total)
            text = f"{p.desc}: {frac:.0%} ({p.done}/{p.total}), {_clock(elapsed)} elapsed"
            if 0 < frac < 1:
                text += f", about {_clock(elapsed * (1 - frac) / frac)} left"
            return text
        return f"{p.desc}: {p.done} steps, {_clock(elapsed)} elapsed"

    def update(self, n: int = 1) -> None:
        if not self._phases:
            return
        p = self._phases[-1]
        p.done += n
        now = self.clock()
        if now - p.last >= self.interval:
            p.last, p.shown = now, True
            self._emit(self._line(p, now))

    def log(self, msg: str) -> None:
        self._emit(msg)

    def close(self) -> None:
        if self._phases:
            p = self._phases.pop()
            if p.shown:
                self._emit(f"{p.desc}: done ({p.done} steps, {_clock(self.clock() - p.t0)})")


class CallbackProgress:
    """Calls ``fn(done, total, desc)`` on every start and update of the innermost phase; ``log``
    lines go to ``log_fn`` when given."""

    def __init__(self, fn: Callable[[int, int | None, str], Any],
                 log_fn: Callable[[str], Any] | None = None):
        self.fn = fn
        self.log_fn = log_fn
        self._phases: list[list] = []  # [desc, total, done]

    def start(self, total: int | None, desc: str) -> None:
        self._phases.append([desc, total, 0])
        self.fn(0, total, desc)

    def update(self, n: int = 1) -> None:
        if self._phases:
            p = self._phases[-1]
            p[2] += n
            self.fn(p[2], p[1], p[0])

    def log(self, msg: str) -> None:
        if self.log_fn is not None:
            self.log_fn(msg)

    def close(self) -> None:
        if self._phases:
            self._phases.pop()


def stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def default_progress() -> Progress:
    """tqdm bars on a terminal, steady log lines elsewhere."""
    return TqdmProgress() if stderr_is_terminal() else LogProgress()


def as_progress(progress: Any) -> Progress:
    """A :class:`Progress` for whatever was passed: ``None`` -> :func:`default_progress`,
    ``False`` -> :class:`NullProgress`, an object with ``start``/``update``/``close`` -> itself
    (``log`` is optional), a callable ``fn(done, total, desc)`` -> :class:`CallbackProgress`."""
    if progress is None:
        return default_progress()
    if progress is False:
        return NullProgress()
    if all(hasattr(progress, m) for m in ("start", "update", "close")):
        if not hasattr(progress, "log"):
            return _WithLog(progress)
        return progress
    if callable(progress):
        return CallbackProgress(progress)
    raise TypeError(f"progress must be None, False, a Progress or a callable, not "
                    f"{type(progress).__name__}")


class _WithLog:
    """A progress object without ``log`` (older widgets): lines are dropped."""

    def __init__(self, inner: Any):
        self.inner = inner

    def start(self, total: int | None, desc: str) -> None:
        self.inner.start(total, desc)

    def update(self, n: int = 1) -> None:
        self.inner.update(n)

    def log(self, msg: str) -> None:
        pass

    def close(self) -> None:
        self.inner.close()


class phase:
    """``with phase(progress, total, desc) as bar: bar.update(1)`` -- a phase that always closes."""

    def __init__(self, progress: Progress, total: int | None, desc: str):
        self.progress, self.total, self.desc = progress, total, desc

    def __enter__(self) -> Progress:
        self.progress.start(self.total, self.desc)
        return self.progress

    def __exit__(self, *exc: Any) -> None:
        self.progress.close()


class CancelToken:
    """Cancel work from another thread: ``token.cancel()``; the work raises :class:`Cancelled`
    at its next step."""

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


__all__ = ["CallbackProgress", "CancelToken", "LogProgress", "NullProgress", "Progress",
           "TqdmProgress", "as_progress", "default_progress", "phase", "stderr_is_terminal"]
