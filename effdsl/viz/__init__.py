"""Pictures of the IR: SVG, an interactive HTML page, Graphviz DOT, Mermaid, PNG.

:mod:`~effdsl.viz.view` reads the IR into a small view; :mod:`~effdsl.viz.svg`,
:mod:`~effdsl.viz.html` and :mod:`~effdsl.viz.text` draw it; :mod:`~effdsl.viz.output`
picks a format and writes it. Pure Python; never imports torch. May import diagnostics,
language, scaling, ir and passes.
"""

from effdsl.viz.html import html
from effdsl.viz.output import (
           MAIN_SUFFIXES,
           PNG_MAX_SIDE,
           SUFFIXES,
           format_of,
           png_renderer,
           render,
           write,
)
from effdsl.viz.svg import size, svg
from effdsl.viz.text import dot, mermaid
from effdsl.viz.view import LEVELS, Edge, Group, Node, View, caption_of, palette, view

__all__ = ["LEVELS", "MAIN_SUFFIXES", "MAX_BOXES", "PNG_MAX_SIDE", "SUFFIXES", "Edge", "Group", "Node", "View",
           "caption_of", "dot", "format_of", "html", "mermaid", "palette", "png_renderer", "render", "size", "svg",
           "view", "write"]
