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
from effdsl.passes.shapes import plugin_of


def count_cost(graph: OpGraph, shapes: Mapping[str, Shapes]) -> dict[str, Cost]:
    """Every operator's parameter count and MACs; needs the shapes."""
    return {op.name: op_cost(op, shapes[op.name]) for op in graph.ops()}


def op_cost(op: Op, shapes: Shapes) -> Cost:
    """The cost rule of each operator kind: only convs and linear layers multiply-add."""
    if op.kind in ("conv", "dwconv"):
        _, h, w = shapes.out_shape
        return Cost(conv_params(op.in_ch, op.out_ch, op.kernel, op.groups, op.bias),
                    conv_macs(op.in_ch, op.out_ch, op.kernel, op.groups, h, w))
    if op.kind in ("bn", "ln"):  # a scale and a shift per channel; no multiply-add is counted
        return Cost(bn_params(op.out_ch), 0)
    if op.kind == "plugin":
        plugin = plugin_of(op)
        c, h, w = shapes.in_shape
        oc, oh, ow = shapes.out_shape
        params, macs = plugin.params_macs((c, h, w), (oc, oh, ow), dict(op.options), op.span)
        return Cost(params, macs)
    if op.kind == "linear":
        return Cost(linear_params(op.in_ch, op.out_ch, op.bias), linear_macs(op.in_ch, op.out_ch))
    return Cost(0, 0)
