"""Running trials: one job per candidate, in worker processes on this machine.

:func:`run_job` builds the candidate from its plain spec, optionally measures its
latency, and scores it with the proxy; it never raises: a diverged loss, running out of
memory or any other failure comes back as the trial's status. :class:`LocalExecutor`
runs jobs in ``workers`` spawned processes with torch's threads split between them
(``cores // workers`` each, one inter-op thread), so that two workers on two cores do
not fight over four threads. A worker that dies (killed for memory, say) takes down the
pool; the jobs it held are then rerun one at a time in fresh workers, and the one that
kills its worker again is recorded as ``crashed``. An outcome says how many times its
trial was run again after a worker died (``retries``).

:func:`make_executor` gives the executor a command asks for: ``local``, or ``ray``
(:mod:`effdsl.search.cluster`, imported only then: Ray is an optional extra). Both run
:func:`run_job` on the same :class:`Job` and have the same interface: used in a ``with``
block, ``run(jobs)`` starts a round of jobs and returns their futures, and
``outcome(future, job)`` waits for one (rerunning it if its worker died).
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import os
import signal
import socket
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from effdsl.diagnostics import Diagnostic, EffdslError
from effdsl.search.proxy import TrainConfig, TrialFailed, ZeroCost

if TYPE_CHECKING:
    from types import TracebackType

Proxy = Literal["train", "zero-cost"]
ExecutorKind = Literal["local", "ray"]
EXECUTORS: tuple[ExecutorKind, ...] = ("local", "ray")

# For the tests of worker deaths: when this names a folder holding a file crash-N, the job of
# trial N kills its own process as many times as the file says (once if it is empty), then
# deletes it and runs normally.
CRASH_DIR = "EFFDSL_TEST_CRASH_DIR"


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


def run_job(job: Job) -> dict[str, Any]:
    """The outcome of one trial: status, accuracy, score, latency_ms, seconds, error."""
    _crash_if_asked(job)
    start = time.perf_counter()
    outcome: dict[str, Any] = {"status": "ok", "accuracy": None, "score": None, "latency_ms": None, "error": None,
                               "retries": 0}
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


def _crash_if_asked(job: Job) -> None:
    folder = os.environ.get(CRASH_DIR)
    if not folder:
        return
    marker = os.path.join(folder, f"crash-{job.trial}")
    try:
        with open(marker, encoding="utf-8") as handle:
            left = int(handle.read().strip() or 1)
    except (OSError, ValueError):
        return
    if left > 1:
        with open(marker, "w", encoding="utf-8") as handle:
            handle.write(str(left - 1))
    else:
        os.remove(marker)
    os._exit(70)


def _run(job: Job, outcome: dict[str, Any]) -> None:
    import torch

    from effdsl.api import compile_spec
    from effdsl.search import data as datasets
    from effdsl.search import proxy

    torch.manual_seed(job.seed)
    # The proxy trains without dropout and stochastic depth: they regularize long
    # trainings and only slow down a short one. Neither changes the cost.
    compiled = compile_spec(job.text, drop_rate=0.0, drop_path_rate=0.0)
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
    split_cores(threads)

    def watch() -> None:  # a search killed with SIGKILL leaves no worker behind
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()


def split_cores(threads: int) -> None:
    """torch's share of the cores in a worker: ``threads`` intra-op threads, one inter-op thread.

    The same in every executor: a trial's numbers depend on its thread count.
    """
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[name] = str(threads)
    # Idle OpenMP threads sleep instead of spinning: on a busy machine spinning threads
    # made a two-thread training step five times slower than one thread (935 against 172 ms).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch

    torch.set_num_threads(threads)
    with contextlib.suppress(RuntimeError):  # already set in this process
        torch.set_num_interop_threads(1)


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

    def outcome(self, future: Future[dict[str, Any]], job: Job) -> dict[str, Any]:
        """The outcome of a job; if its worker died, the job alone in a fresh worker."""
        try:
            return future.result()
        except BrokenProcessPool:
            return self.rerun_alone(job)

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
        return {**outcome, "retries": 1}


class Executor(Protocol):
    """What a search (or a grid) needs of an executor."""

    workers: int

    def __enter__(self) -> Executor: ...

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None: ...

    def run(self, jobs: list[Job]) -> list[Future[dict[str, Any]]]: ...

    def outcome(self, future: Future[dict[str, Any]], job: Job) -> dict[str, Any]: ...


def make_executor(kind: str, workers: int, address: str | None = None, device: str = "auto") -> Executor:
    """The executor of ``--executor KIND --workers N [--address ADDR]``, not started yet.

    ``local``: :class:`LocalExecutor`. ``ray``: :class:`effdsl.search.cluster.RayExecutor`, on
    a local Ray started when the executor is entered, or on the cluster at ``address``.
    ``device`` (``--device``) decides whether a Ray trial asks for a GPU. Raises
    :class:`EffdslError` (E607, E620) for an unknown kind, ``--address`` without Ray,
    a Ray Client address, or Ray not installed.
    """
    if workers < 1:
        raise EffdslError(Diagnostic("E607", f"--workers must be at least 1, got {workers}"))
    if kind == "local":
        if address is not None:
            raise EffdslError(Diagnostic("E607", "--address is the Ray cluster of --executor ray", None,
                                         "add --executor ray, or leave out --address"))
        return LocalExecutor(workers)
    if kind != "ray":
        raise EffdslError(Diagnostic("E607", f"--executor '{kind}' is not one of {', '.join(EXECUTORS)}"))
    if address is not None and address.startswith("ray://"):
        raise EffdslError(Diagnostic(
            "E620", f"--address '{address}' is a Ray Client address; the search runs its trials as a driver "
                    "on a node of the cluster", None,
            "run effdsl on a node of the cluster with --address auto, or the head's host:port (6379 by default)"))
    if address is not None:
        _check_reachable(address)
    require_ray()
    from effdsl.search.cluster import RayExecutor

    return RayExecutor(workers, address, device)


def _check_reachable(address: str) -> None:
    """E620 at once when nothing listens at a host:port (Ray itself would wait for it, for ever)."""
    if address == "auto":  # Ray looks for a cluster started on this machine, and says at once if there is none
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        host, port = address, "6379"  # Ray's default port of the head
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
    except (OSError, ValueError) as err:
        reason = getattr(err, "strerror", None) or str(err) or type(err).__name__
        raise EffdslError(Diagnostic(
            "E620", f"cannot reach the Ray head at '{address}' ({host}, port {port}): {reason}", None,
            "start one with 'ray start --head' and pass the address it prints, or --address auto on one of "
            "its nodes; see docs/distributed.md")) from None


def require_ray() -> None:
    """E620 unless Ray and Ray Tune import (Tune needs more than Ray: ``ray[tune]``)."""
    missing = None
    try:
        import ray  # noqa: F401
    except ImportError:
        missing = "Ray is not installed"
    else:
        try:
            import ray.tune  # noqa: F401
        except ImportError as err:
            missing = f"Ray Tune cannot be imported ({err})"
    if missing is not None:
        raise EffdslError(Diagnostic(
            "E620", f"--executor ray needs Ray with Ray Tune; {missing}", None,
            'pip install "effdsl[ray]" (Ray with Ray Tune), or use --executor local'))
