"""The sweep of a family over phi (``effdsl sweep``) and its writers (text, markdown, CSV,
JSON, HTML, a matplotlib plot).

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
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

from rich.table import Table

from effdsl.api import Compiled, compile_network
from effdsl.diagnostics import Diagnostic, EffdslError
from effdsl.reports.common import parsed, record
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
    source, net = parsed(spec)
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
    return record(table, *_notes(with_presets))


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
