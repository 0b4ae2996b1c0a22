"""What a result records about where it was made: package versions, the machine, peak memory."""

from __future__ import annotations

import os
import platform
import threading
from typing import Any

from llmcombo import __version__


def versions(packages: tuple[str, ...] = ("mergekit", "torch", "transformers", "huggingface_hub",
                                           "safetensors")) -> dict:
    from importlib import metadata

    out: dict[str, Any] = {"llmcombo": __version__, "python": platform.python_version()}
    for pkg in packages:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:  # pragma: no cover
            out[pkg] = None
    return out


def machine() -> dict:
    """The machine a result was measured on (CPU model, cores, GPU, torch threads)."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except (OSError, AttributeError):
        load = None
    return {"platform": platform.platform(), "cpu": cpu, "cpu_count": os.cpu_count(),
            "load_average": load, "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(), "torch": torch.__version__,
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def _vm_hwm() -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return None


class PeakMemory:
    """Peak RSS during a block: the kernel's high-water mark when it rose during the block,
    else the largest sampled RSS (sampled every ``interval`` s)."""

    def __init__(self, device: str, interval: float = 0.05):
        self.device = device
        self.interval = interval
        self.peak_rss: int | None = None
        self.peak_cuda: int | None = None
        self._stop = threading.Event()
        self._max = 0

    def _sample(self, proc) -> None:
        while not self._stop.wait(self.interval):
            try:
                self._max = max(self._max, proc.memory_info().rss)
            except OSError:  # pragma: no cover - the process table went away
                return

    def __enter__(self):
        self._hwm0 = _vm_hwm()
        self._max = 0
        self._thread = None
        import psutil

        proc = psutil.Process()
        self._max = proc.memory_info().rss
        self._thread = threading.Thread(target=self._sample, args=(proc,), daemon=True,
                                        name="llmcombo-peak-rss")
        self._thread.start()
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
