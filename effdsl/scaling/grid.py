"""The compound-scaling grid: every (alpha, beta, gamma) on a grid with alpha x beta^2 x
gamma^2 close to a target.

Tan and Le (2019), section 3.3: "we first fix phi = 1 ... and do a small grid search of
alpha, beta, gamma based on Equation 2 and 3", under alpha x beta^2 x gamma^2 ~= 2 with
alpha, beta, gamma >= 1; they found alpha = 1.2, beta = 1.1, gamma = 1.15 (product 1.92).

The grid is exact: coefficients are :class:`~fractions.Fraction` values 1, 1 + step, ...,
up to ``max_coeff``, so 1.2 x 1.1^2 x 1.15^2 is computed without rounding, and a point
is kept when ``|alpha beta^2 gamma^2 - target| <= tolerance x target``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction

MAX_GRID_POINTS = 1_000_000  # coefficient triples looked at; a finer grid is refused


@dataclass(frozen=True, slots=True, order=True)
class Coefficients:
    """One grid point: depth, width and resolution coefficients (exact)."""

    alpha: Fraction
    beta: Fraction
    gamma: Fraction

    @property
    def product(self) -> Fraction:
        """alpha x beta^2 x gamma^2: how much phi = 1 multiplies the MACs, ideally."""
        return self.alpha * self.beta**2 * self.gamma**2

    def as_floats(self) -> tuple[float, float, float]:
        return float(self.alpha), float(self.beta), float(self.gamma)


def exact(value: float | str | Fraction) -> Fraction:
    """A grid setting as an exact fraction: 0.05 is 1/20, not the nearest binary float."""
    if isinstance(value, Fraction):
        return value
    return Fraction(str(value))


def axis(step: Fraction, max_coeff: Fraction) -> list[Fraction]:
    """1, 1 + step, 1 + 2 step, ... up to ``max_coeff`` (included when on the grid)."""
    if step <= 0:
        raise ValueError("the grid step must be greater than 0")
    if max_coeff < 1:
        raise ValueError("the largest coefficient must be at least 1")
    count = int((max_coeff - 1) / step) + 1
    return [1 + i * step for i in range(count)]


def grid_size(step: Fraction, max_coeff: Fraction) -> int:
    """How many coefficient triples the grid has (before the constraint)."""
    return len(axis(step, max_coeff)) ** 3


def grid_points(target: Fraction, tolerance: Fraction, step: Fraction, max_coeff: Fraction) -> Iterator[Coefficients]:
    """Every grid point within the tolerance, in order of alpha, then beta, then gamma.

    The loops stop early where the product only grows (each coefficient is >= 1), so the
    work is proportional to the points near the constraint surface, not the whole cube.
    """
    values = axis(step, max_coeff)
    low, high = target * (1 - tolerance), target * (1 + tolerance)
    for alpha in values:
        if alpha > high:
            break
        for beta in values:
            ab = alpha * beta**2
            if ab > high:
                break
            for gamma in values:
                product = ab * gamma**2
                if product > high:
                    break
                if product >= low:
                    yield Coefficients(alpha, beta, gamma)


def decimal_text(value: Fraction) -> str:
    """A grid value as the shortest decimal that reads back exactly (1.15, 2, 1.125)."""
    if value.denominator == 1:
        return str(value.numerator)
    text = f"{float(value):.12g}"
    if exact(text) != value:
        raise ValueError(f"{value} has no short decimal form")
    return text
