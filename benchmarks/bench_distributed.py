"""The Ray executor against the local one, printed as the table of docs/distributed.md.

    python benchmarks/bench_distributed.py               # 8 zero-cost trials, 2 workers, 2 repeats
    python benchmarks/bench_distributed.py --trials 16 --repeats 3

1. Ray's start-up: ``ray.init`` of a local Ray sized to the machine (no dashboard), and
   its shutdown, as ``--executor ray`` does them;
2. a search's wall time: ``--trials`` zero-cost trials of a small space at 16 px
   (random strategy, ``--workers``), on the local executor and on Ray, run in turn
   ``--repeats`` times; and the records of the two compared (they must be equal but for
   the times);
3. where the time goes: starting each executor, its first round of ``--workers`` trials
   (the workers import torch), and each later round.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from common import cpu_name  # noqa: E402

from effdsl.search.executor import available_cores  # noqa: E402
from effdsl.search.reward import make_target  # noqa: E402
from effdsl.search.run import SearchOptions, run_search  # noqa: E402

from test_search import SMALL_SPACE  # noqa: E402


def ray_start_up(repeats: int) -> tuple[float, float]:
    """Median seconds of a local ray.init and of its shutdown."""
    import ray

    starts, stops = [], []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory(prefix="effdsl-ray-") as folder:
            began = time.perf_counter()
            ray.init(num_cpus=available_cores(), include_dashboard=False, log_to_driver=False,
                     logging_level=logging.ERROR, object_store_memory=256 * 1024 * 1024, _temp_dir=folder + "/ray")
            starts.append(time.perf_counter() - began)
            began = time.perf_counter()
            ray.shutdown()
            stops.append(time.perf_counter() - began)
    return statistics.median(starts), statistics.median(stops)


def search_seconds(executor: str, space: Path, out: Path, trials: int, workers: int) -> tuple[float, list[dict]]:
    options = SearchOptions(space=str(space), target=make_target("300K", None, None), out=out, strategy="random",
                            trials=trials, proxy="zero-cost", resolution=16, workers=workers, executor=executor,
                            seed=5)
    began = time.perf_counter()
    result = run_search(options)
    return time.perf_counter() - began, [{k: v for k, v in t.items() if k != "seconds"} for t in result.trials]


def round_seconds(executor: str, trials: list[dict], workers: int) -> tuple[float, float, float]:
    """Seconds to start the executor, for its first round of ``workers`` trials, and (median) for each
    later round, with the executor's interface directly (the trials of a search, again)."""
    from effdsl.search.executor import Job, make_executor

    jobs = [Job(trial=t["trial"], text=t["spec"], seed=t["seed"], proxy="zero-cost", data="digits", resolution=16)
            for t in trials]
    began = time.perf_counter()
    times = []
    with make_executor(executor, workers) as running:
        started = time.perf_counter() - began
        for first in range(0, len(jobs) - workers + 1, workers):
            began = time.perf_counter()
            batch = jobs[first:first + workers]
            for future, job in zip(running.run(batch), batch, strict=True):
                running.outcome(future, job)
            times.append(time.perf_counter() - began)
    return started, times[0], statistics.median(times[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    import ray

    print(f"machine: {cpu_name()}, {available_cores()} cores; Ray {ray.__version__}; "
          f"load average {os.getloadavg()[0]:.1f} at the start")
    start, stop = ray_start_up(args.repeats + 1)
    print(f"| Ray start-up (ray.init, local, {available_cores()} CPUs) | {start:.1f} s |")
    print(f"| Ray shutdown | {stop:.1f} s |")
    times: dict[str, list[float]] = {"local": [], "ray": []}
    with tempfile.TemporaryDirectory() as folder:
        space = Path(folder) / "small_space.eff"
        space.write_text(SMALL_SPACE, encoding="utf-8")
        found: dict[str, list[dict]] = {}
        for repeat in range(args.repeats):
            for executor in ("local", "ray"):
                seconds, trials = search_seconds(executor, space, Path(folder) / f"{executor}{repeat}", args.trials,
                                                 args.workers)
                times[executor].append(seconds)
                found.setdefault(executor, trials)
        same = json.dumps(found["local"]) == json.dumps(found["ray"])
    for executor, values in times.items():
        shown = ", ".join(f"{v:.1f}" for v in values)
        print(f"| {args.trials} zero-cost trials, --workers {args.workers}, --executor {executor} | "
              f"{statistics.median(values):.1f} s (runs: {shown}) |")
    for executor in ("local", "ray"):
        started, first, later = round_seconds(executor, found["local"], args.workers)
        print(f"| --executor {executor}: start {started:.1f} s, first round of {args.workers} trials {first:.2f} s, "
              f"each later round {later:.2f} s |")
    print(f"records equal but for the times: {same}; load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
