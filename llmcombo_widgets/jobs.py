"""Long work in a background thread, observable from plain Python (no ipywidgets here).

A :class:`Job` runs a function in a thread so the notebook / dashboard stays responsive; it keeps
its state (status, fraction done, current phase, log, result, error) and calls its listeners on
every change. It implements llmcombo's ``Progress`` protocol (``start/update/log/close``) so it
can be handed straight to :func:`llmcombo.run.run`, and holds the
:class:`~llmcombo.run.CancelToken` that Cancel sets.
"""

from __future__ import annotations

import threading
import time
import traceback
from typing import Any, Callable

from llmcombo.progress import CancelToken  # stdlib-only module: cheap to import

IDLE, RUNNING, DONE, FAILED, CANCELLED = "idle", "running", "done", "failed", "cancelled"


class Job:
    """One run of ``fn(job)`` in a thread. ``fn`` reports through the job (it is a Progress)
    and checks ``job.cancel_token``; its return value becomes :attr:`result`."""

    def __init__(self, name: str = "job", extra_progress: Any = None):
        self.name = name
        self.status = IDLE
        self.fraction = 0.0
        self.phase = ""
        self.log_lines: list[str] = []
        self.result: Any = None
        self.error: str | None = None
        self.hint: str | None = None
        self.started_at: float | None = None
        self.seconds: float | None = None
        self.cancel_token = CancelToken()
        self.extra = extra_progress  # another Progress to forward to (a widget bar)
        self._phases: list[list] = []  # [desc, total, done]
        self._listeners: list[Callable[[Job], None]] = []
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._last_notify = 0.0

    # -- observers ------------------------------------------------------------------------
    def subscribe(self, fn: Callable[[Job], None]) -> None:
        self._listeners.append(fn)

    def _notify(self, force: bool = True) -> None:
        now = time.monotonic()
        if not force and now - self._last_notify < 0.1:  # at most 10 updates a second
            return
        self._last_notify = now
        for fn in list(self._listeners):
            try:
                fn(self)
            except Exception:  # a broken listener must not kill the work
                pass

    # -- Progress protocol ------------------------------------------------------------------
    def start(self, total: int | None, desc: str) -> None:
        with self._lock:
            self._phases.append([desc, total, 0])
            self.phase = desc
        if self.extra is not None:
            self.extra.start(total, desc)
        self._notify()

    def update(self, n: int = 1) -> None:
        with self._lock:
            if self._phases:
                ph = self._phases[-1]
                ph[2] += n
                if ph[1]:
                    # the outermost phase with a total drives the overall fraction
                    outer = next((p for p in self._phases if p[1]), ph)
                    self.fraction = min(1.0, outer[2] / outer[1])
        if self.extra is not None:
            self.extra.update(n)
        self._notify(force=False)

    def log(self, msg: str) -> None:
        with self._lock:
            self.log_lines.append(str(msg))
            del self.log_lines[:-500]
        if self.extra is not None:
            self.extra.log(msg)
        self._notify()

    def close(self) -> None:
        with self._lock:
            if self._phases:
                self._phases.pop()
            self.phase = self._phases[-1][0] if self._phases else self.phase
        if self.extra is not None:
            self.extra.close()
        self._notify()

    def set_fraction(self, fraction: float, phase: str | None = None) -> None:
        self.fraction = max(0.0, min(1.0, float(fraction)))
        if phase is not None:
            self.phase = phase
        self._notify(force=False)

    # -- control ----------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.status == RUNNING

    def run(self, fn: Callable[[Job], Any], background: bool = True) -> Job:
        """Start ``fn(self)`` (in a thread unless ``background=False``)."""
        if self.running:
            raise RuntimeError(f"{self.name} is already running")
        self.status, self.fraction, self.error, self.hint = RUNNING, 0.0, None, None
        self.cancel_token = CancelToken()
        self.result, self.log_lines, self._phases = None, [], []
        self.started_at = time.monotonic()
        self._notify()

        def target():
            from llmcombo.errors import Cancelled, UserError

            try:
                self.result = fn(self)
                self.status = DONE
                self.fraction = 1.0
            except Cancelled as exc:
                self.status, self.error = CANCELLED, str(exc) or "cancelled"
            except UserError as exc:
                self.status, self.error, self.hint = FAILED, exc.message, exc.hint
            except Exception as exc:  # a bug: keep the traceback in the log for the report
                self.status, self.error = FAILED, f"{type(exc).__name__}: {exc}"
                self.log_lines.append(traceback.format_exc())
            finally:
                self.seconds = time.monotonic() - (self.started_at or time.monotonic())
                while self._phases and self.extra is not None:
                    self._phases.pop()
                    try:
                        self.extra.close()
                    except Exception:
                        pass
                self._phases = []
                self._notify()

        if background:
            self._thread = threading.Thread(target=target, name=f"llmcombo-{self.name}", daemon=True)
            self._thread.start()
        else:
            target()
        return self

    def cancel(self) -> None:
        self.cancel_token.cancel()
        self.log("cancel requested: stopping at the next step …")

    def wait(self, timeout: float | None = None) -> Job:
        if self._thread is not None:
            self._thread.join(timeout)
        return self
