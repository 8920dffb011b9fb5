"""The verifier: the IR's invariants, checked after every pass.

A failure is a bug in the pass named (an :class:`~effdsl.diagnostics.InternalError`),
never the user's mistake.
"""

from __future__ import annotations

from collections.abc import Mapping

from effdsl.diagnostics import InternalError
from effdsl.ir.graph import OP_KINDS, Cost, Op, OpGraph, Shapes

_ARITY = {"input": 0, "mul": 2, "add": 2}


def verify(graph: OpGraph, after: str, shapes: Mapping[str, Shapes] | None = None,
           costs: Mapping[str, Cost] | None = None) -> None:
    """Structure always; shapes and costs once a pass has produced them."""
    order = {name: i for i, name in enumerate(graph.names())}
    problem = (_missing(graph, shapes, costs) or _single_output(graph)
               or next((p for op in graph.ops() if (p := _op_problem(graph, op, order, shapes, costs))), None))
    if problem is not None:
        raise InternalError(after, problem)


def _missing(graph: OpGraph, shapes: Mapping[str, Shapes] | None, costs: Mapping[str, Cost] | None) -> str | None:
    for table, what in ((shapes, "shape"), (costs, "cost")):
        missing = [name for name in graph.names() if table is not None and name not in table]
        if missing:
            return f"{len(missing)} operators have no {what}, the first {missing[0]}"
    return None


def _single_output(graph: OpGraph) -> str | None:
    sinks = [name for name in graph.names() if not graph.users(name)]
    return None if len(sinks) == 1 else f"expected one output, found {len(sinks)}: {sinks[:5]}"


def _op_problem(graph: OpGraph, op: Op, order: Mapping[str, int], shapes: Mapping[str, Shapes] | None,
                costs: Mapping[str, Cost] | None) -> str | None:
    """What is wrong with one operator and its operands, or None."""
    name = op.name
    if op.kind not in OP_KINDS:
        return f"{name}: unknown kind {op.kind!r}"
    args = graph.operands(name)
    if len(args) != _ARITY.get(op.kind, 1):
        return f"{name}: {op.kind} takes {_ARITY.get(op.kind, 1)} operands, has {len(args)}"
    for position, src in enumerate(args):
        if src not in order:
            return f"{name}: operand {src} is not an operator of the graph"
        if order[src] >= order[name]:
            return f"{name}: operand {src} comes later in the node order"
        if graph.op(src).out_ch != op.in_ch:
            return f"{name}: expects {op.in_ch} channels, {src} gives {graph.op(src).out_ch}"
        if shapes is not None and position == 0 and shapes[src].out_shape != shapes[name].in_shape:
            return f"{name}: input shape {shapes[name].in_shape} but {src} gives {shapes[src].out_shape}"
    if shapes is not None and op.kind == "add" and shapes[args[0]].out_shape != shapes[args[1]].out_shape:
        return f"{name}: residual shapes differ: {shapes[args[0]].out_shape} vs {shapes[args[1]].out_shape}"
    if costs is not None and (costs[name].params < 0 or costs[name].macs < 0):
        return f"{name}: negative cost"
    if graph.plan.inference and op.kind in ("dropout", "drop_path"):
        return f"{name}: {op.kind} in the inference network"
    return _attribute_problem(op)


def _attribute_problem(op: Op) -> str | None:
    if op.kind == "dwconv" and op.groups != op.in_ch:
        return f"{op.name}: depthwise conv with groups={op.groups} over {op.in_ch} channels"
    if op.kind == "bn" and not (op.eps > 0 and 0 <= op.momentum <= 1):
        return f"{op.name}: batch norm with eps={op.eps}, momentum={op.momentum}"
    if op.folded is not None and not (op.kind in ("conv", "dwconv") and op.bias):
        return f"{op.name}: only a conv with a bias can have a batch norm folded into it"
    if op.kind == "pool" and op.pool is None:
        return f"{op.name}: pooling without a kind"
    if op.kind in ("act", "gate") and op.act is None:
        return f"{op.name}: {op.kind} without a function"
    return None
