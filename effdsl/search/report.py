"""The reports of a search: ``report.md`` and ``report.html`` (ranking and a Pareto plot).

The ranking orders the finished trials by reward. The plot puts each trial at its cost
(MACs, parameters or latency, as the target) and its quality (held-out accuracy, or the
zero-cost score), marks the target and the rejection limit, and joins the Pareto front:
the trials that no other trial beats on both axes. It is drawn with matplotlib (SVG,
deterministic); without matplotlib the reports say so and keep the table.
"""

from __future__ import annotations

import html
import io
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from effdsl.search import records
from effdsl.search.reward import human
from effdsl.search.strategy import MAX_ATTEMPTS

if TYPE_CHECKING:
    from effdsl.search.run import SearchResult

PLOT = "pareto.svg"
TOP = 20  # rows of the ranking


def quality_name(result: SearchResult) -> str:
    options = result.options
    if options is not None and options.proxy == "zero-cost":
        return f"{options.zero_cost} score"
    return "accuracy"


def _cost(result: SearchResult, record: dict[str, Any]) -> float | None:
    cost: float | None = {"macs": record["macs"], "params": record["params"],
                          "latency": record["latency_ms"]}[result.target.kind]
    return cost


def _known_cost(result: SearchResult, record: dict[str, Any]) -> float:
    """The cost of a trial already known to have one (a finished trial of the front or the plot)."""
    cost = _cost(result, record)
    assert cost is not None, f"trial {record['trial']} has no {result.target.kind}"
    return cost


def _cost_label(result: SearchResult) -> str:
    return {"macs": "MACs", "params": "parameters", "latency": "latency (ms, batch 1)"}[result.target.kind]


def pareto(result: SearchResult) -> list[dict[str, Any]]:
    """The finished trials that no other beats on both cost (lower) and quality (higher), by cost."""
    done = sorted((t for t in result.trials if t["status"] == "ok" and t["score"] is not None
                   and _cost(result, t) is not None), key=lambda t: (_cost(result, t), -t["score"]))
    front, best = [], -math.inf
    for trial in done:
        if trial["score"] > best:
            front.append(trial)
            best = trial["score"]
    return front


def ranking(result: SearchResult) -> list[dict[str, Any]]:
    ranked = [t for t in result.trials if t["reward"] is not None]
    return sorted(ranked, key=lambda t: (-t["reward"], t["trial"]))


def _quality(result: SearchResult, record: dict[str, Any]) -> str:
    if record["accuracy"] is not None:
        return f"{record['accuracy']:.1%}"
    return "" if record["score"] is None else f"{record['score']:.4g}"


def _row(result: SearchResult, rank: int, t: dict[str, Any]) -> list[str]:
    latency = "" if t["latency_ms"] is None else f"{t['latency_ms']:.3g}"
    return [str(rank), str(t["trial"]), f"{t['reward']:.4g}", _quality(result, t), human(t["macs"]),
            human(t["params"]), latency, f"{t['seconds']:.1f}", " ".join(t["choices"].values())]


COLUMNS = ["rank", "trial", "reward", "quality", "MACs", "params", "ms", "seconds", "choices"]


def summary_lines(result: SearchResult) -> list[str]:
    """What the search did, in a few lines (the CLI prints them too)."""
    options = result.options
    trials = result.trials
    ok = sum(t["status"] == "ok" for t in trials)
    failed: dict[str, int] = {}
    for t in trials:
        if t["status"] != "ok":
            failed[t["status"]] = failed.get(t["status"], 0) + 1
    failures = "".join(f", {n} {status}" for status, n in sorted(failed.items()))
    lines = [f"target: {result.target.describe()}"]
    if options is not None:
        strategy: str = options.strategy
        if strategy == "evolution":
            strategy += f" (population {options.population}, tournament {options.tournament})"
        proxy = (f"train ({options.epochs} epoch{'s' if options.epochs != 1 else ''})" if options.proxy == "train"
                 else f"zero-cost ({options.zero_cost})")
        where = "" if options.executor == "local" else f" on {options.executor}"
        lines.append(f"strategy {strategy}; proxy {proxy}; data {options.data}; seed {options.seed}; "
                     f"workers {options.workers}{where}")
    lines.append(f"trials: {len(trials)} ({ok} ok{failures}); screened {result.screened:,} proposals: "
                 f"{result.rejected:,} over the limit, {result.duplicates:,} already tried")
    rerun = [t["trial"] for t in trials if t.get("retries")]  # records of earlier versions have no retries
    if rerun:
        shown = ", ".join(str(i) for i in rerun[:8]) + (", ..." if len(rerun) > 8 else "")
        lines.append(f"rerun after their worker died: trial{'s' if len(rerun) > 1 else ''} {shown}")
    if result.exhausted:
        lines.append(f"the space has no new member within the limit (after {MAX_ATTEMPTS:,} proposals in a row)")
    return lines


def best_line(result: SearchResult) -> str | None:
    best = result.best
    return None if best is None else _best_text(result, best)


def _best_text(result: SearchResult, best: dict[str, Any]) -> str:
    latency = f", {best['latency_ms']:.3g} ms" if best["latency_ms"] is not None else ""
    return (f"best: trial {best['trial']}, reward {best['reward']:.4g}, {quality_name(result)} "
            f"{_quality(result, best)}, {human(best['macs'])} MACs, {human(best['params'])} params{latency}")


def render_markdown(result: SearchResult, plot: bool) -> str:
    out = [f"# Search of {result.space}", ""]
    out += [f"- {line}" for line in summary_lines(result)]
    out.append("")
    best = result.best
    if best is not None:
        out += [f"## Best: trial {best['trial']}", "", _best_text(result, best) + ".", "", "```text",
                best["spec"].rstrip("\n"), "```", ""]
    out += ["## Ranking", "", f"By reward; quality is the {quality_name(result)}.", ""]
    ranked = ranking(result)[:TOP]
    out.append("| " + " | ".join(COLUMNS) + " |")
    out.append("|" + "|".join("---" for _ in COLUMNS) + "|")
    for rank, t in enumerate(ranked, start=1):
        out.append("| " + " | ".join(_row(result, rank, t)) + " |")
    out.append("")
    failed = [t for t in result.trials if t["status"] != "ok"]
    if failed:
        out += ["## Trials that did not finish", ""]
        out += [f"- trial {t['trial']}: {t['status']}" + (f" ({t['error']})" if t["error"] else "") for t in failed]
        out.append("")
    out += ["## Pareto front", ""]
    front = pareto(result)
    out.append(", ".join(f"trial {t['trial']} ({human(_known_cost(result, t))}, {_quality(result, t)})" for t in front)
               or "no finished trial")
    out.append("")
    out.append(f"![{quality_name(result)} against {_cost_label(result)}]({PLOT})" if plot else
               "(the plot needs matplotlib: pip install matplotlib)")
    return "\n".join(out) + "\n"


def render_html(result: SearchResult, svg: str | None) -> str:
    esc = html.escape
    items = "".join(f"<li>{esc(line)}</li>" for line in summary_lines(result))
    best = result.best
    best_html = "" if best is None else (f"<h2>Best: trial {best['trial']}</h2>\n"
                                         f"<p>{esc(_best_text(result, best))}.</p>\n"
                                         f"<pre>{esc(best['spec'])}</pre>\n")
    head = "".join(f"<th>{esc(c)}</th>" for c in COLUMNS)
    body = "\n".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in _row(result, rank, t)) + "</tr>"
                     for rank, t in enumerate(ranking(result)[:TOP], start=1))
    figure = svg[svg.index("<svg"):] if svg else "<p>(the plot needs matplotlib: pip install matplotlib)</p>"
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8"/>
<title>Search of {esc(result.space)}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; }}
table {{ border-collapse: collapse; }}
th, td {{ border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: right; }}
td:last-child {{ text-align: left; font-family: monospace; }}
svg {{ max-width: 100%; height: auto; }}
</style>
</head>
<body>
<h1>Search of {esc(result.space)}</h1>
<ul>{items}</ul>
{best_html}<h2>Ranking</h2>
<p>By reward; quality is the {esc(quality_name(result))}.</p>
<table>
<thead><tr>{head}</tr></thead>
<tbody>
{body}
</tbody>
</table>
<h2>Pareto front</h2>
<figure>
{figure}</figure>
</body>
</html>
"""


def plot_svg(result: SearchResult) -> str | None:
    """Quality against cost, target and limit marked, Pareto front joined; None without matplotlib."""
    try:
        import matplotlib
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return None
    done = [t for t in result.trials if t["status"] == "ok" and t["score"] is not None
            and _cost(result, t) is not None]
    with matplotlib.rc_context({"svg.hashsalt": "effdsl", "svg.fonttype": "none", "font.size": 9}):
        fig = Figure(figsize=(7, 4.2))
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        ax.scatter([_known_cost(result, t) for t in done], [t["score"] for t in done], s=14, color="tab:blue",
                   alpha=0.7, label="trials").set_gid("trials")
        front = pareto(result)
        if front:
            (line,) = ax.plot([_known_cost(result, t) for t in front], [t["score"] for t in front], "o-",
                              color="tab:red", ms=4, lw=1, label="Pareto front")
            line.set_gid("pareto")
        best = result.best
        best_cost = None if best is None else _cost(result, best)
        if best is not None and best_cost is not None:
            ax.scatter([best_cost], [best["score"]], marker="*", s=120, color="gold",
                       edgecolors="black", linewidths=0.6, zorder=4, label=f"best (trial {best['trial']})"
                       ).set_gid("best")
        target = result.target
        ax.axvline(target.value, color="black", ls="--", lw=1, label=f"target {human(target.value)}"
                   ).set_gid("target")
        ax.axvline(target.value * target.limit, color="gray", ls=":", lw=1,
                   label=f"limit {target.limit:g} x target").set_gid("limit")
        ax.set_xscale("log")
        ax.set_xlabel(f"{_cost_label(result)} (log scale)")
        ax.set_ylabel(quality_name(result))
        ax.set_title(f"Search of {result.space}: {len(done)} finished trials", fontsize=9)
        ax.grid(True, which="both", lw=0.3, alpha=0.5)
        ax.legend(loc="lower right", fontsize=8)
        fig.tight_layout()
        out = io.BytesIO()
        fig.savefig(out, format="svg", metadata={"Date": None,
                                                 "Creator": f"effdsl search, matplotlib {matplotlib.__version__}"})
    return out.getvalue().decode("utf-8")


def write_reports(result: SearchResult) -> list[Path]:
    """report.md, report.html and the plot (when matplotlib is there); the paths written."""
    svg = plot_svg(result)
    written = []
    if svg is not None:
        path = result.folder / PLOT
        path.write_text(svg, encoding="utf-8")
        written.append(path)
    for name, text in ((records.REPORT_MD, render_markdown(result, svg is not None)),
                       (records.REPORT_HTML, render_html(result, svg))):
        path = result.folder / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
