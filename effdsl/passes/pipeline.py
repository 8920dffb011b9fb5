"""Stage 4: passes over the graph IR, each checked by the verifier.

Every pass takes a graph and returns a new one. ``REQUIRES``/``PROVIDES`` name the
facts a pass needs and adds; :func:`run_pipeline` runs them in order and calls
:func:`verify` after each, so a broken invariant names the pass that broke it.

- ``scale``: compound scaling of the stage table (channels, repeats, resolution, head)
  with the spec's rounding rules, then re-expansion into operators.
- ``infer_shapes``: (C, H, W) of every tensor; a resolution too small for the network's
  total stride is a user error (E301).
- ``count_cost``: parameters and MACs of every operator.
"""

from __future__ import annotations

from dataclasses import replace
from math import prod

import networkx as nx

from effdsl.ir.costs import bn_params, conv_macs, conv_params, linear_macs, linear_params
from effdsl.diagnostics import Diagnostic, EffdslError, InternalError
from effdsl.ir.graph import OP_KINDS, Op, Plan, evolve, operands, ops, plan_of, replace_ops, warn
from effdsl.passes.lower import expand, lower
from effdsl.scaling.rounding import conv_out_size, head_from_last, round_channels, round_repeats
from effdsl.scaling.members import Scale
from effdsl.language.spec import MAX_BLOCKS, MAX_CHANNELS, MAX_RESOLUTION, Network

REQUIRES = {"scale": set(), "infer_shapes": set(), "count_cost": {"shapes"}}
PROVIDES = {"scale": {"scaled"}, "infer_shapes": {"shapes"}, "count_cost": {"cost"}}


# ---------------------------------------------------------------------------- scale

def scale_plan(plan: Plan, scale: Scale) -> Plan:
    """The stage table of the member of the family that ``scale`` selects."""
    if plan.scaled:
        raise InternalError("scale", "the plan is already scaled; scaling composes from the baseline only")
    policy = plan.policy
    w, d = scale.width_mult, scale.depth_mult
    if not scale.resolution <= MAX_RESOLUTION:
        raise _too_large(scale, f"a resolution of {scale.resolution:,} pixels; at most {MAX_RESOLUTION:,}")

    def width(channels: int) -> int:
        if not channels * w <= MAX_CHANNELS:  # also inf and nan: checked before rounding
            raise _too_large(scale, f"{_count(channels * w)} channels (from {channels:,}); at most {MAX_CHANNELS:,}")
        return round_channels(channels, w, policy.divisor, policy.min_ch, policy.guard)

    stem = plan.stem if "stem" in policy.fixed_width else replace(plan.stem, out_ch=width(plan.stem.out_ch))
    stages = []
    in_ch = stem.out_ch
    for stage in plan.stages:
        if stage.index in policy.fixed_depth:
            repeats = stage.repeats
        elif stage.repeats * d <= MAX_BLOCKS:
            repeats = round_repeats(stage.repeats, d, policy.depth_rounding)
        else:  # also inf and nan
            raise _too_large(scale, f"{_count(stage.repeats * d)} blocks in stage {stage.index + 1}; "
                                    f"at most {MAX_BLOCKS:,} in all")
        out_ch = width(stage.out_ch)
        stages.append(replace(stage, in_ch=in_ch, out_ch=out_ch, repeats=repeats))
        in_ch = out_ch
    blocks = sum(stage.repeats for stage in stages)
    if blocks > MAX_BLOCKS:
        raise _too_large(scale, f"{blocks:,} blocks; at most {MAX_BLOCKS:,}")
    head = plan.head
    if head is not None and policy.head_from_last is not None:
        head = replace(head, out_ch=head_from_last(stages[-1].out_ch, policy.head_from_last))
        if head.out_ch > MAX_CHANNELS:
            raise _too_large(scale, f"{head.out_ch:,} head channels; at most {MAX_CHANNELS:,}")
    elif head is not None and "head" not in policy.fixed_width:
        head = replace(head, out_ch=width(head.out_ch))
    return replace(
        plan, stem=stem, stages=tuple(stages), head=head, resolution=scale.resolution,
        dropout=scale.dropout, drop_path=scale.drop_path, bn=scale.bn.over(plan.bn),
        width_mult=w, depth_mult=d, phi=scale.phi, preset=scale.preset, scaled=True,
        resolution_span=scale.resolution_span,
    )


def architecture(plan: Plan) -> tuple:
    """What decides a scaled network: channels and repeats of every part, and resolution."""
    head = plan.head.out_ch if plan.head is not None else None
    return (plan.stem.out_ch, tuple((s.out_ch, s.repeats) for s in plan.stages), head, plan.resolution)


def _count(value: float) -> str:
    """A size for a message: 20,000 or 1e+308."""
    return f"{value:,.0f}" if value < 1e15 else f"{value:.3g}"


def _too_large(scale: Scale, what: str) -> EffdslError:
    """E302: the member of the family that ``scale`` selects is too large to build."""
    if scale.preset is not None:
        member, hint = f"preset '{scale.preset}'", "lower the preset's width, depth or resolution"
    elif scale.phi is not None:
        member, hint = f"phi {scale.phi:g}", "use a smaller phi"
    else:
        member, hint = (f"width {scale.width_mult:g}, depth {scale.depth_mult:g}, resolution {scale.resolution:,}",
                        "use smaller multipliers")
    return EffdslError(Diagnostic("E302", f"{member} scales the network to {what}", None, hint))


def scale(graph: nx.DiGraph, target: Scale) -> nx.DiGraph:
    """Rewrite the stage table to ``target`` and re-expand it into operators."""
    return expand(scale_plan(plan_of(graph), target))


# ---------------------------------------------------------------------------- shapes

def total_stride(plan: Plan) -> int:
    strides = [plan.stem.stride] + [s.stride for s in plan.stages]
    if plan.head is not None:
        strides.append(plan.head.stride)
    return prod(strides)


def infer_shapes(graph: nx.DiGraph, resolution_source: str = "the input line") -> nx.DiGraph:
    """Annotate every operator with its input and output shape (per image)."""
    plan = plan_of(graph)
    stride = total_stride(plan)
    if plan.resolution < stride:
        raise EffdslError(Diagnostic(
            "E301",
            f"resolution {plan.resolution} (from {resolution_source}) is smaller than the network's "
            f"total stride {stride}",
            plan.resolution_span,
            f"use a resolution of at least {stride}, or fewer stride-2 stages",
        ))
    shapes: dict[str, tuple[int, ...]] = {}
    new: dict[str, Op] = {}
    for op in ops(graph):
        args = operands(graph, op.name)
        if op.kind == "input":
            in_shape = (plan.in_ch, plan.resolution, plan.resolution)
        else:
            in_shape = shapes[args[0]]
        out_shape = _out_shape(op, in_shape)
        if op.kind in ("conv", "dwconv") and 0 <= op.stage and in_shape[1] < op.kernel:
            where = "the head" if op.stage == len(plan.stages) else f"stage {op.stage + 1}"
            warn(graph, Diagnostic(
                "W301", f"{where} sees a {in_shape[1]}x{in_shape[2]} feature map, smaller than its "
                        f"{op.kernel}x{op.kernel} kernel (at resolution {plan.resolution})",
                op.span, "a larger resolution, or fewer stride-2 stages before it", severity="warning"))
        shapes[op.name] = out_shape
        new[op.name] = evolve(op, in_shape=in_shape, out_shape=out_shape)
    return replace_ops(graph, new)


def _out_shape(op: Op, in_shape: tuple[int, ...]) -> tuple[int, ...]:
    if op.kind == "input":
        return in_shape
    if op.kind in ("conv", "dwconv"):
        _, h, w = in_shape
        return (op.out_ch, conv_out_size(h, op.kernel, op.stride), conv_out_size(w, op.kernel, op.stride))
    if op.kind == "pool":
        return (op.out_ch,) if op.flatten else (op.out_ch, 1, 1)
    if op.kind == "linear":
        return (op.out_ch,)
    return in_shape  # bn, act, gate, mul, add, drop_path, dropout keep the shape


# ---------------------------------------------------------------------------- cost

def count_cost(graph: nx.DiGraph) -> nx.DiGraph:
    """Annotate every operator with its parameter count and MACs."""
    new = {}
    for op in ops(graph):
        params = macs = 0
        if op.kind in ("conv", "dwconv"):
            params = conv_params(op.in_ch, op.out_ch, op.kernel, op.groups, op.bias)
            _, h, w = op.out_shape
            macs = conv_macs(op.in_ch, op.out_ch, op.kernel, op.groups, h, w)
        elif op.kind == "bn":
            params = bn_params(op.out_ch)
        elif op.kind == "linear":
            params = linear_params(op.in_ch, op.out_ch, op.bias)
            macs = linear_macs(op.in_ch, op.out_ch)
        new[op.name] = evolve(op, params=params, macs=macs)
    return replace_ops(graph, new)


# ---------------------------------------------------------------------------- verify

_ARITY = {"input": 0, "mul": 2, "add": 2}


def verify(graph: nx.DiGraph, after: str) -> None:
    """Check the IR's invariants; a failure is a bug in the pass ``after``."""
    def fail(message: str) -> None:
        raise InternalError(after, message)

    order = {name: i for i, name in enumerate(graph.nodes)}
    sinks = [n for n in graph.nodes if graph.out_degree(n) == 0]
    if len(sinks) != 1:
        fail(f"expected one output, found {len(sinks)}: {sinks[:5]}")
    for name, data in graph.nodes(data=True):
        op: Op = data["op"]
        if op.kind not in OP_KINDS:
            fail(f"{name}: unknown kind {op.kind!r}")
        if op.name != name:
            fail(f"{name}: op is named {op.name!r}")
        args = operands(graph, name)
        if len(args) != _ARITY.get(op.kind, 1):
            fail(f"{name}: {op.kind} takes {_ARITY.get(op.kind, 1)} operands, has {len(args)}")
        for position, src in enumerate(args):
            if order[src] >= order[name]:
                fail(f"{name}: operand {src} comes later in the node order")
            src_op: Op = graph.nodes[src]["op"]
            if src_op.out_ch != op.in_ch:
                fail(f"{name}: expects {op.in_ch} channels, {src} gives {src_op.out_ch}")
            if src_op.out_shape is not None and op.in_shape is not None and position == 0 \
                    and src_op.out_shape != op.in_shape:
                fail(f"{name}: input shape {op.in_shape} but {src} gives {src_op.out_shape}")
        if op.kind == "add" and len(args) == 2:
            a, b = (graph.nodes[s]["op"] for s in args)
            if a.out_shape is not None and a.out_shape != b.out_shape:
                fail(f"{name}: residual shapes differ: {a.out_shape} vs {b.out_shape}")
        if op.kind == "dwconv" and op.groups != op.in_ch:
            fail(f"{name}: depthwise conv with groups={op.groups} over {op.in_ch} channels")
        if op.params is not None and (op.params < 0 or op.macs < 0):
            fail(f"{name}: negative cost")


# ---------------------------------------------------------------------------- pipeline

def run_pipeline(net: Network, target: Scale) -> nx.DiGraph:
    """lower -> scale -> infer_shapes -> count_cost, verifying after each."""
    graph = lower(net)
    verify(graph, "lower")
    graph = scale(graph, target)
    verify(graph, "scale")
    graph = infer_shapes(graph, target.resolution_source)
    verify(graph, "infer_shapes")
    graph = count_cost(graph)
    verify(graph, "count_cost")
    return graph
