"""The search loop: propose, screen, deduplicate, run, record; resume by replaying.

Trials are made in rounds of ``--workers``: the strategy proposes a round from the
trials finished before it, the round runs in parallel, and its trials are recorded in
order. A proposal costlier than the target's limit (by the analytic cost model, before
any weight exists) or equal to a member already tried is skipped and another is drawn;
neither counts as a trial. Everything random comes from one generator seeded with
``--seed`` (and each trial's training from a seed derived from it), so a search is a
function of its options: the same options give the same trials in the same order.

``--resume`` replays the search from the start: each proposal that was already
recorded takes its recorded outcome instead of running again, which restores the
strategy's state exactly, and the search goes on from the first trial not recorded.
"""

from __future__ import annotations

import hashlib
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from effdsl.api import compile_spec
from effdsl.diagnostics import Diagnostic, EffdslError, InternalError
from effdsl.search import records
from effdsl.search.cost import Cost, CostModel
from effdsl.search.data import shape_of
from effdsl.search.executor import Executor, Job, Proxy, make_executor
from effdsl.search.proxy import TrainConfig, ZeroCost, cuda_available, proxy_identity
from effdsl.search.reward import Target, over_limit, reward
from effdsl.search.space import Picks, Space, require_choices
from effdsl.search.strategy import MAX_ATTEMPTS, Evolution, RandomSearch, StrategyKind, make_strategy


@dataclass(frozen=True)
class SearchOptions:
    """Everything ``effdsl search`` takes."""

    space: str
    target: Target
    out: Path
    strategy: StrategyKind = "evolution"
    population: int = 8
    tournament: int = 3
    trials: int = 20
    proxy: Proxy = "train"
    zero_cost: ZeroCost = "naswot"
    epochs: int = 1
    data: str = "digits"
    resolution: int | None = None
    workers: int = 1
    executor: str = "local"
    address: str | None = None  # the Ray cluster of --executor ray (None: a local Ray)
    seed: int = 0
    resume: bool = False
    device: str = "auto"
    train: TrainConfig = field(default_factory=TrainConfig)  # the train proxy's recipe; epochs from `epochs`

    @property
    def recipe(self) -> TrainConfig:
        return replace(self.train, epochs=self.epochs)

    def identity(self, space: Space, resolution: int) -> dict[str, Any]:
        """The options that decide the trials (search.json); --trials is not one of them, nor
        --executor and --address: a search started on one executor resumes on another."""
        found = {
            "space": space.name,
            "space_sha256": hashlib.sha256(space.source.text.encode("utf-8")).hexdigest(),
            "target": self.target.to_json(),
            "strategy": self.strategy,
            "proxy": self.proxy,
            "data": self.data,
            "resolution": resolution,
            "workers": self.workers,
            "seed": self.seed,
            "device": self.device,
        }
        if self.strategy == "evolution":
            found.update(population=self.population, tournament=self.tournament)
        return found | proxy_identity(self.proxy, self.recipe, self.train != TrainConfig(), self.zero_cost)


@dataclass
class Finished:
    """A recorded trial, as the strategy and the reports read it."""

    picks: Picks
    reward: float | None
    record: dict[str, Any]


@dataclass
class SearchResult:
    folder: Path
    trials: list[dict[str, Any]]
    best: dict[str, Any] | None
    target: Target
    screened: int = 0
    rejected: int = 0
    duplicates: int = 0
    exhausted: bool = False
    resumed: int = 0
    seconds: float = 0.0
    files: list[Path] = field(default_factory=list)
    space: str = ""
    options: SearchOptions | None = None


@dataclass
class Events:
    """What the caller hears: the start (trials asked, trials already recorded) and each trial
    (its record, the best so far, and whether it was replayed from the record of a resumed search)."""

    start: Callable[[int, int], None] = lambda total, done: None
    trial: Callable[[dict[str, Any], dict[str, Any] | None, bool], None] = lambda record, best, replayed: None


def trial_seed(seed: int, trial: int) -> int:
    """The training seed of one trial: fixed by the search's seed and the trial's number."""
    return random.Random(f"effdsl-search:{seed}:{trial}").getrandbits(31)


def run_search(options: SearchOptions, events: Events | None = None) -> SearchResult:
    """Run (or resume) a search; write trials.jsonl, best.eff and the reports in ``options.out``.

    Interrupted (KeyboardInterrupt), it writes best.eff and the reports of the trials
    finished so far before passing the interrupt on.
    """
    events = events or Events()
    started = time.perf_counter()
    require_packages(options.data)
    space = Space.load(options.space)
    require_choices(space)
    _check_options(options)
    executor = make_executor(options.executor, options.workers, options.address, options.device)
    shape = shape_of(options.data)
    resolution = options.resolution or space.net.resolution
    inputs = dict(in_ch=shape.in_ch, resolution=resolution, classes=shape.classes)
    space.check_inputs(**inputs)
    result: SearchResult | None = None
    try:
        with executor:  # Ray starts (or is reached) before anything is written
            recorded = records.prepare(options.out, options.identity(space, resolution), options.resume)
            result = SearchResult(options.out, [], None, options.target, resumed=len(recorded), space=space.name,
                                  options=options)
            events.start(options.trials, min(len(recorded), options.trials))
            _loop(options, space, CostModel(space, **inputs), inputs, recorded, result, events, executor)
    except BaseException as stop:
        # Ctrl-C (KeyboardInterrupt, or the CLI's own interruption, also a BaseException):
        # best.eff and the reports of the trials recorded, then the interruption goes on
        if result is not None and not isinstance(stop, Exception):
            result.seconds = time.perf_counter() - started
            result.files = _finish(result)
        raise
    result.seconds = time.perf_counter() - started
    result.files = _finish(result)
    return result


def _loop(options: SearchOptions, space: Space, model: CostModel, inputs: dict[str, int],
          recorded: list[dict[str, Any]], result: SearchResult, events: Events, executor: Executor) -> None:
    """Rounds of proposals until ``options.trials`` trials are recorded (or the space runs out)."""
    strategy = make_strategy(options.strategy, options.population, options.tournament)
    rng = random.Random(options.seed)
    history: list[Finished] = []
    keys: set[str] = set()
    while len(history) < options.trials and not result.exhausted:
        size = min(options.workers, options.trials - len(history))
        proposals = _propose(space, model, strategy, rng, history, keys, size, options.target, result)
        first = len(history)
        texts = [space.text(picks, f"{space.name}_t{first + i}", _comment(space, first + i, options), **inputs)
                 for i, (picks, _, _) in enumerate(proposals)]
        jobs = {first + i: _job(options, first + i, text, inputs["resolution"])
                for i, text in enumerate(texts) if first + i >= len(recorded)}
        futures = dict(zip(jobs, executor.run(list(jobs.values())), strict=True))
        for i, ((picks, key, cost), text) in enumerate(zip(proposals, texts, strict=True)):
            index = first + i
            if index < len(recorded):
                record = _replayed(recorded[index], key, options)
            else:
                outcome = executor.outcome(futures[index], jobs[index])
                record = _record(index, picks, key, cost, text, space, options, outcome)
                records.append_trial(options.out, record)
            history.append(Finished(picks, record["reward"], record))
            result.trials.append(record)
            better = result.best is None or (record["reward"] or -math.inf) > result.best["reward"]
            if record["reward"] is not None and better:
                result.best = record
                (options.out / records.BEST).write_text(record["spec"], encoding="utf-8")
            events.trial(record, result.best, index < len(recorded))


def _replayed(record: dict[str, Any], key: str, options: SearchOptions) -> dict[str, Any]:
    """A recorded trial, which must be the member the replay proposes (E609)."""
    if record.get("key") != key:
        raise EffdslError(Diagnostic(
            "E609", f"trial {record['trial']} in '{options.out}' is not the member this search proposes; "
                    "the space or the options have changed", None, "start a new search in another folder"))
    return record


def require_packages(data: str, command: str = "search") -> None:
    """E606 before anything starts: the workers need torch (and scikit-learn or torchvision for the data)."""
    import importlib.util

    needed = ["torch", "sklearn"] + (["torchvision"] if data != "digits" else [])
    missing = [name for name in needed if importlib.util.find_spec(name) is None]
    if missing:
        names = ", ".join("scikit-learn" if name == "sklearn" else name for name in missing)
        verb = "is" if len(missing) == 1 else "are"
        raise EffdslError(Diagnostic("E606", f"effdsl {command} needs {names}, which {verb} not installed", None,
                                     "pip install 'effdsl[search]'"))


def _check_options(options: SearchOptions) -> None:
    problems = []
    if options.trials < 1:
        problems.append(f"--trials must be at least 1, got {options.trials}")
    if options.workers < 1:
        problems.append(f"--workers must be at least 1, got {options.workers}")
    if options.epochs < 1:
        problems.append(f"--epochs must be at least 1, got {options.epochs}")
    if options.resolution is not None and options.resolution < 1:
        problems.append(f"--resolution must be at least 1, got {options.resolution}")
    # Asked for explicitly: fail now, not in every trial. Ray's trials may run elsewhere: the
    # Ray executor asks its cluster for GPUs instead.
    if options.device == "cuda" and options.executor == "local" and not cuda_available():
        problems.append("--device cuda, but torch sees no CUDA device (--device auto uses one when there is)")
    if problems:
        raise EffdslError([Diagnostic("E607", p) for p in problems])


def _comment(space: Space, index: int, options: SearchOptions) -> str:
    """The header of a candidate's spec: where it comes from and what it picked."""
    return f"Trial {index} of a search of {space.name} (seed {options.seed}), a plain member of the space."


def _propose(space: Space, model: CostModel, strategy: RandomSearch | Evolution, rng: random.Random,
             history: list[Finished], keys: set[str], size: int, target: Target,
             result: SearchResult) -> list[tuple[Picks, str, Cost]]:
    """Up to ``size`` new members within the limit (fewer when the space runs out)."""
    round_: list[tuple[Picks, str, Cost]] = []
    attempts = 0
    while len(round_) < size:
        if attempts >= MAX_ATTEMPTS:
            result.exhausted = True
            break
        attempts += 1
        picks = strategy.propose(space, rng, history)
        result.screened += 1
        cost = model.cost(picks)
        if target.kind != "latency" and over_limit(target, cost.macs if target.kind == "macs" else cost.params):
            result.rejected += 1
            continue
        key = space.key(picks)
        if key in keys:
            result.duplicates += 1
            continue
        keys.add(key)
        round_.append((picks, key, cost))
        attempts = 0
    return round_


def _job(options: SearchOptions, index: int, text: str, resolution: int) -> Job:
    target = options.target
    return Job(trial=index, text=text, seed=trial_seed(options.seed, index), proxy=options.proxy,
               data=options.data, resolution=resolution, zero_cost=options.zero_cost,
               train=options.recipe, device=options.device,
               latency=target.kind == "latency",
               latency_limit=target.value * target.limit if target.kind == "latency" else None)


def _record(index: int, picks: Picks, key: str, cost: Cost, text: str, space: Space, options: SearchOptions,
            outcome: dict[str, Any]) -> dict[str, Any]:
    target = options.target
    quality = outcome["score"]
    if outcome["status"] == "ok" and quality is not None and quality <= 0:
        # ACC x (cost / target)^w ranks costlier members higher when ACC is negative
        outcome = {**outcome, "status": "error", "error": f"the score {quality:g} is not positive; "
                                                          "the reward needs a positive quality"}
    ok = outcome["status"] == "ok"
    spent = {"macs": cost.macs, "params": cost.params, "latency": outcome.get("latency_ms")}[target.kind]
    value = reward(target, quality, spent) if ok and quality is not None and spent is not None else None
    return {
        "trial": index,
        "status": outcome["status"],
        "params": cost.params,
        "macs": cost.macs,
        "latency_ms": outcome.get("latency_ms"),
        "accuracy": outcome["accuracy"],
        "score": quality,
        "reward": value,
        "seconds": outcome["seconds"],
        "retries": outcome.get("retries", 0),
        "seed": trial_seed(options.seed, index),
        "key": key,
        "choices": space.words(picks),
        "spec": text,
        "error": outcome.get("error"),
    }


def _finish(result: SearchResult) -> list[Path]:
    """best.eff (checked against its record) and the reports."""
    from effdsl.search.report import write_reports

    written = []
    best = result.best
    if best is not None:
        path = result.folder / records.BEST
        path.write_text(best["spec"], encoding="utf-8")
        compiled = compile_spec(path)
        if (compiled.summary.params, compiled.summary.macs) != (best["params"], best["macs"]):
            raise InternalError("search", f"best.eff compiles to {compiled.summary.params:,} parameters and "
                                          f"{compiled.summary.macs:,} MACs, its trial recorded "
                                          f"{best['params']:,} and {best['macs']:,}")
        written.append(path)
    written += write_reports(result)
    written.append(result.folder / records.TRIALS)
    return written
