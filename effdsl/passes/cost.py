"""The cost pass: parameters and MACs of every operator (formulas in :mod:`effdsl.ir.costs`)."""

from __future__ import annotations

from collections.abc import Mapping

from effdsl.ir.costs import (
    bn_params,
    conv_macs,
    conv_params,
    linear_macs,
    linear_params,
)
from effdsl.ir.graph import Cost, Op, OpGraph, Shapes


def count_cost(graph: OpGraph, shapes: Mapping[str, Shapes]) -> dict[str, Cost]:
    """Every operator's parameter count and MACs; needs the shapes."""
    return {op.name: op_cost(op, shapes[op.name]) for op in graph.ops()}


def op_cost(op: Op, shapes: Shapes) -> Cost:
    """The cost rule of each operator kind: only convs and linear layers multiply-add."""
    if op.kind in ("conv", "dwconv"):
        _, h, w = shapes.out_shape
        return Cost(conv_params(op.in_ch, op.out_ch, op.kernel, op.groups, op.bias),
                    conv_macs(op.in_ch, op.out_ch, op.kernel, op.groups, h, w))
    if op.kind == "bn":
        return Cost(bn_params(op.out_ch), 0)
    if op.kind == "linear":
        return Cost(linear_params(op.in_ch, op.out_ch, op.bias), linear_macs(op.in_ch, op.out_ch))
    return Cost(0, 0)
