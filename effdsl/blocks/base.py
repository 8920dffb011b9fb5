"""What a block kind is, and the pieces blocks share: conv + batch norm + activation,
squeeze-excite and the residual, each with its lowering to IR operators and its torch
class (as source text).

A block kind (:class:`BlockKind`) has its operators defined once, in the prelude
(``grammars/prelude.eff``, lowered by :func:`effdsl.blocks.user.lower` through
:class:`Builder`), and its own module of this package: how its parts are told apart, and
its torch class (the source that the torch backend runs and the ``.py`` export writes out). Everything else
(shapes, costs, pictures, reports, weight import, the numbers each module is built with)
derives from the operators.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from effdsl.diagnostics import Diagnostic
from effdsl.ir.graph import Op, OpGraph, OpKind
from effdsl.ir.plan import Plan, StagePlan
from effdsl.language.spec import BatchNorm
from effdsl.scaling.rounding import expanded_channels, round_channels, se_channels


@dataclass(frozen=True, slots=True)
class Where:
    """The position fields every op of one part of the network shares."""

    stage: int
    block: int
    part: str
    span: object  # Span | None; kept loose so positions can be copied as they are

    def at(self, part: str) -> Where:
        return Where(self.stage, self.block, part, self.span)


@dataclass(frozen=True, slots=True)
class BlockArgs:
    """One block of a stage, as :func:`effdsl.passes.lower.expand` hands it to a kind's ``lower``."""

    stage: StagePlan
    prefix: str        # module path: stages.1.0
    index: int         # global block index
    in_ch: int
    stride: int
    drop_path: float   # this block's stochastic-depth rate
    divisor: int       # the channel divisor of the network
    mid: int           # the expanded width (in_ch: no expansion)

    def where(self, part: str) -> Where:
        return Where(self.stage.index, self.index, part, self.stage.span)


def mid_width(plan: Plan, stage: StagePlan, first: bool) -> int:
    """The expanded width of a block: ``e`` x its input (or x the fixed ``expand_from`` width),
    rounded with the channel rule; with ``mid_width scaled``, the baseline's expanded width
    scaled by the member's width (torchvision MobileNetV3's ``adjust_channels``)."""
    in_ch = stage.in_ch if first else stage.out_ch
    if stage.expand_from is not None:
        return expanded_channels(stage.expand_from, stage.expand, plan.divisor)
    if not plan.policy.mid_scaled or stage.expand == 1:
        return expanded_channels(in_ch, stage.expand, plan.divisor)
    base = expanded_channels(stage.base_in if first else stage.base_out, stage.expand, plan.divisor)
    policy = plan.policy
    return round_channels(base, plan.width_mult, policy.divisor, policy.min_ch, policy.guard)


class Builder:
    """Appends operators to an :class:`OpGraph`; the shared pieces of every block kind."""

    def __init__(self, graph: OpGraph, padding: str, bn: BatchNorm):
        self.graph = graph
        self.padding = padding
        self.bn = bn  # the network's batch-norm settings, under every stage's own

    def op(self, kind: OpKind, name: str, inputs: tuple[str, ...], where: Where, **fields: object) -> str:
        op = Op(kind=kind, name=name, stage=where.stage, block=where.block, part=where.part,
                span=where.span, **fields)  # type: ignore[arg-type]
        return self.graph.add(op, *inputs)

    def conv_bn_act(self, x: str, prefix: str, in_ch: int, out_ch: int, kernel: int, stride: int,
                    act: str | None, bn: BatchNorm, where: Where, depthwise: bool = False) -> str:
        """Conv (dense or depthwise), batch norm, and the activation unless it is none."""
        x = self.op("dwconv" if depthwise else "conv", f"{prefix}.conv", (x,), where, in_ch=in_ch, out_ch=out_ch,
                    kernel=kernel, stride=stride, groups=in_ch if depthwise else 1, padding=self.padding)
        settings = bn.over(self.bn)
        assert settings.eps is not None and settings.momentum is not None  # the defaults always set both
        x = self.op("bn", f"{prefix}.bn", (x,), where, in_ch=out_ch, out_ch=out_ch, eps=settings.eps,
                    momentum=settings.momentum)
        if act is not None and act != "none":
            x = self.op("act", f"{prefix}.act", (x,), where, in_ch=out_ch, out_ch=out_ch, act=act)
        return x

    def squeeze_excite(self, x: str, args: BlockArgs, width: int) -> str:
        """Global pool, 1x1 reduce (to ``se x`` the block input, or x ``width``, the channels it
        scales, with ``of mid``), the inner act, 1x1 expand, the gate, scale."""
        stage = args.stage
        base = width if stage.se_of == "mid" else args.in_ch
        squeezed = se_channels(base, stage.se, stage.se_divisor)
        if stage.se_divisor is None and base * stage.se < 1:
            self.graph.warn(Diagnostic(
                "W302", f"the squeeze-excite width rounds up to 1 channel ({base} x {stage.se:g} = "
                        f"{base * stage.se:g})", stage.span_of("se"),
                "a larger se ratio, or se0 to drop squeeze-excite from this stage", severity="warning"))
        p, where = f"{args.prefix}.se", args.where("se")
        s = self.op("pool", f"{p}.pool", (x,), where, in_ch=width, out_ch=width, pool="avg")
        s = self.op("conv", f"{p}.reduce", (s,), where, in_ch=width, out_ch=squeezed, bias=True)
        s = self.op("act", f"{p}.act", (s,), where, in_ch=squeezed, out_ch=squeezed, act=stage.se_inner or stage.act)
        s = self.op("conv", f"{p}.expand", (s,), where, in_ch=squeezed, out_ch=width, bias=True)
        s = self.op("gate", f"{p}.gate", (s,), where, in_ch=width, out_ch=width, act=stage.se_gate)
        return self.op("mul", f"{p}.mul", (x, s), where, in_ch=width, out_ch=width)

    def residual(self, shortcut: str, x: str, args: BlockArgs) -> str:
        """The block input plus its output through stochastic depth, when the shapes allow it."""
        stage, out_ch = args.stage, args.stage.out_ch
        if not (stage.skip and args.stride == 1 and args.in_ch == out_ch):
            return x
        where = args.where("residual")
        x = self.op("drop_path", f"{args.prefix}.drop_path", (x,), where, in_ch=out_ch, out_ch=out_ch,
                    rate=args.drop_path)
        return self.op("add", f"{args.prefix}.add", (shortcut, x), where, in_ch=out_ch, out_ch=out_ch)


@dataclass(frozen=True, slots=True)
class ConvRow:
    """A conv + batch norm (+ activation) of a block, as :mod:`effdsl.blocks.table` reads it back."""

    in_ch: int
    out_ch: int
    kernel: int
    stride: int
    act: str | None
    bn: tuple[float, float] | None  # None: folded into the conv (which then has a bias)
    same: bool  # TensorFlow 'same' padding (only changes anything when strided)


@dataclass(frozen=True)
class BlockKind:
    """Everything effdsl knows about one kind of block."""

    name: str                    # as written in a spec: stage mbconv ...
    class_name: str              # its class in the .py export
    main_part: str               # the part every block of this kind has, and no other kind has
    parts: frozenset[str]        # every part its operators may belong to
    expands: bool                # takes an expansion ratio (e6)
    lower: Callable[[Builder, str, BlockArgs], str]  # its prelude definition, interpreted
    mid: Callable[[Mapping[str, ConvRow], int], int | None]  # the expanded width, from its convs and in_ch
    py_class: str                # source of its torch class (run by the torch backend, written by the .py export)
    py_make: str                 # the expression that makes one block from a row of the table


# ------------------------------------------------------------------ shared classes
# Source text of the classes every network uses. The torch backend executes it (see
# effdsl.blocks.library) and the .py export writes it out, so both are the same code.

CONV_BN_ACT_CLASS = '''

class ConvBNAct(nn.Module):
    """Conv, batch norm (bn = (eps, momentum)) and activation (none when act is None).

    With bn None the batch norm is folded into the conv, which then has a bias (inference).
    """

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, act: str | None,
                 bn: tuple[float, float] | None, groups: int = 1, padding: str = "symmetric"):
        super().__init__()
        self.conv = conv2d(in_ch, out_ch, kernel, stride, groups, bias=bn is None, padding=padding)
        self.bn = None if bn is None else nn.BatchNorm2d(out_ch, eps=bn[0], momentum=bn[1])
        self.act = activation(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        if self.act is not None:
            x = self.act(x)
        return x
'''

SQUEEZE_EXCITE_CLASS = '''

class SqueezeExcite(nn.Module):
    """Global average pool, 1x1 reduce to `squeeze` channels, act, 1x1 expand, gate (sigmoid or
    hardsigmoid), scale."""

    def __init__(self, channels: int, squeeze: int, act: str | None, gate: str = "sigmoid"):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.reduce = nn.Conv2d(channels, squeeze, 1)
        self.act = activation(act)
        self.expand = nn.Conv2d(squeeze, channels, 1)
        self.gate = nn.Hardsigmoid() if gate == "hardsigmoid" else nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.reduce(self.pool(x))
        if self.act is not None:
            s = self.act(s)
        s = self.gate(self.expand(s))
        if torch.is_grad_enabled():
            return x * s
        # Without autograd, scale in place: x is a fresh activation that only this block reads,
        # and a large one; not allocating another saves time (same numbers).
        return x.mul_(s)


def squeeze_excite(channels: int, squeeze: int | tuple, act: str | None) -> SqueezeExcite:
    """A block's squeeze-excite: `squeeze` channels with the block's act and a sigmoid gate, or
    `squeeze` = (channels, inner act, gate)."""
    if isinstance(squeeze, tuple):
        return SqueezeExcite(channels, *squeeze)
    return SqueezeExcite(channels, squeeze, act)
'''
