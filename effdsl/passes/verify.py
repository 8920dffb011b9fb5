"""The verifier: the IR's invariants, checked after every pass.

A failure is a bug in the pass named (an :class:`~effdsl.diagnostics.InternalError`),
never the user's mistake.
"""

from __future__ import annotations

from collections.abc import Mapping

from effdsl.diagnostics import InternalError
from effdsl.ir.graph import OP_KINDS, Cost, OpGraph, Shapes

_ARITY = {"input": 0, "mul": 2, "add": 2}


def verify(graph: OpGraph, after: str, shapes: Mapping[str, Shapes] | None = None,
           costs: Mapping[str, Cost] | None = None) -> None:
    """Structure always; shapes and costs once a pass has produced them."""
    def fail(message: str) -> None:
        raise InternalError(after, message)

    for table, what in ((shapes, "shape"), (costs, "cost")):
        missing = [name for name in graph.names() if table is not None and name not in table]
        if missing:
            fail(f"{len(missing)} operators have no {what}, the first {missing[0]}")
    order = {name: i for i, name in enumerate(graph.names())}
    sinks = [name for name in order if not graph.users(name)]
    if len(sinks) != 1:
        fail(f"expected one output, found {len(sinks)}: {sinks[:5]}")
    for op in graph.ops():
        name = op.name
        if op.kind not in OP_KINDS:
            fail(f"{name}: unknown kind {op.kind!r}")
        args = graph.operands(name)
        if len(args) != _ARITY.get(op.kind, 1):
            fail(f"{name}: {op.kind} takes {_ARITY.get(op.kind, 1)} operands, has {len(args)}")
        for position, src in enumerate(args):
            if src not in order:
                fail(f"{name}: operand {src} is not an operator of the graph")
            if order[src] >= order[name]:
                fail(f"{name}: operand {src} comes later in the node order")
            src_op = graph.op(src)
            if src_op.out_ch != op.in_ch:
                fail(f"{name}: expects {op.in_ch} channels, {src} gives {src_op.out_ch}")
            if shapes is not None and position == 0 and shapes[src].out_shape != shapes[name].in_shape:
                fail(f"{name}: input shape {shapes[name].in_shape} but {src} gives {shapes[src].out_shape}")
        if shapes is not None and op.kind == "add" and shapes[args[0]].out_shape != shapes[args[1]].out_shape:
            fail(f"{name}: residual shapes differ: {shapes[args[0]].out_shape} vs {shapes[args[1]].out_shape}")
        if op.kind == "dwconv" and op.groups != op.in_ch:
            fail(f"{name}: depthwise conv with groups={op.groups} over {op.in_ch} channels")
        if op.kind == "bn" and not (op.eps > 0 and 0 <= op.momentum <= 1):
            fail(f"{name}: batch norm with eps={op.eps}, momentum={op.momentum}")
        if op.folded is not None and not (op.kind in ("conv", "dwconv") and op.bias):
            fail(f"{name}: only a conv with a bias can have a batch norm folded into it")
        if graph.plan.inference and op.kind in ("dropout", "drop_path"):
            fail(f"{name}: {op.kind} in the inference network")
        if op.kind == "pool" and op.pool is None:
            fail(f"{name}: pooling without a kind")
        if op.kind in ("act", "gate") and op.act is None:
            fail(f"{name}: {op.kind} without a function")
        if costs is not None and (costs[name].params < 0 or costs[name].macs < 0):
            fail(f"{name}: negative cost")
