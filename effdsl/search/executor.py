"""Running trials: one job per candidate, in worker processes on this machine or on Ray.

Each job runs :func:`~effdsl.search.trial.run_job` (:mod:`effdsl.search.trial`, whose
names this module also exports). :class:`LocalExecutor`
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

import multiprocessing
import os
import signal
import socket
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING, Any, Literal, Protocol

from effdsl.diagnostics import Diagnostic, EffdslError
from effdsl.search.trial import CRASH_DIR, Job, Proxy, available_cores, run_job, split_cores

__all__ = ["CRASH_DIR", "EXECUTORS", "Executor", "ExecutorKind", "Job", "LocalExecutor", "Proxy", "available_cores",
           "make_executor", "require_ray", "run_job", "split_cores"]

if TYPE_CHECKING:
    from types import TracebackType

ExecutorKind = Literal["local", "ray"]
EXECUTORS: tuple[ExecutorKind, ...] = ("local", "ray")


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
    """What a search (or a grid) needs of an executor.

    Used in a ``with`` block (entering it starts the workers, or Ray; leaving it on an
    exception stops the jobs in flight). ``run`` starts jobs and returns their futures at
    once; ``outcome`` waits for one job's outcome (a dict with ``status``, ``accuracy``,
    ``score``, ``latency_ms``, ``seconds``, ``retries`` and ``error``). The jobs given to
    one executor have distinct ``trial`` numbers: the Ray executor matches outcomes to
    jobs by them.
    """

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
