"""The commands of ``effdsl``: compile, check, fmt, sweep, diff, viz and list.

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
    min_fraction: float = typer.Option(0.5, "--min-fraction", help="With --partial: refuse to load less than "
                                       "this fraction of the network's tensors (0: any)."),
    emit: Emit = typer.Option(Emit.summary, "--emit", help="summary (stage table), json, ir (one line per "
                              "operator), py (PyTorch source), pt2 (torch.export), onnx, weights (safetensors)."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Write to FILE instead of stdout."),
    max_params: int = typer.Option(MAX_PARAMS, "--max-params", help="Refuse to build (for --weights or an "
                                   "export) a network with more parameters than this."),
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
                report = compiled.load_weights(module, weights, strict=not partial, min_fraction=min_fraction)
                skipped = f"; left out: {', '.join(report.skipped)}" if report.skipped else ""
                article = "an" if report.origin[0] in "aeiou" else "a"
                origin = f"{article} {report.origin} checkpoint" if report.origin != "other" else "the checkpoint"
                typer.echo(f"loaded {report.loaded} tensors from {origin}{skipped}", err=True)
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
    typer.echo(f"{spec}: ok ({net.name}: {stages}, presets: {presets})")


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


@app.command("list")
def list_cmd(files: bool = typer.Option(False, "--files", help="List the built-in spec files instead: "
                                        "name, a tab, path.")) -> None:
    """List the built-in models by their reference names: family, spec, preset, resolution, params, MACs."""
    if files:
        for name, path in builtin_specs().items():
            typer.echo(f"{name}\t{path}")
        return
    from effdsl.reports.models import model_rows, render_models

    with reporting():
        sys.stdout.write(render_models(model_rows()))


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
