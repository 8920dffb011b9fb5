"""The commands of ``effdsl``: compile, check, fmt, sweep, diff, viz, space, search and list.

Each command does its work inside :func:`~effdsl.cli.reporting.reporting`, which turns
a user error into diagnostics and exit status 2 and a bug into a bug report and status
70 (see :mod:`effdsl.cli`).
"""

from __future__ import annotations

import io
import json
import os
import re
import time
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from effdsl.api import MAX_PARAMS, Compiled, check_spec, compile_spec, format_source, load_source
from effdsl.cli.files import check_destinations, write_output
from effdsl.cli.reporting import Format, report_warnings, reporting
from effdsl.cli.terminal import write_stdout
from effdsl.diagnostics import Diagnostic, EffdslError
from effdsl.language.resources import builtin_specs
from effdsl.language.source import is_source_text, spec_file
from effdsl.passes.summary import Summary

if TYPE_CHECKING:
    from torch import nn

    from effdsl.language.spec import Network

app = typer.Typer(
    name="effdsl",
    help="Compile .eff network specs: compound scaling, exact cost, PyTorch modules.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

class Emit(StrEnum):
    summary = "summary"
    json = "json"
    ir = "ir"
    py = "py"
    pt2 = "pt2"
    onnx = "onnx"
    weights = "weights"


TEXT_EMITS = (Emit.summary, Emit.json, Emit.ir, Emit.py)
MODULE_EMITS = (Emit.pt2, Emit.onnx, Emit.weights)

# The arguments and options that several commands share.
Spec = Annotated[str, typer.Argument(help="A .eff file, or the name of a built-in spec (see 'effdsl list').")]
DiagnosticsFormat = Annotated[Format, typer.Option("--format", help="Diagnostics as text (with carets) or JSON.")]
Werror = Annotated[bool, typer.Option("--warnings-as-errors", "-W", help="Exit with status 2 on any warning.")]
Phi = Annotated[float | None, typer.Option("--phi", help="Compound coefficient: depth alpha^phi, width beta^phi, "
                                                          "resolution gamma^phi.")]
Preset = Annotated[str | None, typer.Option("--preset", help="A named member from the spec's preset table.")]
Width = Annotated[float | None, typer.Option("--width", help="Width multiplier (with --depth, --resolution).")]
Depth = Annotated[float | None, typer.Option("--depth", help="Depth multiplier.")]
Resolution = Annotated[int | None, typer.Option("--resolution", help="Input resolution in pixels.")]
AllowOutside = Annotated[bool, typer.Option("--allow-include-outside", help=(
    "Let an 'include' name a file outside the including file's folder."))]


@app.command("compile")
def compile_cmd(
    spec: Spec,
    phi: Phi = None,
    preset: Preset = None,
    width: Width = None,
    depth: Depth = None,
    resolution: Resolution = None,
    num_classes: Annotated[int | None, typer.Option(
        "--num-classes", help="Classifier outputs (default: the spec's), 1 to 1,000,000.")] = None,
    in_chans: Annotated[int | None, typer.Option(
        "--in-chans", help="Input channels (default: the spec's), 1 to 1,000,000.")] = None,
    drop_rate: Annotated[float | None, typer.Option("--drop-rate", help="Dropout before the classifier.")] = None,
    drop_path_rate: Annotated[float | None, typer.Option(
        "--drop-path-rate", help="Stochastic depth rate (scheduled rate * i / N).")] = None,
    weights: Annotated[Path | None, typer.Option("--weights", help=(
        "Load a torchvision, timm or effdsl checkpoint (.pt state_dict or .safetensors) into the module."))] = None,
    partial: Annotated[bool, typer.Option(
        "--partial", help="With --weights: load the tensors that fit, list the layers left out.")] = False,
    min_fraction: Annotated[float, typer.Option("--min-fraction", help=(
        "With --partial: refuse to load less than this fraction of the network's tensors (0: any)."))] = 0.5,
    emit: Annotated[Emit, typer.Option("--emit", help=(
        "summary (stage table), json, ir (one line per operator), py (PyTorch source), pt2 (torch.export), "
        "onnx, weights (safetensors)."))] = Emit.summary,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Write to FILE instead of stdout.")] = None,
    max_params: Annotated[float, typer.Option("--max-params", help=(
        "Refuse to build (for --weights or an export) a network with more parameters than this "
        "(a whole number; 2e9 will do)."))] = MAX_PARAMS,
    inference: Annotated[bool, typer.Option("--inference", help=(
        "The eval-only network: batch norm folded into the convs, no dropout (for every --emit: its IR, "
        "cost and exports)."))] = False,
    fmt: DiagnosticsFormat = Format.text,
    werror: Werror = False,
    allow_outside: AllowOutside = False,
) -> None:
    """Scale a spec to one member of its family: its stage table and exact cost, or an export.

    With --format json, diagnostics go to stderr as a JSON array (stdout keeps the output).
    """
    start = time.perf_counter()
    with reporting(fmt):
        if emit in MODULE_EMITS and output is None:
            raise EffdslError(Diagnostic("E403", f"--emit {emit.value} writes a binary file; give -o FILE"))
        check_destinations([output], {"the spec": spec_file(spec), "the checkpoint": weights})
        compiled = compile_spec(spec, phi=phi, preset=preset, width=width, depth=depth,
                                resolution=resolution, num_classes=num_classes, in_chans=in_chans,
                                drop_rate=drop_rate, drop_path_rate=drop_path_rate,
                                allow_include_outside=allow_outside)
        elapsed = time.perf_counter() - start
        report_warnings(compiled, fmt, werror)
        if weights is not None or emit in MODULE_EMITS:
            module = compiled.build(max_params=max_params)
            if weights is not None:
                report = compiled.load_weights(module, weights, strict=not partial, min_fraction=min_fraction)
                skipped = f"; left out: {', '.join(report.skipped)}" if report.skipped else ""
                if report.stripped:
                    skipped += f" (prefix '{report.stripped}' of every key removed)"
                article = "an" if report.origin[0] in "aeiou" else "a"
                origin = f"{article} {report.origin} checkpoint" if report.origin != "other" else "the checkpoint"
                typer.echo(f"loaded {report.loaded} tensors from {origin}{skipped}", err=True)
            if inference:
                module = compiled.to_inference(module)
        if inference:
            compiled = compiled.inference()
        if output is not None and emit in MODULE_EMITS:
            _export(compiled, module, emit, output)
            return
        text = _text_output(compiled, emit, elapsed)
        if output is None:
            write_stdout(text)
        else:
            write_output(output, text)
            typer.echo(f"wrote {output}", err=True)


def _text_output(compiled: Compiled, emit: Emit, elapsed: float) -> str:
    """The text of ``--emit summary``, ``json``, ``ir`` or ``py``."""
    if emit is Emit.json:
        return json.dumps(compiled.summary.to_json(), indent=2) + "\n"
    if emit is Emit.ir:
        return compiled.ir()
    if emit is Emit.py:
        from effdsl.export import python_source

        return str(python_source(compiled.graph))
    return render_summary(compiled.summary, elapsed)


def _export(compiled: Compiled, module: nn.Module, emit: Emit, output: Path) -> None:
    """Write a module export (pt2, onnx, weights) to ``output``."""
    from effdsl import export
    from effdsl.backends.torch.builder import example_input

    example = example_input(compiled.graph)
    module.eval()
    if emit is Emit.onnx:  # written by ONNX itself, with its external data beside it above 2 GB
        write_output(output, lambda path: export.save_onnx(module, example, path))
    elif emit is Emit.weights:
        write_output(output, lambda path: _os_errors_as_such(export.save_weights, module, path))
    else:  # made in memory: torch's writer aborts the process on a full disk
        data = io.BytesIO()
        export.save_pt2(module, example, data)
        write_output(output, data.getbuffer())
    typer.echo(f"wrote {output}", err=True)


_OS_ERROR = re.compile(r"\(os error (\d+)\)")


def _os_errors_as_such(save: Callable[[nn.Module, Path], None], module: nn.Module, path: Path) -> None:
    """Run ``save``; safetensors reports a full disk as its own error ('... (os error 28)'),
    which is raised as the OSError it is, so that it is reported as E405."""
    try:
        save(module, path)
    except Exception as exc:
        found = _OS_ERROR.search(str(exc))
        if found is None:
            raise
        code = int(found.group(1))
        raise OSError(code, os.strerror(code)) from None


@app.command("check")
def check_cmd(spec: Spec, fmt: DiagnosticsFormat = Format.text, werror: Werror = False,
              allow_outside: AllowOutside = False) -> None:
    """Validate a spec: syntax, names, values, and the shapes of the baseline and every preset.

    With --format json, the diagnostics (errors and warnings) are printed on stdout as a
    JSON array, empty when the spec is clean.
    """
    json_out = fmt is Format.json
    with reporting(fmt, to_stdout=json_out):
        compiled = check_spec(spec, allow_include_outside=allow_outside)
        report_warnings(compiled, fmt, werror, to_stdout=json_out)
        net = compiled.spec
        if json_out:
            return
        presets = ", ".join(p.name for p in net.presets) or "none"
        stages = f"{len(net.stages)} stage{'s' if len(net.stages) != 1 else ''}"
        if net.is_space:
            stages = _space_line(net)
        write_stdout(f"{compiled.source.filename}: ok ({net.name}: {stages}, presets: {presets})\n")


def _space_line(net: Network) -> str:
    """``a search space of 1,296 members (4 choices over 2 stages)``."""
    from effdsl.scaling.choices import decisions, size

    found = decisions(net)
    stages = len({d.stage for d in found})
    return (f"a search space of {size(found):,} members ({len(found)} choice{'s' if len(found) != 1 else ''} "
            f"over {stages} stage{'s' if stages != 1 else ''})")


@app.command("fmt")
def fmt_cmd(
    spec: Spec,
    check: Annotated[bool, typer.Option("--check", help="Exit with status 1 if the file is not formatted.")] = False,
    write: Annotated[bool, typer.Option("--write", help="Rewrite the file in place.")] = False,
    allow_outside: AllowOutside = False,
) -> None:
    """Print a spec in canonical form (comments kept)."""
    with reporting():
        if write and is_source_text(spec):
            raise EffdslError(Diagnostic("E404", "--write needs a spec file, not source text"))
        source = load_source(spec)
        if write and spec_file(spec) != Path(spec):
            raise EffdslError(Diagnostic("E404", f"--write needs a spec file, not '{spec}'"))
        text = format_source(source, allow_include_outside=allow_outside)
        name = source.filename
        if check:
            if text != source.text:
                typer.echo(f"{name}: would be reformatted", err=True)
                raise typer.Exit(1)
            typer.echo(f"{name}: formatted", err=True)
        elif write:
            if text != source.text:
                write_output(spec, text)
                typer.echo(f"reformatted {name}", err=True)
        else:
            write_stdout(text)


@app.command("sweep")
def sweep_cmd(
    spec: Spec,
    phi: Annotated[str, typer.Option("--phi", help=(
        "START:STOP:STEP (STOP included when on the grid), START:STOP (step 1) or one value."))] = "0:7:1",
    presets: Annotated[bool, typer.Option("--presets", help="Add a row per preset of the spec.")] = False,
    output: Annotated[Path | None, typer.Option("-o", "--output", help=(
        "Write a report instead of the table: .md, .csv, .json, or .html (table and plot)."))] = None,
    plot: Annotated[Path | None, typer.Option("--plot", help=(
        "Write the plot of params and MACs against phi: .png or .svg (needs matplotlib)."))] = None,
) -> None:
    """Tabulate a family over phi: multipliers, resolution, blocks, params, MACs and MACs/ideal."""
    from effdsl import reports as report

    with reporting():
        report.check_outputs(output, plot)
        check_destinations([output, plot], {"the spec": spec_file(spec)})
        result = report.sweep(spec, report.parse_phi_range(phi))
        files = report.sweep_files(result, output, plot, with_presets=presets)
        if output is None:
            write_stdout(report.render_sweep(result, with_presets=presets))
        for path, content in files:
            write_output(path, content)
            typer.echo(f"wrote {path}", err=True)


class _InOrder(typer.core.TyperCommand):
    """Keeps the command-line order of --phi and --preset in ctx.meta (diff's A and B)."""

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:  # type: ignore[override]  # typer passes its own
        ctx.meta["order"] = [a.split("=")[0] for a in args if a.split("=")[0] in ("--phi", "--preset")]
        return super().parse_args(ctx, args)


class DiffEmit(StrEnum):
    text = "text"
    json = "json"


@app.command("diff", cls=_InOrder)
def diff_cmd(
    ctx: typer.Context,
    spec: Spec,
    phi: Annotated[list[float] | None, typer.Option("--phi", help="A member by phi (A first, then B).")] = None,
    preset: Annotated[list[str] | None, typer.Option(
        "--preset", help="A member by preset name (A first, then B).")] = None,
    against: Annotated[str | None, typer.Option(
        "--against", help="B's spec (a .eff file or a built-in name).")] = None,
    emit: Annotated[DiffEmit, typer.Option("--emit", help="text or json.")] = DiffEmit.text,
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
            write_stdout(json.dumps(result.to_json(), indent=2) + "\n")
        else:
            write_stdout(report.render_diff(result))


class Level(StrEnum):
    stage = "stage"
    block = "block"
    op = "op"


@app.command("viz")
def viz_cmd(
    spec: Spec,
    output: Annotated[Path, typer.Option("-o", "--output", help=(
        "The picture; its suffix picks the format: .svg, .html (interactive page), .dot (Graphviz), "
        ".mmd (Mermaid), .png (needs cairosvg)."))],
    phi: Annotated[float | None, typer.Option("--phi", help="Compound coefficient (as for compile).")] = None,
    preset: Preset = None,
    width: Width = None,
    depth: Depth = None,
    resolution: Resolution = None,
    level: Annotated[Level, typer.Option(
        "--level", help="One box per stage, per block, or per operator.")] = Level.block,
    allow_outside: AllowOutside = False,
) -> None:
    """Draw a member of a spec's family: every box with its scaled channels, shapes, params and MACs."""
    from effdsl import viz

    with reporting():
        fmt = viz.format_of(output)
        check_destinations([output], {"the spec": spec_file(spec)})
        compiled = compile_spec(spec, phi=phi, preset=preset, width=width, depth=depth, resolution=resolution,
                                allow_include_outside=allow_outside)
        report_warnings(compiled, Format.text, False)
        picture = viz.render(compiled.graph, fmt, level.value, compiled.source.text)
        write_output(output, picture)
        typer.echo(f"wrote {output}", err=True)


@app.command("list")
def list_cmd(files: Annotated[bool, typer.Option(
        "--files", help="List the built-in spec files instead: name, a tab, path.")] = False) -> None:
    """List the built-in models by their reference names: family, spec, preset, resolution, params, MACs."""
    with reporting():
        if files:
            write_stdout("".join(f"{name}\t{path}\n" for name, path in builtin_specs().items()))
            return
        from effdsl.reports.models import model_rows, render_models

        write_stdout(render_models(model_rows()))


def _num(value: float) -> str:
    return f"{value:g}"


def _per_group(values: list[str]) -> str:
    """A setting of a stage's 'then' groups: one value when they agree, else each one (6/2.5/2.3)."""
    return values[0] if len(set(values)) == 1 else "/".join(values)


def render_summary(summary: Summary, elapsed: float | None = None) -> str:
    """The stage table and totals as plain text (what ``effdsl compile`` prints)."""
    console = Console(record=True, width=100, force_terminal=False, color_system=None, file=io.StringIO())
    which = (f"preset {summary.preset}" if summary.preset else
             f"phi {_num(summary.phi)}" if summary.phi is not None else "explicit multipliers")
    table = Table(title=f"{summary.name} ({which})", title_justify="left")
    for column in ("stage", "block", "k", "s", "e", "in -> out", "repeats", "res", "params", "MACs"):
        table.add_column(column, justify="left" if column in ("stage", "block", "in -> out") else "right")
    for row in summary.rows:
        kernels = _per_group([str(k) for k, _, _ in row.groups]) or str(row.kernel)
        expands = _per_group([_num(e) for _, e, _ in row.groups]) or _num(row.expand)
        table.add_row(row.name, row.block, kernels, str(row.stride), expands,
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
