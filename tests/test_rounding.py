"""effdsl.scaling.rounding against the reference facts, plus its invariants under Hypothesis.

The facts are the published EfficientNet numbers (TF ``round_filters`` /
``round_repeats``, torchvision ``_make_divisible`` / ``adjust_depth``) and the
rounding rules restated exactly in :mod:`oracle`, which is itself checked here against
the standard library's implementations of the modes.
"""

from __future__ import annotations

import math
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from effdsl.scaling.rounding import (
    compound_multipliers,
    conv_out_size,
    drop_path_rate,
    expanded_channels,
    round_channels,
    round_group_repeats,
    round_number,
    round_repeats,
    round_resolution,
    se_channels,
)

import oracle

MODES = oracle.MODES

# ---------------------------------------------------------------------------- channels


def test_b3_first_stage_needs_the_guard() -> None:
    # 16 x 1.2 = 19.2 rounds to 16, which is below 90% of 19.2: one more divisor.
    assert round_channels(16, 1.2) == 24
    assert round_channels(16, 1.2, guard=0) == 16
    assert round_channels(16, 1.2, guard=0.0, divisor=8) == 16


@pytest.mark.parametrize(("channels", "width", "expected"), [
    (1280, 1.1, 1408),  # B2 head
    (1280, 1.2, 1536),  # B3 head
    (1280, 1.4, 1792),  # B4 head
    (1280, 2.0, 2560),  # B7 head
    (32, 2.0, 64),      # B7 stem
    (32, 1.4, 48),      # B4 stem: 44.8 -> 48
    (32, 1.6, 48),      # B5 stem: 51.2 -> 48 (within 10%)
    (32, 1.8, 56),      # B6 stem: 57.6 -> 56
    (32, 1.0, 32),
])
def test_published_widths(channels: int, width: float, expected: int) -> None:
    assert round_channels(channels, width) == expected


def test_b2_stage_widths() -> None:
    # torchvision efficientnet_b2: 32, 16, 24, 48, 88, 120, 208, 352, head 1408.
    base = [32, 16, 24, 40, 80, 112, 192, 320, 1280]
    assert [round_channels(c, 1.1) for c in base] == [32, 16, 24, 48, 88, 120, 208, 352, 1408]


def test_channel_floor() -> None:
    assert round_channels(8, 0.25) == 8             # never below the divisor
    assert round_channels(8, 0.25, divisor=4) == 4
    assert round_channels(8, 0.25, min_ch=16) == 16
    assert round_channels(20, 1.0, divisor=8) == 24  # 20 + 4 -> 24 (half rounds up)
    assert round_channels(19, 1.0, divisor=8, guard=0) == 16


def test_expanded_and_squeezed_widths() -> None:
    assert expanded_channels(16, 6, 8) == 96
    assert expanded_channels(24, 1, 8) == 24
    assert expanded_channels(24, 4.5, 8) == 112  # 108 is not a multiple of 8
    assert se_channels(16, 0.25) == 4            # from the block input
    assert se_channels(3, 0.25) == 1             # at least one
    assert se_channels(96, 0.0) == 1


# ---------------------------------------------------------------------------- depth


@pytest.mark.parametrize(("repeats", "depth", "expected"), [
    (3, 1.1, 4),   # 3 * 1.1 = 3.3000000000000003
    (1, 3.1, 4),   # B7 first stage
    (2, 3.1, 7),   # B7: 6.2 -> 7
    (3, 3.1, 10),  # B7: 9.3 -> 10
    (4, 3.1, 13),  # B7: 12.4 -> 13
    (2, 1.1, 3),
    (4, 1.0, 4),
    (1, 0.1, 1),   # at least one block
])
def test_published_depths(repeats: int, depth: float, expected: int) -> None:
    assert round_repeats(repeats, depth) == expected


def test_depth_modes() -> None:
    assert round_repeats(3, 1.5, "half_even") == 4
    assert round_repeats(3, 1.5, "half_up") == 5
    assert round_repeats(3, 1.5, "floor") == 4
    assert round_repeats(3, 1.5, "ceil") == 5
    assert round_repeats(1, 0.4, "floor") == 1
    assert round_repeats(1, 0.4, "half_even") == 1


# ---------------------------------------------------------------------------- modes


@pytest.mark.parametrize(("value", "mode", "expected"), oracle.KNOWN_CASES)
def test_round_number(value: float, mode: str, expected: int) -> None:
    assert round_number(value, mode) == expected


def test_just_below_a_half_rounds_down() -> None:
    x = 0.49999999999999994  # the largest float below 1/2
    assert Fraction(x) == Fraction(1, 2) - Fraction(1, 2**54)
    assert math.floor(x + 0.5) == 1  # the float shortcut: x + 0.5 rounds to 1.0 before floor sees it
    assert oracle.round_mode(x, "half_up") == 0
    assert round_number(x, "half_up") == 0
    assert round_number(x, "half_even") == 0


def test_unknown_mode() -> None:
    with pytest.raises(ValueError, match="half_down"):
        round_number(2.5, "half_down")


# ---------------------------------------------------------------------------- resolution and the rest


def test_resolution() -> None:
    assert round_resolution(224, 1.15**3) == 341  # 340.676
    assert round_resolution(224, 1.0) == 224
    assert round_resolution(224, 1.15, "half_up", 8) == 256  # 257.6 / 8 = 32.2
    assert round_resolution(224, 1.15, "ceil", 8) == 264
    assert round_resolution(3, 0.1, "floor", 8) == 8  # at least one multiple
    assert round_resolution(224, 1.15**3, "floor") == 340


def test_compound_multipliers() -> None:
    assert compound_multipliers(0, 1.2, 1.1, 1.15) == (1.0, 1.0, 1.0)
    assert compound_multipliers(1, 1.2, 1.1, 1.15) == (1.2, 1.1, 1.15)
    d, w, r = compound_multipliers(2, 1.2, 1.1, 1.15)
    assert (d, w, r) == pytest.approx((1.44, 1.21, 1.3225))


def test_drop_path_and_conv_size() -> None:
    assert drop_path_rate(0.2, 0, 16) == 0.0
    assert drop_path_rate(0.2, 8, 16) == pytest.approx(0.1)
    assert conv_out_size(224, 3, 2) == 112
    assert conv_out_size(225, 3, 2) == 113
    assert conv_out_size(7, 1, 2) == 4
    assert conv_out_size(7, 5, 1) == 7


# ---------------------------------------------------------------------------- invariants

divisors = st.sampled_from((1, 2, 4, 8, 16))
widths = st.floats(0.05, 4.0, allow_nan=False)
guards = st.one_of(st.sampled_from((0.0, 0.9, 1.0)), st.floats(0.0, 1.0))
halves = st.integers(0, 2 * 10**6).map(lambda n: n / 2)
# Arbitrary values, exact halves, and the floats next to a half on either side.
values = st.one_of(st.floats(0, 1e6, allow_nan=False), halves,
                   halves.flatmap(lambda h: st.sampled_from((math.nextafter(h, 0), math.nextafter(h, math.inf)))))


@st.composite
def channel_rules(draw) -> dict:
    divisor = draw(divisors)
    return dict(divisor=divisor, guard=draw(guards),
                min_ch=draw(st.sampled_from((None, divisor, 2 * divisor))))


@given(st.integers(1, 2048), widths, channel_rules())
def test_round_channels_is_divisible_and_guarded(channels: int, width: float, rules: dict) -> None:
    out = round_channels(channels, width, **rules)
    ideal = channels * width
    floor_ch = rules["divisor"] if rules["min_ch"] is None else rules["min_ch"]
    assert out % rules["divisor"] == 0
    assert out >= floor_ch
    assert out >= rules["guard"] * ideal
    assert out <= max(floor_ch, ideal + rules["divisor"])  # never more than one divisor too wide


@given(st.integers(1, 2048), widths, widths, channel_rules())
def test_round_channels_is_monotone_in_width(channels: int, w1: float, w2: float, rules: dict) -> None:
    w1, w2 = sorted((w1, w2))
    assert round_channels(channels, w1, **rules) <= round_channels(channels, w2, **rules)


@given(st.integers(1, 256), divisors, guards)
def test_round_channels_keeps_multiples_at_width_one(units: int, divisor: int, guard: float) -> None:
    assert round_channels(units * divisor, 1.0, divisor, guard=guard) == units * divisor


@given(values, st.sampled_from(MODES))
def test_round_number_agrees_with_the_oracle(value: float, mode: str) -> None:
    assert round_number(value, mode) == oracle.round_mode(value, mode)


@given(st.integers(1, 2048), widths, channel_rules())
def test_round_channels_agrees_with_the_oracle(channels: int, width: float, rules: dict) -> None:
    assert round_channels(channels, width, **rules) == oracle.round_channels(channels, width, **rules)


@given(st.integers(1, 10), widths, st.sampled_from(MODES))
def test_round_repeats_agrees_with_the_oracle(repeats: int, depth: float, mode: str) -> None:
    assert round_repeats(repeats, depth, mode) == oracle.round_repeats(repeats, depth, mode)


# ---------------------------------------------------------------------------- the oracle itself
# Checked against the standard library's own implementations of the modes: math.floor
# and math.ceil are exact on floats, and Decimal(float) holds the float's exact value.

DECIMAL_MODES = {"ceil": ROUND_CEILING, "floor": ROUND_FLOOR, "half_up": ROUND_HALF_UP, "half_even": ROUND_HALF_EVEN}


@pytest.mark.parametrize(("value", "mode", "expected"), oracle.KNOWN_CASES)
def test_oracle_known_cases(value: float, mode: str, expected: int) -> None:
    assert oracle.round_mode(value, mode) == expected


@given(values, st.sampled_from(MODES))
def test_oracle_agrees_with_the_standard_library(value: float, mode: str) -> None:
    out = oracle.round_mode(value, mode)
    assert out == int(Decimal(value).quantize(Decimal(1), rounding=DECIMAL_MODES[mode]))
    if mode == "half_even":
        assert out == round(value)  # Python's round() is exact half-to-even on floats
    elif mode in ("ceil", "floor"):
        assert out == (math.ceil(value) if mode == "ceil" else math.floor(value))
    assert oracle.round_mode(value, "floor") <= out <= oracle.round_mode(value, "ceil")


def test_oracle_refuses_an_unknown_mode() -> None:
    with pytest.raises(ValueError, match="half_down"):
        oracle.round_mode(2.5, "half_down")


@given(st.integers(1, 10), widths, widths, st.sampled_from(MODES))
def test_round_repeats_is_monotone_and_at_least_one(repeats: int, d1: float, d2: float, mode: str) -> None:
    d1, d2 = sorted((d1, d2))
    a, b = round_repeats(repeats, d1, mode), round_repeats(repeats, d2, mode)
    assert 1 <= a <= b


@given(st.integers(1, 1024), widths, widths, st.sampled_from(MODES), st.sampled_from((1, 2, 4, 8, 32)))
def test_round_resolution_is_a_monotone_multiple(res: int, m1: float, m2: float, mode: str, multiple: int) -> None:
    m1, m2 = sorted((m1, m2))
    a, b = round_resolution(res, m1, mode, multiple), round_resolution(res, m2, mode, multiple)
    assert a % multiple == 0 and b % multiple == 0
    assert multiple <= a <= b
    assert abs(a - res * m1) <= multiple or a == multiple


def test_the_guard_compares_in_floating_point_as_torchvision_does():
    """32 x (1/1.2): exactly, 0.9 x 26.67 is above 24; in floats it is 24.0, and torchvision keeps 24."""
    make_divisible = pytest.importorskip("torchvision.models._utils")._make_divisible
    width = 1.2 ** -1
    assert make_divisible(32 * width, 8) == 24
    assert round_channels(32, width, 8) == oracle.round_channels(32, width, 8) == 24


@given(st.lists(st.integers(1, 6), min_size=1, max_size=4), st.floats(0.1, 4.0))
def test_group_repeats_are_timms_and_the_oracles(groups, depth):
    # 'then' groups share their stage's scaled total as timm's _scale_stage_depth does
    from timm.models._efficientnet_builder import _scale_stage_depth

    ours = round_group_repeats(tuple(groups), depth)
    timm_blocks = _scale_stage_depth(list(range(len(groups))), groups, depth, "ceil")
    assert list(ours) == [timm_blocks.count(i) for i in range(len(groups))]
    assert sum(ours) >= round_repeats(sum(groups), depth)  # more when the groups outnumber it (depth < 1)
    assert all(n >= 1 for n in ours)
    assert list(ours) == oracle.round_group_repeats(groups, depth) or _float_tie(groups, depth)


def _float_tie(groups, depth):
    """Whether a share lands within float error of a half, where timm's float product (which
    effdsl follows) and the oracle's exact fraction may round apart."""
    total, scaled = sum(groups), round_repeats(sum(groups), depth)
    for count in reversed(groups):
        share = count / total * scaled
        if abs(share - math.floor(share) - 0.5) < 1e-9:
            return True
        rounded = max(1, round_number(share, "half_even"))
        total, scaled = total - count, scaled - rounded
    return False


def test_se_width_of_the_expanded_channels_with_a_divisor():
    # torchvision MobileNetV3: _make_divisible(expanded // 4, 8)
    for mid in (16, 64, 72, 88, 96, 120, 144, 184, 200, 240, 288, 480, 576, 672, 960):
        expected = max(8, int(mid // 4 + 4) // 8 * 8)
        if expected < 0.9 * (mid // 4):
            expected += 8
        assert se_channels(mid, 0.25, 8) == expected
