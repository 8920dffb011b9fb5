"""The compound-scaling grid search: find alpha, beta and gamma for a baseline.

Tan and Le (2019), section 3.3: fix phi = 1, try every (alpha, beta, gamma) of a small
grid under alpha x beta^2 x gamma^2 ~= 2, and keep the best. :func:`run_grid` does that
for a spec: every grid point within the tolerance (:mod:`effdsl.scaling.grid`) becomes a
candidate; the candidate is the spec with those coefficients, compiled at ``phi`` with
the spec's own rounding rules (channels, repeats, and the resolution: the spec's rule on
base x gamma^phi) and the data's input channels and classes. Candidates that round to
the same network are evaluated once: the later ones point at the first (``same_as``).
Each network is evaluated as a search trial is (:func:`~effdsl.search.executor.run_job`:
the same proxies, data and training), all with the grid's ``--seed``, so that the
candidates differ only by their architecture.

The folder holds ``grid.jsonl`` (one line per candidate, in grid order, each written
and flushed before the next), ``grid.json`` (the options that decide the candidates and
their outcomes; ``--resume`` continues only with the same ones) and the reports.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

from effdsl.api import analyze_source, compile_network, load_source
from effdsl.diagnostics import Diagnostic, EffdslError
from effdsl.language.format import format_spec
from effdsl.language.source import Source
from effdsl.language.spec import Network
from effdsl.passes.scale import architecture
from effdsl.scaling.grid import MAX_GRID_POINTS, Coefficients, axis, decimal_text, exact, grid_points
from effdsl.scaling.members import Member
from effdsl.search import records
from effdsl.search.data import shape_of
from effdsl.search.executor import Job, Proxy, make_executor
from effdsl.search.grid_report import quality, write_reports
from effdsl.search.proxy import TrainConfig, ZeroCost, cuda_available, proxy_identity
from effdsl.search.run import require_packages

GRID = "grid.jsonl"
SETTINGS = "grid.json"
MAX_CANDIDATES = 400  # candidates a grid may have; each is a trial (a short training)
MAX_PHI = 4.0         # the grid is searched at a small phi (the paper: 1)

# The fields every candidate line has (docs/grid.md lists them).
FIELDS = ("candidate", "alpha", "beta", "gamma", "product", "phi", "width_mult", "depth_mult", "resolution",
          "params", "macs", "status", "accuracy", "score", "seconds", "seed", "same_as", "key", "spec", "error")


@dataclass(frozen=True)
class GridOptions:
    """Everything ``effdsl grid`` takes (the coefficients' settings as exact decimals)."""

    spec: str
    out: Path
    phi: float = 1.0
    target: Fraction = Fraction(2)
    tolerance: Fraction = Fraction(1, 20)
    step: Fraction = Fraction(1, 20)
    max_coeff: Fraction = Fraction(2)
    proxy: Proxy = "train"
    zero_cost: ZeroCost = "naswot"
    epochs: int = 1
    data: str = "digits"
    workers: int = 1
    executor: str = "local"
    address: str | None = None
    seed: int = 0
    resume: bool = False
    device: str = "auto"
    train: TrainConfig = field(default_factory=TrainConfig)

    @property
    def recipe(self) -> TrainConfig:
        return replace(self.train, epochs=self.epochs)

    def identity(self, source: Source, network: Network) -> dict[str, Any]:
        """The options that decide the candidates and their outcomes (grid.json).

        --workers, --executor and --address only say where the trials run: a grid may be
        resumed with others."""
        found: dict[str, Any] = {
            "spec": network.name,
            "spec_sha256": hashlib.sha256(source.text.encode("utf-8")).hexdigest(),
            "phi": self.phi,
            "target": decimal_text(self.target),
            "tolerance": decimal_text(self.tolerance),
            "step": decimal_text(self.step),
            "max": decimal_text(self.max_coeff),
            "proxy": self.proxy,
            "data": self.data,
            "seed": self.seed,
            "device": self.device,
        }
        return found | proxy_identity(self.proxy, self.recipe, self.train != TrainConfig(), self.zero_cost)


@dataclass
class Candidate:
    """One grid point, compiled: its network's cost and the key that tells equal networks apart."""

    index: int
    point: Coefficients
    text: str
    key: str
    params: int | None
    macs: int | None
    width_mult: float | None
    depth_mult: float | None
    resolution: int | None
    error: str | None = None  # the network cannot be built (too large): recorded, not evaluated


@dataclass
class GridResult:
    folder: Path
    spec: str
    options: GridOptions
    records: list[dict[str, Any]]
    best: dict[str, Any] | None = None
    candidates: int = 0
    networks: int = 0
    resumed: int = 0
    seconds: float = 0.0
    files: list[Path] = field(default_factory=list)


@dataclass
class GridEvents:
    """What the caller hears: the start (candidates, networks to evaluate, recorded) and each candidate."""

    start: Callable[[int, int, int], None] = lambda candidates, networks, done: None
    candidate: Callable[[dict[str, Any], dict[str, Any] | None, bool], None] = lambda record, best, replayed: None


def check_options(options: GridOptions) -> list[Coefficients]:
    """The grid's points, after checking every option (E607) and the grid's size (E610, E611)."""
    _check_settings(options)
    make_executor(options.executor, options.workers, options.address, options.device)  # E607, E620: not started
    return _points(options)


def _check_settings(options: GridOptions) -> None:
    """E607 for every setting out of range, together."""
    problems = []
    if not (0 < options.phi <= MAX_PHI and math.isfinite(options.phi)):
        problems.append(f"--phi must be greater than 0 and at most {MAX_PHI:g}, got {options.phi:g}")
    if not options.target > 1:
        problems.append(f"--target must be greater than 1 (the coefficients are at least 1), "
                        f"got {decimal_text(options.target)}")
    if not 0 <= options.tolerance < 1:
        problems.append(f"--tolerance must be at least 0 and below 1, got {_decimal(options.tolerance)}")
    if not options.step > 0:
        problems.append(f"--step must be greater than 0, got {_decimal(options.step)}")
    if not options.max_coeff > 1:
        problems.append(f"--max must be greater than 1, got {_decimal(options.max_coeff)}")
    if options.epochs < 1:
        problems.append(f"--epochs must be at least 1, got {options.epochs}")
    if options.device == "cuda" and not cuda_available():
        problems.append("--device cuda, but torch sees no CUDA device (--device auto uses one when there is)")
    if problems:
        raise EffdslError([Diagnostic("E607", p) for p in problems])


def _points(options: GridOptions) -> list[Coefficients]:
    """The grid points within the tolerance; E610 for too many, E611 for none."""
    values = len(axis(options.step, options.max_coeff))
    if values**3 > MAX_GRID_POINTS:
        raise EffdslError(Diagnostic(
            "E610", f"the grid has {values:,} values per coefficient ({values**3:,} points); "
                    f"at most {MAX_GRID_POINTS:,} points are looked at", None,
            "use a larger --step or a smaller --max"))
    points = []
    for point in grid_points(options.target, options.tolerance, options.step, options.max_coeff):
        points.append(point)
        if len(points) > MAX_CANDIDATES:
            raise EffdslError(Diagnostic(
                "E610", f"more than {MAX_CANDIDATES} grid points lie within the tolerance; each would be a trial",
                None, "use a larger --step or a smaller --tolerance (the paper: --step 0.05 --tolerance 0.05, "
                      "109 candidates)"))
    if not points:
        raise EffdslError(Diagnostic(
            "E611", f"no grid point has alpha x beta^2 x gamma^2 within {_decimal(options.tolerance)} x "
                    f"{_decimal(options.target)} (step {_decimal(options.step)}, largest coefficient "
                    f"{_decimal(options.max_coeff)})", None,
            "use a larger --tolerance, a smaller --step or a larger --max"))
    return points


def _decimal(value: Fraction) -> str:
    try:
        return decimal_text(value)
    except ValueError:
        return f"{float(value):g}"


def candidate_network(network: Network, point: Coefficients, in_ch: int, classes: int) -> Network:
    """``network`` with the point's coefficients and the data's input channels and classes."""
    scaling = network.scaling.model_copy(update=dict(zip(("alpha", "beta", "gamma"), point.as_floats(), strict=True)))
    return network.model_copy(update={"scaling": scaling, "in_ch": in_ch, "classes": classes})


def compile_candidate(network: Network, index: int, point: Coefficients, phi: float, in_ch: int,
                      classes: int) -> Candidate:
    """The candidate at ``phi``: the plain spec a worker builds, its cost and its key (analytic, no weights)."""
    net = candidate_network(network, point, in_ch, classes)
    alpha, beta, gamma = (decimal_text(v) for v in (point.alpha, point.beta, point.gamma))
    header = (f"# Candidate {index} of a compound-scaling grid of {network.name}: alpha {alpha}, beta {beta}, "
              f"gamma {gamma}, evaluated at phi {phi:g}.\n")
    text = header + format_spec(net)
    try:
        compiled = compile_network(net, Member(phi=phi))
    except EffdslError as err:
        first = err.diagnostics[0]
        return Candidate(index, point, text, f"error:{index}", None, None, None, None, None,
                         f"{first.code}: {first.message}")
    summary = compiled.summary
    return Candidate(index, point, text, json.dumps(architecture(compiled.graph.plan), separators=(",", ":")),
                     summary.params, summary.macs, summary.width_mult, summary.depth_mult, summary.resolution)


def prepare(folder: Path, identity: dict[str, Any], resume: bool) -> list[dict[str, Any]]:
    """Create or reopen the grid folder; the candidates already recorded (E609)."""
    settings = folder / SETTINGS
    if folder.exists() and not folder.is_dir():
        raise EffdslError(Diagnostic("E609", f"--out '{folder}' is a file, not a folder"))
    done = records.read_trials(folder, GRID, "candidate") if folder.exists() else []
    if not resume or not settings.exists():
        if done or settings.exists() or (folder / records.TRIALS).exists():
            held = f"a grid ({len(done)} candidate{'s' if len(done) != 1 else ''} recorded)" \
                if settings.exists() or done else "a search"
            if resume and done:
                raise EffdslError(Diagnostic("E609", f"'{folder}' has candidates but no {SETTINGS}; "
                                                     "it cannot be resumed"))
            raise EffdslError(Diagnostic("E609", f"'{folder}' already holds {held}", None,
                                         "continue a grid with --resume, or choose another --out folder"))
        folder.mkdir(parents=True, exist_ok=True)
        records.write_json(settings, identity)
        return []
    try:
        before = json.loads(settings.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise EffdslError(Diagnostic("E609", f"cannot read '{settings}': {exc}")) from None
    changed = [k for k in sorted(set(before) | set(identity)) if before.get(k) != identity.get(k)]
    if changed:
        shown = "; ".join(f"{k}: {json.dumps(before.get(k))[:40]} then, {json.dumps(identity.get(k))[:40]} now"
                          for k in changed[:4])
        raise EffdslError(Diagnostic(
            "E609", f"--resume needs the options of the grid in '{folder}': {shown}", None,
            "only --workers, --executor, --address and --write may differ; start a new grid in another folder"))
    return done


def run_grid(options: GridOptions, events: GridEvents | None = None) -> GridResult:
    """Run (or resume) a grid; write grid.jsonl and the reports in ``options.out``.

    Interrupted (Ctrl-C), it writes the reports of the candidates recorded so far before
    passing the interruption on.
    """
    events = events or GridEvents()
    started = time.perf_counter()
    require_packages(options.data, "grid")
    points = check_options(options)
    source = load_source(options.spec)
    network = analyze_source(source)
    if network.is_space:
        raise EffdslError(Diagnostic("E605", f"'{network.name}' is a search space; the grid scales one network",
                                     network.span, "pick a member first (effdsl search, or effdsl space --sample)")
                          ).with_source(source.text, source.filename)
    shape = shape_of(options.data)
    candidates = [compile_candidate(network, i, point, options.phi, shape.in_ch, shape.classes)
                  for i, point in enumerate(points)]
    recorded = prepare(options.out, options.identity(source, network), options.resume)
    result = GridResult(options.out, network.name, options, [], candidates=len(candidates), resumed=len(recorded))
    first: dict[str, int] = {}
    for c in candidates:
        if c.error is None:
            first.setdefault(c.key, c.index)
    result.networks = len(first)
    events.start(len(candidates), len(first), min(len(recorded), len(candidates)))
    try:
        _loop(options, candidates, first, recorded, result, events)
    except BaseException as stop:
        # Ctrl-C (KeyboardInterrupt, or the CLI's own interruption, also a BaseException):
        # the reports of what is recorded, then the interruption goes on
        if not isinstance(stop, Exception):
            result.seconds = time.perf_counter() - started
            result.files = _finish(result)
        raise
    result.seconds = time.perf_counter() - started
    result.files = _finish(result)
    return result


def _loop(options: GridOptions, candidates: list[Candidate], first: dict[str, int], recorded: list[dict[str, Any]],
          result: GridResult, events: GridEvents) -> None:
    """Start every network not recorded yet, then record the candidates in grid order."""
    for c in candidates[:len(recorded)]:  # before anything runs: the record must be this grid's (E609)
        _replayed(recorded[c.index], c, options)
    jobs = {c.index: _job(options, c) for c in candidates
            if c.error is None and first[c.key] == c.index and c.index >= len(recorded)}
    with make_executor(options.executor, options.workers, options.address, options.device) as executor:
        futures = dict(zip(jobs, executor.run(list(jobs.values())), strict=True))
        by_index: dict[int, dict[str, Any]] = {}
        for c in candidates:
            if c.index < len(recorded):
                record = _replayed(recorded[c.index], c, options)
            else:
                if c.error is not None:
                    outcome = {"status": "too_large", "accuracy": None, "score": None, "seconds": 0.0,
                               "error": c.error}
                elif first[c.key] != c.index:
                    original = by_index[first[c.key]]
                    outcome = {k: original[k] for k in ("status", "accuracy", "score", "error")}
                    outcome["seconds"] = 0.0
                else:
                    outcome = executor.outcome(futures[c.index], jobs[c.index])
                record = _record(c, options, outcome, None if first.get(c.key, c.index) == c.index
                                 else first[c.key])
                records.append_trial(options.out, record, GRID)
            by_index[c.index] = record
            result.records.append(record)
            if record["status"] == "ok" and _better(record, result.best):
                result.best = record
            events.candidate(record, result.best, c.index < len(recorded))


def _better(record: dict[str, Any], best: dict[str, Any] | None) -> bool:
    """Higher quality wins; at equal quality the cheaper network, then the earlier candidate."""
    if best is None:
        return True
    mine, theirs = quality(record), quality(best)
    if mine is None:
        return False
    if theirs is None or mine != theirs:
        return theirs is None or mine > theirs
    return bool(record["macs"] < best["macs"])


def _replayed(record: dict[str, Any], candidate: Candidate, options: GridOptions) -> dict[str, Any]:
    """A recorded candidate, which must be the grid point this grid has at its place (E609)."""
    if (record.get("alpha"), record.get("beta"), record.get("gamma")) != candidate.point.as_floats() \
            or record.get("key") != candidate.key:
        raise EffdslError(Diagnostic(
            "E609", f"candidate {record.get('candidate')} in '{options.out}' is not the network this grid has "
                    "there; the spec or the options have changed", None, "start a new grid in another folder"))
    return record


def _job(options: GridOptions, candidate: Candidate) -> Job:
    assert candidate.resolution is not None
    return Job(trial=candidate.index, text=candidate.text, seed=options.seed, proxy=options.proxy,
               data=options.data, resolution=candidate.resolution, zero_cost=options.zero_cost,
               train=options.recipe, device=options.device, phi=options.phi)


def _record(c: Candidate, options: GridOptions, outcome: dict[str, Any], same_as: int | None) -> dict[str, Any]:
    alpha, beta, gamma = c.point.as_floats()
    return {
        "candidate": c.index,
        "alpha": alpha,
        "beta": beta,
        "gamma": gamma,
        "product": round(float(c.point.product), 6),
        "phi": options.phi,
        "width_mult": c.width_mult,
        "depth_mult": c.depth_mult,
        "resolution": c.resolution,
        "params": c.params,
        "macs": c.macs,
        "status": outcome["status"],
        "accuracy": outcome["accuracy"],
        "score": outcome["score"],
        "seconds": outcome["seconds"],
        "seed": options.seed,
        "same_as": same_as,
        "key": c.key,
        "spec": c.text,
        "error": outcome.get("error"),
    }


def best_coefficients(result: GridResult) -> dict[str, str] | None:
    """The best candidate's coefficients as the shortest exact decimals (``{"alpha": "1.2", ...}``)."""
    best = result.best
    if best is None:
        return None
    return {name: decimal_text(exact(best[name])) for name in ("alpha", "beta", "gamma")}


def _finish(result: GridResult) -> list[Path]:
    return [*write_reports(result), result.folder / GRID]
