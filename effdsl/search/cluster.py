"""Running trials on Ray (``--executor ray``): each job is a Ray Tune trial.

Imported only when a search asks for Ray, which is an optional extra
(``pip install "effdsl[ray]"``). :class:`RayExecutor` keeps the local executor's
interface, so the search loop is the same for both: :meth:`RayExecutor.run` takes a
round of :class:`~effdsl.search.executor.Job` and returns one future per job, resolved
with :func:`~effdsl.search.executor.run_job`'s outcome, the same function the local
workers run.

One Tune experiment runs for the whole search, in a thread of the search's process: a
searcher hands Tune the jobs the loop submits (and nothing while the loop decides the
next round), and a callback resolves each job's future when its trial ends. A trial
takes ``cores // workers`` CPUs (torch's threads, as the local workers split them) and a
GPU when it asks for CUDA. A trial whose worker dies (killed for memory, its node lost)
is restarted by Tune up to :data:`MAX_RETRIES` times (``FailureConfig``); its outcome
says how many times (``retries``), and a trial that died every time is ``crashed``.

Without ``--address``, Ray is started on this machine for the search and stopped after
it: all its cores, no dashboard, its logs kept out of the terminal, its files in a
temporary folder. With ``--address`` the search joins an existing cluster (``ray start
--head`` on one machine, ``ray start --address`` on the others) and leaves it running.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import shutil
import tempfile
import threading
import time
from concurrent.futures import Future
from dataclasses import asdict
from pathlib import Path
from typing import Any

import ray
from ray import tune
from ray.tune.experiment import Trial
from ray.tune.search import Searcher

from effdsl.diagnostics import Diagnostic, EffdslError, InternalError
from effdsl.search.proxy import TrainConfig
from effdsl.search.trial import Job, available_cores, run_job, split_cores

MAX_RETRIES = 2  # restarts of a trial whose worker died: three attempts in all
_OUTCOME = "effdsl_outcome"  # the one metric a trial reports: its outcome, as JSON (exact floats)
_OBJECT_STORE = 256 * 1024 * 1024  # bytes; a trial's job and outcome are a few kilobytes


def _trainable(config: dict[str, Any]) -> None:
    """One trial, in a Ray worker: the job, on the CPUs Tune gave it."""
    split_cores(int(config["threads"]))
    fields = dict(config["job"])
    job = Job(**{**fields, "train": TrainConfig(**fields["train"])})
    tune.report({_OUTCOME: json.dumps(run_job(job))})


class _Round:
    """What the search's thread and Tune's thread share: the jobs to start, the futures to
    resolve, and whether to finish (or stop at once)."""

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self.lock = threading.Lock()
        self.pending: collections.deque[Job] = collections.deque()
        self.futures: dict[int, Future[dict[str, Any]]] = {}
        self.done = False
        self.stop = False


# Tune pickles (and copies) its searcher, callbacks and stopper with the experiment's state:
# they hold the key of their shared state, never the state (locks and futures) itself.
_ROUNDS: dict[str, _Round] = {}


class _Jobs(Searcher):  # type: ignore[misc, unused-ignore]  # Any without Ray's types
    """Tune's source of trials: the jobs the search submitted, in order."""

    def __init__(self, key: str) -> None:
        super().__init__()
        self.key = key

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict[str, Any],
                              **spec: Any) -> bool:
        return True

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:  # type: ignore[override, unused-ignore]
        shared = _ROUNDS.get(self.key)
        if shared is None:
            return Searcher.FINISHED
        with shared.lock:
            if shared.pending:
                return {"job": asdict(shared.pending.popleft()), "threads": shared.threads}
            return Searcher.FINISHED if shared.done else None  # None: nothing now, ask again later

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        pass


class _Outcomes(tune.Callback):  # type: ignore[misc, unused-ignore]  # Any without Ray's types
    """Resolves a job's future when its trial ends, or fails for good."""

    def __init__(self, key: str) -> None:
        self.key = key

    def _resolve(self, trial: Trial, outcome: dict[str, Any]) -> None:
        shared = _ROUNDS.get(self.key)
        if shared is None:
            return
        with shared.lock:
            future = shared.futures.pop(int(trial.config["job"]["trial"]), None)
        if future is not None and not future.done():
            future.set_result(outcome)

    def on_trial_complete(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        result = trial.last_result or {}
        if _OUTCOME not in result:  # stopped before it reported: the search is being interrupted
            return
        outcome = json.loads(result[_OUTCOME])
        outcome["retries"] = trial.num_failures
        self._resolve(trial, outcome)

    def on_trial_error(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        attempts = trial.num_failures
        self._resolve(trial, {"status": "crashed", "accuracy": None, "score": None, "latency_ms": None,
                              "error": f"the Ray worker died in each of {attempts} attempts "
                                       "(killed for memory, or its node lost?)",
                              "seconds": None, "retries": max(0, attempts - 1)})


class _Stop(tune.Stopper):  # type: ignore[misc, unused-ignore]  # Any without Ray's types
    """Stops every trial when the search is interrupted."""

    def __init__(self, key: str) -> None:
        self.key = key

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        return False

    def stop_all(self) -> bool:
        shared = _ROUNDS.get(self.key)
        return shared is None or shared.stop


def _quiet() -> None:
    """Ray and Tune write nothing to the terminal but errors; Tune writes no result files."""
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_WARN_INSUFFICENT_RESOURCE_THRESHOLD_S", "600")
    os.environ.setdefault("TUNE_PRINT_ALL_TRIAL_ERRORS", "0")  # a worker that died is in its record (retries)
    for name in ("ray", "ray.tune", "ray.train", "ray.air", "ray.data"):
        logging.getLogger(name).setLevel(logging.ERROR)


class RayExecutor:
    """Trials as Ray Tune trials, ``workers`` at a time (``--executor ray``)."""

    def __init__(self, workers: int, address: str | None = None, device: str = "auto",
                 max_retries: int = MAX_RETRIES):
        self.workers = workers
        self.address = address
        self.device = device
        self.max_retries = max_retries
        self.threads = 1
        self.gpus = 0.0
        self.description = ""
        self.started_in: float | None = None  # seconds it took to start a local Ray
        self._owned = False  # Ray was started here, and is stopped here
        self._folder: Path | None = None
        self._key = f"{os.getpid()}-{id(self)}-{time.monotonic_ns()}"
        self._shared: _Round | None = None
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None

    # ------------------------------------------------------------------ starting and stopping

    def __enter__(self) -> RayExecutor:
        _quiet()
        self._folder = Path(tempfile.mkdtemp(prefix="effdsl-ray-"))
        try:
            self._connect()
            self._size()
            self._shared = _ROUNDS[self._key] = _Round(self.threads)
            self._thread = threading.Thread(target=self._fit, name="effdsl-ray-tune", daemon=True)
            self._thread.start()
        except BaseException:
            self._disconnect()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close(cancel=exc[0] is not None)

    def _connect(self) -> None:
        if ray.is_initialized():  # a caller's own Ray session (the tests share one): use it, leave it
            self.description = "the Ray session of this process"
            return
        assert self._folder is not None
        started = time.perf_counter()
        try:
            if self.address is None:
                ray.init(num_cpus=available_cores(), include_dashboard=False, log_to_driver=False,
                         logging_level=logging.ERROR, object_store_memory=_OBJECT_STORE,
                         _temp_dir=str(self._folder / "ray"),
                         runtime_env={"env_vars": {"PYTHONPATH": _python_path()}})
            else:
                ray.init(address=self.address, log_to_driver=False, logging_level=logging.ERROR)
        except Exception as err:  # ConnectionError, a wrong address, a Ray of another version ...
            where = f"the Ray cluster at '{self.address}'" if self.address else "a local Ray"
            raise EffdslError(Diagnostic(
                "E620", f"cannot start the trials on {where}: {str(err).strip().splitlines()[0][:300]}", None,
                "start a head node with 'ray start --head' and pass the address it prints (or 'auto' on one of "
                "its nodes); see docs/distributed.md" if self.address else
                "see docs/distributed.md")) from None
        self._owned = True
        self.started_in = time.perf_counter() - started
        self.description = f"Ray at {self.address}" if self.address else "a local Ray"

    def _size(self) -> None:
        """CPUs (torch threads) and GPUs per trial, from what the cluster has."""
        total: dict[str, float] = ray.cluster_resources()  # type: ignore[no-untyped-call, unused-ignore]
        nodes: list[dict[str, Any]] = ray.nodes()  # type: ignore[no-untyped-call, unused-ignore]
        cpus = [float(node.get("Resources", {}).get("CPU", 0)) for node in nodes if node.get("Alive")]
        largest = int(max(cpus, default=total.get("CPU", 1)))
        self.threads = max(1, min(largest, int(total.get("CPU", 1)) // self.workers))
        gpus = float(total.get("GPU", 0))
        if self.device == "cuda" and gpus < 1:
            raise EffdslError(Diagnostic(
                "E620", f"--device cuda, but {self.description} has no GPU", None,
                "attach a node with a GPU, or use --device auto (a GPU when there is one)"))
        if self.device == "cuda":
            self.gpus = 1.0
        elif self.device == "auto" and gpus > 0:
            self.gpus = min(1.0, gpus / self.workers)

    def _fit(self) -> None:
        """The Tune experiment, in its own thread until the search closes it."""
        assert self._folder is not None and self._shared is not None
        shared = self._shared
        resources = {"cpu": self.threads, "gpu": self.gpus}
        try:
            tuner = tune.Tuner(
                tune.with_resources(_trainable, resources),
                tune_config=tune.TuneConfig(search_alg=_Jobs(self._key), num_samples=-1, reuse_actors=True),
                run_config=tune.RunConfig(
                    name="effdsl", storage_path=str(self._folder / "tune"), verbose=0, stop=_Stop(self._key),
                    callbacks=[_Outcomes(self._key)],
                    failure_config=tune.FailureConfig(max_failures=self.max_retries)))
            tuner.fit()
        except BaseException as err:  # pragma: no cover - Tune itself broke
            self._failure = err
        failure = self._failure or InternalError("search", "the Ray Tune experiment ended before its trials")
        with shared.lock:
            left = list(shared.futures.values())
            shared.futures.clear()
        for future in left:
            if not future.done():
                future.set_exception(failure)

    def close(self, cancel: bool = False) -> None:
        """End the experiment (stopping the trials in flight if ``cancel``) and Ray if it was started here."""
        if self._shared is not None:
            with self._shared.lock:
                self._shared.done = True
                if cancel:
                    self._shared.pending.clear()
                    self._shared.stop = True
        if self._thread is not None:
            self._thread.join(timeout=60)
            self._thread = None
        self._shared = None
        _ROUNDS.pop(self._key, None)
        self._disconnect()

    def _disconnect(self) -> None:
        if self._owned:
            ray.shutdown()
            self._owned = False
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None

    # ------------------------------------------------------------------ trials

    def run(self, jobs: list[Job]) -> list[Future[dict[str, Any]]]:
        """Start ``jobs``; their futures, in the same order."""
        assert self._shared is not None, "use the executor in a with block"
        futures: list[Future[dict[str, Any]]] = []
        with self._shared.lock:
            for job in jobs:
                future: Future[dict[str, Any]] = Future()
                self._shared.futures[job.trial] = future
                futures.append(future)
                self._shared.pending.append(job)
        return futures

    def outcome(self, future: Future[dict[str, Any]], job: Job) -> dict[str, Any]:
        """The outcome of a job (Tune has already retried it if its worker died)."""
        return future.result()


def _python_path() -> str:
    """The workers of a local Ray import this effdsl, whatever the current folder."""
    here = str(Path(__file__).resolve().parent.parent.parent)
    return os.pathsep.join([here, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))])
