"""The search commands: ``effdsl space`` describes a search space and samples members;
``effdsl search`` searches it (:mod:`effdsl.search`). torch is imported only by the
search's workers, never by these commands' set-up.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from effdsl.cli.commands import app
from effdsl.cli.files import write_output
from effdsl.cli.reporting import reporting
from effdsl.cli.terminal import Interrupted, write_stdout
from effdsl.diagnostics import Diagnostic, EffdslError

if TYPE_CHECKING:
    from effdsl.search.run import Events, SearchResult

SpaceArg = Annotated[str, typer.Argument(
    help="A .eff search space, or the name of a built-in one (efficientnet_space).")]


@app.command("space")
def space_cmd(
    spec: SpaceArg,
    resolution: Annotated[int | None, typer.Option(
        "--resolution", help="Input resolution for the cost (default: the spec's).")] = None,
    num_classes: Annotated[int | None, typer.Option(
        "--num-classes", help="Classifier outputs (default: the spec's).")] = None,
    in_chans: Annotated[int | None, typer.Option("--in-chans", help="Input channels (default: the spec's).")] = None,
    sample: Annotated[int, typer.Option("--sample", help="Write N members, drawn uniformly, as plain specs.")] = 0,
    seed: Annotated[int, typer.Option("--seed", help="The seed of --sample.")] = 0,
    output: Annotated[Path | None, typer.Option(
        "-o", "--out", help="With --sample: write NAME_sI.eff files to this folder instead of printing them.")] = None,
) -> None:
    """Describe a search space: its size, its choices, and the params and MACs of its smallest and
    largest members (exact, analytic, no weights); --sample N writes members as plain specs."""
    from effdsl.search.space import Space
    from effdsl.search.summary import render_space, sample_members, summarize_space

    with reporting():
        space = Space.load(spec)
        for flag, value, least in (("--resolution", resolution, 1), ("--num-classes", num_classes, 1),
                                   ("--in-chans", in_chans, 1), ("--sample", sample, 0)):
            if value is not None and value < least:
                raise EffdslError(Diagnostic("E402", f"{flag} must be at least {least}, got {value}"))
        space.check_inputs(in_ch=in_chans or space.net.in_ch, resolution=resolution or space.net.resolution,
                           classes=num_classes or space.net.classes)
        if sample == 0:
            write_stdout(render_space(summarize_space(space, in_ch=in_chans, resolution=resolution,
                                                          classes=num_classes)))
            return
        members = sample_members(space, sample, seed)
        texts = [space.text(picks, f"{space.name}_s{i}",
                            f"Member {i} of {space.name} (effdsl space --sample {sample} --seed {seed})",
                            in_ch=in_chans, resolution=resolution, classes=num_classes)
                 for i, picks in enumerate(members)]
        if len(members) < sample:
            typer.echo(f"the space has {len(members)} distinct members; wrote them all", err=True)
        if output is None:
            write_stdout("\n".join(texts))
            return
        try:
            output.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise EffdslError(Diagnostic("E405", f"cannot make the folder '{output}': {exc.strerror or exc}", None,
                                         "check that its parent exists and is writable")) from None
        for i, text in enumerate(texts):
            path = output / f"{space.name}_s{i}.eff"
            write_output(path, text)
            typer.echo(f"wrote {path}", err=True)


class Strategy(StrEnum):
    random = "random"
    evolution = "evolution"


class Proxy(StrEnum):
    train = "train"
    zero_cost = "zero-cost"


class ZeroCost(StrEnum):
    naswot = "naswot"
    synflow = "synflow"


class Reward(StrEnum):
    mnasnet = "mnasnet"
    mnasnet_hard = "mnasnet-hard"


class Executor(StrEnum):
    local = "local"
    ray = "ray"


class Device(StrEnum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


@app.command("search")
def search_cmd(
    spec: SpaceArg,
    out: Annotated[Path, typer.Option(
        "--out", help="The search folder: trials.jsonl, best.eff, report.md, report.html.")],
    target_macs: Annotated[str | None, typer.Option("--target-macs", help="Target MACs, like 20M (K, M, G).")] = None,
    target_params: Annotated[str | None, typer.Option("--target-params", help="Target parameters, like 1M.")] = None,
    target_latency: Annotated[str | None, typer.Option(
        "--target-latency", help="Target latency in ms (batch 1, measured on this device).")] = None,
    reward: Annotated[Reward, typer.Option(
        "--reward", help="mnasnet: ACC x (cost/target)^w; mnasnet-hard: w = 0 up to the target, -1 above.")
    ] = Reward.mnasnet,
    w: Annotated[float, typer.Option("--w", help="The exponent of the soft reward (MnasNet: -0.07).")] = -0.07,
    limit: Annotated[float, typer.Option(
        "--limit", help="Reject candidates above this multiple of the target (analytically, before any weight "
                        "exists).")] = 2.0,
    strategy: Annotated[Strategy, typer.Option(
        "--strategy", help="random, or regularized evolution.")] = Strategy.evolution,
    population: Annotated[int, typer.Option(
        "--population", help="Evolution: the population (the youngest trials).")] = 8,
    tournament: Annotated[int, typer.Option("--tournament", help="Evolution: members drawn to pick a parent.")] = 3,
    trials: Annotated[int, typer.Option("--trials", help="Trials to finish (with --resume: in all).")] = 20,
    proxy: Annotated[Proxy, typer.Option(
        "--proxy", help="train (short training, held-out accuracy) or zero-cost (a training-free score on one "
                        "batch).")] = Proxy.train,
    zero_cost: Annotated[ZeroCost, typer.Option("--zero-cost", help="The zero-cost score.")] = ZeroCost.naswot,
    epochs: Annotated[int, typer.Option("--epochs", help="Epochs of the train proxy.")] = 1,
    data: Annotated[str, typer.Option(
        "--data", help="digits (scikit-learn's 8x8 digits), or a folder of class subfolders of images.")] = "digits",
    resolution: Annotated[int | None, typer.Option(
        "--resolution", help="Input resolution of the candidates (default: the space's).")] = None,
    workers: Annotated[int, typer.Option(
        "--workers", help="Trials run in parallel (processes; the cores are split).")] = 1,
    executor: Annotated[Executor, typer.Option(
        "--executor", help="Where trials run: local processes, or Ray Tune trials (pip install 'effdsl[ray]').")
    ] = Executor.local,
    address: Annotated[str | None, typer.Option(
        "--address", help="With --executor ray: the Ray cluster (host:port of its head, or auto); default: a "
                          "Ray started on this machine for the search.")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the proposals and of every trial's training.")] = 0,
    resume: Annotated[bool, typer.Option(
        "--resume", help="Continue the search in --out without redoing its trials.")] = False,
    device: Annotated[Device, typer.Option("--device", help="auto: CUDA when available.")] = Device.auto,
) -> None:
    """Search a space for the best member under a cost target (MnasNet's reward); best.eff goes
    straight into 'effdsl compile best.eff --phi N'."""
    from effdsl.search.reward import make_target
    from effdsl.search.run import SearchOptions, run_search

    try:
        with reporting():
            goal = make_target(target_macs, target_params, target_latency, reward.value, w, limit)
            options = SearchOptions(
                space=spec, target=goal, out=out, strategy=strategy.value, population=population,
                tournament=tournament, trials=trials, proxy=proxy.value, zero_cost=zero_cost.value, epochs=epochs,
                data=data, resolution=resolution, workers=workers, executor=executor.value, address=address, seed=seed,
                resume=resume, device=device.value)
            with _search_progress() as events:
                result = run_search(options, events)
    except (KeyboardInterrupt, Interrupted):  # the CLI then says 'interrupted' and exits 130 (terminal.run)
        typer.echo(f"the finished trials are in {out / 'trials.jsonl'}: continue with --resume", err=True)
        raise
    _report_search(result)


@contextlib.contextmanager
def progress_bar(unit: str) -> Iterator[tuple[Callable[[int, int], None], Callable[[str, bool], None]]]:
    """A rich progress bar on stderr counting ``unit`` (trials, candidates), with time left and a
    text for the best so far; yields ``start(total, done)`` and ``advance(best, replayed)``."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskID,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    progress = Progress(TextColumn(unit), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        TextColumn("eta"), TimeRemainingColumn(), TextColumn("{task.fields[best]}"),
                        console=Console(stderr=True), transient=False)
    tasks: list[TaskID] = []

    def start(total: int, done: int) -> None:  # shown once the command has checked its options
        tasks.append(progress.add_task(unit, total=total, completed=done, best=""))
        progress.start()

    def advance(best: str, replayed: bool) -> None:
        if tasks:
            progress.update(tasks[0], advance=0 if replayed else 1, best=best)

    try:
        yield start, advance
    finally:
        if tasks:
            progress.stop()


@contextlib.contextmanager
def _search_progress() -> Iterator[Events]:
    """The progress bar of a search: trials done, time left, the best so far."""
    from effdsl.search.run import Events  # noqa: F811 (at run time too: it is built here)

    def best_text(best: dict[str, Any] | None) -> str:
        if best is None:
            return ""
        quality = f"{best['accuracy']:.1%}" if best["accuracy"] is not None else f"{best['score']:.4g}"
        return f"best: trial {best['trial']} {quality} reward {best['reward']:.4g}"

    with progress_bar("trials") as (start, advance):
        yield Events(start, lambda record, best, replayed: advance(best_text(best), replayed))


def _report_search(result: SearchResult) -> None:
    from effdsl.search.report import best_line, summary_lines

    for line in summary_lines(result):
        typer.echo(line, err=True)
    best = best_line(result)
    typer.echo(best if best else "no trial finished", err=True)
    typer.echo(f"{result.seconds:.1f} s; wrote " + ", ".join(str(p) for p in result.files), err=True)


