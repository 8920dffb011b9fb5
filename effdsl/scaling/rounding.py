"""The arithmetic of compound scaling: small pure functions, each citing its source.

Nothing here uses Python's bare ``round()``, which rounds half to even.
"""

from __future__ import annotations

import math


def round_channels(channels: float, width_mult: float, divisor: int = 8,
                   min_ch: int | None = None, guard: float = 0.9) -> int:
    """Scale a channel count by ``width_mult`` and round it to a multiple of ``divisor``.

    The official rule (TF ``round_filters``, torchvision/timm ``_make_divisible``):
    ``c' = max(min_ch, int(c*w + divisor/2) // divisor * divisor)``, then if
    ``c' < guard * c*w`` add one ``divisor``. ``guard = 0.9`` keeps every width within
    10% of its ideal value (without it, B3's first stage would have 16 channels, not 24).
    ``min_ch`` defaults to ``divisor``.
    """
    ideal = channels * width_mult
    floor_ch = divisor if min_ch is None else min_ch
    rounded = max(floor_ch, int(ideal + divisor / 2) // divisor * divisor)
    if rounded < guard * ideal:
        rounded += divisor
    return rounded


def round_number(value: float, mode: str) -> int:
    """Round ``value`` to an integer: ``ceil``, ``floor``, ``half_up`` or ``half_even``.

    ``half_up`` rounds .5 away from zero for positive values (2.5 -> 3); ``half_even``
    rounds .5 to the even neighbour (2.5 -> 2, 3.5 -> 4), written out explicitly.
    """
    if mode == "ceil":
        return math.ceil(value)
    if mode == "floor":
        return math.floor(value)
    low = math.floor(value)
    frac = value - low
    if mode == "half_up":
        return low + 1 if frac >= 0.5 else low
    if mode == "half_even":
        if frac > 0.5:
            return low + 1
        if frac < 0.5:
            return low
        return low if low % 2 == 0 else low + 1
    raise ValueError(f"unknown rounding mode {mode!r}")


def round_repeats(repeats: int, depth_mult: float, mode: str = "ceil") -> int:
    """Scale a stage's block count by ``depth_mult``; at least one block remains.

    Official rule (TF ``round_repeats``, torchvision ``_MBConvConfig.adjust_depth``):
    ``ceil(repeats * d)``, computed with the same float product as the references so
    that the presets agree with them exactly (``3 * 1.1 = 3.3000000000000003 -> 4``).
    """
    return max(1, round_number(repeats * depth_mult, mode))


def round_resolution(resolution: int, resolution_mult: float, mode: str = "half_up",
                     multiple: int = 1) -> int:
    """Scale the input resolution and round it to a multiple of ``multiple`` pixels.

    The paper scales resolution by ``gamma ** phi`` but publishes hand-picked values for
    B1..B7, so the rule is the spec's: ``mode`` applied to ``r * m / multiple``.
    """
    return max(multiple, round_number(resolution * resolution_mult / multiple, mode) * multiple)


def compound_multipliers(phi: float, alpha: float, beta: float, gamma: float) -> tuple[float, float, float]:
    """Depth, width and resolution multipliers for compound coefficient ``phi``.

    Tan & Le 2019, eq. 3: ``d = alpha ** phi``, ``w = beta ** phi``, ``r = gamma ** phi``.
    """
    return alpha**phi, beta**phi, gamma**phi


def se_channels(in_ch: int, se_ratio: float, divisor: int | None = None) -> int:
    """Squeeze-excite width: ``max(1, int(in_ch * se_ratio))``, where ``in_ch`` is what the
    ratio is of (the block INPUT in EfficientNet, the expanded width in MobileNetV3).

    TF ``MBConvBlock`` (``num_reduced_filters``); torchvision's ``in // 4`` agrees for 0.25.
    With a ``divisor``, the channel rule at width 1 rounds it (torchvision MobileNetV3:
    ``_make_divisible(expanded_channels // 4, 8)``).
    """
    squeezed = int(in_ch * se_ratio)
    if divisor is None:
        return max(1, squeezed)
    return round_channels(squeezed, 1.0, divisor)


def expanded_channels(in_ch: int, expand: float, divisor: int) -> int:
    """Width inside an inverted-residual block.

    torchvision ``_MBConvConfig.adjust_channels(in_ch, expand)``: the channel rule at
    width 1.0, so equal to ``in_ch * expand`` whenever that is a multiple of the divisor.
    """
    if expand == 1:
        return in_ch
    return round_channels(in_ch, expand, divisor)


def round_group_repeats(repeats: tuple[int, ...], depth_mult: float, mode: str = "ceil") -> tuple[int, ...]:
    """Scale the block counts of a stage's groups (a stage line and its ``then`` groups) together.

    timm ``_scale_stage_depth``: the stage's total scales as one (``round_repeats``), and is
    shared out in proportion from the last group to the first, each group keeping at least
    one block, each share rounded half to even (Python's ``round``, written out here), so
    the first group is the least likely to grow. One group: ``round_repeats``.
    """
    total = sum(repeats)
    remaining = round_repeats(total, depth_mult, mode)
    scaled: list[int] = []
    for count in reversed(repeats):
        share = max(1, round_number(count / total * remaining, "half_even"))
        scaled.append(share)
        total -= count
        remaining -= share
    return tuple(reversed(scaled))


def drop_path_rate(rate: float, block_index: int, num_blocks: int) -> float:
    """Stochastic-depth rate of global block ``block_index`` (0-based) of ``num_blocks``.

    torchvision/timm schedule: ``rate * i / N`` (the first block is never dropped).
    """
    return rate * block_index / num_blocks


def head_from_last(last_ch: int, ratio: float) -> int:
    """torchvision's head width: ``ratio`` x the last stage's channels (``4 * 320 = 1280``).

    TF instead scales 1280 by the width with the channel rule; the two agree for the
    official widths only (at width 1.21: 1552 vs 1536).
    """
    return int(last_ch * ratio)


def conv_out_size(size: int, kernel: int, stride: int) -> int:
    """Output size of a conv padded symmetrically by ``(kernel - 1) // 2`` (PyTorch style).

    For the odd kernels effdsl allows this is ``ceil(size / stride)``, the same as
    TensorFlow's 'same' padding, which only places the padding differently.
    """
    pad = (kernel - 1) // 2
    return (size + 2 * pad - kernel) // stride + 1
