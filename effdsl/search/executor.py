"""Running trials: one job per candidate, in worker processes on this machine.

:func:`run_job` builds the candidate from its plain spec, optionally measures its
latency, and scores it with the proxy; it never raises: a diverged loss, running out of
memory or any other failure comes back as the trial's status. :class:`LocalExecutor`
runs jobs in ``workers`` spawned processes with torch's threads split between them
(``cores // workers`` each, one inter-op thread), so that two workers on two cores do
not fight over four threads. A worker that dies (killed for memory, say) takes down the
pool; the jobs it held are then rerun one at a time in fresh workers, and the one that
kills its worker again is recorded as ``crashed``.

Ray (a cluster executor) is the next step; it will take the same :class:`Job`.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any, Literal

from effdsl.search.proxy import TrainConfig, TrialFailed, ZeroCost

Proxy = Literal["train", "zero-cost"]


@dataclass(frozen=True)
class Job:
    """One trial as a worker needs it (picklable)."""

    trial: int
    text: str                     # the candidate as a plain spec
    seed: int
    proxy: Proxy
    data: str
    resolution: int
    zero_cost: ZeroCost = "naswot"
    train: TrainConfig = field(default_factory=TrainConfig)
    device: str = "auto"
    latency: bool = False         # measure the batch-1 latency
    latency_limit: float | None = None  # ms: above it the trial stops before training
    phi: float | None = None      # the member of ``text``'s family to build (compound scaling); None: the baseline


def run_job(job: Job) -> dict[str, Any]:
    """The outcome of one trial: status, accuracy, score, latency_ms, seconds, error."""
    start = time.perf_counter()
    outcome: dict[str, Any] = {"status": "ok", "accuracy": None, "score": None, "latency_ms": None, "error": None}
    try:
        _run(job, outcome)
    except TrialFailed as err:
        outcome.update(status=err.status, error=str(err))
    except MemoryError as err:
        outcome.update(status="oom", error=f"out of memory: {err}")
    except Exception as err:  # a failed trial is recorded, and the search goes on
        text = f"{type(err).__name__}: {err}".strip()
        status = "oom" if "out of memory" in text.lower() or "OutOfMemory" in type(err).__name__ else "error"
        outcome.update(status=status, error=text.splitlines()[0][:500])
    outcome["seconds"] = round(time.perf_counter() - start, 3)
    return outcome


def _run(job: Job, outcome: dict[str, Any]) -> None:
    import torch

    from effdsl.api import compile_spec
    from effdsl.search import data as datasets
    from effdsl.search import proxy

    torch.manual_seed(job.seed)
    # The proxy trains without dropout and stochastic depth: they regularize long
    # trainings and only slow down a short one. Neither changes the cost.
    compiled = compile_spec(job.text, phi=job.phi, drop_rate=0.0, drop_path_rate=0.0)
    model = compiled.build()
    device = proxy.pick_device(job.device)
    if job.latency:
        latency = proxy.latency_ms(model, compiled.spec.in_ch, compiled.summary.resolution, device)
        outcome["latency_ms"] = round(latency, 4)
        if job.latency_limit is not None and latency > job.latency_limit:
            outcome["status"] = "over_limit"
            return
    data = datasets.load(job.data, job.resolution)
    if job.proxy == "train":
        accuracy = proxy.train_accuracy(model, data, job.train, job.seed, device)
        outcome.update(accuracy=accuracy, score=accuracy)
    else:
        score = proxy.zero_cost(job.zero_cost, model, data, job.seed, device)
        if not math.isfinite(score):
            raise TrialFailed("nan", f"the {job.zero_cost} score is {score}")
        outcome["score"] = score


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1


def _init_worker(threads: int, parent: int) -> None:
    """Split the cores before torch starts its pools; leave Ctrl-C to the search; exit when it is gone."""
    # Ctrl-C reaches the whole process group. A worker that died of it would look like a
    # crashed trial; the search itself stops the workers instead.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[name] = str(threads)
    # Idle OpenMP threads sleep instead of spinning: on a busy machine spinning threads
    # made a two-thread training step five times slower than one thread (935 against 172 ms).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch

    torch.set_num_threads(threads)
    with contextlib.suppress(RuntimeError):  # already set in this process
        torch.set_num_interop_threads(1)

    def watch() -> None:  # a search killed with SIGKILL leaves no worker behind
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()


class LocalExecutor:
    """``workers`` processes on this machine (``--executor local``)."""

    def __init__(self, workers: int, threads: int | None = None):
        self.workers = workers
        self.threads = threads or max(1, available_cores() // workers)
        self._pool: ProcessPoolExecutor | None = None

    def _new_pool(self, workers: int) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_init_worker, initargs=(self.threads, os.getpid()))

    def __enter__(self) -> LocalExecutor:
        self._pool = self._new_pool(self.workers)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close(cancel=exc[0] is not None)

    def close(self, cancel: bool = False) -> None:
        if self._pool is not None:
            if cancel:  # interrupted: do not wait for the trials in flight
                for process in list(getattr(self._pool, "_processes", {}).values()):
                    process.terminate()
            self._pool.shutdown(wait=not cancel, cancel_futures=True)
            self._pool = None

    def run(self, jobs: list[Job]) -> list[Future[dict[str, Any]]]:
        """Start ``jobs``; their futures, in the same order."""
        assert self._pool is not None, "use the executor in a with block"
        return [self._pool.submit(run_job, job) for job in jobs]

    def rerun_alone(self, job: Job) -> dict[str, Any]:
        """Run one job in a fresh single worker after the pool broke; 'crashed' if it breaks again."""
        self.close(cancel=True)
        self._pool = self._new_pool(1)
        try:
            outcome = self._pool.submit(run_job, job).result()
        except BrokenProcessPool:
            outcome = {"status": "crashed", "accuracy": None, "score": None, "latency_ms": None,
                       "error": "the worker process died (killed for memory?)", "seconds": None}
        self.close(cancel=True)
        self._pool = self._new_pool(self.workers)
        return outcome
