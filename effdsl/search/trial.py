"""One trial: the :class:`Job` a worker gets, and :func:`run_job`, what every executor runs.

:func:`run_job` builds the candidate from its plain spec, optionally measures its
latency, and scores it with the proxy; it never raises: a diverged loss, running out of
memory or any other failure comes back as the trial's status. :func:`split_cores` gives
torch its share of the cores in a worker, the same way in every executor (a trial's
numbers depend on its thread count).
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from effdsl.search.proxy import TrainConfig, TrialFailed, ZeroCost

Proxy = Literal["train", "zero-cost"]

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
    phi: float | None = None      # the member of ``text``'s family to build (compound scaling); None: the baseline


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
