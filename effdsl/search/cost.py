"""Parameters and MACs of a space's members without compiling them: no network, no weights.

Screening thousands of candidates a second needs more speed than compiling each one
(about 15 ms), so :class:`CostModel` adds up the cost of each part from the formulas of
:mod:`effdsl.ir.costs`, block by block as :mod:`effdsl.passes.lower` expands them
(expand, depthwise, squeeze-excite, project; fused; conv), from the stage rows the
compiler itself makes: a member's stage is resolved by the lowering's and the scale
pass's own functions (defaults, ``then`` groups and the depth they share, fixed
expansion inputs), and every block's expanded width comes from
:func:`effdsl.blocks.base.mid_width` (``mid_width scaled`` included), its squeeze-excite
width from :func:`effdsl.scaling.rounding.se_channels` (``se R of mid divisor D``). The
head counts its conv, the hidden linear layer and the classifier, with the scale pass's
widths (``head_width last``, ``head_width scaled min``).

A stage of a block kind the spec defines (``block NAME { ops }``, plug-in ops
included) is not restated: its blocks are lowered into operators with the compiler's
own lowering and counted with the shape and cost passes' rules (exact; about half a
millisecond for a stage of two blocks). Either way, the cost of a stage depends only on its own picks,
its input channels and its input resolution, so stages are memoized on those (a
member is a few dictionary lookups), and the cheapest and the dearest member of a
space are found exactly by dynamic programming over the stages
(:meth:`CostModel.extremes`). Tests hold the model equal to ``compile_spec``'s summary.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

from effdsl.blocks import BlockArgs, Builder, lower_of
from effdsl.blocks.base import Where, mid_width
from effdsl.ir.costs import bn_params, conv_macs, conv_params, linear_macs, linear_params
from effdsl.ir.graph import OpGraph, Shape, Shapes
from effdsl.ir.plan import Plan, StagePlan
from effdsl.passes.cost import op_cost
from effdsl.passes.lower import plan_from_spec, stage_plan
from effdsl.passes.scale import scale_stage
from effdsl.passes.shapes import out_shape
from effdsl.scaling.members import Scale
from effdsl.scaling.rounding import conv_out_size, head_from_last, round_channels, se_channels
from effdsl.search.space import Picks, Space


class Cost(NamedTuple):
    params: int
    macs: int

    def __add__(self, other: Cost) -> Cost:  # type: ignore[override]
        return Cost(self.params + other.params, self.macs + other.macs)

    def times(self, n: int) -> Cost:
        return Cost(self.params * n, self.macs * n)


ZERO = Cost(0, 0)

# min or max: picks the better of some costs on one axis
Better = Callable[[Iterable[int]], int]

# What the stages after a stage depend on: its output channels, the baseline's channels
# there (what 'mid_width scaled' scales from; the same at width 1 for every valid spec),
# and its output resolution.
State = tuple[int, int, int]


def conv_bn(in_ch: int, out_ch: int, kernel: int, groups: int, out_res: int) -> Cost:
    """A conv without bias and its batch norm (the IR's conv_bn_act; activations cost nothing)."""
    return Cost(conv_params(in_ch, out_ch, kernel, groups, False) + bn_params(out_ch),
                conv_macs(in_ch, out_ch, kernel, groups, out_res, out_res))


def squeeze_excite(stage: StagePlan, in_ch: int, width: int) -> Cost:
    """:meth:`effdsl.blocks.base.Builder.squeeze_excite`: reduce ``width`` to ``se`` x the block
    input (or x ``width`` with ``of mid``, rounded to ``divisor`` when given) and back, 1x1
    convs with bias on a 1x1 map."""
    squeezed = se_channels(width if stage.se_of == "mid" else in_ch, stage.se, stage.se_divisor)
    return Cost(conv_params(width, squeezed, 1, 1, True) + conv_params(squeezed, width, 1, 1, True),
                conv_macs(width, squeezed, 1, 1, 1, 1) + conv_macs(squeezed, width, 1, 1, 1, 1))


def block_cost(plan: Plan, stage: StagePlan, first: bool, in_res: int) -> tuple[Cost, int]:
    """One built-in block (mbconv, fused_mbconv or conv) of a stage row (one ``then`` group)
    and its output resolution; ``first``: the stage's first block (its input and stride)."""
    in_ch = stage.in_ch if first else stage.out_ch
    kernel, out_ch = stage.kernel, stage.out_ch
    out_res = conv_out_size(in_res, kernel, stage.stride if first else 1)
    if stage.block == "conv":
        return conv_bn(in_ch, out_ch, kernel, 1, out_res), out_res
    mid = mid_width(plan, stage, first)
    cost = ZERO
    if stage.block == "mbconv":
        if mid != in_ch:
            cost += conv_bn(in_ch, mid, 1, 1, in_res)
        cost += conv_bn(mid, mid, kernel, mid, out_res)
        width = mid
    else:  # fused_mbconv: a full kxk conv expands (or is the whole block when mid = in)
        width = mid if mid != in_ch else out_ch
        cost += conv_bn(in_ch, width, kernel, 1, out_res)
    if stage.se > 0:
        cost += squeeze_excite(stage, in_ch, width)
    if stage.block == "mbconv" or mid != in_ch:
        cost += conv_bn(mid, out_ch, 1, 1, out_res)
    return cost, out_res


def lowered_cost(plan: Plan, stage: StagePlan, in_res: int) -> tuple[Cost, int]:
    """A whole stage, any block kind, the compiler's way: its blocks lowered into operators by
    their kind's own ``lower`` (a user's kind: :mod:`effdsl.blocks.user`, plug-in ops
    included), each operator costed by the shape and cost passes' rules."""
    graph = OpGraph(plan)
    b = Builder(graph, plan.padding, plan.bn)
    x = b.op("input", "input", (), Where(-1, -1, "stem", None), in_ch=stage.in_ch, out_ch=stage.in_ch)
    lower_block = lower_of(plan, stage.block)
    repeat = 0
    for group in stage.groups():
        for _ in range(group.repeats):
            first = repeat == 0
            args = BlockArgs(stage=group, prefix=f"stages.{stage.index}.{repeat}", index=repeat,
                             in_ch=stage.in_ch if first else stage.out_ch, stride=stage.stride if first else 1,
                             drop_path=0.0, divisor=plan.divisor, mid=mid_width(plan, group, first))
            x = lower_block(b, x, args)
            repeat += 1
    found: dict[str, Shape] = {}
    total = ZERO
    for op in graph.ops():
        in_shape = (stage.in_ch, in_res, in_res) if op.kind == "input" else found[graph.operands(op.name)[0]]
        found[op.name] = shape = out_shape(op, in_shape)
        one = op_cost(op, Shapes(in_shape, shape))
        total += Cost(one.params, one.macs)
    return total, found[x][1]


@dataclass(frozen=True)
class Extreme:
    """A member at one end of the space: its picks and cost."""

    picks: Picks
    cost: Cost


class CostModel:
    """Exact parameters and MACs of a space's members at one input size and class count."""

    def __init__(self, space: Space, *, in_ch: int | None = None, resolution: int | None = None,
                 classes: int | None = None):
        net = space.net
        self.space = space
        self.in_ch = in_ch or net.in_ch
        self.resolution = resolution or net.resolution
        self.classes = classes or net.classes
        policy = net.scaling
        # the compiled member is the baseline scaled at width and depth 1: the scale pass's
        # rounding still applies (fixed widths, the head's rules, depth shared among groups)
        self.scale = Scale(width_mult=1.0, depth_mult=1.0, resolution=self.resolution, dropout=0.0, drop_path=0.0)
        self.plan = replace(plan_from_spec(net), blocks=net.blocks)  # any kind a member may pick
        stem = net.stem
        stem_ch = stem.out_ch if "stem" in policy.fixed_width else self._width(stem.out_ch)
        stem_res = conv_out_size(self.resolution, stem.kernel, stem.stride)
        self.stem = conv_bn(self.in_ch, stem_ch, stem.kernel, 1, stem_res)
        self.start: State = (stem_ch, stem.out_ch, stem_res)
        # the decisions (their indices into picks) of each stage
        self.by_stage: list[tuple[int, ...]] = [
            tuple(i for i, d in enumerate(space.decisions) if d.stage == index) for index in range(len(net.stages))]
        self._memo: dict[tuple[int, Picks, State], tuple[Cost, State]] = {}
        self._rows: dict[tuple[int, Picks], StagePlan] = {}
        self._heads: dict[State, Cost] = {}

    def _width(self, channels: int, mult: float = 1.0) -> int:
        """The scale pass's channel rule at width ``mult``."""
        policy = self.space.net.scaling
        return round_channels(channels, mult, policy.divisor, policy.min_ch, policy.guard)

    def row(self, index: int, combo: Picks) -> StagePlan:
        """Stage ``index`` of the member that takes ``combo`` (the picks of the stage's own
        decisions) as the compiler's stage table has it, its input left at 0: made by the
        lowering's and the scale pass's own functions, so that it cannot drift from them."""
        key = (index, combo)
        found = self._rows.get(key)
        if found is None:
            net = self.space.net
            stage = net.stages[index]
            update: dict[str, Any] = {"choices": ()}
            for i, pick in zip(self.by_stage[index], combo, strict=True):
                decision = self.space.decisions[i]
                update[decision.field] = decision.values[pick]
            if update.get("block", stage.block) == "conv":  # as scaling.choices.member
                update.update(expand=1.0, expand_from=None, se=None)
            stage = stage.model_copy(update=update)
            definition = net.block_def(stage.block)
            takes_se = stage.block != "conv" if definition is None else definition.has("se")
            row = stage_plan(index, stage, 0, net.defaults, takes_se)
            found = self._rows[key] = scale_stage(row, 0, net.scaling, self.scale, self._width)
        return found

    def step(self, index: int, combo: Picks, state: State) -> tuple[Cost, State]:
        """The cost of stage ``index`` with the picks ``combo`` after ``state``, and the state after it."""
        key = (index, combo, state)
        found = self._memo.get(key)
        if found is None:
            in_ch, base_in, in_res = state
            row = replace(self.row(index, combo), in_ch=in_ch, base_in=base_in)
            if self.plan.block_def(row.block) is not None:
                cost, res = lowered_cost(self.plan, row, in_res)
            else:
                cost, res = self._built_in(row, in_res)
            found = self._memo[key] = (cost, (row.out_ch, row.base_out, res))
        return found

    def _built_in(self, row: StagePlan, in_res: int) -> tuple[Cost, int]:
        """A stage of built-in blocks: its groups in order, the first block with the stage's
        input and stride, the others alike (each group's costed once)."""
        cost, res, first = ZERO, in_res, True
        for group in row.groups() if row.parts else (row,):  # one group: the row itself, not a copy
            n = group.repeats
            if n and first:
                one, res = block_cost(self.plan, group, True, res)
                cost, n, first = cost + one, n - 1, False
            if n:
                cost += block_cost(self.plan, group, False, res)[0].times(n)
        return cost, res

    def head_cost(self, state: State) -> Cost:
        """Head conv (if any), pooling, the hidden linear layer (if any) and the classifier."""
        found = self._heads.get(state)
        if found is None:
            last_ch, _, res = state
            net, policy = self.space.net, self.space.net.scaling
            mult = 1.0 if policy.head_min_width is None else max(policy.head_min_width, 1.0)
            fixed = "head" in policy.fixed_width
            cost = ZERO
            features = last_ch
            conv = net.head.conv
            if conv is not None:
                if policy.head_from_last is not None:
                    out_ch = head_from_last(last_ch, policy.head_from_last)
                else:
                    out_ch = conv.out_ch if fixed else self._width(conv.out_ch, mult)
                cost += conv_bn(last_ch, out_ch, conv.kernel, 1, conv_out_size(res, conv.kernel, conv.stride))
                features = out_ch
            hidden = net.head.hidden
            if hidden is not None:
                width = hidden.out_ch if fixed else self._width(hidden.out_ch, mult)
                cost += Cost(linear_params(features, width), linear_macs(features, width))
                features = width
            found = self._heads[state] = cost + Cost(linear_params(features, self.classes),
                                                     linear_macs(features, self.classes))
        return found

    def cost(self, picks: Picks) -> Cost:
        """Parameters and MACs of the member ``picks``."""
        total, state = self.stem, self.start
        memo = self._memo
        for index, mine in enumerate(self.by_stage):
            combo = tuple(picks[i] for i in mine)
            found = memo.get((index, combo, state)) or self.step(index, combo, state)
            total += found[0]
            state = found[1]
        return total + self.head_cost(state)

    def extremes(self) -> dict[str, Extreme]:
        """The members with the fewest and the most MACs and parameters, exactly.

        Dynamic programming over the stages: the state after a stage is its output
        channels (and the baseline's there) and resolution, which is all the following
        stages depend on. Keys:
        ``min_macs``, ``max_macs``, ``min_params``, ``max_params``.
        """
        objectives: dict[str, tuple[int, Better]] = {
            "min_macs": (1, min), "max_macs": (1, max), "min_params": (0, min), "max_params": (0, max)}
        return {name: self._extreme(axis, better) for name, (axis, better) in objectives.items()}

    def _extreme(self, axis: int, better: Better) -> Extreme:
        """The member whose cost on ``axis`` (0 parameters, 1 MACs) is the ``better`` (min or max) one."""
        # state -> (cost, picks so far); picks filled per decision index
        states: dict[State, tuple[Cost, dict[int, int]]] = {self.start: (self.stem, {})}
        for index in range(len(self.by_stage)):
            states = self._extreme_step(states, index, axis, better)
        finals = [(cost + self.head_cost(state), picks) for state, (cost, picks) in states.items()]
        best = better(final[axis] for final, _ in finals)
        cost, picks = next(item for item in finals if item[0][axis] == best)  # the first best, as min/max give
        return Extreme(tuple(picks.get(i, 0) for i in range(len(self.space.decisions))), cost)

    def _extreme_step(self, states: dict[State, tuple[Cost, dict[int, int]]], index: int, axis: int,
                      better: Better) -> dict[State, tuple[Cost, dict[int, int]]]:
        """The best state after stage ``index``, from each state before it and each combination
        of the stage's decisions."""
        mine = self.by_stage[index]
        new: dict[State, tuple[Cost, dict[int, int]]] = {}
        for state, (cost, chosen) in states.items():
            for combo in itertools.product(*(range(len(self.space.decisions[i].values)) for i in mine)):
                step, after = self.step(index, combo, state)
                total = cost + step
                if _improves(total, new[after][0] if after in new else None, axis, better):
                    new[after] = (total, {**chosen, **dict(zip(mine, combo, strict=True))})
        return new


def _improves(total: Cost, best: Cost | None, axis: int, better: Better) -> bool:
    """Is ``total`` better than ``best`` (None: nothing yet) on ``axis``?"""
    return best is None or total[axis] != best[axis] and better((total[axis], best[axis])) == total[axis]


def enumerate_costs(model: CostModel) -> Iterable[tuple[Picks, Cost]]:
    """Every member and its cost (for small spaces and tests)."""
    for picks in itertools.product(*(range(len(d.values)) for d in model.space.decisions)):
        yield picks, model.cost(picks)
