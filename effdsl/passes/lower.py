"""Lowering: spec AST -> stage plan -> operators.

:func:`plan_from_spec` resolves the spec's defaults into a :class:`~effdsl.ir.plan.Plan`
(the stage table, unscaled); after the scale pass has rewritten it, :func:`expand` turns
the plan into operators once: stem, every block of every stage (each kind lowers itself,
see :mod:`effdsl.blocks`), head.
"""

from __future__ import annotations

from effdsl.blocks import BlockArgs, Builder, lower_of
from effdsl.blocks.base import Where
from effdsl.ir.graph import OpGraph
from effdsl.ir.plan import ConvPlan, Plan, Preprocessing, StagePlan
from effdsl.language.spec import Block, Network
from effdsl.scaling.rounding import drop_path_rate


def plan_from_spec(net: Network) -> Plan:
    """The baseline's stage table, every default resolved."""
    defaults = net.defaults
    stages = []
    in_ch = net.stem.out_ch
    for index, stage in enumerate(net.stages):
        definition = net.block_def(stage.block)
        takes_se = stage.block != "conv" if definition is None else definition.has("se")
        se = stage.se if stage.se is not None else (defaults.se if takes_se else 0.0)
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
        classifier_span=net.head.spans.get("linear"),
        preprocessing=Preprocessing() if net.preprocess is None else Preprocessing(
            net.preprocess.mean, net.preprocess.std, net.preprocess.interpolation, net.preprocess.crop),
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
        for repeat in range(stage.repeats):
            args = BlockArgs(stage=stage, prefix=f"stages.{stage.index}.{repeat}", index=index,
                             in_ch=stage.in_ch if repeat == 0 else stage.out_ch,
                             stride=stage.stride if repeat == 0 else 1,
                             drop_path=drop_path_rate(plan.drop_path, index, total), divisor=plan.divisor)
            x = lower_block(b, x, args)
            index += 1
    last_ch = plan.stages[-1].out_ch
    where = Where(len(plan.stages), -1, "head", plan.head.span if plan.head else None)
    if plan.head is not None:
        head = plan.head
        x = b.conv_bn_act(x, "head", last_ch, head.out_ch, head.kernel, head.stride, head.act, head.bn, where)
        last_ch = head.out_ch
    x = b.op("pool", "head.pool", (x,), where, in_ch=last_ch, out_ch=last_ch, pool=plan.pool, flatten=True)
    x = b.op("dropout", "head.dropout", (x,), where, in_ch=last_ch, out_ch=last_ch, rate=plan.dropout)
    classifier = Where(len(plan.stages), -1, "classifier", plan.classifier_span or where.span)
    b.op("linear", "classifier", (x,), classifier, in_ch=last_ch, out_ch=plan.classes, bias=True)
    return graph
