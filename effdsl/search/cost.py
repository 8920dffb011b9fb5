"""Parameters and MACs of a space's members, analytically: no graph, no weights.

Screening thousands of candidates a second needs more speed than compiling each one
(about 15 ms), so :class:`CostModel` adds up the cost of each part from the formulas of
:mod:`effdsl.ir.costs` and the widths of :mod:`effdsl.scaling.rounding`, block by block
as :mod:`effdsl.passes.lower` expands them (expand, depthwise, squeeze-excite, project;
fused; conv). The cost of a stage depends only on its own values, its input channels and
its input resolution, so stages are memoized on those, and the cheapest and the dearest
member of a space are found exactly by dynamic programming over the stages
(:meth:`CostModel.extremes`). Tests hold the model equal to ``compile_spec``'s summary.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from effdsl.ir.costs import bn_params, conv_macs, conv_params, linear_macs, linear_params
from effdsl.scaling.rounding import conv_out_size, expanded_channels, head_from_last, se_channels
from effdsl.search.space import Picks, Space

if TYPE_CHECKING:
    from effdsl.language.spec import Block, Network


class Cost(NamedTuple):
    params: int
    macs: int

    def __add__(self, other: Cost) -> Cost:  # type: ignore[override]
        return Cost(self.params + other.params, self.macs + other.macs)


ZERO = Cost(0, 0)

# min or max: picks the better of some costs on one axis
Better = Callable[[Iterable[int]], int]


def conv_bn(in_ch: int, out_ch: int, kernel: int, groups: int, out_res: int) -> Cost:
    """A conv without bias and its batch norm (the IR's conv_bn_act; activations cost nothing)."""
    return Cost(conv_params(in_ch, out_ch, kernel, groups, False) + bn_params(out_ch),
                conv_macs(in_ch, out_ch, kernel, groups, out_res, out_res))


def squeeze_excite(in_ch: int, width: int, ratio: float) -> Cost:
    """Reduce ``width`` to ``se_channels(in_ch, ratio)`` and back, 1x1 convs with bias on a 1x1 map."""
    squeezed = se_channels(in_ch, ratio)
    return Cost(conv_params(width, squeezed, 1, 1, True) + conv_params(squeezed, width, 1, 1, True),
                conv_macs(width, squeezed, 1, 1, 1, 1) + conv_macs(squeezed, width, 1, 1, 1, 1))


def block_cost(block: str, in_ch: int, out_ch: int, kernel: int, stride: int, expand: float, se: float,
               in_res: int, divisor: int) -> tuple[Cost, int]:
    """One block (mbconv, fused_mbconv or conv) and its output resolution."""
    out_res = conv_out_size(in_res, kernel, stride)
    if block == "conv":
        return conv_bn(in_ch, out_ch, kernel, 1, out_res), out_res
    mid = expanded_channels(in_ch, expand, divisor)
    cost = ZERO
    if block == "mbconv":
        if mid != in_ch:
            cost += conv_bn(in_ch, mid, 1, 1, in_res)
        cost += conv_bn(mid, mid, kernel, mid, out_res)
        width = mid
    else:  # fused_mbconv: a full kxk conv expands (or is the whole block when e = 1)
        width = mid if mid != in_ch else out_ch
        cost += conv_bn(in_ch, width, kernel, 1, out_res)
    if se > 0:
        cost += squeeze_excite(in_ch, width, se)
    if block == "mbconv" or mid != in_ch:
        cost += conv_bn(mid, out_ch, 1, 1, out_res)
    return cost, out_res


class StageValues(NamedTuple):
    block: str
    kernel: int
    stride: int
    expand: float
    out_ch: int
    repeats: int
    se: float


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
        self.divisor = net.scaling.divisor
        self.default_se = net.defaults.se
        self.head_ratio = net.scaling.head_from_last
        stem = net.stem
        self.stem_res = conv_out_size(self.resolution, stem.kernel, stem.stride)
        self.stem = conv_bn(self.in_ch, stem.out_ch, stem.kernel, 1, self.stem_res)
        self.stem_ch = stem.out_ch
        self.head = net.head.conv
        self.base = [self._resolved(net, stage) for stage in net.stages]
        # decision i sets field fields[i] of stage stages[i]
        self.where = [(d.stage, d.field) for d in space.decisions]
        self._memo: dict[tuple[StageValues, int, int], tuple[Cost, int]] = {}

    @staticmethod
    def _resolved(net: Network, stage: Block) -> dict[str, Any]:
        """The stage's own values; a squeeze-excite left to the defaults is resolved per member,
        once the block type is known (``conv`` has none)."""
        return dict(block=stage.block, kernel=stage.kernel, stride=stage.stride, expand=stage.expand,
                    out_ch=stage.out_ch, repeats=stage.repeats, se=stage.se)

    def stages(self, picks: Picks) -> list[StageValues]:
        """Every stage's values in the member ``picks``."""
        chosen: list[dict[int, int]] = [{} for _ in self.base]
        for i, ((stage, _), pick) in enumerate(zip(self.where, picks, strict=False)):
            chosen[stage][i] = pick
        return [self._stage_of(index, picked) for index, picked in enumerate(chosen)]

    def stage_cost(self, stage: StageValues, in_ch: int, in_res: int) -> tuple[Cost, int]:
        """A whole stage: the first block with the stride, then repeats - 1 blocks at out_ch."""
        key = (stage, in_ch, in_res)
        found = self._memo.get(key)
        if found is None:
            first, res = block_cost(stage.block, in_ch, stage.out_ch, stage.kernel, stage.stride, stage.expand,
                                    stage.se, in_res, self.divisor)
            cost = first
            if stage.repeats > 1:
                rest, _ = block_cost(stage.block, stage.out_ch, stage.out_ch, stage.kernel, 1, stage.expand,
                                     stage.se, res, self.divisor)
                cost = Cost(cost.params + rest.params * (stage.repeats - 1),
                            cost.macs + rest.macs * (stage.repeats - 1))
            found = self._memo[key] = (cost, res)
        return found

    def head_cost(self, last_ch: int, res: int) -> Cost:
        """Head conv (if any), pooling and the linear classifier."""
        cost = ZERO
        features = last_ch
        if self.head is not None:
            out_ch = self.head.out_ch if self.head_ratio is None else head_from_last(last_ch, self.head_ratio)
            cost += conv_bn(last_ch, out_ch, self.head.kernel, 1, conv_out_size(res, self.head.kernel,
                                                                                self.head.stride))
            features = out_ch
        return cost + Cost(linear_params(features, self.classes), linear_macs(features, self.classes))

    def cost(self, picks: Picks) -> Cost:
        """Parameters and MACs of the member ``picks``."""
        total = self.stem
        in_ch, res = self.stem_ch, self.stem_res
        for stage in self.stages(picks):
            cost, res = self.stage_cost(stage, in_ch, res)
            total += cost
            in_ch = stage.out_ch
        return total + self.head_cost(in_ch, res)

    def extremes(self) -> dict[str, Extreme]:
        """The members with the fewest and the most MACs and parameters, exactly.

        Dynamic programming over the stages: the state after a stage is its output
        channels and resolution, which is all the following stages depend on. Keys:
        ``min_macs``, ``max_macs``, ``min_params``, ``max_params``.
        """
        by_stage: dict[int, list[int]] = {}
        for i, (stage, _) in enumerate(self.where):
            by_stage.setdefault(stage, []).append(i)
        objectives: dict[str, tuple[int, Better]] = {
            "min_macs": (1, min), "max_macs": (1, max), "min_params": (0, min), "max_params": (0, max)}
        return {name: self._extreme(by_stage, axis, better) for name, (axis, better) in objectives.items()}

    def _extreme(self, by_stage: dict[int, list[int]], axis: int, better: Better) -> Extreme:
        """The member whose cost on ``axis`` (0 parameters, 1 MACs) is the ``better`` (min or max) one."""
        # state -> (cost, picks so far); picks filled per decision index
        states: dict[tuple[int, int], tuple[Cost, dict[int, int]]] = {
            (self.stem_ch, self.stem_res): (self.stem, {})}
        for index in range(len(self.base)):
            states = self._extreme_step(states, index, by_stage.get(index, []), axis, better)
        finals = [(cost + self.head_cost(ch, res), picks) for (ch, res), (cost, picks) in states.items()]
        best = better(final[axis] for final, _ in finals)
        cost, picks = next(item for item in finals if item[0][axis] == best)  # the first best, as min/max give
        return Extreme(tuple(picks.get(i, 0) for i in range(len(self.where))), cost)

    def _extreme_step(self, states: dict[tuple[int, int], tuple[Cost, dict[int, int]]], index: int,
                      mine: list[int], axis: int, better: Better) -> dict[tuple[int, int], tuple[Cost, dict[int, int]]]:
        """The best state after stage ``index``, from each state before it and each combination
        of the stage's decisions ``mine``."""
        new: dict[tuple[int, int], tuple[Cost, dict[int, int]]] = {}
        for (in_ch, res), (cost, chosen) in states.items():
            for combo in itertools.product(*(range(len(self.space.decisions[i].values)) for i in mine)):
                picks = dict(chosen)
                picks.update(zip(mine, combo, strict=True))
                stage = self._stage_of(index, dict(zip(mine, combo, strict=True)))
                step, out_res = self.stage_cost(stage, in_ch, res)
                total = cost + step
                state = (stage.out_ch, out_res)
                if _improves(total, new[state][0] if state in new else None, axis, better):
                    new[state] = (total, picks)
        return new

    def _stage_of(self, index: int, chosen: dict[int, int]) -> StageValues:
        v = dict(self.base[index])
        for i, pick in chosen.items():
            v[self.where[i][1]] = self.space.decisions[i].values[pick]
        if v["block"] == "conv":
            v["expand"], v["se"] = 1.0, 0.0
        elif v["se"] is None:
            v["se"] = self.default_se
        return StageValues(v["block"], v["kernel"], v["stride"], v["expand"], v["out_ch"], v["repeats"], v["se"])


def _improves(total: Cost, best: Cost | None, axis: int, better: Better) -> bool:
    """Is ``total`` better than ``best`` (None: nothing yet) on ``axis``?"""
    return best is None or total[axis] != best[axis] and better((total[axis], best[axis])) == total[axis]


def enumerate_costs(model: CostModel) -> Iterable[tuple[Picks, Cost]]:
    """Every member and its cost (for small spaces and tests)."""
    for picks in itertools.product(*(range(len(d.values)) for d in model.space.decisions)):
        yield picks, model.cost(picks)
