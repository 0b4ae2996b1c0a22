"""Where trials run: in this process, on a local pool of processes, or on a Ray cluster.

Each executor keeps ``workers`` long-lived :class:`~llmcombo.search.worker.Worker` objects (one
per process or Ray actor: parents are loaded once per worker) and runs a batch of jobs with
:meth:`run`, returning the results in the jobs' order. The search asks, runs and tells one batch
at a time, so the same seed and sampler give the same study whatever runs the trials.

Ray is imported only by :class:`RayPool` (``pip install 'llmcombo[search]'``); the local path
never imports it.
"""

from __future__ import annotations

import os
from typing import Any

from llmcombo.errors import UserError

# environment variables a worker on another process / machine needs to find what this one finds
FORWARDED_ENV = ("LLMCOMBO_ZOO_DIR", "LLMCOMBO_MODEL_CACHE", "HF_HOME", "HF_HUB_OFFLINE",
                 "TRANSFORMERS_OFFLINE", "XDG_CACHE_HOME", "LLMCOMBO_MERGEKIT_SNAPSHOT")


def _died(job: dict, what: str) -> dict:
    return {"id": job.get("id"), "hash": job.get("hash"), "status": "failed",
            "error": f"{what} (out of memory?); the trial was not finished", "acc": {},
            "merge_s": 0.0, "eval_s": 0.0, "worker_s": 0.0, "prompts": 0, "latency_s": None}


class InProcess:
    """One worker in this process (``workers == 1``: no process to start, nothing to copy)."""

    kind = "local"

    def __init__(self, payload: dict):
        import torch

        from llmcombo.search.worker import Worker

        self._threads = torch.get_num_threads()
        self.worker = Worker(payload)
        self.workers = 1

    def run(self, jobs: list[dict]) -> list[dict]:
        return [self.worker.run(j) for j in jobs]

    def close(self) -> None:
        import torch

        torch.set_num_threads(self._threads)


_WORKER: Any = None


def _init_worker(payload: dict) -> None:
    global _WORKER
    if payload.get("threads"):  # before torch is imported here: OpenMP reads it once (as Ray
        os.environ.setdefault("OMP_NUM_THREADS", str(payload["threads"]))  # does for its actors)
    from llmcombo.search.worker import Worker

    _WORKER = Worker(payload)


def _run_job(job: dict) -> dict:
    return _WORKER.run(job)


class LocalPool:
    """``workers`` processes on this machine (spawned: torch and fork do not mix), each with its
    worker. A process that dies (killed for memory) fails its trial; the pool is started again."""

    kind = "local"

    def __init__(self, payload: dict, workers: int):
        self.payload, self.workers = payload, int(workers)
        self._pool: Any = None
        self._start()

    def _start(self) -> None:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        self._pool = ProcessPoolExecutor(max_workers=self.workers,
                                         mp_context=multiprocessing.get_context("spawn"),
                                         initializer=_init_worker, initargs=(self.payload,))

    def run(self, jobs: list[dict]) -> list[dict]:
        from concurrent.futures.process import BrokenProcessPool

        futures = [self._pool.submit(_run_job, j) for j in jobs]
        out, broken = [], False
        for job, fut in zip(jobs, futures):
            try:
                out.append(fut.result())
            except BrokenProcessPool:
                broken = True
                out.append(_died(job, "a worker process of the local pool died"))
        if broken:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._start()
        return out

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def _import_ray():
    try:
        import ray
    except ImportError:
        raise UserError("--ray needs Ray, which is not installed.",
                        hint="pip install 'llmcombo[search]'; or run without --ray: the trials "
                             "then run on a local pool of this machine.") from None
    return ray


def connect_ray(address: str | None, workers: int) -> Any:
    """Join the Ray cluster at ``address`` (``auto``: the one running on this machine; ``local``:
    start one for this search with ``workers`` CPUs; ``ray://host:10001`` or ``host:6379``), or use
    the one this process is already connected to. Unreachable -> :class:`UserError` saying how to
    run locally."""
    ray = _import_ray()
    if ray.is_initialized():
        return ray
    env = {k: os.environ[k] for k in FORWARDED_ENV if os.environ.get(k)}
    import logging

    kwargs: dict[str, Any] = {"ignore_reinit_error": True, "log_to_driver": False,
                              "include_dashboard": False, "logging_level": logging.ERROR,
                              "runtime_env": {"env_vars": env} if env else None}
    hint = ("Start one with `ray start --head` (then --ray auto), check the address, or run "
            "without --ray: the trials then run on a local pool of this machine.")
    if address not in (None, "", "local", "auto"):
        problem = _unreachable(address)
        if problem:  # Ray itself would retry for minutes
            raise UserError(f"cannot reach a Ray cluster at {address}: {problem}", hint=hint)
    try:
        if address in (None, "", "local"):
            ray.init(num_cpus=max(1, int(workers)), **kwargs)
        else:
            ray.init(address=address, **kwargs)
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
        where = "on this machine" if address == "auto" else f"at {address}"
        raise UserError(f"cannot reach a Ray cluster {where}: {str(exc).splitlines()[0]}",
                        hint=hint) from None
    return ray


def _unreachable(address: str, timeout: float = 5.0) -> str | None:
    """Why nothing answers at a Ray address (``ray://host:port`` or ``host:port``), or None."""
    import socket

    hostport = address.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        return f"{address!r} is not an address like host:6379 or ray://host:10001"
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return None
    except OSError as exc:
        return f"nothing answers there ({exc.strerror or exc})"


class RayPool:
    """``workers`` Ray actors, each with its worker: a GPU each when the cluster has GPUs, else
    one CPU each. An actor that dies fails its trial and is replaced."""

    kind = "ray"

    def __init__(self, payload: dict, workers: int, address: str | None):
        ray = connect_ray(address, workers)
        self.ray = ray
        self.payload, self.workers = payload, int(workers)
        gpus = float(ray.cluster_resources().get("GPU", 0))
        self.resources = {"num_gpus": 1, "num_cpus": 1} if gpus >= 1 else {"num_cpus": 1}
        cpus = float(ray.cluster_resources().get("CPU", 0))
        if gpus < 1 and cpus < self.workers:
            raise UserError(f"the Ray cluster has {cpus:g} CPUs, fewer than the {self.workers} "
                            "trials at once (workers) of this search.",
                            hint="Lower workers, or add machines to the cluster.")
        self._remote = ray.remote(**self.resources)(_RayWorker)
        self.actors = [self._new() for _ in range(self.workers)]
        # wait until every actor has loaded its worker: a bad payload fails here, not per trial
        ray.get([a.ready.remote() for a in self.actors])

    def _new(self):
        return self._remote.remote(self.payload)

    def run(self, jobs: list[dict]) -> list[dict]:
        ray = self.ray
        out = []
        refs = [self.actors[i % self.workers].run.remote(j) for i, j in enumerate(jobs)]
        for i, (job, ref) in enumerate(zip(jobs, refs)):
            try:
                out.append(ray.get(ref))
            except ray.exceptions.RayError as exc:
                out.append(_died(job, f"the Ray worker died ({type(exc).__name__})"))
                k = i % self.workers
                try:
                    ray.kill(self.actors[k])
                except Exception:
                    pass
                self.actors[k] = self._new()
        return out

    def close(self) -> None:
        for a in self.actors:
            try:
                self.ray.kill(a)
            except Exception:
                pass
        self.actors = []


class _RayWorker:
    """A Ray actor holding a :class:`~llmcombo.search.worker.Worker`."""

    def __init__(self, payload: dict):
        _init_worker(payload)

    def ready(self) -> bool:
        return True

    def run(self, job: dict) -> dict:
        return _run_job(job)


def make_executor(payload: dict, workers: int, ray: str | None = None):
    """The executor for ``workers`` trials at once: Ray actors when ``ray`` names a cluster
    (``auto``, an address, ``local``), else this process (one worker) or a local pool."""
    if ray:
        return RayPool(payload, workers, ray)
    if workers <= 1:
        return InProcess(payload)
    return LocalPool(payload, workers)


__all__ = ["InProcess", "LocalPool", "RayPool", "connect_ray", "make_executor"]
