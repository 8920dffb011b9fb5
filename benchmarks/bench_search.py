"""Search speed and proxy quality, written to docs/search_benchmarks.md.

    python benchmarks/bench_search.py              # everything (about 20 minutes on 2 cores)
    python benchmarks/bench_search.py --no-tau     # speed only (a few minutes)
    python benchmarks/bench_search.py --no-write   # print only

1. analytic screening: members of efficientnet_space sampled and costed per second (the
   search's screening step), against compiling each one;
2. zero-cost scoring: seconds per trial of a search (compile, build, one batch), NASWOT
   and synflow;
3. trained trials per hour: the issue's search (efficientnet_space on digits at 32 px,
   one epoch, evolution, seed 1) with --workers 1 and 2;
4. how far the proxies can be trusted: Kendall's tau between each proxy and the held-out
   accuracy after a longer training (3 epochs), on --tau N members of efficientnet_space
   sampled with seed 0 (the raw numbers go to benchmarks/search_tau.json).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, TypedDict

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common import cpu_name  # noqa: E402

from effdsl.search.cost import CostModel  # noqa: E402
from effdsl.search.executor import Job, LocalExecutor, available_cores  # noqa: E402
from effdsl.search.proxy import TrainConfig  # noqa: E402
from effdsl.search.space import Picks, Space  # noqa: E402


class Inputs(TypedDict):
    in_ch: int
    resolution: int
    classes: int


INPUTS: Inputs = {"in_ch": 1, "resolution": 32, "classes": 10}
REFERENCE_EPOCHS = 3


def _machine() -> str:
    """As common.machine, with the cores this process may use (what the search's workers split)."""
    import torch

    return (f"{cpu_name()}, {available_cores()} cores, {platform.system()} {platform.machine()}, "
            f"Python {platform.python_version()}, torch {torch.__version__}, "
            f"load average {os.getloadavg()[0]:.1f} at the start")


def bench_screening(seconds: float = 3.0) -> dict[str, Any]:
    import effdsl

    space = Space.load("efficientnet_space")
    model = CostModel(space, **INPUTS)
    rng = random.Random(0)
    start, n = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        model.cost(space.sample(rng))
        n += 1
    costed = n / (time.perf_counter() - start)
    start, k = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        space.key(space.sample(rng))
        k += 1
    keyed = k / (time.perf_counter() - start)
    texts = [space.text(space.sample(rng), **INPUTS) for _ in range(20)]
    start = time.perf_counter()
    for text in texts:
        effdsl.compile_spec(text)
    compiled = len(texts) / (time.perf_counter() - start)
    start = time.perf_counter()
    extremes = CostModel(space, **INPUTS).extremes()  # a fresh model: every stage costed once, as `effdsl space` does
    dp_ms = (time.perf_counter() - start) * 1000
    return {"costed_per_s": costed, "keyed_per_s": keyed, "compiled_per_s": compiled, "extremes_ms": dp_ms,
            "space_size": space.size, "min_macs": extremes["min_macs"].cost.macs,
            "max_macs": extremes["max_macs"].cost.macs}


def bench_zero_cost(trials: int = 10) -> dict[str, Any]:
    """Median seconds of a zero-cost trial in a search (compile, build, score; in a worker)."""
    from effdsl.search.reward import make_target
    from effdsl.search.run import SearchOptions, run_search

    found = {}
    for kind in ("naswot", "synflow"):
        with tempfile.TemporaryDirectory() as folder:
            options = SearchOptions(space="efficientnet_space", target=make_target("20M", None, None),
                                    out=Path(folder) / "search", strategy="random", trials=trials,
                                    proxy="zero-cost", zero_cost=kind, resolution=32, seed=1, device="cpu")
            result = run_search(options)
        found[kind] = statistics.median(t["seconds"] for t in result.trials)
    return found


def bench_trained(workers: int, trials: int = 6) -> dict[str, Any]:
    from effdsl.search.reward import make_target
    from effdsl.search.run import SearchOptions, run_search

    with tempfile.TemporaryDirectory() as folder:
        options = SearchOptions(space="efficientnet_space", target=make_target("20M", None, None),
                                out=Path(folder) / "search", strategy="evolution", trials=trials, proxy="train",
                                epochs=1, data="digits", resolution=32, workers=workers, seed=1, device="cpu")
        start = time.perf_counter()
        result = run_search(options)
        seconds = time.perf_counter() - start
    accuracies = [t["accuracy"] for t in result.trials if t["accuracy"] is not None]
    return {"workers": workers, "trials": trials, "seconds": seconds, "per_hour": trials / seconds * 3600,
            "best_accuracy": max(accuracies), "mean_trial_s": statistics.mean(t["seconds"] for t in result.trials)}


def bench_tau(count: int, workers: int) -> dict[str, Any]:
    """Each proxy against the held-out accuracy after REFERENCE_EPOCHS epochs."""
    from scipy.stats import kendalltau

    space = Space.load("efficientnet_space")
    model = CostModel(space, **INPUTS)
    rng = random.Random(0)
    members: list[Picks] = []
    keys: set[str] = set()
    while len(members) < count:
        picks = space.sample(rng)
        if space.key(picks) not in keys:
            keys.add(space.key(picks))
            members.append(picks)
    texts = [space.text(p, f"m{i}", **INPUTS) for i, p in enumerate(members)]
    runs = {
        "reference": [Job(i, t, i, "train", "digits", 32, train=TrainConfig(epochs=REFERENCE_EPOCHS), device="cpu")
                      for i, t in enumerate(texts)],
        "train_1_epoch": [Job(i, t, i, "train", "digits", 32, train=TrainConfig(epochs=1), device="cpu")
                          for i, t in enumerate(texts)],
        "naswot": [Job(i, t, i, "zero-cost", "digits", 32, zero_cost="naswot", device="cpu")
                   for i, t in enumerate(texts)],
        "synflow": [Job(i, t, i, "zero-cost", "digits", 32, zero_cost="synflow", device="cpu")
                    for i, t in enumerate(texts)],
    }
    outcomes = {}
    with LocalExecutor(workers) as executor:
        for name, jobs in runs.items():
            start = time.perf_counter()
            outcomes[name] = [f.result() for f in executor.run(jobs)]
            print(f"  {name}: {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    reference = [o["accuracy"] for o in outcomes["reference"]]
    scores = {
        "train_1_epoch": [o["accuracy"] for o in outcomes["train_1_epoch"]],
        "naswot": [o["score"] for o in outcomes["naswot"]],
        "synflow": [o["score"] for o in outcomes["synflow"]],
        "params": [model.cost(p).params for p in members],
        "macs": [model.cost(p).macs for p in members],
    }
    taus = {}
    for name, values in scores.items():
        pairs = [(v, r) for v, r in zip(values, reference, strict=True) if v is not None and r is not None]
        tau = kendalltau([v for v, _ in pairs], [r for _, r in pairs])
        taus[name] = {"tau": float(tau.statistic), "p": float(tau.pvalue), "n": len(pairs)}
    raw = [{"member": i, "reference_accuracy": reference[i], **{k: v[i] for k, v in scores.items()},
            "choices": space.words(members[i])} for i in range(count)]
    (ROOT / "benchmarks" / "search_tau.json").write_text(json.dumps({"taus": taus, "members": raw}, indent=1) + "\n")
    return {"count": count, "taus": taus, "reference_range": (min(reference), max(reference)),
            "reference_epochs": REFERENCE_EPOCHS}


def render(machine: str, screening: dict[str, Any], zero: dict[str, Any], trained: list[dict[str, Any]],
           tau: dict[str, Any] | None) -> str:
    lines = [
        "# Search benchmarks",
        "",
        f"Measured by `python benchmarks/bench_search.py` on: {machine}.",
        "The machine is shared, so the load average is part of the result.",
        "",
        "| what | result | target |",
        "|---|---|---|",
        f"| analytic screening of efficientnet_space members at 32 px (sample + params + MACs) | "
        f"{screening['costed_per_s']:,.0f} candidates/s | >= 1,000/s |",
        f"| the same with the duplicate check (sample + architecture key) | {screening['keyed_per_s']:,.0f}/s | |",
        f"| compiling each member instead (`compile_spec`) | {screening['compiled_per_s']:,.0f}/s | |",
        f"| exact fewest and most MACs of the {screening['space_size']:,} members "
        f"(dynamic programming, a fresh model) | "
        f"{screening['extremes_ms']:.0f} ms ({screening['min_macs']:,} to {screening['max_macs']:,} MACs) | |",
        f"| zero-cost trial, NASWOT (compile + build + one batch of 64; median of 10) | {zero['naswot']:.2f} s | |",
        f"| zero-cost trial, synflow (median of 10) | {zero['synflow']:.2f} s | |",
    ]
    for run in trained:
        lines.append(f"| trained trials on digits at 32 px, 1 epoch, --workers {run['workers']} "
                     f"({run['trials']} trials, best {run['best_accuracy']:.1%}) | {run['per_hour']:,.0f} per hour "
                     f"({run['seconds']:.0f} s for {run['trials']}) | the issue's command: a few minutes |")
    if tau is not None:
        lines += [
            "",
            f"## How far a proxy can be trusted (Kendall's tau, {tau['count']} members)",
            "",
            f"{tau['count']} distinct members of efficientnet_space (seed 0), on digits at 32 px; the reference is "
            f"the held-out accuracy after {tau['reference_epochs']} epochs "
            f"({tau['reference_range'][0]:.1%} to {tau['reference_range'][1]:.1%}). Raw numbers: "
            "`benchmarks/search_tau.json`.",
            "",
            "| proxy | Kendall's tau | p-value |",
            "|---|---|---|",
        ]
        names = {"train_1_epoch": "train, 1 epoch (`--proxy train`)", "naswot": "NASWOT (`--proxy zero-cost`)",
                 "synflow": "synflow (`--zero-cost synflow`)", "params": "parameter count (no proxy)",
                 "macs": "MACs (no proxy)"}
        for key, label in names.items():
            found = tau["taus"][key]
            lines.append(f"| {label} | {found['tau']:+.2f} | {found['p']:.2g} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--no-tau", action="store_true")
    parser.add_argument("--tau", type=int, default=50, help="members for the Kendall tau (at least 50)")
    args = parser.parse_args()
    machine = _machine()
    screening = bench_screening()
    print(screening, file=sys.stderr)
    zero = bench_zero_cost()
    print(zero, file=sys.stderr)
    trained = [bench_trained(workers) for workers in (1, 2)]
    print(trained, file=sys.stderr)
    tau = None if args.no_tau else bench_tau(args.tau, workers=available_cores())
    text = render(machine, screening, zero, trained, tau)
    sys.stdout.write(text)
    if not args.no_write:
        page = ROOT / "docs" / "search_benchmarks.md"
        if tau is None and page.exists() and "## How far" in page.read_text():
            kept = page.read_text().split("\n## How far", 1)[1]
            text = text + "\n## How far" + kept
        page.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
