"""Stage 3: spec AST -> graph IR.

:func:`lower` resolves the spec's defaults into a :class:`~effdsl.ir.graph.Plan` (the stage
table, unscaled) and :func:`expand` turns a plan into operators, block by block. The
scale pass rewrites the plan and calls :func:`expand` again.
"""

from __future__ import annotations

import networkx as nx

from effdsl.diagnostics import Diagnostic
from effdsl.ir.graph import ConvPlan, Op, Plan, StagePlan, add_op, new_graph, warn
from effdsl.scaling.rounding import drop_path_rate, expanded_channels, se_channels
from effdsl.language.spec import BatchNorm, Block, Network


def lower(net: Network) -> nx.DiGraph:
    """The baseline network (phi = 0) as an operator graph."""
    return expand(plan_from_spec(net))


def plan_from_spec(net: Network) -> Plan:
    defaults = net.defaults
    stages = []
    in_ch = net.stem.out_ch
    for index, stage in enumerate(net.stages):
        se = stage.se if stage.se is not None else (defaults.se if stage.block != "conv" else 0.0)
        skip = stage.skip if stage.skip is not None else stage.block != "conv"
        stages.append(StagePlan(
            index=index, block=stage.block, kernel=stage.kernel, stride=stage.stride,
            expand=stage.expand, in_ch=in_ch, out_ch=stage.out_ch, repeats=stage.repeats,
            se=se, act=stage.act or defaults.act, skip=skip, bn=stage.bn, span=stage.span,
            spans=dict(stage.spans),
        ))
        in_ch = stage.out_ch
    head_conv = net.head.conv
    return Plan(
        name=net.name,
        in_ch=net.in_ch,
        resolution=net.resolution,
        classes=net.classes,
        stem=_conv_plan(net.stem, defaults.act),
        stages=tuple(stages),
        head=_conv_plan(head_conv, defaults.act) if head_conv is not None else None,
        pool=net.head.pool,
        dropout=net.head.dropout if net.head.dropout is not None else defaults.dropout,
        drop_path=defaults.drop_path,
        policy=net.scaling,
        divisor=net.scaling.divisor,
        bn=defaults.bn,
        padding=defaults.padding,
        resolution_span=net.span_of("resolution"),
    )


def _conv_plan(block: Block, default_act: str) -> ConvPlan:
    return ConvPlan(kernel=block.kernel, stride=block.stride, out_ch=block.out_ch,
                    act=block.act or default_act, bn=block.bn, span=block.span)


class _Builder:
    """Appends operators to a graph, tracking the current tensor."""

    def __init__(self, plan: Plan):
        self.plan = plan
        self.graph = new_graph(plan)

    def op(self, kind: str, name: str, inputs: tuple[str, ...], **fields) -> str:
        return add_op(self.graph, Op(kind=kind, name=name, **fields), *inputs)

    def conv_bn_act(self, x: str, prefix: str, in_ch: int, out_ch: int, kernel: int, stride: int,
                    act: str | None, bn: BatchNorm, where: dict, depthwise: bool = False) -> str:
        kind = "dwconv" if depthwise else "conv"
        x = self.op(kind, f"{prefix}.conv", (x,), in_ch=in_ch, out_ch=out_ch, kernel=kernel, stride=stride,
                    groups=in_ch if depthwise else 1, padding=self.plan.padding, **where)
        bn = bn.over(self.plan.bn)
        x = self.op("bn", f"{prefix}.bn", (x,), in_ch=out_ch, out_ch=out_ch, eps=bn.eps, momentum=bn.momentum,
                    **where)
        if act is not None and act != "none":
            x = self.op("act", f"{prefix}.act", (x,), in_ch=out_ch, out_ch=out_ch, act=act, **where)
        return x


def expand(plan: Plan) -> nx.DiGraph:
    """Expand a plan into operators: stem, every block of every stage, head."""
    b = _Builder(plan)
    stem = plan.stem
    where = dict(stage=-1, block=-1, part="stem", span=stem.span)
    x = b.op("input", "input", (), in_ch=plan.in_ch, out_ch=plan.in_ch, **where)
    x = b.conv_bn_act(x, "stem", plan.in_ch, stem.out_ch, stem.kernel, stem.stride, stem.act, stem.bn, where)
    total = plan.num_blocks
    index = 0
    for stage in plan.stages:
        for repeat in range(stage.repeats):
            in_ch = stage.in_ch if repeat == 0 else stage.out_ch
            stride = stage.stride if repeat == 0 else 1
            rate = drop_path_rate(plan.drop_path, index, total)
            x = _block(b, x, stage, f"stages.{stage.index}.{repeat}", index, in_ch, stride, rate)
            index += 1
    n = len(plan.stages)
    last_ch = plan.stages[-1].out_ch
    where = dict(stage=n, block=-1, part="head", span=plan.head.span if plan.head else None)
    if plan.head is not None:
        head = plan.head
        x = b.conv_bn_act(x, "head", last_ch, head.out_ch, head.kernel, head.stride, head.act, head.bn, where)
        last_ch = head.out_ch
    x = b.op("pool", "head.pool", (x,), in_ch=last_ch, out_ch=last_ch, act=plan.pool, flatten=True, **where)
    x = b.op("dropout", "head.dropout", (x,), in_ch=last_ch, out_ch=last_ch, rate=plan.dropout, **where)
    b.op("linear", "classifier", (x,), in_ch=last_ch, out_ch=plan.classes, bias=True,
         **{**where, "part": "classifier"})
    return b.graph


def _block(b: _Builder, x: str, stage: StagePlan, prefix: str, index: int, in_ch: int, stride: int,
           rate: float) -> str:
    """One block of ``stage``: mbconv, fused_mbconv or conv, with squeeze-excite and residual."""
    shortcut = x
    out_ch = stage.out_ch
    act = stage.act

    def where(part: str) -> dict:
        return dict(stage=stage.index, block=index, part=part, span=stage.span)

    if stage.block == "conv":
        x = b.conv_bn_act(x, f"{prefix}.conv", in_ch, out_ch, stage.kernel, stride, act, stage.bn, where("conv"))
    else:
        mid = expanded_channels(in_ch, stage.expand, b.plan.divisor)
        width = mid  # channels of the features squeeze-excite sees
        if stage.block == "mbconv":
            if mid != in_ch:
                x = b.conv_bn_act(x, f"{prefix}.expand", in_ch, mid, 1, 1, act, stage.bn, where("expand"))
            x = b.conv_bn_act(x, f"{prefix}.dw", mid, mid, stage.kernel, stride, act, stage.bn, where("dw"),
                              depthwise=True)
        else:  # fused_mbconv: a full kxk conv does the expansion (and the block when e = 1)
            fused_out = mid if mid != in_ch else out_ch
            width = fused_out
            x = b.conv_bn_act(x, f"{prefix}.fused", in_ch, fused_out, stage.kernel, stride, act, stage.bn,
                              where("fused"))
        if stage.se > 0:
            x = _squeeze_excite(b, x, prefix, in_ch, width, stage, where("se"))
        if stage.block == "mbconv" or mid != in_ch:
            x = b.conv_bn_act(x, f"{prefix}.project", mid, out_ch, 1, 1, None, stage.bn, where("project"))
    if stage.skip and stride == 1 and in_ch == out_ch:
        x = b.op("drop_path", f"{prefix}.drop_path", (x,), in_ch=out_ch, out_ch=out_ch, rate=rate,
                 **where("residual"))
        x = b.op("add", f"{prefix}.add", (shortcut, x), in_ch=out_ch, out_ch=out_ch, **where("residual"))
    return x


def _squeeze_excite(b: _Builder, x: str, prefix: str, in_ch: int, mid: int, stage: StagePlan, where: dict) -> str:
    """Global pool, 1x1 reduce (to ``se * in_ch``, the block input), act, 1x1 expand, sigmoid, scale."""
    squeezed = se_channels(in_ch, stage.se)
    if in_ch * stage.se < 1:
        warn(b.graph, Diagnostic(
            "W302", f"the squeeze-excite width rounds up to 1 channel ({in_ch} x {stage.se:g} = "
                    f"{in_ch * stage.se:g})", stage.spans.get("se", stage.span),
            "a larger se ratio, or se0 to drop squeeze-excite from this stage", severity="warning"))
    p = f"{prefix}.se"
    s = b.op("pool", f"{p}.pool", (x,), in_ch=mid, out_ch=mid, act="avg", **where)
    s = b.op("conv", f"{p}.reduce", (s,), in_ch=mid, out_ch=squeezed, bias=True, **where)
    s = b.op("act", f"{p}.act", (s,), in_ch=squeezed, out_ch=squeezed, act=stage.act, **where)
    s = b.op("conv", f"{p}.expand", (s,), in_ch=squeezed, out_ch=mid, bias=True, **where)
    s = b.op("gate", f"{p}.gate", (s,), in_ch=mid, out_ch=mid, act="sigmoid", **where)
    return b.op("mul", f"{p}.mul", (x, s), in_ch=mid, out_ch=mid, **where)
