"""The graph IR: operator-level nodes in a networkx DiGraph, plus the stage plan.

Each node id is the operator's module path (``stages.1.0.dw.conv``) and its ``op``
attribute an :class:`Op`: one small frozen record for every kind, changed with
:func:`dataclasses.replace`. Node insertion order is a topological order; edges carry
the operand position (``arg``) for ``mul`` and ``add``.

``graph.graph["plan"]`` holds the :class:`Plan`, the stage table the operators were
expanded from; passes that change the architecture rewrite the plan and re-expand.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Iterator

import networkx as nx

from effdsl.diagnostics import Diagnostic, Span
from effdsl.language.spec import BatchNorm, Scaling

# The closed set of operator kinds.
OP_KINDS: tuple[str, ...] = (
    "input",      # the image
    "conv",       # dense conv (groups=1), optionally with bias (squeeze-excite convs)
    "dwconv",     # depthwise conv (groups = channels)
    "bn",         # batch norm
    "act",        # activation
    "pool",       # global pooling (keeps 1x1 spatial inside squeeze-excite; flattens in the head)
    "gate",       # sigmoid gate of squeeze-excite
    "mul",        # elementwise product (features x gate)
    "add",        # residual sum
    "drop_path",  # stochastic depth (training only)
    "dropout",    # dropout before the classifier
    "linear",     # classifier
)
PARAMETRIC = frozenset({"conv", "dwconv", "bn", "linear"})


@dataclass(frozen=True, slots=True)
class Op:
    kind: str
    name: str
    stage: int               # -1: stem, 0..n-1: stages, n: head
    block: int               # global block index; -1 outside the stages
    part: str                # stem, expand, fused, dw, se, project, residual, head, classifier
    span: Span | None
    in_ch: int
    out_ch: int
    kernel: int = 1
    stride: int = 1
    groups: int = 1
    bias: bool = False
    act: str | None = None   # act: which function; pool: 'avg' or 'max'
    eps: float | None = None
    momentum: float | None = None
    rate: float = 0.0        # dropout / drop_path probability
    flatten: bool = False    # pool: flatten to a vector (head) or keep 1x1 (squeeze-excite)
    padding: str = "symmetric"  # conv: (k-1)//2 on every side, or TensorFlow 'same'
    in_shape: tuple[int, ...] | None = None
    out_shape: tuple[int, ...] | None = None
    params: int | None = None
    macs: int | None = None


@dataclass(frozen=True, slots=True)
class ConvPlan:
    """Stem or head conv after scaling."""

    kernel: int
    stride: int
    out_ch: int
    act: str
    bn: BatchNorm
    span: Span


@dataclass(frozen=True, slots=True)
class StagePlan:
    """One row of the stage table after scaling."""

    index: int
    block: str
    kernel: int
    stride: int
    expand: float
    in_ch: int
    out_ch: int
    repeats: int
    se: float
    act: str
    skip: bool
    bn: BatchNorm            # the stage's own overrides; the network's fill the gaps
    span: Span
    spans: dict[str, Span] = field(default_factory=dict, hash=False, compare=False)


@dataclass(frozen=True, slots=True)
class Plan:
    """Everything the operators are expanded from, and how it was scaled."""

    name: str
    in_ch: int
    resolution: int
    classes: int
    stem: ConvPlan
    stages: tuple[StagePlan, ...]
    head: ConvPlan | None
    pool: str
    dropout: float
    drop_path: float
    policy: Scaling
    divisor: int
    bn: BatchNorm            # network-wide batch-norm settings (defaults, then the preset's)
    padding: str = "symmetric"
    width_mult: float = 1.0
    depth_mult: float = 1.0
    phi: float | None = None
    preset: str | None = None
    scaled: bool = False
    resolution_span: Span | None = None

    @property
    def num_blocks(self) -> int:
        return sum(s.repeats for s in self.stages)


def new_graph(plan: Plan) -> nx.DiGraph:
    graph = nx.DiGraph()
    graph.graph["plan"] = plan
    graph.graph["warnings"] = []
    return graph


def warn(graph: nx.DiGraph, diagnostic: Diagnostic) -> None:
    """Record a warning about the user's network (reported once per code and line)."""
    found = graph.graph.setdefault("warnings", [])
    key = (diagnostic.code, diagnostic.span.line if diagnostic.span else None)
    if all((d.code, d.span.line if d.span else None) != key for d in found):
        found.append(diagnostic)


def warnings_of(graph: nx.DiGraph) -> list[Diagnostic]:
    return list(graph.graph.get("warnings", []))


def plan_of(graph: nx.DiGraph) -> Plan:
    return graph.graph["plan"]


def add_op(graph: nx.DiGraph, op: Op, *inputs: str) -> str:
    """Add ``op`` fed by ``inputs`` (in operand order); return its node id."""
    graph.add_node(op.name, op=op)
    for position, src in enumerate(inputs):
        graph.add_edge(src, op.name, arg=position)
    return op.name


def ops(graph: nx.DiGraph) -> Iterator[Op]:
    """Operators in topological (insertion) order."""
    for _, data in graph.nodes(data=True):
        yield data["op"]


def operands(graph: nx.DiGraph, name: str) -> list[str]:
    """The node ids feeding ``name``, in operand order."""
    preds = graph._pred[name]
    if len(preds) < 2:
        return list(preds)
    return sorted(preds, key=lambda src: preds[src]["arg"])


_OP_FIELDS = tuple(f.name for f in fields(Op))
_set = object.__setattr__


def evolve(op: Op, **changes) -> Op:
    """``dataclasses.replace`` for :class:`Op`, without its per-call introspection."""
    new = object.__new__(Op)
    for name in _OP_FIELDS:
        _set(new, name, getattr(op, name))
    for name, value in changes.items():
        if name not in _OP_FIELDS:
            raise TypeError(f"Op has no field {name!r}")
        _set(new, name, value)
    return new


def replace_ops(graph: nx.DiGraph, new: dict[str, Op]) -> nx.DiGraph:
    """A copy of ``graph`` with the ops of some nodes replaced (structure unchanged)."""
    out = nx.DiGraph()
    out.graph.update(graph.graph)
    out.add_nodes_from((name, {"op": new.get(name, data["op"])}) for name, data in graph._node.items())
    out.add_edges_from(graph.edges(data=True))
    return out


def _fmt_shape(shape: tuple[int, ...] | None) -> str:
    return "?" if shape is None else "x".join(str(d) for d in shape)


def dump(graph: nx.DiGraph) -> str:
    """One line per node: ``%name = kind(args) : in -> out  params macs  @line``."""
    plan = plan_of(graph)
    head = (f"# {plan.name}: width_mult={plan.width_mult:.6g} depth_mult={plan.depth_mult:.6g} "
            f"resolution={plan.resolution} phi={plan.phi if plan.phi is not None else '-'} "
            f"preset={plan.preset or '-'}")
    lines = [head]
    for op in ops(graph):
        args = ", ".join(f"%{src}" for src in operands(graph, op.name))
        attrs = _attrs(op)
        cost = ""
        if op.params is not None:
            cost = f"  params={op.params} macs={op.macs}"
        where = f"  @{op.span.line}" if op.span else ""
        lines.append(
            f"%{op.name} = {op.kind}({args}){attrs} : {_fmt_shape(op.in_shape)} -> {_fmt_shape(op.out_shape)}"
            f"{cost}{where}"
        )
    return "\n".join(lines) + "\n"


def _attrs(op: Op) -> str:
    parts: list[str] = []
    if op.kind in ("conv", "dwconv"):
        parts += [f"k={op.kernel}", f"s={op.stride}", f"{op.in_ch}->{op.out_ch}"]
        if op.groups != 1:
            parts.append(f"groups={op.groups}")
        if op.padding != "symmetric":
            parts.append(f"padding={op.padding}")
        if op.bias:
            parts.append("bias")
    elif op.kind == "linear":
        parts.append(f"{op.in_ch}->{op.out_ch}")
    elif op.kind == "bn":
        parts += [f"c={op.out_ch}", f"eps={op.eps:g}", f"momentum={op.momentum:g}"]
    elif op.kind in ("act", "pool"):
        parts.append(str(op.act))
        if op.flatten:
            parts.append("flatten")
    elif op.kind in ("drop_path", "dropout"):
        parts.append(f"p={op.rate:.6g}")
    return " {" + ", ".join(parts) + "}" if parts else ""
