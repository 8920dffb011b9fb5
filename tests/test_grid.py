"""The compound-scaling grid (exact enumeration under the constraint) and the in-place
rewrite of a spec's coefficients."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

import effdsl
from effdsl.api import load_source
from effdsl.language.edit import with_coefficients
from effdsl.scaling.grid import Coefficients, axis, decimal_text, exact, grid_points

STEPS = [Fraction(1, 20), Fraction(1, 10), Fraction(1, 40), Fraction(1, 5), Fraction(3, 50)]


def _naive(target: Fraction, tolerance: Fraction, step: Fraction, top: Fraction) -> list[Coefficients]:
    """Every point of the cube, filtered: no pruning, so nothing can be missed."""
    values = [1 + i * step for i in range(int((top - 1) / step) + 1)]
    return [Coefficients(a, b, g) for a in values for b in values for g in values
            if abs(a * b * b * g * g - target) <= tolerance * target]


@given(target=st.fractions(Fraction(1), Fraction(4), max_denominator=100),
       tolerance=st.fractions(Fraction(0), Fraction(1, 5), max_denominator=200),
       step=st.sampled_from(STEPS),
       top=st.sampled_from([Fraction(6, 5), Fraction(3, 2), Fraction(2)]))
def test_the_grid_is_every_point_within_the_tolerance(target, tolerance, step, top):
    found = list(grid_points(target, tolerance, step, top))
    assert found == _naive(target, tolerance, step, top)  # none missed, none extra, same order
    for point in found:
        assert min(point.alpha, point.beta, point.gamma) >= 1
        assert abs(point.product - target) <= tolerance * target


def test_the_papers_coefficients_are_on_the_grid():
    found = list(grid_points(Fraction(2), exact("0.05"), exact("0.05"), Fraction(2)))
    paper = Coefficients(exact("1.2"), exact("1.1"), exact("1.15"))
    assert paper in found
    assert paper.product == exact("1.92027")  # 1.2 x 1.1^2 x 1.15^2, exactly: the paper's "about 1.92"
    assert Coefficients(Fraction(1), Fraction(1), Fraction(1)) not in found


def test_axis_and_decimals():
    assert axis(exact("0.05"), Fraction(2)) == [1 + Fraction(i, 20) for i in range(21)]
    assert axis(exact("0.3"), Fraction(2)) == [1, exact("1.3"), exact("1.6"), exact("1.9")]
    assert [decimal_text(v) for v in (Fraction(1), exact("1.15"), exact("1.125"), Fraction(2))] == \
        ["1", "1.15", "1.125", "2"]
    with pytest.raises(ValueError):
        axis(Fraction(0), Fraction(2))


def test_rewriting_the_coefficients_keeps_everything_else():
    source = load_source("efficientnet_b0").text
    network = effdsl.parse_spec("efficientnet_b0")
    out = with_coefficients(source, network, {"alpha": "1.3", "beta": "1.05", "gamma": "1.2"})
    before, after = source.splitlines(), out.splitlines()
    changed = [(a, b) for a, b in zip(before, after, strict=True) if a != b]
    assert changed == [("    alpha 1.2; beta 1.1; gamma 1.15     # depth, width, resolution per unit of phi",
                        "    alpha 1.3; beta 1.05; gamma 1.2     # depth, width, resolution per unit of phi")]
    member = effdsl.compile_spec(out, phi=1).summary
    assert (member.depth_mult, member.width_mult) == (1.3, 1.05)
    assert member.resolution == round(224 * 1.2)


@pytest.mark.parametrize("text", [
    "network t { input 3 x 32; classes 10; stem conv k3 s2 c16; stage mbconv e4 k3 c16 x2; pool avg; linear }",
    "network t {\n  input 3 x 32\n  classes 10  # ten\n  stem conv k3 s2 c16\n  stage mbconv e4 k3 c16 x2\n"
    "  pool avg\n  linear\n}\n",
    "network t {\n  input 3 x 32\n  classes 10\n  scaling { channels divisor 8; beta 1.4 }\n"
    "  stem conv k3 s2 c16\n  stage mbconv e4 k3 c16 x2\n  pool avg\n  linear\n}\n",
])
def test_coefficients_the_spec_does_not_write_are_added(text):
    out = with_coefficients(text, effdsl.parse_spec(text), {"alpha": "1.2", "beta": "1.1", "gamma": "1.15"})
    scaling = effdsl.parse_spec(out).scaling
    assert (scaling.alpha, scaling.beta, scaling.gamma) == (1.2, 1.1, 1.15)
    assert "# ten" in out or "# ten" not in text
    assert effdsl.compile_spec(out, phi=2).summary.width_mult == pytest.approx(1.1**2)
