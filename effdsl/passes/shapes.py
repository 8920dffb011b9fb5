"""The shape pass: (C, H, W) of every tensor, per image.

A resolution too small for the network's total stride is a user error (E301); a
feature map smaller than a kernel is a warning (W301).
"""

from __future__ import annotations

from math import prod

from effdsl.diagnostics import Diagnostic, EffdslError
from effdsl.ir.graph import Op, OpGraph, Shape, Shapes
from effdsl.ir.plan import Plan
from effdsl.language.plugins import PluginOp, broken, load_plugin
from effdsl.scaling.rounding import conv_out_size


def total_stride(plan: Plan) -> int:
    strides = [plan.stem.stride] + [s.stride for s in plan.stages]
    if plan.head is not None:
        strides.append(plan.head.stride)
    return prod(strides)


def infer_shapes(graph: OpGraph, resolution_source: str = "the input line") -> dict[str, Shapes]:
    """Every operator's input and output shape."""
    plan = graph.plan
    stride = total_stride(plan)
    if plan.resolution < stride:
        raise EffdslError(Diagnostic(
            "E301",
            f"resolution {plan.resolution} (from {resolution_source}) is smaller than the network's "
            f"total stride {stride}",
            plan.resolution_span,
            f"use a resolution of at least {stride}, or fewer stride-2 stages",
        ))
    found: dict[str, Shapes] = {}
    image = (plan.in_ch, plan.resolution, plan.resolution)
    for op in graph.ops():
        in_shape = image if op.kind == "input" else found[graph.operands(op.name)[0]].out_shape
        if op.kind in ("conv", "dwconv") and op.stage >= 0 and in_shape[1] < op.kernel:
            where = "the head" if op.stage == len(plan.stages) else f"stage {op.stage + 1}"
            graph.warn(Diagnostic(
                "W301", f"{where} sees a {in_shape[1]}x{in_shape[2]} feature map, smaller than its "
                        f"{op.kernel}x{op.kernel} kernel (at resolution {plan.resolution})",
                op.span, "a larger resolution, or fewer stride-2 stages before it", severity="warning"))
        found[op.name] = Shapes(in_shape, out_shape(op, in_shape))
    return found


def out_shape(op: Op, in_shape: Shape) -> Shape:
    """The shape rule of each operator kind."""
    if op.kind in ("conv", "dwconv"):
        _, h, w = in_shape
        return (op.out_ch, conv_out_size(h, op.kernel, op.stride), conv_out_size(w, op.kernel, op.stride))
    if op.kind == "pool":
        return (op.out_ch,) if op.flatten else (op.out_ch, 1, 1)
    if op.kind == "linear":
        return (op.out_ch,)
    if op.kind == "plugin":
        return plugin_shape(op, in_shape)
    return in_shape  # input, bn, ln, act, gate, mul, add, drop_path, dropout keep the shape


def plugin_shape(op: Op, in_shape: Shape) -> Shape:
    """A plug-in op's own shape rule (E130 when it fails, or disagrees with the op's channels)."""
    plugin = plugin_of(op)
    c, h, w = in_shape
    found = plugin.out_shape((c, h, w), dict(op.options), op.span)
    if found[0] != op.out_ch:
        raise broken(plugin.name, plugin.package, f"its shape rule gives {found[0]} channels where its 'to' "
                     f"says {op.out_ch}", op.span)
    return found


def plugin_of(op: Op) -> PluginOp:
    plugin = load_plugin(str(op.plugin), op.span)
    if plugin is None:
        raise EffdslError(Diagnostic("E120", f"unknown op '{op.plugin}': no installed package provides it",
                                     op.span, "install the package that provides it"))
    return plugin
