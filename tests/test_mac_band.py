"""MACs(phi) / MACs(0) stays within a band around (alpha * beta^2 * gamma^2)^phi.

The derivation (docs/scaling.md, "How far MACs can stray from 2^phi"): every operator
of the scaled network corresponds to one of the baseline (stem and head to themselves,
block j of stage i to the baseline's first block for j = 0 and to a repeat block of
stage i otherwise). An operator's MACs are (spatial side)^b x (product of its a scaled
channel dimensions) x constants, with a in {0, 1, 2} and b in {0, 2}. Each scaled
channel dimension is w times its baseline value times a rounding slack in
[S_lo, S_hi]; each spatial side is g times its baseline value times a slack in
[T_lo, T_hi]. Hence, with B(phi) = stem/head MACs + sum_i (f_i + (n_i' - 1) r_i) the
baseline's MACs re-weighted by the scaled repeat counts n_i',

    min_{a,b} (w S_lo)^a (g T_lo)^b  <=  MACs(phi) / B(phi)  <=  max_{a,b} (w S_hi)^a (g T_hi)^b.

With exact rounding (S = T = 1) and every term quadratic in w and g, and n_i' = n_i d,
this is (d w^2 g^2)^... = (alpha beta^2 gamma^2)^phi: the band is centred on the ideal.
The slack bounds are restated here from the rounding rules, and the scaled repeat counts
come from :mod:`oracle`, not from effdsl.
"""

from __future__ import annotations

import math

from hypothesis import assume, given, settings
from hypothesis import strategies as st

import effdsl
from effdsl.diagnostics import EffdslError, Span
from effdsl.language.format import format_spec
from effdsl.language.spec import Block, Defaults, Head, Network, Scaling

import oracle

SPAN = Span(1, 1, 1, 2)
DIV = 8


@st.composite
def networks(draw) -> Network:
    n_stages = draw(st.integers(1, 4))
    strides = [draw(st.sampled_from([1, 2])) for _ in range(n_stages)]
    total_stride = 2 * math.prod(strides)
    multiple = draw(st.sampled_from([1, 2, 4]))
    resolution = math.lcm(total_stride, multiple) * draw(st.integers(2, 4))
    stages = []
    for stride in strides:
        block = draw(st.sampled_from(["mbconv", "fused_mbconv", "conv"]))
        stages.append(Block(
            span=SPAN, role="stage", block=block, kernel=draw(st.sampled_from([3, 5])), stride=stride,
            expand=1.0 if block == "conv" else float(draw(st.sampled_from([1, 4, 6]))),
            out_ch=DIV * draw(st.integers(2, 8)), repeats=draw(st.integers(1, 3)),
            se=None if block == "conv" else draw(st.sampled_from([0.0, 0.25])),
        ))
    head = Block(span=SPAN, role="head", block="conv", kernel=1, out_ch=DIV * draw(st.integers(2, 16)))
    scaling = Scaling(
        span=SPAN,
        alpha=draw(st.floats(1.0, 1.4)), beta=draw(st.floats(1.0, 1.4)), gamma=draw(st.floats(1.0, 1.4)),
        guard=draw(st.sampled_from([0.9, 0.0])),
        depth_rounding=draw(st.sampled_from(["ceil", "floor", "half_up", "half_even"])),
        resolution_rounding=draw(st.sampled_from(["ceil", "floor", "half_up", "half_even"])),
        resolution_multiple=multiple,
        fixed_width=draw(st.sampled_from([(), ("stem",), ("head",), ("stem", "head")])),
        fixed_depth=tuple(i for i in range(n_stages) if draw(st.booleans()) and draw(st.booleans())),
    )
    return Network(
        span=SPAN, name="band", in_ch=3, resolution=resolution, classes=draw(st.integers(1, 20)),
        scaling=scaling, defaults=Defaults(span=SPAN, se=0.25),
        stem=Block(span=SPAN, role="stem", block="conv", kernel=3, stride=2, out_ch=DIV * draw(st.integers(2, 6))),
        stages=tuple(stages), head=Head(span=SPAN, conv=head if draw(st.booleans()) else None),
    )


def _block_macs(graph) -> tuple[int, dict[int, int], dict[int, int]]:
    """Stem+head MACs, and MACs per global block index with the block's stage."""
    outside, per_block, stage_of = 0, {}, {}
    for node in graph.nodes():
        op = node.op
        if op.block < 0:
            outside += node.macs
        else:
            per_block[op.block] = per_block.get(op.block, 0) + node.macs
            stage_of[op.block] = op.stage
    return outside, per_block, stage_of


def _first_and_repeat_costs(net: Network) -> tuple[int, list[int], list[int]]:
    """Baseline stem/head MACs, and per stage the MACs of its first and of a repeat block."""
    probe = net.model_copy(update={"stages": tuple(s.model_copy(update={"repeats": 2}) for s in net.stages)})
    outside, per_block, stage_of = _block_macs(effdsl.compile_spec(format_spec(probe), phi=0).graph)
    first, repeat = [], []
    for i in range(len(net.stages)):
        blocks = sorted(b for b, s in stage_of.items() if s == i)
        first.append(per_block[blocks[0]])
        repeat.append(per_block[blocks[1]])
    return outside, first, repeat


def _channel_slack(c: float, w: float, guard: float, min_ch: int = DIV) -> tuple[float, float]:
    """Bounds of round_channels(c, w) / (c * w), from the channel rule (see :mod:`oracle`)."""
    x = c * w
    lo = max(1 - DIV / (2 * x), guard)
    hi = max(min_ch / x, 1 + DIV / (2 * x), guard + DIV / x)
    return lo, hi


def _slack(net: Network, w: float) -> tuple[float, float]:
    s = net.scaling
    widths = [st.out_ch for st in net.stages]
    if "stem" not in s.fixed_width:
        widths.append(net.stem.out_ch)
    if net.head.conv is not None and "head" not in s.fixed_width:
        widths.append(net.head.conv.out_ch)
    c_min = min(widths + [net.stem.out_ch])
    lo, hi = _channel_slack(c_min, w, s.guard)
    los, his = [lo], [hi]
    expands = [st.expand for st in net.stages if st.expand != 1]
    if expands:  # mid = round(c * e) at width 1 with the default guard, before and after scaling
        x = c_min * min(expands)
        base_lo, base_hi = _channel_slack(x, 1.0, 0.9)
        new_lo, new_hi = _channel_slack(x * lo, 1.0, 0.9)
        los.append(new_lo * lo / base_hi)
        his.append(new_hi * hi / base_lo)
    se = 0.25  # squeeze = max(1, int(c_in * se)): floor costs at most one channel
    los.append(lo - 1 / (c_min * se * w))
    his.append(hi * (c_min * se) / (c_min * se - 1))
    return min(los), max(his)


def band(net: Network, phi: float, resolution: int) -> tuple[float, float]:
    """The derived bounds of MACs(phi) for ``net`` scaled to ``resolution`` pixels."""
    s = net.scaling
    d, w, g = s.alpha**phi, s.beta**phi, s.gamma**phi
    outside, first, repeat = _first_and_repeat_costs(net)
    repeats = [st.repeats if i in s.fixed_depth else oracle.round_repeats(st.repeats, d, s.depth_rounding)
               for i, st in enumerate(net.stages)]
    reweighted = outside + sum(f + (n - 1) * r for f, r, n in zip(first, repeat, repeats, strict=True))
    s_lo, s_hi = _slack(net, w)
    total_stride = net.stem.stride * math.prod(st.stride for st in net.stages)
    t_lo, t_hi = resolution / (net.resolution * g), (resolution + total_stride) / (net.resolution * g)
    terms = [(a, b) for a in (0, 1, 2) for b in (0, 2)]
    f_lo = min((w * s_lo) ** a * (g * t_lo) ** b for a, b in terms)
    f_hi = max((w * s_hi) ** a * (g * t_hi) ** b for a, b in terms)
    return f_lo * reweighted * (1 - 1e-9), f_hi * reweighted * (1 + 1e-9)


@settings(max_examples=80, deadline=None)
@given(net=networks(), phi=st.floats(-1, 4, allow_nan=False))
def test_macs_ratio_stays_in_the_derived_band(net, phi):
    text = format_spec(net)
    base = effdsl.compile_spec(text, phi=0).summary
    try:
        scaled = effdsl.compile_spec(text, phi=phi).summary
    except EffdslError as err:  # shrinking below the total stride is refused, never miscounted
        assert [d.code for d in err.diagnostics] == ["E301"]
        assume(False)
    outside, first, repeat = _first_and_repeat_costs(net)
    stages = zip(first, repeat, net.stages, strict=True)
    assert outside + sum(f + (st.repeats - 1) * r for f, r, st in stages) == base.macs
    low, high = band(net, phi, scaled.resolution)
    assert low <= scaled.macs <= high


def test_efficientnet_b0_family_stays_in_its_band_around_two_to_the_phi():
    net = effdsl.parse_spec("efficientnet_b0")
    base = effdsl.compile_spec("efficientnet_b0", phi=0).summary.macs
    ideal = 1.2 * 1.1**2 * 1.15**2
    for phi in (-1, 0.5, 1, 2, 3, 4, 5, 6, 7):
        scaled = effdsl.compile_spec("efficientnet_b0", phi=phi).summary
        low, high = band(net, phi, scaled.resolution)
        assert low <= scaled.macs <= high
        # The band is around the ideal: it holds (alpha beta^2 gamma^2)^phi x MACs(0) up to
        # the depth rounding, which for B0 adds at most one block per stage.
        assert low / base <= ideal**phi * 1.6 and high / base >= ideal**phi * 0.7
