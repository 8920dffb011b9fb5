"""The commands of ``effdsl``: compile, check, fmt, sweep, diff, viz, space, search and list.

Each command does its work inside :func:`~effdsl.cli.reporting.reporting`, which turns
a user error into diagnostics and exit status 2 and a bug into a bug report and status
70 (see :mod:`effdsl.cli`).
"""

from __future__ import annotations

import json
import sys
import time
from enum import Enum
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from effdsl.api import MAX_PARAMS, check_spec, compile_spec, format_source, load_source
from effdsl.cli.files import write_output
from effdsl.cli.reporting import Format, report_warnings, reporting
from effdsl.diagnostics import Diagnostic, EffdslError
from effdsl.language.resources import builtin_specs
from effdsl.passes.summary import Summary

app = typer.Typer(
    name="effdsl",
    help="Compile .eff network specs: compound scaling, exact cost, PyTorch modules.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

class Emit(str, Enum):
    summary = "summary"
    json = "json"
    ir = "ir"
    py = "py"
    pt2 = "pt2"
    onnx = "onnx"
    weights = "weights"


TEXT_EMITS = (Emit.summary, Emit.json, Emit.ir, Emit.py)
MODULE_EMITS = (Emit.pt2, Emit.onnx, Emit.weights)


SpecArg = typer.Argument(..., help="A .eff file, or the name of a built-in spec (see 'effdsl list').")


FormatOpt = typer.Option(Format.text, "--format", help="Diagnostics as text (with carets) or JSON.")
WerrorOpt = typer.Option(False, "--warnings-as-errors", "-W", help="Exit with status 2 on any warning.")


@app.command("compile")
def compile_cmd(
    spec: str = SpecArg,
    phi: Optional[float] = typer.Option(None, "--phi", help="Compound coefficient: depth alpha^phi, "
                                        "width beta^phi, resolution gamma^phi."),
    preset: Optional[str] = typer.Option(None, "--preset", help="A named member from the spec's preset table."),
    width: Optional[float] = typer.Option(None, "--width", help="Width multiplier (with --depth, --resolution)."),
    depth: Optional[float] = typer.Option(None, "--depth", help="Depth multiplier."),
    resolution: Optional[int] = typer.Option(None, "--resolution", help="Input resolution in pixels."),
    num_classes: Optional[int] = typer.Option(None, "--num-classes", help="Classifier outputs (default: the spec's)."),
    in_chans: Optional[int] = typer.Option(None, "--in-chans", help="Input channels (default: the spec's)."),
    drop_rate: Optional[float] = typer.Option(None, "--drop-rate", help="Dropout before the classifier."),
    drop_path_rate: Optional[float] = typer.Option(None, "--drop-path-rate",
                                                   help="Stochastic depth rate (scheduled rate * i / N)."),
    weights: Optional[Path] = typer.Option(None, "--weights", help="Load a torchvision, timm or effdsl "
                                           "checkpoint (.pt state_dict or .safetensors) into the module."),
    partial: bool = typer.Option(False, "--partial", help="With --weights: load the tensors that fit, "
                                 "list the layers left out."),
    emit: Emit = typer.Option(Emit.summary, "--emit", help="summary (stage table), json, ir (one line per "
                              "operator), py (PyTorch source), pt2 (torch.export), onnx, weights (safetensors)."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Write to FILE instead of stdout."),
    max_params: int = typer.Option(MAX_PARAMS, "--max-params", help="Refuse to build (for --weights or an "
                                   "export) a network with more parameters than this."),
    inference: bool = typer.Option(False, "--inference", help="The eval-only network: batch norm folded into "
                                   "the convs, no dropout (for every --emit: its IR, cost and exports)."),
    fmt: Format = FormatOpt,
    werror: bool = WerrorOpt,
) -> None:
    """Scale a spec to one member of its family: its stage table and exact cost, or an export.

    With --format json, diagnostics go to stderr as a JSON array (stdout keeps the output).
    """
    start = time.perf_counter()
    with reporting(fmt):
        if emit in MODULE_EMITS and output is None:
            raise EffdslError(Diagnostic("E403", f"--emit {emit.value} writes a binary file; give -o FILE"))
        compiled = compile_spec(spec, phi=phi, preset=preset, width=width, depth=depth,
                                resolution=resolution, num_classes=num_classes, in_chans=in_chans,
                                drop_rate=drop_rate, drop_path_rate=drop_path_rate)
        elapsed = time.perf_counter() - start
        report_warnings(compiled, fmt, werror)
        module = None
        if weights is not None or emit in MODULE_EMITS:
            module = compiled.build(max_params=max_params)
            if weights is not None:
                report = compiled.load_weights(module, weights, strict=not partial)
                skipped = f"; left out: {', '.join(report.skipped)}" if report.skipped else ""
                if report.stripped:
                    skipped += f" (prefix '{report.stripped}' of every key removed)"
                article = "an" if report.origin[0] in "aeiou" else "a"
                typer.echo(f"loaded {report.loaded} tensors from {article} {report.origin} checkpoint{skipped}",
                           err=True)
            if inference:
                module = compiled.to_inference(module)
        if inference:
            compiled = compiled.inference()
        if emit in MODULE_EMITS:
            _export(compiled, module, emit, output)
            return
        text = _text_output(compiled, emit, elapsed)
        if output is None:
            sys.stdout.write(text)
        else:
            write_output(output, text)
            typer.echo(f"wrote {output}", err=True)


def _text_output(compiled, emit: Emit, elapsed: float) -> str:
    """The text of ``--emit summary``, ``json``, ``ir`` or ``py``."""
    if emit is Emit.json:
        return json.dumps(compiled.summary.to_json(), indent=2) + "\n"
    if emit is Emit.ir:
        return compiled.ir()
    if emit is Emit.py:
        from effdsl.export import python_source

        return python_source(compiled.graph)
    return render_summary(compiled.summary, elapsed)


def _export(compiled, module, emit: Emit, output: Path) -> None:
    """Write a module export (pt2, onnx, weights) to ``output``."""
    from effdsl import export
    from effdsl.backends.torch.builder import example_input

    example = example_input(compiled.graph)
    module.eval()
    if emit is Emit.pt2:
        write_output(output, lambda path: export.save_pt2(module, example, path))
    elif emit is Emit.onnx:
        write_output(output, lambda path: export.save_onnx(module, example, path))
    else:
        write_output(output, lambda path: export.save_weights(module, path))
    typer.echo(f"wrote {output}", err=True)


@app.command("check")
def check_cmd(spec: str = SpecArg, fmt: Format = FormatOpt, werror: bool = WerrorOpt) -> None:
    """Validate a spec: syntax, names, values, and the shapes of the baseline and every preset.

    With --format json, the diagnostics (errors and warnings) are printed on stdout as a
    JSON array, empty when the spec is clean.
    """
    json_out = fmt is Format.json
    with reporting(fmt, to_stdout=json_out):
        compiled = check_spec(spec)
        report_warnings(compiled, fmt, werror, to_stdout=json_out)
    net = compiled.spec
    if json_out:
        return
    presets = ", ".join(p.name for p in net.presets) or "none"
    stages = f"{len(net.stages)} stage{'s' if len(net.stages) != 1 else ''}"
    if net.is_space:
        typer.echo(f"{spec}: ok ({net.name}: {_space_line(net)}, presets: {presets})")
        return
    typer.echo(f"{spec}: ok ({net.name}: {stages}, presets: {presets})")


def _space_line(net) -> str:
    """``a search space of 1,296 members (4 choices over 2 stages)``."""
    from effdsl.scaling.choices import decisions, size

    found = decisions(net)
    stages = len({d.stage for d in found})
    return (f"a search space of {size(found):,} members ({len(found)} choice{'s' if len(found) != 1 else ''} "
            f"over {stages} stage{'s' if stages != 1 else ''})")


@app.command("fmt")
def fmt_cmd(
    spec: str = SpecArg,
    check: bool = typer.Option(False, "--check", help="Exit with status 1 if the file is not formatted."),
    write: bool = typer.Option(False, "--write", help="Rewrite the file in place."),
) -> None:
    """Print a spec in canonical form (comments kept)."""
    with reporting():
        text = format_source(spec)
        original = load_source(spec).text
        if check:
            if text != original:
                typer.echo(f"{spec}: would be reformatted", err=True)
                raise typer.Exit(1)
            typer.echo(f"{spec}: formatted", err=True)
        elif write:
            path = Path(spec)
            if not path.is_file():
                raise EffdslError(Diagnostic("E404", f"--write needs a spec file, not '{spec}'"))
            if text != original:
                write_output(path, text)
                typer.echo(f"reformatted {spec}", err=True)
        else:
            sys.stdout.write(text)


@app.command("sweep")
def sweep_cmd(
    spec: str = SpecArg,
    phi: str = typer.Option("0:7:1", "--phi", help="START:STOP:STEP (STOP included when on the grid), "
                            "START:STOP (step 1) or one value."),
    presets: bool = typer.Option(False, "--presets", help="Add a row per preset of the spec."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Write a report instead of the table: "
                                          ".md, .csv, .json, or .html (table and plot)."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Write the plot of params and MACs against phi: "
                                        ".png or .svg (needs matplotlib)."),
) -> None:
    """Tabulate a family over phi: multipliers, resolution, blocks, params, MACs and MACs/ideal."""
    from effdsl import reports as report

    with reporting():
        report.check_outputs(output, plot)
        result = report.sweep(spec, report.parse_phi_range(phi))
        files = report.sweep_files(result, output, plot, with_presets=presets)
        if output is None:
            sys.stdout.write(report.render_sweep(result, with_presets=presets))
        for path, content in files:
            write_output(path, content)
            typer.echo(f"wrote {path}", err=True)


class _InOrder(typer.core.TyperCommand):
    """Keeps the command-line order of --phi and --preset in ctx.meta (diff's A and B)."""

    def parse_args(self, ctx, args):
        ctx.meta["order"] = [a.split("=")[0] for a in args if a.split("=")[0] in ("--phi", "--preset")]
        return super().parse_args(ctx, args)


class DiffEmit(str, Enum):
    text = "text"
    json = "json"


@app.command("diff", cls=_InOrder)
def diff_cmd(
    ctx: typer.Context,
    spec: str = SpecArg,
    phi: Optional[list[float]] = typer.Option(None, "--phi", help="A member by phi (A first, then B)."),
    preset: Optional[list[str]] = typer.Option(None, "--preset", help="A member by preset name (A first, then B)."),
    against: Optional[str] = typer.Option(None, "--against", help="B's spec (a .eff file or a built-in name)."),
    emit: DiffEmit = typer.Option(DiffEmit.text, "--emit", help="text or json."),
) -> None:
    """Compare two members: stages, tensors that change shape (what weights transfer), cost.

    Two of --phi/--preset are A and B in the order given; one is B against the baseline
    (with --against: the same member of both specs); --against alone compares baselines.
    """
    from effdsl import reports as report

    with reporting():
        choices = report.choices_in_order(ctx.meta.get("order", []), phi or [], preset or [])
        result = report.diff(spec, choices, against=against)
        if emit is DiffEmit.json:
            sys.stdout.write(json.dumps(result.to_json(), indent=2) + "\n")
        else:
            sys.stdout.write(report.render_diff(result))


class Level(str, Enum):
    stage = "stage"
    block = "block"
    op = "op"


@app.command("viz")
def viz_cmd(
    spec: str = SpecArg,
    phi: Optional[float] = typer.Option(None, "--phi", help="Compound coefficient (as for compile)."),
    preset: Optional[str] = typer.Option(None, "--preset", help="A named member from the spec's preset table."),
    width: Optional[float] = typer.Option(None, "--width", help="Width multiplier (with --depth, --resolution)."),
    depth: Optional[float] = typer.Option(None, "--depth", help="Depth multiplier."),
    resolution: Optional[int] = typer.Option(None, "--resolution", help="Input resolution in pixels."),
    level: Level = typer.Option(Level.block, "--level", help="One box per stage, per block, or per operator."),
    output: Path = typer.Option(..., "-o", "--output", help="The picture; its suffix picks the format: .svg, "
                                ".html (interactive page), .dot (Graphviz), .mmd (Mermaid), .png (needs cairosvg)."),
) -> None:
    """Draw a member of a spec's family: every box with its scaled channels, shapes, params and MACs."""
    from effdsl import viz

    with reporting():
        fmt = viz.format_of(output)
        compiled = compile_spec(spec, phi=phi, preset=preset, width=width, depth=depth, resolution=resolution)
        report_warnings(compiled, Format.text, False)
        picture = viz.render(compiled.graph, fmt, level.value, compiled.source.text)
        write_output(output, picture)
        typer.echo(f"wrote {output}", err=True)


# ---------------------------------------------------------------------------- search spaces and searches
# `effdsl space` and `effdsl search` (effdsl.search); torch is imported only by the search's workers.


@app.command("space")
def space_cmd(
    spec: str = typer.Argument(..., help="A .eff search space, or the name of a built-in one (efficientnet_space)."),
    resolution: Optional[int] = typer.Option(None, "--resolution", help="Input resolution for the cost "
                                             "(default: the spec's)."),
    num_classes: Optional[int] = typer.Option(None, "--num-classes", help="Classifier outputs (default: the spec's)."),
    in_chans: Optional[int] = typer.Option(None, "--in-chans", help="Input channels (default: the spec's)."),
    sample: int = typer.Option(0, "--sample", help="Write N members, drawn uniformly, as plain specs."),
    seed: int = typer.Option(0, "--seed", help="The seed of --sample."),
    output: Optional[Path] = typer.Option(None, "-o", "--out", help="With --sample: write NAME_sI.eff files to "
                                          "this folder instead of printing them."),
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
            sys.stdout.write(render_space(summarize_space(space, in_ch=in_chans, resolution=resolution,
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
            sys.stdout.write("\n".join(texts))
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


class Strategy(str, Enum):
    random = "random"
    evolution = "evolution"


class Proxy(str, Enum):
    train = "train"
    zero_cost = "zero-cost"


class ZeroCost(str, Enum):
    naswot = "naswot"
    synflow = "synflow"


class Reward(str, Enum):
    mnasnet = "mnasnet"
    mnasnet_hard = "mnasnet-hard"


class Executor(str, Enum):
    local = "local"


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


@app.command("search")
def search_cmd(
    spec: str = typer.Argument(..., help="A .eff search space, or the name of a built-in one (efficientnet_space)."),
    target_macs: Optional[str] = typer.Option(None, "--target-macs", help="Target MACs, like 20M (K, M, G)."),
    target_params: Optional[str] = typer.Option(None, "--target-params", help="Target parameters, like 1M."),
    target_latency: Optional[str] = typer.Option(None, "--target-latency", help="Target latency in ms "
                                                 "(batch 1, measured on this device)."),
    reward: Reward = typer.Option(Reward.mnasnet, "--reward", help="mnasnet: ACC x (cost/target)^w; "
                                  "mnasnet-hard: w = 0 up to the target, -1 above."),
    w: float = typer.Option(-0.07, "--w", help="The exponent of the soft reward (MnasNet: -0.07)."),
    limit: float = typer.Option(2.0, "--limit", help="Reject candidates above this multiple of the target "
                                "(analytically, before any weight exists)."),
    strategy: Strategy = typer.Option(Strategy.evolution, "--strategy", help="random, or regularized evolution."),
    population: int = typer.Option(8, "--population", help="Evolution: the population (the youngest trials)."),
    tournament: int = typer.Option(3, "--tournament", help="Evolution: members drawn to pick a parent."),
    trials: int = typer.Option(20, "--trials", help="Trials to finish (with --resume: in all)."),
    proxy: Proxy = typer.Option(Proxy.train, "--proxy", help="train (short training, held-out accuracy) "
                                "or zero-cost (a training-free score on one batch)."),
    zero_cost: ZeroCost = typer.Option(ZeroCost.naswot, "--zero-cost", help="The zero-cost score."),
    epochs: int = typer.Option(1, "--epochs", help="Epochs of the train proxy."),
    data: str = typer.Option("digits", "--data", help="digits (scikit-learn's 8x8 digits), or a folder of "
                             "class subfolders of images."),
    resolution: Optional[int] = typer.Option(None, "--resolution", help="Input resolution of the candidates "
                                             "(default: the space's)."),
    workers: int = typer.Option(1, "--workers", help="Trials run in parallel (processes; the cores are split)."),
    executor: Executor = typer.Option(Executor.local, "--executor", help="Where trials run."),
    seed: int = typer.Option(0, "--seed", help="Seed of the proposals and of every trial's training."),
    out: Path = typer.Option(..., "--out", help="The search folder: trials.jsonl, best.eff, report.md, report.html."),
    resume: bool = typer.Option(False, "--resume", help="Continue the search in --out without redoing its trials."),
    device: Device = typer.Option(Device.auto, "--device", help="auto: CUDA when available."),
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
                data=data, resolution=resolution, workers=workers, executor=executor.value, seed=seed,
                resume=resume, device=device.value)
            with _search_progress() as events:
                result = run_search(options, events)
    except KeyboardInterrupt:
        typer.echo(f"interrupted; the finished trials are in {out / 'trials.jsonl'}: continue with --resume",
                   err=True)
        raise typer.Exit(130)
    _report_search(result)


def _search_progress():
    """A rich progress bar on stderr: trials done, time left, the best so far."""
    import contextlib

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, \
        TimeRemainingColumn

    from effdsl.search.run import Events

    @contextlib.contextmanager
    def bar():
        progress = Progress(TextColumn("trials"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                            TextColumn("eta"), TimeRemainingColumn(), TextColumn("{task.fields[best]}"),
                            console=Console(stderr=True), transient=False)
        task = None

        def start(total: int, done: int) -> None:  # shown once the search has checked its options
            nonlocal task
            task = progress.add_task("search", total=total, completed=done, best="")
            progress.start()

        def trial(record: dict, best: dict | None, replayed: bool) -> None:
            shown = ""
            if best is not None:
                quality = (f"{best['accuracy']:.1%}" if best["accuracy"] is not None else f"{best['score']:.4g}")
                shown = f"best: trial {best['trial']} {quality} reward {best['reward']:.4g}"
            progress.update(task, advance=0 if replayed else 1, best=shown)

        try:
            yield Events(start, trial)
        finally:
            if task is not None:
                progress.stop()

    return bar()


def _report_search(result) -> None:
    from effdsl.search.report import best_line, summary_lines

    for line in summary_lines(result):
        typer.echo(line, err=True)
    line = best_line(result)
    typer.echo(line if line else "no trial finished", err=True)
    typer.echo(f"{result.seconds:.1f} s; wrote " + ", ".join(str(p) for p in result.files), err=True)


@app.command("list")
def list_cmd() -> None:
    """List the built-in specs."""
    for name, path in builtin_specs().items():
        typer.echo(f"{name}\t{path}")


def _num(value: float) -> str:
    return f"{value:g}"


def render_summary(summary: Summary, elapsed: float | None = None) -> str:
    """The stage table and totals as plain text (what ``effdsl compile`` prints)."""
    console = Console(record=True, width=100, force_terminal=False, color_system=None, file=_Null())
    which = (f"preset {summary.preset}" if summary.preset else
             f"phi {_num(summary.phi)}" if summary.phi is not None else "explicit multipliers")
    table = Table(title=f"{summary.name} ({which})", title_justify="left")
    for column in ("stage", "block", "k", "s", "e", "in -> out", "repeats", "res", "params", "MACs"):
        table.add_column(column, justify="left" if column in ("stage", "block", "in -> out") else "right")
    for row in summary.rows:
        table.add_row(row.name, row.block, str(row.kernel), str(row.stride), _num(row.expand),
                      f"{row.in_ch} -> {row.out_ch}", str(row.repeats), str(row.out_res),
                      f"{row.params:,}", f"{row.macs:,}")
    console.print(table)
    totals = [
        f"params      {summary.params:,}",
        f"MACs        {summary.macs:,}",
        f"FLOPs       {summary.flops:,}  (2 x MACs)",
        f"resolution  {summary.resolution}",
        f"width_mult  {summary.width_mult:.6g}",
        f"depth_mult  {summary.depth_mult:.6g}",
        f"blocks      {summary.num_blocks}",
        f"classes     {summary.num_classes}",
    ]
    if elapsed is not None:
        totals.append(f"elapsed     {elapsed * 1000:.1f} ms")
    for line in totals:
        console.print(line)
    return console.export_text()


class _Null:
    """A sink for the recording console (the text is taken with export_text)."""

    def write(self, _: str) -> int:
        return 0

    def flush(self) -> None:
        pass


def main() -> None:
    app()


if __name__ == "__main__":
    main()
