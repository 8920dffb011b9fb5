"""The rounding rules of EfficientNet scaling, restated for the tests, in exact arithmetic.

Written from the published rules, not from :mod:`effdsl.scaling.rounding`:

- the rounding modes by their definitions: ``ceil``, ``floor``, ``half_up`` (a half goes
  up: ``floor(x + 1/2)``) and ``half_even`` (a half goes to the even neighbour);
- depth (TF ``round_repeats``, torchvision ``_MBConvConfig.adjust_depth``):
  ``ceil(repeats * depth)``, at least one block;
- channels (TF ``round_filters``, torchvision/timm ``_make_divisible``):
  ``c' = max(min, int(c*w + divisor/2) // divisor * divisor)``, then one more divisor
  when ``c' < guard * c*w``;
- resolution: the spec's mode applied to ``r * m / multiple``, times ``multiple``, at
  least one ``multiple``.

Every input is first turned into a :class:`~fractions.Fraction`, which holds a float's
exact value, and nothing after that is a float. So the answer is the rounding of the
value the caller computed, never of a float sum: ``0.49999999999999994 + 0.5`` is ``1.0``
in floats, so ``floor(x + 0.5)`` rounds that value up, while it is below one half.
Products such as ``repeats * depth`` are left to the caller, who computes them with the
same float product as the reference implementations (``3 * 1.1 = 3.3000000000000003``).
"""

from __future__ import annotations

from fractions import Fraction

MODES = ("ceil", "floor", "half_up", "half_even")
HALF = Fraction(1, 2)

Number = int | float | Fraction


def round_mode(x: Number, mode: str) -> int:
    """``x`` rounded to an integer by ``mode`` (one of :data:`MODES`), exactly."""
    q = Fraction(x)
    low = q.numerator // q.denominator  # floor, also for negative values
    rest = q - low  # in [0, 1)
    if mode == "floor":
        return low
    if mode == "ceil":
        return low if rest == 0 else low + 1
    if mode == "half_up":
        return low + 1 if rest >= HALF else low
    if mode == "half_even":
        if rest == HALF:
            return low if low % 2 == 0 else low + 1
        return low + 1 if rest > HALF else low
    raise ValueError(f"unknown rounding mode {mode!r}")


def round_repeats(repeats: int, depth_mult: float, mode: str = "ceil") -> int:
    """A stage's scaled block count: ``mode(repeats * depth_mult)``, at least one."""
    return max(1, round_mode(repeats * depth_mult, mode))


def round_group_repeats(repeats: list[int], depth_mult: float, mode: str = "ceil") -> list[int]:
    """The scaled block counts of a stage's groups (the stage line, then its 'then' groups): the
    total scales as one stage; the last group takes its proportional share first (half to even,
    at least one), and so on back to the first, which takes what is left (timm's
    ``_scale_stage_depth``)."""
    left_total, left_scaled = sum(repeats), round_repeats(sum(repeats), depth_mult, mode)
    shares = [0] * len(repeats)
    for i in range(len(repeats) - 1, -1, -1):
        share = max(1, round_mode(Fraction(repeats[i] * left_scaled, left_total), "half_even"))
        shares[i] = share
        left_total -= repeats[i]
        left_scaled -= share
    return shares


def round_resolution(resolution: int, resolution_mult: float, mode: str = "half_up", multiple: int = 1) -> int:
    """The scaled input side: ``mode(r * m / multiple) * multiple``, at least ``multiple``."""
    steps = round_mode(Fraction(resolution * resolution_mult) / multiple, mode)
    return max(multiple, steps * multiple)


def round_channels(channels: int, width_mult: float, divisor: int = 8, min_ch: int | None = None,
                   guard: float = 0.9) -> int:
    """The channel rule on the exact value of ``channels * width_mult`` (the float product)."""
    ideal = Fraction(channels * width_mult)
    nearest = round_mode(ideal + Fraction(divisor, 2), "floor") // divisor * divisor
    out = max(divisor if min_ch is None else min_ch, nearest)
    # The guard is compared in floating point, as the references define it (torchvision's
    # and timm's _make_divisible, TF's round_filters: ``new_v < 0.9 * v`` on Python/NumPy
    # floats): at 32 x (1/1.2) the exact product 0.9 x 26.67 lies above 24, the float one
    # is 24.0, and the references keep 24 channels.
    if out < guard * float(ideal):
        out += divisor
    return out


# Values where a float shortcut gives the wrong answer, or where the modes differ:
# (x, mode, the rounding of x's exact value by the definition of the mode).
KNOWN_CASES = [
    (2.5, "half_up", 3),
    (2.5, "half_even", 2),
    (3.5, "half_even", 4),
    (0.5, "half_even", 0),
    (0.5, "half_up", 1),
    (2.6, "half_even", 3),
    (2.4, "half_even", 2),
    (2.4999999999999996, "half_up", 2),   # the float just below 2.5
    (0.49999999999999994, "half_up", 0),  # just below 1/2; floor(x + 0.5) gives 1 in floats
    (0.49999999999999994, "half_even", 0),
    (2.0000000000000004, "ceil", 3),      # the float just above 2
    (2.9999999999999996, "floor", 2),     # the float just below 3
    (3.0, "ceil", 3),
    (3.0, "floor", 3),
]
