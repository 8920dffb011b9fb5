"""What a picture shows: the IR read at one level into a small :class:`View`.

:func:`view` reads the graph at one of three levels:

``op``
    one node per IR operator and one edge per IR edge (operand order kept).
``block``
    one node for the stem (the input and its conv), one per block (``stages.1.0``) and
    one for the head (head conv, pool, dropout, classifier); an edge wherever an IR edge
    joins two of them, plus a ``residual`` edge for every block with a residual ``add``:
    from the node feeding the block to the node its sum feeds, drawn around the block.
``stage``
    one node per row of ``effdsl compile``'s table: stem, each stage, head; a chain.

Every node carries the scaled numbers of the member drawn (channels, shapes, params,
MACs) and the spec line it came from, and every stage a colour (:func:`palette`) that
all writers share. The output is deterministic: graph order, no timestamps, fixed
number formatting.
"""


from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from effdsl.blocks import REGISTRY
from effdsl.ir.graph import CompiledGraph, Op
from effdsl.ir.graph import Node as IRNode
from effdsl.ir.plan import Plan, StagePlan
from effdsl.language.plugins import load_plugin

LEVELS = ("stage", "block", "op")

RESIDUAL = "#d4380d"
NEUTRAL = ("#f4f5f7", "#57606a")
_STAGES = (
    ("#eef6ff", "#0969da"),  # blue
    ("#eaf8f7", "#1b7c83"),  # teal
    ("#effaf1", "#1a7f37"),  # green
    ("#fff8e1", "#9a6700"),  # gold
    ("#f5f0ff", "#8250df"),  # purple
    ("#fff0f7", "#bf3989"),  # pink
    ("#eff1ff", "#3e4bb3"),  # indigo
)


def palette(slot: int, stages: int) -> tuple[str, str]:
    """(tint, accent) of a stage slot: grey for the stem (-1) and the head (``stages``)."""
    if slot < 0 or slot >= stages:
        return NEUTRAL
    return _STAGES[slot % len(_STAGES)]



@dataclass(frozen=True, slots=True)
class Node:
    id: str                               # the IR name, the block prefix, or stem/stageN/head
    kind: str                             # stem, stage, block, head, or an op kind
    slot: int                             # -1 stem, 0..n-1 the stages, n head
    lines: tuple[tuple[str, str], ...]    # label lines as (left, right); the first is the title
    facts: tuple[tuple[str, str], ...]    # the details: (what, value), in order
    params: int
    macs: int
    in_shape: tuple[int, ...] | None
    out_shape: tuple[int, ...] | None
    residual: bool = False                # a block whose output is x + f(x)
    ops: tuple[str, ...] = ()             # the IR operators it stands for


@dataclass(frozen=True, slots=True)
class Edge:
    src: str
    dst: str
    kind: str = "data"                    # data, or residual (the shortcut into an add)
    around: str | None = None             # block level: the block a residual edge bypasses


@dataclass(frozen=True, slots=True)
class Group:
    """A stage's frame: its title, the lines shown beside it, its nodes."""

    slot: int
    title: str                            # stem, stage 1, head
    caption: str                          # what it is, in one line: 'mbconv k3 s2 e6 ×2'
    lines: tuple[str, ...]
    nodes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class View:
    name: str
    caption: str                          # which member: 'phi 3', 'preset b7', ...
    totals: tuple[str, str]               # the scaled multipliers and input; the network's cost
    level: str
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    groups: tuple[Group, ...]

    def node(self, node_id: str) -> Node:
        return next(n for n in self.nodes if n.id == node_id)


# --- number and shape formatting (fixed, so pictures are reproducible) ---

def count(n: int) -> str:
    """Compact: 864, 6.0k, 28.80M, 3.25G."""
    if n < 1000:
        return str(n)
    if n < 1_000_000:
        return f"{n / 1e3:.1f}k"
    if n < 1_000_000_000:
        return f"{n / 1e6:.2f}M"
    return f"{n / 1e9:.2f}G"


def hw(shape: tuple[int, ...] | None) -> str:
    """The spatial side of a shape: 112×112; a flat vector: its length."""
    if not shape:
        return "?"
    if len(shape) == 3:
        return f"{shape[1]}×{shape[2]}"
    return "×".join(str(d) for d in shape)


def full(shape: tuple[int, ...] | None) -> str:
    return "?" if not shape else "×".join(str(d) for d in shape)


def _num(value: float) -> str:
    return f"{value:.6g}"


def caption_of(graph: CompiledGraph) -> str:
    plan = graph.plan
    if plan.preset:
        return f"preset {plan.preset}"
    if plan.phi is not None:
        return f"phi {plan.phi:g}"
    return f"width {_num(plan.width_mult)}, depth {_num(plan.depth_mult)}, resolution {plan.resolution}"


def op_tag(op: Op) -> str:
    """An operator's kind and attributes, short: 'dwconv 3×3 s2', 'act silu'."""
    if op.kind in ("conv", "dwconv"):
        tag = f"{op.kind} {op.kernel}×{op.kernel} s{op.stride}"
        return tag + " bias" if op.bias else tag
    if op.kind in ("act", "gate"):
        return f"{op.kind} {op.act}"
    if op.kind == "pool":
        return f"pool {op.pool}" + (" flatten" if op.flatten else "")
    if op.kind in ("drop_path", "dropout"):
        return f"{op.kind} p={op.rate:.3g}"
    if op.kind == "plugin":
        plugin = load_plugin(str(op.plugin), op.span)
        return plugin.label if plugin is not None else str(op.plugin)
    return op.kind


# --- the view ---

def view(graph: CompiledGraph, level: str = "block", source: str | None = None) -> View:
    """The nodes and edges to draw at ``level`` (stage, block or op)."""
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
    plan = graph.plan
    lines = source.splitlines() if source is not None else None
    all_nodes = list(graph.nodes())
    n = len(plan.stages)
    key = {"op": lambda op: op.name, "block": _block_key(n), "stage": _stage_key(n)}[level]
    members: dict[str, list[IRNode]] = {}
    for ir_node in all_nodes:
        members.setdefault(key(ir_node.op), []).append(ir_node)
    nodes = tuple(_node(level, node_id, group, graph, lines) for node_id, group in members.items())
    where = {ir_node.op.name: key(ir_node.op) for ir_node in all_nodes}
    edges = _edges(graph, level, where)
    groups = _groups(plan, nodes) if level != "stage" else ()
    total_params = sum(ir_node.params for ir_node in all_nodes)
    total_macs = sum(ir_node.macs for ir_node in all_nodes)
    first = all_nodes[0]
    totals = (f"width ×{_num(plan.width_mult)} · depth ×{_num(plan.depth_mult)} · input {full(first.in_shape)} · "
              f"{plan.num_blocks} blocks", f"{total_params:,} params · {total_macs:,} MACs")
    return View(plan.name, caption_of(graph), totals, level, nodes, edges, groups)


def _block_key(n: int) -> Callable[[Op], str]:
    def key(op: Op) -> str:
        if op.stage < 0:
            return "stem"
        if op.stage >= n:
            return "head"
        return ".".join(op.name.split(".")[:3])
    return key


def _stage_key(n: int) -> Callable[[Op], str]:
    def key(op: Op) -> str:
        if op.stage < 0:
            return "stem"
        if op.stage >= n:
            return "head"
        return f"stage{op.stage + 1}"
    return key


def _edges(graph: CompiledGraph, level: str, where: dict[str, str]) -> tuple[Edge, ...]:
    edges: list[Edge] = []
    seen: set[tuple[str, str]] = set()
    residuals: list[Edge] = []
    for op in graph.ops():
        args = graph.operands(op.name)
        for position, src in enumerate(args):
            shortcut = op.kind == "add" and position == 0
            if level == "op":
                edges.append(Edge(src, op.name, "residual" if shortcut else "data"))
                continue
            a, b = where[src], where[op.name]
            if a != b and (a, b) not in seen:
                seen.add((a, b))
                edges.append(Edge(a, b))
            if shortcut and level == "block":
                after = [where[s] for s in graph.graph.users(op.name)]
                residuals.append(Edge(a, after[0], "residual", around=b))
    return tuple(edges + residuals)


def _span_line(group: list[IRNode]) -> int | None:
    for ir_node in group:
        if ir_node.op.span is not None:
            return ir_node.op.span.line
    return None


def _spec_fact(line: int | None, lines: list[str] | None) -> str:
    if line is None:
        return "-"
    if lines is not None and 1 <= line <= len(lines):
        return f"{line}: {lines[line - 1].strip()}"
    return str(line)


@dataclass(frozen=True, slots=True)
class _Group:
    """The IR nodes one box stands for, and what every kind of box shows of them."""

    node_id: str
    nodes: list[IRNode]
    plan: Plan
    where: str  # 'line N' of the spec, or ''

    @property
    def first(self) -> Op:
        return self.nodes[0].op

    @property
    def last(self) -> Op:
        return self.nodes[-1].op

    @property
    def shapes(self) -> str:
        return f"{hw(self.nodes[0].in_shape)} → {hw(self.nodes[-1].out_shape)}"

    @property
    def cost(self) -> str:
        return f"params {count(sum(n.params for n in self.nodes))} · MACs {count(sum(n.macs for n in self.nodes))}"

    @property
    def residuals(self) -> int:
        return sum(n.op.kind == "add" for n in self.nodes)


Label = tuple[tuple[str, str], ...]
Facts = list[tuple[str, str]]


def _op_box(g: _Group) -> tuple[str, Label, Facts]:
    op = g.first
    label = ((g.node_id, op_tag(op)), (f"{op.in_ch}→{op.out_ch} ch · {hw(g.nodes[0].out_shape)} · {g.cost}", g.where))
    facts = [("op", op_tag(op))]
    if op.kind in ("conv", "dwconv"):
        facts.append(("kernel / stride / groups", f"{op.kernel} / {op.stride} / {op.groups}"))
    return op.kind, label, facts


def _stem_box(g: _Group) -> tuple[str, Label, Facts]:
    stem = g.plan.stem
    label = (("stem", f"conv k{stem.kernel} s{stem.stride} {stem.act}"),
             (f"{g.first.out_ch}→{g.last.out_ch} ch · {g.shapes}", ""), (g.cost, g.where))
    return "stem", label, [("block", f"input + conv k{stem.kernel} s{stem.stride}, bn, {stem.act}")]


def _head_box(g: _Group) -> tuple[str, Label, Facts]:
    plan = g.plan
    parts = [f"conv k{plan.head.kernel}"] if plan.head is not None else []
    parts += [f"{plan.pool} pool", "linear"]
    chans = [g.first.in_ch] + ([plan.head.out_ch] if plan.head is not None else []) + [g.last.out_ch]
    label = (("head", " · ".join(parts)), ("→".join(str(c) for c in chans) + f" · {g.shapes}", ""), (g.cost, g.where))
    return "head", label, [("block", ", ".join(parts) + f" (dropout {plan.dropout:g})")]


def _block_box(g: _Group) -> tuple[str, Label, Facts]:
    repeat = int(g.node_id.split(".")[2])
    stage = _group_of(g.plan.stages[g.first.stage], repeat)
    tag = _block_tag(g.plan, stage.block, stage.kernel, stage.stride if repeat == 0 else 1, stage.expand)
    residual = g.residuals > 0
    label = ((g.node_id, tag), (f"{g.first.in_ch}→{g.last.out_ch} ch · {g.shapes}", "+ residual" if residual else ""),
             (g.cost, g.where))
    facts = [("block", tag + (f", se {stage.se:g}" if stage.se else "") + f", {stage.act}"),
             ("residual", "yes: output = x + f(x)" if residual else "no")]
    return "block", label, facts


def _group_of(stage: StagePlan, repeat: int) -> StagePlan:
    """The settings of block ``repeat`` of a stage: its line's, or its ``then`` group's."""
    for group in stage.groups():
        if repeat < group.repeats:
            return group
        repeat -= group.repeats
    return stage


def _stage_box(g: _Group) -> tuple[str, Label, Facts]:
    stage = g.plan.stages[g.first.stage]
    blocks = sorted({n.op.block for n in g.nodes})
    skips = g.residuals
    tag = _block_tag(g.plan, stage.block, stage.kernel, stage.stride, stage.expand)
    label = ((f"stage{stage.index + 1}", f"{tag} ×{stage.repeats}"),
             (f"{stage.in_ch}→{stage.out_ch} ch · {g.shapes}", f"{skips} residual" if skips else ""), (g.cost, g.where))
    groups = [f"{group.repeats} × " + _block_tag(g.plan, group.block, group.kernel, stage.stride if i == 0 else 1,
                                                  group.expand)
              + (f", se {group.se:g}" if group.se else "") + f", {group.act}"
              for i, group in enumerate(stage.groups())]
    facts = [("blocks", "; then ".join(groups)),
             ("block indices", f"{blocks[0]}..{blocks[-1]}"), ("residual", f"{skips} of {stage.repeats} blocks")]
    return "stage", label, facts


def _node(level: str, node_id: str, group: list[IRNode], graph: CompiledGraph, lines: list[str] | None) -> Node:
    """One box: its label and details, from the IR nodes it stands for."""
    line = _span_line(group)
    g = _Group(node_id, group, graph.plan, f"line {line}" if line is not None else "")
    if level == "op":
        box = _op_box
    elif node_id in ("stem", "head"):
        box = _stem_box if node_id == "stem" else _head_box
    else:
        box = _block_box if level == "block" else _stage_box
    kind, label, facts = box(g)
    params = sum(n.params for n in group)
    macs = sum(n.macs for n in group)
    facts += [
        ("input", full(group[0].in_shape)),
        ("output", full(group[-1].out_shape)),
        ("channels", f"{g.first.in_ch} → {g.last.out_ch}"),
        ("params", f"{params:,}"),
        ("MACs", f"{macs:,}"),
        ("spec line", _spec_fact(line, lines)),
    ]
    if level != "op":
        facts.append(("operators", str(len(group))))
    residual = level != "op" and g.residuals > 0
    return Node(node_id, kind, g.first.stage, label, tuple(facts), params, macs, group[0].in_shape,
                group[-1].out_shape, residual, tuple(n.op.name for n in group))


def _block_tag(plan: Plan, block: str, kernel: int, stride: int, expand: float) -> str:
    tag = f"{block} k{kernel} s{stride}"
    definition = plan.block_def(block)
    expands = REGISTRY[block].expands if definition is None else definition.uses("mid")
    return tag + f" e{expand:g}" if expands else tag


def _groups(plan: Plan, nodes: tuple[Node, ...]) -> tuple[Group, ...]:
    by_slot: dict[int, list[Node]] = {}
    for node in nodes:
        by_slot.setdefault(node.slot, []).append(node)
    out = []
    n = len(plan.stages)
    lines: tuple[str, ...]
    for slot, members in by_slot.items():
        out_side = hw(members[-1].out_shape)
        cost = (f"params {count(sum(m.params for m in members))}", f"MACs {count(sum(m.macs for m in members))}")
        if slot < 0:
            stem = plan.stem
            title = "stem"
            caption = f"conv k{stem.kernel} s{stem.stride} {stem.act}"
            lines = (caption, f"{plan.in_ch}→{stem.out_ch} ch · {out_side}")
        elif slot >= n:
            title = "head"
            chans = [plan.stages[-1].out_ch] + ([plan.head.out_ch] if plan.head is not None else []) + [plan.classes]
            caption = (f"conv k{plan.head.kernel} · " if plan.head is not None else "") + f"{plan.pool} pool"
            lines = (caption, "→".join(str(c) for c in chans))
        else:
            s = plan.stages[slot]
            title = f"stage {slot + 1}"
            tag = _block_tag(plan, s.block, s.kernel, s.stride, s.expand)
            caption = tag + f" ×{s.repeats}"
            lines = (f"{s.block} ×{s.repeats}", tag.split(" ", 1)[1],
                     f"{s.in_ch}→{s.out_ch} ch · {out_side}")
        out.append(Group(slot, title, caption, lines + cost, tuple(m.id for m in members)))
    return tuple(out)
