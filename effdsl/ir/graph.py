"""The lower level of the IR: operators in a networkx DiGraph.

Each node id is the operator's module path (``stages.1.0.dw.conv``) and its ``op``
attribute an :class:`Op`: one small frozen record for every kind (a closed set,
:data:`OpKind`), as in tinygrad's uniform node type. Node insertion order is a
topological order; edges carry the operand position (``arg``) for ``mul`` and ``add``.

:class:`OpGraph` is the graph as lowering expands it from a :class:`~effdsl.ir.plan.Plan`
(typed: ``graph.plan``). :class:`CompiledGraph` adds what shape and cost inference found:
every node's shapes and cost, never missing, read as :class:`Node` records.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal, get_args

import networkx as nx

from effdsl.diagnostics import Diagnostic, Span
from effdsl.ir.plan import Plan

OpKind = Literal[
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
    "ln",         # layer norm over the channels at each position (user-defined blocks)
    "plugin",     # an op of an installed package (effdsl.ops entry points; see language.plugins)
]
OP_KINDS: tuple[OpKind, ...] = get_args(OpKind)
PARAMETRIC: frozenset[OpKind] = frozenset({"conv", "dwconv", "bn", "linear", "ln", "plugin"})
PoolKind = Literal["avg", "max"]
Shape = tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Op:
    """One operator. Fields beyond the channels apply to some kinds only (noted)."""

    kind: OpKind
    name: str
    stage: int               # -1: stem, 0..n-1: stages, n: head
    block: int               # global block index; -1 outside the stages
    part: str                # stem, expand, fused, dw, se, project, conv, residual, head, classifier
    span: Span | None
    in_ch: int
    out_ch: int
    kernel: int = 1          # conv, dwconv
    stride: int = 1          # conv, dwconv
    groups: int = 1          # conv, dwconv
    bias: bool = False       # conv, dwconv, linear
    padding: str = "symmetric"  # conv, dwconv: (k-1)//2 on every side, or TensorFlow 'same'
    act: str | None = None   # act, gate: the activation function
    pool: PoolKind | None = None  # pool: average or max
    flatten: bool = False    # pool: flatten to a vector (head) or keep 1x1 (squeeze-excite)
    eps: float = 0.0         # bn
    momentum: float = 0.0    # bn
    rate: float = 0.0        # dropout / drop_path probability
    folded: str | None = None  # conv, dwconv: the batch norm folded into it (inference IR; it has a bias)
    plugin: str | None = None  # plugin: the op's name (its entry point)
    options: tuple[tuple[str, int | float], ...] = ()  # plugin: its options, resolved for this block


_OP_FIELDS = tuple(f.name for f in fields(Op))
_set = object.__setattr__


def evolve(op: Op, **changes: Any) -> Op:
    """``dataclasses.replace`` for :class:`Op`, without its per-call introspection."""
    new = object.__new__(Op)
    for name in _OP_FIELDS:
        _set(new, name, getattr(op, name))
    for name, value in changes.items():
        if name not in _OP_FIELDS:
            raise TypeError(f"Op has no field {name!r}")
        _set(new, name, value)
    return new


class OpGraph:
    """Operators and their operand edges, expanded from ``plan``.

    The operators are kept in insertion (topological) order with their operands and
    users, which is all the passes need; ``nx`` gives the same graph as a networkx
    ``DiGraph`` (node attribute ``op``, edge attribute ``arg``), built on first use, for
    networkx's algorithms. Changes go through :meth:`add` and :meth:`set_op`.
    """

    def __init__(self, plan: Plan, warnings: list[Diagnostic] | None = None):
        self.plan = plan
        self.warnings: list[Diagnostic] = warnings if warnings is not None else []
        self._ops: dict[str, Op] = {}
        self._args: dict[str, tuple[str, ...]] = {}
        self._users: dict[str, list[str]] = {}
        self._nx: nx.DiGraph | None = None

    @property
    def nx(self) -> nx.DiGraph:
        """The graph as a networkx DiGraph (a view made once; change the graph through add and set_op)."""
        if self._nx is None:
            graph = nx.DiGraph()
            graph.add_nodes_from((name, {"op": op}) for name, op in self._ops.items())
            graph.add_edges_from((src, name, {"arg": position}) for name, args in self._args.items()
                                 for position, src in enumerate(args))
            self._nx = graph
        return self._nx

    def add(self, op: Op, *inputs: str) -> str:
        """Add ``op`` fed by ``inputs`` (in operand order); return its node id."""
        name = op.name
        self._ops[name] = op
        self._args[name] = inputs
        self._users.setdefault(name, [])
        for src in inputs:
            self._users.setdefault(src, []).append(name)
        self._nx = None
        return name

    def set_op(self, name: str, op: Op) -> None:
        """Replace the operator of node ``name`` (its edges stay)."""
        if name not in self._ops:
            raise KeyError(name)
        self._ops[name] = op
        self._nx = None

    def ops(self) -> Iterator[Op]:
        """Operators in topological (insertion) order."""
        return iter(self._ops.values())

    def names(self) -> Iterator[str]:
        """Node ids in topological (insertion) order."""
        return iter(self._ops)

    def op(self, name: str) -> Op:
        return self._ops[name]

    def operands(self, name: str) -> list[str]:
        """The node ids feeding ``name``, in operand order."""
        return list(self._args[name])

    def users(self, name: str) -> list[str]:
        """The node ids that ``name`` feeds, in insertion order."""
        return list(self._users.get(name, ()))

    def __contains__(self, name: object) -> bool:
        return name in self._ops

    def __len__(self) -> int:
        return len(self._ops)

    def warn(self, diagnostic: Diagnostic) -> None:
        """Record a warning about the user's network (reported once per code and line)."""
        key = (diagnostic.code, diagnostic.span.line if diagnostic.span else None)
        if all((d.code, d.span.line if d.span else None) != key for d in self.warnings):
            self.warnings.append(diagnostic)

    def replace(self, new: Mapping[str, Op]) -> OpGraph:
        """A copy with the ops of some nodes replaced (structure unchanged)."""
        out = OpGraph(self.plan, list(self.warnings))
        out._ops = {name: new.get(name, op) for name, op in self._ops.items()}
        out._args = dict(self._args)
        out._users = {name: list(users) for name, users in self._users.items()}
        return out


@dataclass(frozen=True, slots=True)
class Shapes:
    """A node's input (its first operand) and output shape, per image: (C, H, W) or (C,)."""

    in_shape: Shape
    out_shape: Shape


@dataclass(frozen=True, slots=True)
class Cost:
    """Trainable parameters and multiply-accumulates of one node."""

    params: int
    macs: int


@dataclass(frozen=True, slots=True)
class Node:
    """An operator with what inference found for it."""

    op: Op
    in_shape: Shape
    out_shape: Shape
    params: int
    macs: int


@dataclass(frozen=True, eq=False)
class CompiledGraph:
    """An op graph with every node's shapes and cost: what the passes hand to backends."""

    graph: OpGraph
    shapes: Mapping[str, Shapes]
    costs: Mapping[str, Cost]
    warnings: list[Diagnostic] = field(default_factory=list)

    @property
    def plan(self) -> Plan:
        return self.graph.plan

    @property
    def nx(self) -> nx.DiGraph:
        return self.graph.nx

    def ops(self) -> Iterator[Op]:
        return self.graph.ops()

    def op(self, name: str) -> Op:
        return self.graph.op(name)

    def operands(self, name: str) -> list[str]:
        return self.graph.operands(name)

    def __contains__(self, name: object) -> bool:
        return name in self.graph

    def __len__(self) -> int:
        return len(self.graph)

    def node(self, name: str) -> Node:
        return self._node(self.graph.op(name))

    def nodes(self) -> Iterator[Node]:
        """Every node in topological order, with its shapes and cost."""
        for op in self.graph.ops():
            yield self._node(op)

    def _node(self, op: Op) -> Node:
        shapes, cost = self.shapes[op.name], self.costs[op.name]
        return Node(op, shapes.in_shape, shapes.out_shape, cost.params, cost.macs)

    def warn(self, diagnostic: Diagnostic) -> None:
        """Record a warning found after compilation (W303), once per code and line."""
        key = (diagnostic.code, diagnostic.span.line if diagnostic.span else None)
        if all((d.code, d.span.line if d.span else None) != key for d in self.warnings):
            self.warnings.append(diagnostic)

    def dump(self) -> str:
        """One line per node: ``%name = kind(args){attrs} : in -> out  params macs  @line``."""
        plan = self.plan
        phi = f"{plan.phi}" if plan.phi is not None else "-"
        lines = [f"# {plan.name}: width_mult={plan.width_mult:.6g} depth_mult={plan.depth_mult:.6g} "
                 f"resolution={plan.resolution} phi={phi} preset={plan.preset or '-'}"
                 + (" inference" if plan.inference else "")]
        for node in self.nodes():
            op = node.op
            args = ", ".join(f"%{src}" for src in self.operands(op.name))
            where = f"  @{op.span.line}" if op.span else ""
            lines.append(
                f"%{op.name} = {op.kind}({args}){_attrs(op)} : {_shape(node.in_shape)} -> {_shape(node.out_shape)}"
                f"  params={node.params} macs={node.macs}{where}"
            )
        return "\n".join(lines) + "\n"


def _shape(shape: Shape) -> str:
    return "x".join(str(d) for d in shape)


def _user_attrs(op: Op) -> list[str]:
    """The attributes of the ops that only users' blocks have."""
    if op.kind == "ln":
        return [f"c={op.out_ch}", f"eps={op.eps:g}"]
    return [str(op.plugin), f"{op.in_ch}->{op.out_ch}", *(f"{k}={v:g}" for k, v in op.options)]


def _conv_attrs(op: Op) -> list[str]:
    parts = [f"k={op.kernel}", f"s={op.stride}", f"{op.in_ch}->{op.out_ch}"]
    if op.groups != 1:
        parts.append(f"groups={op.groups}")
    if op.padding != "symmetric":
        parts.append(f"padding={op.padding}")
    if op.bias:
        parts.append("bias")
    if op.folded:
        parts.append(f"folded %{op.folded}")
    return parts


def _attrs(op: Op) -> str:
    parts: list[str] = []
    if op.kind in ("conv", "dwconv"):
        parts += _conv_attrs(op)
    elif op.kind == "linear":
        parts.append(f"{op.in_ch}->{op.out_ch}")
    elif op.kind == "bn":
        parts += [f"c={op.out_ch}", f"eps={op.eps:g}", f"momentum={op.momentum:g}"]
    elif op.kind in ("ln", "plugin"):
        parts += _user_attrs(op)
    elif op.kind == "act":  # a gate is always a sigmoid: nothing to show
        parts.append(str(op.act))
    elif op.kind == "pool":
        parts.append(str(op.pool))
        if op.flatten:
            parts.append("flatten")
    elif op.kind in ("drop_path", "dropout"):
        parts.append(f"p={op.rate:.6g}")
    return " {" + ", ".join(parts) + "}" if parts else ""
