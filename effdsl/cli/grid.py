"""``effdsl grid SPEC``: find the compound-scaling coefficients of a baseline by grid
search (:mod:`effdsl.search.grid`), and optionally write the spec with the best ones
(``--write NEW.eff``: only alpha, beta and gamma change, comments and layout kept).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from effdsl.cli.commands import app
from effdsl.cli.files import check_destinations, write_output
from effdsl.cli.reporting import reporting
from effdsl.cli.search import Device, Proxy, ZeroCost, progress_bar
from effdsl.cli.terminal import Interrupted
from effdsl.diagnostics import Diagnostic, EffdslError

if TYPE_CHECKING:
    from effdsl.search.grid import GridEvents, GridResult


class Executor(StrEnum):
    local = "local"
    ray = "ray"


@app.command("grid")
def grid_cmd(
    spec: Annotated[str, typer.Argument(help="A .eff spec (the baseline), or the name of a built-in one.")],
    out: Annotated[Path, typer.Option(
        "--out", help="The grid folder: grid.jsonl, grid.json, report.md, report.html, heatmap.svg.")],
    phi: Annotated[float, typer.Option("--phi", help="The member the candidates are evaluated at.")] = 1.0,
    target: Annotated[float, typer.Option("--target", help="alpha x beta^2 x gamma^2 should be this.")] = 2.0,
    tolerance: Annotated[float, typer.Option(
        "--tolerance", help="Relative: keep |alpha beta^2 gamma^2 - target| <= tolerance x target.")] = 0.05,
    step: Annotated[float, typer.Option("--step", help="The grid's step: coefficients 1, 1 + step, ...")] = 0.05,
    max_coeff: Annotated[float, typer.Option("--max", help="The largest coefficient.")] = 2.0,
    proxy: Annotated[Proxy, typer.Option(
        "--proxy", help="train (short training, held-out accuracy) or zero-cost (a training-free score).")
    ] = Proxy.train,
    zero_cost: Annotated[ZeroCost, typer.Option("--zero-cost", help="The zero-cost score.")] = ZeroCost.naswot,
    epochs: Annotated[int, typer.Option("--epochs", help="Epochs of the train proxy.")] = 1,
    data: Annotated[str, typer.Option(
        "--data", help="digits (scikit-learn's 8x8 digits), or a folder of class subfolders of images.")] = "digits",
    executor: Annotated[Executor, typer.Option("--executor", help="Where the trials run.")] = Executor.local,
    address: Annotated[str | None, typer.Option(
        "--address", help="With --executor ray: the cluster to run on (default: a local one).")] = None,
    workers: Annotated[int, typer.Option(
        "--workers", help="Trials run in parallel (processes; the cores are split).")] = 1,
    seed: Annotated[int, typer.Option("--seed", help="Seed of every candidate's training.")] = 0,
    resume: Annotated[bool, typer.Option(
        "--resume", help="Continue the grid in --out without redoing its candidates.")] = False,
    write: Annotated[Path | None, typer.Option(
        "--write", help="Write a copy of SPEC with the best alpha, beta and gamma to this file.")] = None,
    device: Annotated[Device, typer.Option("--device", help="auto: CUDA when available.")] = Device.auto,
) -> None:
    """Find alpha, beta and gamma by grid search: evaluate every grid point with alpha x beta^2 x
    gamma^2 near the target, scaled to --phi (the paper: phi 1, target 2, found 1.2, 1.1, 1.15)."""
    from effdsl.api import load_source
    from effdsl.scaling.grid import exact
    from effdsl.search.grid import GridOptions, run_grid

    try:
        with reporting():
            values = {}
            for flag, value in (("--target", target), ("--tolerance", tolerance), ("--step", step),
                                ("--max", max_coeff)):
                try:
                    values[flag] = exact(value)
                except (ValueError, OverflowError):  # nan, inf
                    raise EffdslError(Diagnostic("E607", f"{flag} must be a finite number, got {value}")) from None
            spec_path = Path(spec)
            source = load_source(spec)
            check_destinations([write], {"the spec": spec_path if spec_path.is_file() else None})
            options = GridOptions(
                spec=spec, out=out, phi=phi, target=values["--target"], tolerance=values["--tolerance"],
                step=values["--step"], max_coeff=values["--max"], proxy=proxy.value, zero_cost=zero_cost.value,
                epochs=epochs, data=data, workers=workers, executor=executor.value, address=address, seed=seed,
                resume=resume, device=device.value)
            with _grid_progress() as events:
                result = run_grid(options, events)
            _report_grid(result)
            if write is not None:
                _write_best(result, source.text, write)
    except (KeyboardInterrupt, Interrupted):  # the CLI then says 'interrupted' and exits 130 (terminal.run)
        typer.echo(f"the finished candidates are in {out / 'grid.jsonl'}: continue with --resume", err=True)
        raise


def _write_best(result: GridResult, text: str, path: Path) -> None:
    """SPEC with the best coefficients (only alpha, beta and gamma change)."""
    from effdsl.api import analyze_source
    from effdsl.language.edit import with_coefficients
    from effdsl.language.source import Source
    from effdsl.search.grid import best_coefficients

    coefficients = best_coefficients(result)
    if coefficients is None:
        typer.echo(f"no candidate finished; {path} not written", err=True)
        return
    network = analyze_source(Source(text, str(path)))
    write_output(path, with_coefficients(text, network, coefficients))
    typer.echo(f"wrote {path} (alpha {coefficients['alpha']}, beta {coefficients['beta']}, "
               f"gamma {coefficients['gamma']})", err=True)


@contextlib.contextmanager
def _grid_progress() -> Iterator[GridEvents]:
    """The progress bar of a grid: candidates done, time left, the best so far."""
    from effdsl.search.grid import GridEvents  # noqa: F811 (at run time too: it is built here)

    def best_text(best: dict[str, Any] | None) -> str:
        return "" if best is None else f"best: {best['alpha']:g} {best['beta']:g} {best['gamma']:g}"

    with progress_bar("candidates") as (start, advance):
        yield GridEvents(lambda candidates, networks, done: start(candidates, done),
                         lambda record, best, replayed: advance(best_text(best), replayed))


def _report_grid(result: GridResult) -> None:
    from effdsl.search.grid_report import best_line, summary_lines

    for line in summary_lines(result):
        typer.echo(line, err=True)
    typer.echo(best_line(result) or "no candidate finished", err=True)
    typer.echo(f"{result.seconds:.1f} s; wrote " + ", ".join(str(p) for p in result.files), err=True)
