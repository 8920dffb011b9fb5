"""Lowering: spec AST -> stage plan -> operators.

:func:`plan_from_spec` resolves the spec's defaults into a :class:`~effdsl.ir.plan.Plan`
(the stage table, unscaled); after the scale pass has rewritten it, :func:`expand` turns
the plan into operators once: stem, every block of every stage (each kind lowers itself,
see :mod:`effdsl.blocks`), head.
"""

from __future__ import annotations

from effdsl.blocks import BlockArgs, Builder, lower_of
from effdsl.blocks.base import Where, mid_width
from effdsl.ir.graph import OpGraph
from effdsl.ir.plan import ConvPlan, Plan, Preprocessing, StagePart, StagePlan
from effdsl.language.spec import Block, Defaults, Network
from effdsl.scaling.rounding import drop_path_rate


def stage_plan(index: int, stage: Block, in_ch: int, defaults: Defaults, takes_se: bool) -> StagePlan:
    """One stage line (and its ``then`` groups) with every default resolved; ``takes_se``: the
    block kind has a squeeze-excite for the default ``se`` to size."""
    se = stage.se if stage.se is not None else (defaults.se if takes_se else 0.0)
    skip = stage.skip if stage.skip is not None else stage.block != "conv"
    shape = stage.se_shape.over(defaults.se_shape)
    act = stage.act or defaults.act
    parts = []
    for part in stage.parts:
        part_shape = part.se_shape.over(shape)
        parts.append(StagePart(
            repeats=part.repeats, expand=part.expand if part.expand is not None else stage.expand,
            expand_from=part.expand_from if part.expand_from is not None else stage.expand_from,
            kernel=part.kernel if part.kernel is not None else stage.kernel, act=part.act or act,
            se=part.se if part.se is not None else se, se_of=part_shape.of or "in", se_divisor=part_shape.divisor,
            se_inner=part_shape.inner, se_gate=part_shape.gate or "sigmoid",
            skip=part.skip if part.skip is not None else skip, spans=dict(part.spans)))
    return StagePlan(
        index=index, block=stage.block, kernel=stage.kernel, stride=stage.stride,
        expand=stage.expand, in_ch=in_ch, out_ch=stage.out_ch,
        repeats=stage.repeats + sum(part.repeats for part in parts),
        se=se, act=act, skip=skip, bn=stage.bn, span=stage.span, spans=dict(stage.spans),
        se_of=shape.of or "in", se_divisor=shape.divisor, se_inner=shape.inner, se_gate=shape.gate or "sigmoid",
        expand_from=stage.expand_from, parts=tuple(parts), base_in=in_ch, base_out=stage.out_ch,
    )


def plan_from_spec(net: Network) -> Plan:
    """The baseline's stage table, every default resolved."""
    defaults = net.defaults
    stages = []
    in_ch = net.stem.out_ch
    for index, stage in enumerate(net.stages):
        definition = net.block_def(stage.block)
        takes_se = stage.block != "conv" if definition is None else definition.has("se")
        stages.append(stage_plan(index, stage, in_ch, defaults, takes_se))
        in_ch = stage.out_ch
    head_conv = net.head.conv
    hidden = net.head.hidden
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
        classifier_span=net.head.spans.get("linear"),
        preprocessing=Preprocessing() if net.preprocess is None else Preprocessing(
            net.preprocess.mean, net.preprocess.std, net.preprocess.interpolation, net.preprocess.crop),
        hidden=None if hidden is None else (hidden.out_ch, hidden.act or "none"),
        hidden_span=None if hidden is None else hidden.span,
        blocks=tuple(b for b in net.blocks if any(stage.block == b.name for stage in net.stages)),
    )


def _conv_plan(block: Block, default_act: str) -> ConvPlan:
    return ConvPlan(kernel=block.kernel, stride=block.stride, out_ch=block.out_ch,
                    act=block.act or default_act, bn=block.bn, span=block.span)


def expand(plan: Plan) -> OpGraph:
    """Expand a plan into operators: stem, every block of every stage, head."""
    graph = OpGraph(plan)
    b = Builder(graph, plan.padding, plan.bn)
    stem = plan.stem
    where = Where(-1, -1, "stem", stem.span)
    x = b.op("input", "input", (), where, in_ch=plan.in_ch, out_ch=plan.in_ch)
    x = b.conv_bn_act(x, "stem", plan.in_ch, stem.out_ch, stem.kernel, stem.stride, stem.act, stem.bn, where)
    total = plan.num_blocks
    index = 0
    for stage in plan.stages:
        lower_block = lower_of(plan, stage.block)
        repeat = 0
        for group in stage.groups():
            for _ in range(group.repeats):
                first = repeat == 0
                args = BlockArgs(stage=group, prefix=f"stages.{stage.index}.{repeat}", index=index,
                                 in_ch=stage.in_ch if first else stage.out_ch,
                                 stride=stage.stride if first else 1,
                                 drop_path=drop_path_rate(plan.drop_path, index, total), divisor=plan.divisor,
                                 mid=mid_width(plan, group, first))
                x = lower_block(b, x, args)
                index += 1
                repeat += 1
    last_ch = plan.stages[-1].out_ch
    where = Where(len(plan.stages), -1, "head", plan.head.span if plan.head else None)
    if plan.head is not None:
        head = plan.head
        x = b.conv_bn_act(x, "head", last_ch, head.out_ch, head.kernel, head.stride, head.act, head.bn, where)
        last_ch = head.out_ch
    x = b.op("pool", "head.pool", (x,), where, in_ch=last_ch, out_ch=last_ch, pool=plan.pool, flatten=True)
    if plan.hidden is not None:
        width, act = plan.hidden
        hidden = Where(len(plan.stages), -1, "hidden", plan.hidden_span or where.span)
        x = b.op("linear", "head.hidden", (x,), hidden, in_ch=last_ch, out_ch=width, bias=True)
        if act != "none":
            x = b.op("act", "head.hidden_act", (x,), hidden, in_ch=width, out_ch=width, act=act)
        last_ch = width
    x = b.op("dropout", "head.dropout", (x,), where, in_ch=last_ch, out_ch=last_ch, rate=plan.dropout)
    classifier = Where(len(plan.stages), -1, "classifier", plan.classifier_span or where.span)
    b.op("linear", "classifier", (x,), classifier, in_ch=last_ch, out_ch=plan.classes, bias=True)
    return graph
