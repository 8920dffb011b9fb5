"""Reports over a family: a sweep of phi (``effdsl sweep``) and the diff of two members
(``effdsl diff``), with their writers (text, markdown, CSV, JSON, HTML, a matplotlib plot).

Everything here returns values (strings, bytes, dataclasses); the CLI prints and writes.
matplotlib is imported only to draw a plot (the ``plot`` extra).

The ideal of compound scaling: at phi, depth grows by alpha^phi, width by beta^phi and
resolution by gamma^phi, so the MACs grow by ``(alpha * beta^2 * gamma^2)^phi``. A sweep
row's ``macs_ratio`` is ``(MACs / MACs at phi 0) / (alpha * beta^2 * gamma^2)^phi``: 1.0
on the ideal curve, above 1 where rounding (of channels up to the divisor, of repeats up
to whole blocks, of pixels) adds cost. A preset is placed at its equivalent phi,
``ln(depth * width^2 * (resolution / R0)^2) / ln(alpha * beta^2 * gamma^2)`` (R0: the
spec's ``input`` resolution), the phi whose ideal cost factor equals the preset's
nominal one; its ratio divides by that nominal factor.
"""

from __future__ import annotations

import csv
import html
import importlib
import io
import json
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypedDict

from rich.console import Console
from rich.table import Table

from effdsl.api import Compiled, Source, analyze_source, compile_network, load_source
from effdsl.diagnostics import Diagnostic, EffdslError
from effdsl.language.spec import Network
from effdsl.passes.summary import StageRow
from effdsl.scaling.members import Member

if TYPE_CHECKING:
    from matplotlib.axes import Axes

MAX_ROWS = 1000
PHI_LIMIT = 20  # compile_spec's range for --phi
RATIO_DEFINITION = ("MACs/ideal = (MACs / MACs at phi 0) / (alpha * beta^2 * gamma^2)^phi; "
                    "1 is on the ideal compound-scaling curve")
PRESET_DEFINITION = ("preset rows: phi is the equivalent phi "
                     "ln(depth * width^2 * (res / R0)^2) / ln(alpha * beta^2 * gamma^2)")
REPORT_SUFFIXES = (".md", ".csv", ".json", ".html")
PLOT_SUFFIXES = (".png", ".svg")


# --- sweep -----------------------------------------------------------------------------

def parse_phi_range(text: str) -> list[Fraction]:
    """The phis of ``START:STOP:STEP`` (STOP included when it lies on the grid).

    ``START:STOP`` steps by 1 and a single number is one phi. Values are exact fractions
    (``0.1`` is 1/10), so the grid does not drift.
    """
    parts = text.split(":")
    if len(parts) > 3:
        raise _range_error(text, "expected START:STOP:STEP")
    if len(parts) == 1:
        parts = parts * 2
    try:
        start, stop, step = (_phi_number(p.strip(), text) for p in parts + ["1"] * (3 - len(parts)))
    except (ValueError, ZeroDivisionError):
        raise _range_error(text, "expected numbers START:STOP:STEP, like 0:7:0.5") from None
    if step <= 0:
        raise _range_error(text, "the step must be greater than 0")
    if start > stop:
        raise _range_error(text, "START is greater than STOP")
    if start < -PHI_LIMIT or stop > PHI_LIMIT:
        raise _range_error(text, f"phi must lie in -{PHI_LIMIT}..{PHI_LIMIT}")
    count = math.floor((stop - start) / step) + 1
    if count > MAX_ROWS:
        raise _range_error(text, f"it has {count:,} values, more than {MAX_ROWS:,}")
    return [start + i * step for i in range(count)]


def _phi_number(part: str, text: str) -> Fraction:
    """``part`` of the range ``text`` as an exact fraction, refused before it is built when
    its exponent is beyond any phi or step a sweep can use (``Fraction("1e99999999")``
    would take minutes); ValueError for what is not a number."""
    _, _, exponent = part.lower().partition("e")
    digits = exponent.lstrip("+-")
    if digits.isdigit() and (len(digits) > 4 or int(digits) > 30):
        why = "a value below 1e-30 is no step of a sweep" if exponent.startswith("-") else "phi must lie in -{0}..{0}"
        raise _range_error(text, why.format(PHI_LIMIT))
    if len(part) > 60:
        raise ValueError(part)
    return Fraction(part)


def _range_error(text: str, why: str) -> EffdslError:
    return EffdslError(Diagnostic("E406", f"bad --phi range '{text}': {why}", None,
                                  "write START:STOP:STEP with STEP > 0, e.g. --phi 0:7:0.5 (15 values)"))


@dataclass(frozen=True, slots=True)
class SweepRow:
    """One member: a phi of the sweep, or a preset at its equivalent phi."""

    phi: float | None       # for a preset row: its equivalent phi (None when alpha*beta^2*gamma^2 is 1)
    preset: str | None
    depth_mult: float
    width_mult: float
    resolution: int
    blocks: int
    params: int
    macs: int
    ideal_macs: float       # MACs at phi 0 x the ideal cost factor of this member
    macs_ratio: float       # macs / ideal_macs

    def to_json(self) -> dict[str, float | str | None]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Sweep:
    spec: str               # as the user named it
    name: str               # the network's name
    alpha: float
    beta: float
    gamma: float
    base_resolution: int
    base_params: int
    base_macs: int
    rows: tuple[SweepRow, ...]      # one per phi, in order
    presets: tuple[SweepRow, ...]   # one per preset of the spec, in the spec's order

    @property
    def cost_factor(self) -> float:
        """alpha * beta^2 * gamma^2: the ideal MACs factor per unit of phi."""
        return self.alpha * self.beta ** 2 * self.gamma ** 2

    def ideal_macs(self, phi: float) -> float:
        growth: float = self.cost_factor ** phi  # real: the factor is positive
        return self.base_macs * growth

    def table(self, with_presets: bool = False) -> tuple[SweepRow, ...]:
        return self.rows + (self.presets if with_presets else ())

    def to_json(self, with_presets: bool = False) -> dict[str, object]:
        return {
            "spec": self.spec, "name": self.name, "alpha": self.alpha, "beta": self.beta, "gamma": self.gamma,
            "cost_factor": self.cost_factor, "base_resolution": self.base_resolution,
            "base_params": self.base_params, "base_macs": self.base_macs,
            "definition": RATIO_DEFINITION + ("; " + PRESET_DEFINITION if with_presets else ""),
            "rows": [row.to_json() for row in self.table(with_presets)],
        }


def sweep(spec: str | Path, phis: Iterable[Fraction | float]) -> Sweep:
    """Compile ``spec`` at every phi and at each of its presets (the spec is parsed once)."""
    source, net = _parsed(spec)
    base = compile_network(net, Member(phi=0.0), source=source)
    policy = net.scaling
    factor = policy.alpha * policy.beta ** 2 * policy.gamma ** 2
    r0 = net.resolution
    rows = []
    for phi in phis:
        member = base if phi == 0 else compile_network(net, Member(phi=float(phi)), source=source)
        rows.append(_row(member, float(phi), None, base.summary.macs * factor ** float(phi)))
    presets = []
    for preset in net.presets:
        member = compile_network(net, Member(preset=preset.name), source=source)
        nominal = preset.depth * preset.width ** 2 * (preset.resolution / r0) ** 2
        phi_eq = math.log(nominal) / math.log(factor) if factor != 1 else None
        presets.append(_row(member, phi_eq, preset.name, base.summary.macs * nominal))
    return Sweep(base.source.filename, base.spec.name, policy.alpha, policy.beta, policy.gamma, r0,
                 base.summary.params, base.summary.macs, tuple(rows), tuple(presets))


def _row(member: Compiled, phi: float | None, preset: str | None, ideal: float) -> SweepRow:
    s = member.summary
    return SweepRow(phi, preset, s.depth_mult, s.width_mult, s.resolution, s.num_blocks, s.params, s.macs,
                    ideal, s.macs / ideal)


COLUMNS = ("phi", "preset", "depth", "width", "res", "blocks", "params", "MACs", "MACs/ideal")


def _phi_cell(row: SweepRow) -> str:
    """A row's phi; for a preset its equivalent phi, approximate ('-' where there is none)."""
    if row.preset is None:
        return f"{row.phi:g}"
    return "-" if row.phi is None else f"~{row.phi:.2f}"


def _cells(row: SweepRow) -> list[str]:
    return [_phi_cell(row), row.preset or "", f"{row.depth_mult:.4g}", f"{row.width_mult:.4g}", str(row.resolution),
            str(row.blocks), f"{row.params:,}", f"{row.macs:,}", f"{row.macs_ratio:.3f}"]


def _title(result: Sweep) -> str:
    return (f"{result.name}: alpha {result.alpha:g}, beta {result.beta:g}, gamma {result.gamma:g} "
            f"(MACs x{result.cost_factor:.4g} per unit of phi)")


def _notes(with_presets: bool) -> list[str]:
    return [RATIO_DEFINITION] + ([PRESET_DEFINITION] if with_presets else [])


def render_sweep(result: Sweep, with_presets: bool = False) -> str:
    """The sweep as a plain-text table (what ``effdsl sweep`` prints without -o)."""
    table = Table(title=_title(result), title_justify="left")
    for column in COLUMNS:
        table.add_column(column, justify="left" if column == "preset" else "right")
    for row in result.table(with_presets):
        table.add_row(*_cells(row))
    return _record(table, *_notes(with_presets))


def sweep_markdown(result: Sweep, with_presets: bool = False) -> str:
    lines = [f"# {result.name} sweep", "", _title(result) + ".", ""]
    lines += [f"- {note}" for note in _notes(with_presets)] + [""]
    lines.append("| " + " | ".join(COLUMNS) + " |")
    lines.append("|" + "|".join("---" if c == "preset" else "--:" for c in COLUMNS) + "|")
    for row in result.table(with_presets):
        lines.append("| " + " | ".join(_cells(row)) + " |")
    return "\n".join(lines) + "\n"


CSV_FIELDS = tuple(SweepRow.__slots__)


def sweep_csv(result: Sweep, with_presets: bool = False) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in result.table(with_presets):
        writer.writerow({k: ("" if v is None else repr(v) if isinstance(v, float) else v)
                         for k, v in row.to_json().items()})
    return out.getvalue()


def sweep_json(result: Sweep, with_presets: bool = False) -> str:
    return json.dumps(result.to_json(with_presets), indent=2) + "\n"


def sweep_html(result: Sweep, with_presets: bool = False) -> str:
    """A self-contained page: the table and the plot as inline SVG (no external resource)."""
    esc = html.escape
    svg = plot_sweep(result, "svg").decode("utf-8")
    svg = svg[svg.index("<svg"):]
    head = "".join(f"<th>{esc(c)}</th>" for c in COLUMNS)
    body = "\n".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in _cells(row)) + "</tr>"
                     for row in result.table(with_presets))
    notes = "".join(f"<li>{esc(note)}</li>" for note in _notes(with_presets))
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8"/>
<title>{esc(result.name)} sweep</title>
<style>
body {{ font-family: sans-serif; margin: 2em; }}
table {{ border-collapse: collapse; }}
th, td {{ border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: right; }}
svg {{ max-width: 100%; height: auto; }}
</style>
</head>
<body>
<h1>{esc(result.name)} sweep</h1>
<p>{esc(_title(result))}.</p>
<ul>{notes}</ul>
<table>
<thead><tr>{head}</tr></thead>
<tbody>
{body}
</tbody>
</table>
<figure>
{svg}</figure>
</body>
</html>
"""


def plot_sweep(result: Sweep, fmt: str) -> bytes:
    """Params and MACs against phi (log scale), the ideal MACs curve and the presets, as
    ``fmt`` (``svg`` or ``png``, or a file suffix: ``.svg``).

    Drawn with matplotlib's Agg canvas (no pyplot, no display). SVG output is
    deterministic: fixed hash salt, no date, text kept as text. Artists carry ids
    (``params``, ``macs``, ``ideal-macs``, ``preset-NAME``) that show in the SVG.
    """
    fmt = fmt.lstrip(".").lower()
    require_matplotlib()
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    with matplotlib.rc_context({"svg.hashsalt": "effdsl", "svg.fonttype": "none", "font.size": 9}):
        fig = Figure(figsize=(7, 4.2))
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        _draw_sweep(ax, result)
        fig.tight_layout()
        out = io.BytesIO()
        if fmt == "svg":
            creator = f"effdsl sweep, matplotlib {matplotlib.__version__}"
            fig.savefig(out, format="svg", metadata={"Date": None, "Creator": creator})
        elif fmt == "png":
            fig.savefig(out, format="png", dpi=120, metadata={"Software": None})
        else:
            raise _suffix_error("--plot", f".{fmt}", PLOT_SUFFIXES)
    return out.getvalue()


def _draw_sweep(ax: Axes, result: Sweep) -> None:
    phis = [row.phi for row in result.rows if row.phi is not None]  # all of them: only a preset's may be None
    (line,) = ax.plot(phis, [row.params for row in result.rows], "o-", color="tab:blue", ms=3,
                      label="params")
    line.set_gid("params")
    (line,) = ax.plot(phis, [row.macs for row in result.rows], "s-", color="tab:red", ms=3, label="MACs")
    line.set_gid("macs")
    # presets at their equivalent phi (there is none when alpha * beta^2 * gamma^2 is 1)
    marked = [(p.preset, p.phi, p) for p in result.presets if p.preset is not None and p.phi is not None]
    xs = phis + [phi for _, phi, _ in marked]
    lo, hi = min(xs), max(xs)
    grid = [lo + (hi - lo) * i / 100 for i in range(101)]
    (line,) = ax.plot(grid, [result.ideal_macs(x) for x in grid], "--", color="tab:gray", lw=1,
                      label="ideal: MACs(0) × (αβ²γ²)^φ")
    line.set_gid("ideal-macs")
    for i, (name, phi, p) in enumerate(marked):
        label = "presets (at equivalent phi)" if i == 0 else None  # one legend entry for all
        group = ax.scatter([phi, phi], [p.params, p.macs], marker="D", s=22, facecolors="none",
                           edgecolors="black", linewidths=0.8, zorder=3, label=label)
        group.set_gid(f"preset-{name}")
        ax.annotate(name, (phi, p.macs), textcoords="offset points", xytext=(-4, 6), fontsize=8,
                    ha="right").set_gid(f"label-{name}")
    ax.set_yscale("log")
    ax.set_xlabel("phi")
    ax.set_ylabel("count (log scale)")
    ax.set_title(_title(result), fontsize=9)
    ax.grid(True, which="both", lw=0.3, alpha=0.5)
    ax.legend(loc="upper left", fontsize=8)


def require_matplotlib() -> None:
    """Refuse a plot (E408) where matplotlib is not installed."""
    try:
        importlib.import_module("matplotlib")
    except ImportError:
        raise EffdslError(Diagnostic("E408", "a plot (--plot, or an .html report) needs matplotlib, "
                                     "which is not installed", None,
                                     "pip install 'effdsl[plot]' (or pip install matplotlib)")) from None


WRITERS = {".md": sweep_markdown, ".csv": sweep_csv, ".json": sweep_json, ".html": sweep_html}


def check_outputs(output: Path | None, plot: Path | None) -> None:
    """Refuse an unknown report or plot file type, or a plot without matplotlib (E408)."""
    if output is not None and output.suffix.lower() not in REPORT_SUFFIXES:
        raise _suffix_error("-o", output.suffix or output.name, REPORT_SUFFIXES)
    if plot is not None and plot.suffix.lower() not in PLOT_SUFFIXES:
        raise _suffix_error("--plot", plot.suffix or plot.name, PLOT_SUFFIXES)
    if plot is not None or (output is not None and output.suffix.lower() == ".html"):
        require_matplotlib()


def _suffix_error(flag: str, suffix: str, allowed: tuple[str, ...]) -> EffdslError:
    return EffdslError(Diagnostic("E408", f"{flag} cannot write a '{suffix}' file", None,
                                  f"name a file ending in {', '.join(allowed)}"))


def sweep_files(result: Sweep, output: Path | None, plot: Path | None,
                with_presets: bool = False) -> list[tuple[Path, bytes]]:
    """The report (by ``output``'s suffix) and the plot, as (path, content) to write."""
    check_outputs(output, plot)
    files: list[tuple[Path, bytes]] = []
    if output is not None:
        files.append((output, WRITERS[output.suffix.lower()](result, with_presets).encode("utf-8")))
    if plot is not None:
        files.append((plot, plot_sweep(result, plot.suffix)))
    return files


# --- diff ------------------------------------------------------------------------------

ChoiceKind = Literal["phi", "preset"]
Choice = tuple[ChoiceKind, float | str]


def choices_in_order(order: list[str], phis: list[float], presets: list[str]) -> list[Choice]:
    """Pair the values of --phi and --preset with the order the flags were written in."""
    remaining: dict[str, tuple[ChoiceKind, Iterator[float | str]]] = {
        "--phi": ("phi", iter(phis)), "--preset": ("preset", iter(presets))}
    chosen: list[Choice] = []
    for flag in order:
        kind, values = remaining[flag]
        value = next(values, None)
        if value is not None:
            chosen.append((kind, value))
    for kind, values in remaining.values():  # values the order did not cover (a call from Python)
        chosen += [(kind, value) for value in values]
    return chosen


@dataclass(frozen=True, slots=True)
class Tensor:
    """A state_dict entry of the PyTorch module: name, shape, and whether it is a parameter."""

    name: str
    shape: tuple[int, ...]
    param: bool = True

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


def tensors(compiled: Compiled) -> list[Tensor]:
    """The module's state_dict names and shapes, read off the IR (torch not needed).

    Module path = operator name; conv: weight (out, in/groups, k, k) and a bias when the
    op has one; batch norm: weight, bias, running_mean, running_var (C,) and
    num_batches_tracked (); linear: weight (out, in) and bias.
    """
    found: list[Tensor] = []
    for op in compiled.graph.ops():
        if op.kind in ("conv", "dwconv"):
            found.append(Tensor(f"{op.name}.weight", (op.out_ch, op.in_ch // op.groups, op.kernel, op.kernel)))
            if op.bias:
                found.append(Tensor(f"{op.name}.bias", (op.out_ch,)))
        elif op.kind == "bn":
            c = (op.out_ch,)
            found += [Tensor(f"{op.name}.weight", c), Tensor(f"{op.name}.bias", c),
                      Tensor(f"{op.name}.running_mean", c, False), Tensor(f"{op.name}.running_var", c, False),
                      Tensor(f"{op.name}.num_batches_tracked", (), False)]
        elif op.kind == "linear":
            found.append(Tensor(f"{op.name}.weight", (op.out_ch, op.in_ch)))
            if op.bias:
                found.append(Tensor(f"{op.name}.bias", (op.out_ch,)))
    return found


def block_of(name: str) -> str:
    """The block (``stages.1.0``) or top-level module (``stem``, ``head``) of a tensor."""
    parts = name.split(".")
    return ".".join(parts[:3]) if parts[0] == "stages" else parts[0]


@dataclass(frozen=True, slots=True)
class StageDiff:
    name: str
    a: StageRow | None
    b: StageRow | None

    @property
    def changed(self) -> list[str]:
        if self.a is None or self.b is None:
            return ["only in " + ("B" if self.a is None else "A")]
        out = []
        for field in ("repeats", "out_ch", "block", "kernel", "stride", "expand"):
            if getattr(self.a, field) != getattr(self.b, field):
                out.append("channels" if field == "out_ch" else field)
        return out

    def to_json(self) -> dict[str, object]:
        def pair(field: str) -> list[object]:
            return [getattr(r, field) if r is not None else None for r in (self.a, self.b)]
        return {"name": self.name, "repeats": pair("repeats"), "channels": pair("out_ch"),
                "block": pair("block"), "kernel": pair("kernel"), "stride": pair("stride"),
                "expand": pair("expand"), "changed": self.changed}


@dataclass(frozen=True, slots=True)
class Side:
    label: str
    compiled: Compiled

    def to_json(self) -> dict[str, object]:
        s = self.compiled.summary
        return {"label": self.label, "name": s.name, "phi": s.phi, "preset": s.preset,
                "width_mult": s.width_mult, "depth_mult": s.depth_mult, "resolution": s.resolution,
                "blocks": s.num_blocks, "params": s.params, "macs": s.macs}


class Total(TypedDict):
    """One total of A and B (params, MACs, resolution, blocks), and B's over A's."""

    a: int
    b: int
    ratio: float | None  # None when A's is 0


@dataclass(frozen=True, slots=True)
class Diff:
    a: Side
    b: Side
    stages: tuple[StageDiff, ...]
    changed: tuple[tuple[str, tuple[int, ...], tuple[int, ...]], ...]  # name, shape in A, shape in B
    only_a: tuple[Tensor, ...]
    only_b: tuple[Tensor, ...]
    unchanged: tuple[Tensor, ...]   # same name and shape: transfers as is

    @property
    def transfer_params(self) -> int:
        """Parameters of B that can be copied from A unchanged."""
        return sum(t.numel for t in self.unchanged if t.param)

    def totals(self) -> dict[str, Total]:
        sa, sb = self.a.compiled.summary, self.b.compiled.summary
        return {key: {"a": x, "b": y, "ratio": y / x if x else None}
                for key, x, y in (("params", sa.params, sb.params), ("macs", sa.macs, sb.macs),
                                  ("resolution", sa.resolution, sb.resolution),
                                  ("blocks", sa.num_blocks, sb.num_blocks))}

    def to_json(self) -> dict[str, object]:
        return {
            "a": self.a.to_json(), "b": self.b.to_json(),
            "stages": [s.to_json() for s in self.stages],
            "tensors": {
                "unchanged": len(self.unchanged),
                "changed": [{"name": n, "a": list(x), "b": list(y)} for n, x, y in self.changed],
                "only_a": [{"name": t.name, "shape": list(t.shape)} for t in self.only_a],
                "only_b": [{"name": t.name, "shape": list(t.shape)} for t in self.only_b],
            },
            "transfer": {"tensors": len(self.unchanged), "tensors_b": len(self.unchanged) + len(self.changed)
                         + len(self.only_b), "params": self.transfer_params,
                         "params_b": self.b.compiled.summary.params},
            "totals": self.totals(),
        }


def diff(spec: str | Path, choices: list[Choice], against: str | Path | None = None) -> Diff:
    """Compare two members: A and B.

    ``choices`` pick the members ((kind, value) with kind ``phi`` or ``preset``): two
    choices are A and B; one choice is B against the baseline, or, with ``against``,
    the member of both specs; none (with ``against``) compares the two baselines.
    ``against`` names B's spec (A's is ``spec``).
    """
    if len(choices) > 2 or (not choices and against is None):
        given = ", ".join(f"--{k} {v:g}" if k == "phi" else f"--{k} {v}" for k, v in choices) or "nothing"
        raise EffdslError(Diagnostic(
            "E407", f"diff compares two members, got {given}", None,
            "give two of --phi/--preset (--phi 1 --phi 3, --preset b0 --phi 1), "
            "one (compared with the baseline), or --against OTHER.eff"))
    first: Choice | None
    second: Choice | None
    if len(choices) == 2:
        first, second = choices
    elif choices:
        first, second = (choices[0], choices[0]) if against is not None else (None, choices[0])
    else:
        first = second = None
    parsed = _parsed(spec)
    a = _side(parsed, first)
    b = _side(_parsed(against) if against is not None else parsed, second)
    return compare(a, b)


def _parsed(spec: str | Path) -> tuple[Source, Network]:
    """Read and check a spec once, for all the members compiled from it."""
    source = load_source(spec)
    return source, analyze_source(source)


def _side(parsed: tuple[Source, Network], choice: Choice | None) -> Side:
    source, net = parsed
    if choice is None:
        member, which = Member(phi=0.0), "baseline"
    elif choice[0] == "phi":
        member, which = Member(phi=float(choice[1])), f"phi {float(choice[1]):g}"
    else:
        member, which = Member(preset=str(choice[1])), f"preset {choice[1]}"
    compiled = compile_network(net, member, source=source)
    return Side(f"{compiled.source.filename} ({which})", compiled)


def compare(a: Side, b: Side) -> Diff:
    rows_a = {r.name: r for r in a.compiled.summary.rows}
    rows_b = {r.name: r for r in b.compiled.summary.rows}
    n = max(len(side.compiled.graph.plan.stages) for side in (a, b))
    names = ["stem"] + [f"stage{i + 1}" for i in range(n)] + ["head"]
    stages = tuple(StageDiff(name, rows_a.get(name), rows_b.get(name)) for name in names)
    ta, tb = tensors(a.compiled), tensors(b.compiled)
    shapes_a = {t.name: t for t in ta}
    shapes_b = {t.name: t for t in tb}
    changed = tuple((t.name, shapes_a[t.name].shape, t.shape) for t in tb
                    if t.name in shapes_a and shapes_a[t.name].shape != t.shape)
    return Diff(a, b, stages, changed,
                only_a=tuple(t for t in ta if t.name not in shapes_b),
                only_b=tuple(t for t in tb if t.name not in shapes_a),
                unchanged=tuple(t for t in tb if t.name in shapes_a and shapes_a[t.name].shape == t.shape))


def _shape(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape)) if shape else "scalar"


def _pair(x: object, y: object, fmt: Callable[[object], str] = str) -> str:
    return fmt(x) if x == y else f"{fmt(x)} -> {fmt(y)}"


def render_diff(result: Diff) -> str:
    """The diff as plain text (what ``effdsl diff`` prints)."""
    table = Table(title=f"A: {result.a.label}\nB: {result.b.label}", title_justify="left")
    for column in ("stage", "block", "repeats", "channels", "changed"):
        table.add_column(column, justify="right" if column in ("repeats", "channels") else "left")
    for s in result.stages:
        row = s.a or s.b
        if row is None:  # in neither member: compare() lists only the stages of A or B
            continue
        if s.a is None or s.b is None:
            table.add_row(s.name, row.block, str(row.repeats), str(row.out_ch), s.changed[0])
            continue
        notes = [c if c in ("repeats", "channels") else f"{c} {_pair(getattr(s.a, c), getattr(s.b, c), _g)}"
                 for c in s.changed]
        table.add_row(s.name, s.a.block, _pair(s.a.repeats, s.b.repeats), _pair(s.a.out_ch, s.b.out_ch),
                      ", ".join(notes) or "-")
    lines = [""]
    n_b = len(result.unchanged) + len(result.changed) + len(result.only_b)
    pb = result.b.compiled.summary.params
    lines.append(f"tensors of B: {n_b}; {len(result.unchanged)} transfer from A unchanged "
                 f"({result.transfer_params:,} of {pb:,} params, {100 * result.transfer_params / pb:.1f}%), "
                 f"{len(result.changed)} change shape, {len(result.only_b)} only in B; "
                 f"{len(result.only_a)} only in A")
    if result.changed:
        lines += ["", "change shape (A -> B):"]
        lines += [f"  {name}: {_shape(x)} -> {_shape(y)}" for name, x, y in result.changed]
    for side, only in (("A", result.only_a), ("B", result.only_b)):
        if only:
            lines += ["", f"only in {side} (by block):"]
            for block, group in _by_block(only):
                count = sum(t.numel for t in group if t.param)
                lines.append(f"  {block}: {len(group)} tensors, {count:,} params")
    lines += ["", "totals (A -> B):"]
    for key, label in (("params", "params"), ("macs", "MACs"), ("resolution", "resolution"), ("blocks", "blocks")):
        t = result.totals()[key]
        lines.append(f"  {label:<11} {t['a']:,} -> {t['b']:,}  (x{t['ratio']:.3f})")
    return _record(table, *lines)


def _by_block(found: Iterable[Tensor]) -> list[tuple[str, list[Tensor]]]:
    groups: dict[str, list[Tensor]] = {}
    for t in found:
        groups.setdefault(block_of(t.name), []).append(t)
    return list(groups.items())


def _g(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _record(table: Table, *lines: str) -> str:
    console = Console(record=True, width=120, force_terminal=False, color_system=None, file=io.StringIO())
    console.print(table)
    for line in lines:
        console.print(line, highlight=False, markup=False, soft_wrap=True)
    return console.export_text()
