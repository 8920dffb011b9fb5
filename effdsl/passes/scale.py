"""The scale pass: compound scaling of the stage table.

Channels, repeats, resolution and head of the member that a
:class:`~effdsl.scaling.members.Scale` selects, with the spec's rounding rules (the
arithmetic is in :mod:`effdsl.scaling.rounding`). Scaling always composes from the
baseline plan; the scaled plan is then expanded into operators once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from effdsl.diagnostics import Diagnostic, EffdslError, InternalError
from effdsl.ir.plan import Plan, StagePlan
from effdsl.language.spec import MAX_BLOCKS, MAX_CHANNELS, MAX_RESOLUTION, Scaling
from effdsl.scaling.members import Scale
from effdsl.scaling.rounding import head_from_last, round_channels, round_group_repeats


def scale_plan(plan: Plan, scale: Scale) -> Plan:
    """The stage table of the member of the family that ``scale`` selects."""
    if plan.scaled:
        raise InternalError("scale", "the plan is already scaled; scaling composes from the baseline only")
    policy = plan.policy
    w, d = scale.width_mult, scale.depth_mult
    if not scale.resolution <= MAX_RESOLUTION:
        raise _too_large(scale, f"a resolution of {scale.resolution:,} pixels; at most {MAX_RESOLUTION:,}")

    def width(channels: int, mult: float = w) -> int:
        if not channels * mult <= MAX_CHANNELS:  # also inf and nan: checked before rounding
            raise _too_large(scale, f"{_count(channels * mult)} channels (from {channels:,}); at most {MAX_CHANNELS:,}")
        return round_channels(channels, mult, policy.divisor, policy.min_ch, policy.guard)

    stem = plan.stem if "stem" in policy.fixed_width else replace(plan.stem, out_ch=width(plan.stem.out_ch))
    stages = []
    in_ch = stem.out_ch
    for stage in plan.stages:
        stages.append(scale_stage(stage, in_ch, policy, scale, width))
        in_ch = stages[-1].out_ch
    blocks = sum(stage.repeats for stage in stages)
    if blocks > MAX_BLOCKS:
        raise _too_large(scale, f"{blocks:,} blocks; at most {MAX_BLOCKS:,}")
    # the head and the hidden layer: the channel rule with max(min, width) under 'head_width scaled min'
    head_mult = w if policy.head_min_width is None else max(policy.head_min_width, w)
    head = plan.head
    if head is not None and policy.head_from_last is not None:
        head = replace(head, out_ch=head_from_last(stages[-1].out_ch, policy.head_from_last))
        if head.out_ch > MAX_CHANNELS:
            raise _too_large(scale, f"{head.out_ch:,} head channels; at most {MAX_CHANNELS:,}")
    elif head is not None and "head" not in policy.fixed_width:
        head = replace(head, out_ch=width(head.out_ch, head_mult))
    hidden = plan.hidden
    if hidden is not None and "head" not in policy.fixed_width:
        hidden = (width(hidden[0], head_mult), hidden[1])
    preprocessing = replace(plan.preprocessing, test_resolution=scale.test_resolution,
                            crop=plan.preprocessing.crop if scale.crop is None else scale.crop)
    return replace(
        plan, stem=stem, stages=tuple(stages), head=head, hidden=hidden, resolution=scale.resolution,
        preprocessing=preprocessing,
        dropout=scale.dropout, drop_path=scale.drop_path, bn=scale.bn.over(plan.bn),
        width_mult=w, depth_mult=d, phi=scale.phi, preset=scale.preset, scaled=True,
        resolution_span=scale.resolution_span,
    )


def scale_stage(stage: StagePlan, in_ch: int, policy: Scaling, scale: Scale,
                 width: Callable[[int], int]) -> StagePlan:
    """One stage: its width, its fixed expansion inputs, and its depth, shared among its groups."""
    groups = stage.group_repeats
    d = scale.depth_mult
    if stage.index in policy.fixed_depth:
        pass
    elif stage.repeats * d <= MAX_BLOCKS:
        groups = round_group_repeats(groups, d, policy.depth_rounding)
    else:  # also inf and nan
        raise _too_large(scale, f"{_count(stage.repeats * d)} blocks in stage {stage.index + 1}; "
                                f"at most {MAX_BLOCKS:,} in all")

    def fixed_input(channels: int | None) -> int | None:
        return None if channels is None else width(channels)

    parts = tuple(replace(part, repeats=n, expand_from=fixed_input(part.expand_from))
                  for part, n in zip(stage.parts, groups[1:], strict=True))
    return replace(stage, in_ch=in_ch, out_ch=width(stage.out_ch), repeats=sum(groups), parts=parts,
                   expand_from=fixed_input(stage.expand_from))


Architecture = tuple[int, tuple[tuple[int, int], ...], int | None, int]


def architecture(plan: Plan) -> Architecture:
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
    return EffdslError(Diagnostic("E302", f"{member} scales the network to {what}", scale.span, hint))
