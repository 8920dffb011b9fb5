"""The reports of a grid: ``report.md``, ``report.html`` and ``heatmap.svg``.

The ranking orders the evaluated candidates by quality (held-out accuracy, or the
zero-cost score). The heat map puts beta on one axis and gamma on the other, one cell per
pair that has a candidate, coloured by its quality; alpha is implied by the constraint
(written in the cell; where the tolerance lets several alphas fit one pair, the cell
shows the best of them). It is plain SVG written here, so the HTML page is
self-contained and the picture is the same on every machine.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING, Any

from effdsl.scaling.grid import decimal_text, exact
from effdsl.search.reward import human

if TYPE_CHECKING:
    from effdsl.search.grid import GridResult

REPORT_MD = "report.md"
REPORT_HTML = "report.html"
HEATMAP = "heatmap.svg"
TOP = 20  # rows of the ranking
COLUMNS = ["rank", "candidate", "alpha", "beta", "gamma", "product", "quality", "MACs", "params", "resolution",
           "seconds", "same as"]

# A sequential colour scale (light yellow to dark blue), interpolated between these stops.
_STOPS = ((255, 255, 204), (161, 218, 180), (65, 182, 196), (44, 127, 184), (37, 52, 148))


def quality(record: dict[str, Any]) -> float | None:
    """What the grid ranks by: the held-out accuracy, or the zero-cost score."""
    value = record["accuracy"] if record["accuracy"] is not None else record["score"]
    return None if value is None else float(value)




def quality_name(result: GridResult) -> str:
    options = result.options
    return f"{options.zero_cost} score" if options.proxy == "zero-cost" else "accuracy"


def _shown(result: GridResult, value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.1%}" if result.options.proxy == "train" else f"{value:.4g}"


def _coeff(value: float) -> str:
    return decimal_text(exact(value))


def ranking(result: GridResult) -> list[dict[str, Any]]:
    """The candidates with a quality, best first (ties: fewer MACs, then grid order)."""
    done = [r for r in result.records if r["status"] == "ok" and quality(r) is not None]
    return sorted(done, key=lambda r: (-(quality(r) or 0.0), r["macs"], r["candidate"]))


def summary_lines(result: GridResult) -> list[str]:
    """What the grid did, in a few lines (the CLI prints them too)."""
    o = result.options
    records = result.records
    statuses: dict[str, int] = {}
    for r in records:
        statuses[r["status"]] = statuses.get(r["status"], 0) + 1
    counts = ", ".join(f"{n} {status}" for status, n in sorted(statuses.items()))
    same = sum(r["same_as"] is not None for r in records)
    proxy = f"train ({o.epochs} epoch{'s' if o.epochs != 1 else ''})" if o.proxy == "train" \
        else f"zero-cost ({o.zero_cost})"
    return [
        f"constraint: alpha x beta^2 x gamma^2 within {decimal_text(o.tolerance)} x {decimal_text(o.target)} "
        f"(step {decimal_text(o.step)}, coefficients 1 to {decimal_text(o.max_coeff)}); phi {o.phi:g}",
        f"proxy {proxy}; data {o.data}; seed {o.seed}; workers {o.workers}",
        f"candidates: {len(records)} of {result.candidates} ({counts or 'none recorded'}); "
        f"{result.networks} distinct networks, {same} candidates round to a network already evaluated",
    ]


def best_line(result: GridResult) -> str | None:
    best = result.best
    if best is None:
        return None
    return (f"best: candidate {best['candidate']}, alpha {_coeff(best['alpha'])} beta {_coeff(best['beta'])} "
            f"gamma {_coeff(best['gamma'])} (product {best['product']:.4g}), {quality_name(result)} "
            f"{_shown(result, quality(best))}, {human(best['macs'])} MACs, {human(best['params'])} params, "
            f"{best['resolution']} px")


def _row(result: GridResult, rank: int, r: dict[str, Any]) -> list[str]:
    return [str(rank), str(r["candidate"]), _coeff(r["alpha"]), _coeff(r["beta"]), _coeff(r["gamma"]),
            f"{r['product']:.4g}", _shown(result, quality(r)), human(r["macs"]), human(r["params"]),
            str(r["resolution"]), f"{r['seconds']:.1f}", "" if r["same_as"] is None else str(r["same_as"])]


def render_markdown(result: GridResult) -> str:
    out = [f"# Compound-scaling grid of {result.spec}", ""]
    out += [f"- {line}" for line in summary_lines(result)]
    out.append("")
    best = best_line(result)
    if best is not None:
        out += ["## Best", "", best + ".", ""]
    out += ["## Ranking", "", f"By {quality_name(result)}; a candidate that rounds to the network of an earlier one "
                              "shares its outcome (same as).", ""]
    out.append("| " + " | ".join(COLUMNS) + " |")
    out.append("|" + "|".join("---" for _ in COLUMNS) + "|")
    for rank, r in enumerate(ranking(result)[:TOP], start=1):
        out.append("| " + " | ".join(_row(result, rank, r)) + " |")
    out.append("")
    failed = [r for r in result.records if r["status"] != "ok"]
    if failed:
        out += ["## Candidates that did not finish", ""]
        out += [f"- candidate {r['candidate']}: {r['status']}" + (f" ({r['error']})" if r["error"] else "")
                for r in failed]
        out.append("")
    out += ["## Heat map", "", f"beta against gamma, coloured by {quality_name(result)}; alpha is implied by the "
                               "constraint (written in each cell).", "", f"![heat map]({HEATMAP})", ""]
    return "\n".join(out)


def _cells(result: GridResult) -> dict[tuple[float, float], dict[str, Any]]:
    """The best evaluated candidate of each (beta, gamma) pair."""
    cells: dict[tuple[float, float], dict[str, Any]] = {}
    for r in ranking(result):
        cells.setdefault((r["beta"], r["gamma"]), r)
    return cells


def _colour(fraction: float) -> str:
    fraction = min(1.0, max(0.0, fraction))
    position = fraction * (len(_STOPS) - 1)
    i = min(int(position), len(_STOPS) - 2)
    t = position - i
    rgb = [round(a + (b - a) * t) for a, b in zip(_STOPS[i], _STOPS[i + 1], strict=True)]
    return "#" + "".join(f"{c:02x}" for c in rgb)


def heatmap_svg(result: GridResult) -> str:
    """beta (rows, upwards) against gamma (columns), each cell coloured by the best quality of its pair."""
    esc = html.escape
    cells = _cells(result)
    betas = sorted({r["beta"] for r in result.records})
    gammas = sorted({r["gamma"] for r in result.records})
    values = [q for r in cells.values() if (q := quality(r)) is not None]
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    size, left, top = 44, 64, 36
    width, height = max(left + size * len(gammas) + 20, 480), top + size * len(betas) + 56
    best = result.best
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="10" id="heatmap">',
             f'<text x="{left}" y="16" font-size="12">{esc(result.spec)}: {esc(quality_name(result))} by beta and '
             f'gamma (alpha implied)</text>']
    for row, beta in enumerate(reversed(betas)):
        y = top + row * size
        parts.append(f'<text x="{left - 6}" y="{y + size / 2 + 4}" text-anchor="end">{_coeff(beta)}</text>')
        for col, gamma in enumerate(gammas):
            x = left + col * size
            record = cells.get((beta, gamma))
            if record is None:
                parts.append(f'<rect x="{x}" y="{y}" width="{size}" height="{size}" fill="#f2f2f2" stroke="#fff"/>')
                continue
            q = quality(record)
            fraction = 0.5 if high == low or q is None else (q - low) / (high - low)
            ink = "#fff" if fraction > 0.6 else "#000"  # on the dark end of the scale
            outline = ' stroke="#d62728" stroke-width="3"' if best is not None and record is best else \
                ' stroke="#fff"'
            tip = (f"alpha {_coeff(record['alpha'])} beta {_coeff(beta)} gamma {_coeff(gamma)}: "
                   f"{quality_name(result)} {_shown(result, q)}, {human(record['macs'])} MACs")
            parts.append(f'<g class="cell" data-candidate="{record["candidate"]}">'
                         f'<title>{esc(tip)}</title>'
                         f'<rect x="{x}" y="{y}" width="{size}" height="{size}" fill="{_colour(fraction)}"{outline}/>'
                         f'<text x="{x + size / 2}" y="{y + 17}" text-anchor="middle" fill="{ink}"'
                         f'>a{_coeff(record["alpha"])}</text>'
                         f'<text x="{x + size / 2}" y="{y + 31}" text-anchor="middle" fill="{ink}"'
                         f'>{esc(_shown(result, q))}</text></g>')
    bottom = top + size * len(betas)
    for col, gamma in enumerate(gammas):
        parts.append(f'<text x="{left + col * size + size / 2}" y="{bottom + 14}" text-anchor="middle">'
                     f'{_coeff(gamma)}</text>')
    parts.append(f'<text x="{left + size * len(gammas) / 2}" y="{bottom + 30}" text-anchor="middle">gamma '
                 f'(resolution)</text>')
    parts.append(f'<text x="14" y="{top + size * len(betas) / 2}" text-anchor="middle" '
                 f'transform="rotate(-90 14 {top + size * len(betas) / 2})">beta (width)</text>')
    parts.append(f'<text x="{left}" y="{bottom + 46}">colour: {esc(_shown(result, low))} (light) to '
                 f'{esc(_shown(result, high))} (dark); red outline: the best</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def render_html(result: GridResult, svg: str) -> str:
    esc = html.escape
    items = "".join(f"<li>{esc(line)}</li>" for line in summary_lines(result))
    best = best_line(result)
    best_html = "" if best is None else f"<h2>Best</h2>\n<p>{esc(best)}.</p>\n"
    head = "".join(f"<th>{esc(c)}</th>" for c in COLUMNS)
    body = "\n".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in _row(result, rank, r)) + "</tr>"
                     for rank, r in enumerate(ranking(result)[:TOP], start=1))
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8"/>
<title>Compound-scaling grid of {esc(result.spec)}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; }}
table {{ border-collapse: collapse; }}
th, td {{ border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: right; }}
</style>
</head>
<body>
<h1>Compound-scaling grid of {esc(result.spec)}</h1>
<ul>{items}</ul>
{best_html}<h2>Ranking</h2>
<p>By {esc(quality_name(result))}; a candidate that rounds to the network of an earlier one shares its outcome.</p>
<table>
<thead><tr>{head}</tr></thead>
<tbody>
{body}
</tbody>
</table>
<h2>Heat map</h2>
<figure>
{svg}</figure>
</body>
</html>
"""


def write_reports(result: GridResult) -> list[Path]:
    """report.md, report.html and heatmap.svg; the paths written."""
    svg = heatmap_svg(result)
    written = []
    for name, text in ((HEATMAP, svg), (REPORT_MD, render_markdown(result)), (REPORT_HTML, render_html(result, svg))):
        path = result.folder / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
