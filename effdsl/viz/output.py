"""Writing a picture of a compiled network (``effdsl viz``): choose the format by the
output's suffix and render it.

- ``svg`` (:mod:`effdsl.viz.svg`), ``html`` (:mod:`effdsl.viz.html`: one self-contained
  page, stages collapsible, a details panel), ``dot`` (Graphviz) and ``mmd`` (Mermaid)
  (:mod:`effdsl.viz.text`), and ``png`` (the SVG rasterized with cairosvg, when it can be
  imported).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from effdsl.diagnostics import Diagnostic, EffdslError
from effdsl.ir.graph import CompiledGraph
from effdsl.viz.html import html
from effdsl.viz.svg import size, svg
from effdsl.viz.text import dot, mermaid
from effdsl.viz.view import view

SUFFIXES = {".svg": "svg", ".html": "html", ".htm": "html", ".dot": "dot", ".gv": "dot", ".mmd": "mmd",
            ".png": "png"}
MAIN_SUFFIXES = (".svg", ".html", ".dot", ".mmd", ".png")  # the ones the help names (.htm and .gv work too)
MAX_BOXES = 5_000  # boxes in one picture; above it a picture is unreadable and tens of MB
PNG_MAX_SIDE = 32_000  # cairo's image surfaces stop at 32,767 pixels a side

def format_of(path: str | Path) -> str:
    """The format named by the output's suffix; E405 when none is, or for PNG without cairosvg."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise EffdslError(Diagnostic(
            "E405", f"-o cannot write a '{path.suffix or path.name}' file", None,
            "name a file ending in " + ", ".join(MAIN_SUFFIXES)))
    fmt = SUFFIXES[suffix]
    if fmt == "png":
        png_renderer()
    return fmt


def png_renderer() -> Callable[..., bytes]:
    """cairosvg's ``svg2png``, or E405 when it (or the cairo library under it) is missing."""
    try:
        from cairosvg import svg2png
    except (ImportError, OSError):
        raise EffdslError(Diagnostic(
            "E405", "cannot write PNG: install cairosvg (pip install cairosvg)", None,
            "cairosvg needs the cairo library (Debian: apt-get install libcairo2); .svg and .html need nothing",
        )) from None
    renderer: Callable[..., bytes] = svg2png
    return renderer


def render(graph: CompiledGraph, fmt: str, level: str = "block", source: str | None = None) -> str | bytes:
    """The picture in ``fmt`` (svg, html, dot, mmd: text; png: bytes).

    A picture of more than :data:`MAX_BOXES` boxes (an HTML page: operators, as it holds
    every level) is refused (E405) before anything is drawn, with a level that fits as the
    hint: pictures stay a few MB at most.
    """
    boxes = len(graph) if fmt == "html" else _boxes(graph, level)  # a page holds every level
    if boxes > MAX_BOXES:
        if fmt == "html":
            raise EffdslError(Diagnostic(
                "E405", f"cannot draw {boxes:,} operators in an HTML page (it holds every operator); a picture "
                        f"holds at most {MAX_BOXES:,} boxes", None,
                f"write .svg at --level block ({_boxes(graph, 'block'):,} boxes) or --level stage"))
        coarser = "block" if level == "op" and _boxes(graph, "block") <= MAX_BOXES else "stage"
        what = "operators" if level == "op" else "blocks"
        raise EffdslError(Diagnostic(
            "E405", f"cannot draw {boxes - (2 if level == 'block' else 0):,} {what} at --level {level}; "
                    f"a picture holds at most {MAX_BOXES:,} boxes", None,
            f"draw --level {coarser} ({_boxes(graph, coarser):,} boxes)"))
    if fmt == "html":
        return html(graph, level, source)
    v = view(graph, level, source)
    if fmt == "dot":
        return dot(v)
    if fmt == "mmd":
        return mermaid(v)
    text = svg(v)
    if fmt == "svg":
        return text
    if fmt != "png":
        raise ValueError(f"unknown format {fmt!r}")
    svg2png = png_renderer()
    width, height = size(v)
    if max(width, height) > PNG_MAX_SIDE:
        raise EffdslError(Diagnostic(
            "E405", f"cannot write PNG: the picture is {height:,} pixels tall, more than {PNG_MAX_SIDE:,}",
            None, "draw a coarser --level, or write .svg or .html"))
    scale = min(2.0, PNG_MAX_SIDE / max(width, height))  # sharp on high-density screens, within cairo's limit
    return svg2png(bytestring=text.encode("utf-8"), scale=scale)


def _boxes(graph: CompiledGraph, level: str) -> int:
    """How many boxes a picture at ``level`` draws (stem and head are one box each above op level)."""
    if level == "op":
        return len(graph)
    return (graph.plan.num_blocks if level == "block" else len(graph.plan.stages)) + 2


def write(path: str | Path, picture: str | bytes) -> None:
    """Write a rendered picture; a file that cannot be written is E405."""
    path = Path(path)
    try:
        if isinstance(picture, bytes):
            path.write_bytes(picture)
        else:
            path.write_text(picture, encoding="utf-8")
    except OSError as exc:
        raise EffdslError(Diagnostic("E405", f"cannot write '{path}': {exc.strerror or exc}", None,
                                     "check that the folder exists and is writable")) from None
