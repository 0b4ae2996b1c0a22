"""Heavy imports, ahead of need.

The live mergekit YAML checks the generated document with mergekit's pydantic models; importing
them pulls in torch, transformers and peft (10 s or more on a small machine). The form itself
needs none of it, so the dashboard is built without them and :func:`preload` imports them in a
thread while the user fills the form: the first valid configuration does not freeze the page.
"""

from __future__ import annotations

PRELOAD_MODULES = ("mergekit.config", "mergekit.moe.config")


class Preload:
    """Imports ``modules`` in a daemon thread, ``delay`` seconds after it is made or at once when
    :meth:`now` is called (the user started editing). An import error is left for the code that
    needs the module to report."""

    def __init__(self, modules: tuple[str, ...] = PRELOAD_MODULES, delay: float = 0.0):
        import threading

        self.modules = tuple(modules)
        self._go = threading.Event()
        if delay <= 0:
            self._go.set()
        self.thread = threading.Thread(target=self._work, args=(delay,), name="llmcombo-preload",
                                       daemon=True)
        self.thread.start()

    def _work(self, delay: float) -> None:
        import importlib

        self._go.wait(delay)
        for name in self.modules:
            try:
                importlib.import_module(name)
            except Exception:  # noqa: BLE001 - reported where the module is used
                pass

    def now(self) -> None:
        self._go.set()

    def wait(self, timeout: float | None = None) -> bool:
        self._go.set()
        self.thread.join(timeout)
        return not self.thread.is_alive()


def preload(modules: tuple[str, ...] = PRELOAD_MODULES, delay: float = 0.0) -> Preload:
    """Start importing ``modules`` in the background (see :class:`Preload`)."""
    return Preload(modules, delay)
