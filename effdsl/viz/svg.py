"""The SVG picture of a :class:`~effdsl.viz.view.View`, in pure Python.

Layout: one column, top to bottom, in graph order (the network is a chain). Each box
has a fixed width; at block and op level a tinted frame per stage carries the stage's
name and shape on its left. Edges between neighbours are arrows down the middle;
longer edges are arcs on the right: at block level a residual block gets a bracket from
above it to a ``⊕`` below it, at op level each skipping edge (squeeze-excite's features,
a residual's shortcut) gets its own lane. Every node is a ``<g class="node">`` with a
``<title>`` (hovered in a browser: its details), every edge a ``<g class="edge">``.

Integer coordinates and fixed formatting only, so the text is the same on every run.
"""

from __future__ import annotations

from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

from effdsl.viz.view import RESIDUAL, Node, View, palette

FONT = "'Segoe UI', Helvetica, Arial, 'DejaVu Sans', sans-serif"
INK, MUTED, LINE = "#1f2328", "#57606a", "#8c959f"
MARGIN = 20
HEADER = 76
GUTTER = 150
BOX_W = 400
LINE_H = 15
GAP = {"stage": 26, "block": 30, "op": 14}
FRAMES_GAP = 26  # between one stage's frame and the next
WIDE_BOX_W = 600  # stage level: no frames, wider boxes
FRAME_PAD = 12
LANE = 12


@dataclass(frozen=True, slots=True)
class _Box:
    x: int
    y: int
    w: int
    h: int

    @property
    def bottom(self) -> int:
        return self.y + self.h

    @property
    def cx(self) -> int:
        return self.x + self.w // 2


@dataclass(frozen=True, slots=True)
class _Layout:
    width: int
    height: int
    boxes: dict[str, _Box]
    frames: dict[int, tuple[int, int]]  # stage slot -> (top, bottom) of its frame
    lanes: dict[int, int]               # edge index -> lane (1 = nearest the boxes)
    arc_x: int                          # x of lane 0 (the boxes' right edge)
    frame_right: int


def _stage_count(v: View) -> int:
    return max(node.slot for node in v.nodes)  # the head's slot is the number of stages


def _lanes(v: View, order: dict[str, int]) -> dict[int, int]:
    """A lane for each edge that skips nodes (not the block-level brackets): nested ones further out."""
    lanes: dict[int, int] = {}
    taken: list[tuple[int, int, int]] = []  # (start, end, lane)
    long_edges = [(i, e) for i, e in enumerate(v.edges) if e.around is None and abs(order[e.dst] - order[e.src]) > 1]
    long_edges.sort(key=lambda item: (order[item[1].dst] - order[item[1].src], order[item[1].src]))
    for i, edge in long_edges:
        a, b = order[edge.src], order[edge.dst]
        lane = 1 + max((ln for s, t, ln in taken if max(s, a) < min(t, b)), default=0)
        taken.append((a, b, lane))
        lanes[i] = lane
    return lanes


def _frame_height(lines: int) -> int:
    """The least height of a stage frame: its title and its lines."""
    return 34 + 16 * lines


def _layout(v: View) -> _Layout:
    framed = bool(v.groups)
    box_x = MARGIN + (GUTTER + FRAME_PAD if framed else 0)
    box_w = BOX_W if framed else WIDE_BOX_W
    order = {node.id: i for i, node in enumerate(v.nodes)}
    lanes = _lanes(v, order)
    n_lanes = max(lanes.values(), default=0)
    if any(e.around for e in v.edges):
        n_lanes = max(n_lanes, 1)
    arc_room = LANE * n_lanes + (14 if n_lanes else 0)
    frame_right = box_x + box_w + arc_room + (FRAME_PAD if framed else 0)
    boxes: dict[str, _Box] = {}
    frames: dict[int, tuple[int, int]] = {}
    y = MARGIN + HEADER
    if framed:
        for group in v.groups:
            top = y
            y += FRAME_PAD + (8 if v.node(group.nodes[0]).residual and v.level == "block" else 0)  # its branch
            for i, node_id in enumerate(group.nodes):
                if i:
                    y += GAP[v.level]
                boxes[node_id] = _Box(box_x, y, box_w, _box_height(v.node(node_id)))
                y = boxes[node_id].bottom
            pad = FRAME_PAD + (8 if v.node(group.nodes[-1]).residual and v.level == "block" else 0)  # room for ⊕
            bottom = max(y + pad, top + _frame_height(len(group.lines)))
            frames[group.slot] = (top, bottom)
            y = bottom + FRAMES_GAP
        y -= FRAMES_GAP
    else:
        for i, node in enumerate(v.nodes):
            if i:
                y += GAP[v.level]
            boxes[node.id] = _Box(box_x, y, box_w, _box_height(node))
            y = boxes[node.id].bottom
    height = y + MARGIN
    width = frame_right + MARGIN
    return _Layout(width, height, boxes, frames, lanes, box_x + box_w, frame_right)


def _box_height(node: Node) -> int:
    return 11 + LINE_H * len(node.lines)


def size(v: View) -> tuple[int, int]:
    """Width and height of the picture, in pixels."""
    layout = _layout(v)
    return layout.width, layout.height


def _text(x: int, y: int, text: str, size: float, fill: str, weight: str = "normal", anchor: str = "start") -> str:
    attrs = f'x="{x}" y="{y}" font-size="{size:g}" fill="{fill}"'
    if weight != "normal":
        attrs += f' font-weight="{weight}"'
    if anchor != "start":
        attrs += f' text-anchor="{anchor}"'
    return f"<text {attrs}>{escape(text)}</text>"


def svg(v: View) -> str:
    layout = _layout(v)
    stages = _stage_count(v)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{layout.width}" height="{layout.height}" '
        f'viewBox="0 0 {layout.width} {layout.height}" font-family={quoteattr(FONT)} role="img" '
        f'aria-label={quoteattr(f"{v.name} ({v.caption}), {v.level} level")}>',
        f"<!-- effdsl viz: {escape(v.name)} ({escape(v.caption)}), {v.level} level -->",
        "<defs>",
        f'<marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
        f'orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="{LINE}"/></marker>',
        f'<marker id="arrow-res" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
        f'orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="{RESIDUAL}"/></marker>',
        "</defs>",
        f'<rect x="0" y="0" width="{layout.width}" height="{layout.height}" fill="#ffffff"/>',
        _text(MARGIN, MARGIN + 20, f"{v.name} ({v.caption})", 20, INK, "bold"),
    ]
    scaling, cost = v.totals
    out.append(_text(MARGIN, MARGIN + 42, scaling, 12, MUTED))
    out.append(_text(MARGIN, MARGIN + 58, f"{cost} · {v.level} level: {len(v.nodes)} nodes, {len(v.edges)} edges",
                     12, MUTED))
    out += _frames(v, layout, stages)
    out += _edges(v, layout)
    out += _nodes(v, layout, stages)
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _frames(v: View, layout: _Layout, stages: int) -> list[str]:
    out = []
    for group in v.groups:
        tint, accent = palette(group.slot, stages)
        top, bottom = layout.frames[group.slot]
        out.append(f'<g class="stage" data-slot="{group.slot}">')
        out.append(f'<rect x="{MARGIN}" y="{top}" width="{layout.frame_right - MARGIN}" height="{bottom - top}" '
                   f'rx="10" fill="{tint}" stroke="{accent}" stroke-opacity="0.35"/>')
        x = MARGIN + 12
        out.append(_text(x, top + 22, group.title, 14, accent, "bold"))
        for i, line in enumerate(group.lines):
            out.append(_text(x, top + 40 + 16 * i, line, 11.5, MUTED))
        out.append("</g>")
    return out


def _edges(v: View, layout: _Layout) -> list[str]:
    out, plus = [], []
    for i, edge in enumerate(v.edges):
        a, b = layout.boxes[edge.src], layout.boxes[edge.dst]
        attrs = f'class="edge" data-src={quoteattr(edge.src)} data-dst={quoteattr(edge.dst)} data-kind="{edge.kind}"'
        if edge.around is not None:  # block level: a bracket around the bypassed block
            c = layout.boxes[edge.around]
            y1, y2 = c.y - 9, c.bottom + 9
            x, r = layout.arc_x + 16, 8
            path = (f"M{c.cx},{y1} H{x - r} Q{x},{y1} {x},{y1 + r} V{y2 - r} Q{x},{y2} {x - r},{y2} H{c.cx + 8}")
            out.append(f"<g {attrs}><title>{escape(f'residual: {edge.src} + {edge.around} → {edge.dst}')}</title>"
                       f'<path d="{path}" fill="none" stroke="{RESIDUAL}" stroke-width="1.6" '
                       f'marker-end="url(#arrow-res)"/>'
                       f'<circle cx="{c.cx}" cy="{y1}" r="3" fill="{RESIDUAL}"/></g>')
            plus.append(f'<g class="plus"><circle cx="{c.cx}" cy="{y2}" r="7" fill="#ffffff" stroke="{RESIDUAL}" '
                        f'stroke-width="1.6"/><path d="M{c.cx - 4},{y2} H{c.cx + 4} M{c.cx},{y2 - 4} V{y2 + 4}" '
                        f'stroke="{RESIDUAL}" stroke-width="1.6"/></g>')
        elif i in layout.lanes:  # op level: an arc in its lane
            x = layout.arc_x + LANE * layout.lanes[i]
            y1, y2 = a.bottom - 10, b.y + 10
            r = 5
            color, marker = (RESIDUAL, "arrow-res") if edge.kind == "residual" else (LINE, "arrow")
            path = (f"M{a.x + a.w},{y1} H{x - r} Q{x},{y1} {x},{y1 + r} V{y2 - r} Q{x},{y2} {x - r},{y2} "
                    f"H{b.x + b.w + 1}")
            out.append(f"<g {attrs}><title>{escape(f'{edge.src} → {edge.dst}')}</title>"
                       f'<path d="{path}" fill="none" stroke="{color}" stroke-width="1.4" '
                       f'marker-end="url(#{marker})"/></g>')
        else:
            out.append(f'<g {attrs}><line x1="{a.cx}" y1="{a.bottom}" x2="{b.cx}" y2="{b.y - 1}" stroke="{LINE}" '
                       f'stroke-width="1.4" marker-end="url(#arrow)"/></g>')
    return out + plus


def _nodes(v: View, layout: _Layout, stages: int) -> list[str]:
    out = []
    for node in v.nodes:
        box = layout.boxes[node.id]
        _, accent = palette(node.slot, stages)
        tip = "\n".join([node.id] + [f"{k}: {value}" for k, value in node.facts])
        x, y, w, h = box.x, box.y, box.w, box.h
        out.append(f'<g class="node" data-id={quoteattr(node.id)} data-kind="{node.kind}">')
        out.append(f"<title>{escape(tip)}</title>")
        out.append(f'<rect x="{x}" y="{y}" width="{w}" height="{h}" rx="6" fill="#ffffff" stroke="{accent}" '
                   f'stroke-width="1.3"/>')
        out.append(f'<path d="M{x + 6},{y} H{x + 5} V{y + h} H{x + 6} Q{x},{y + h} {x},{y + h - 6} V{y + 6} '
                   f'Q{x},{y} {x + 6},{y} Z" fill="{accent}"/>')
        for i, (left, right) in enumerate(node.lines):
            base = y + 17 + LINE_H * i
            if i == 0:
                out.append(_text(x + 14, base, left, 12.5, INK, "bold"))
                out.append(_text(x + w - 10, base, right, 11.5, accent, anchor="end"))
            else:
                out.append(_text(x + 14, base, left, 11.5, MUTED))
                if right:
                    color = RESIDUAL if right.startswith("+") else MUTED
                    out.append(_text(x + w - 10, base, right, 11.5, color, anchor="end"))
        out.append("</g>")
    return out
