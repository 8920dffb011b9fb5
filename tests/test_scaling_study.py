"""The pieces of benchmarks/scaling_study.py (not the full run, which trains for minutes):
the methods, the matching of MACs, the statistics, the verdict and the page and plot."""

from __future__ import annotations

import importlib.util
import math
import statistics
import sys
from types import ModuleType

import pytest

from conftest import ROOT


@pytest.fixture(scope="module")
def study() -> ModuleType:
    sys.path.insert(0, str(ROOT / "benchmarks"))  # the script imports its sibling `common`
    try:
        spec = importlib.util.spec_from_file_location("scaling_study", ROOT / "benchmarks" / "scaling_study.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    return module


def test_each_single_dimension_doubles_the_ideal_cost(study) -> None:
    methods = study.single_axis_methods()
    assert [m.name for m in methods] == ["width only", "depth only", "resolution only"]
    for m in methods:
        assert m.alpha * m.beta**2 * m.gamma**2 == pytest.approx(2)
        assert sum(c != 1 for c in (m.alpha, m.beta, m.gamma)) == 1  # one dimension only


def test_matched_phi_is_the_closest_on_its_grid(study) -> None:
    """Against a walk over every phi of the grid up to 3: none is closer to the target."""
    net = study.parse_spec(study.BASELINE)
    target = study.member_cost(study.with_method(net, study.Method("compound", 1.2, 1.1, 1.15)), 1.0)[0]
    for method in study.single_axis_methods():
        scaled = study.with_method(net, method)
        phi, macs = study.matched_phi(scaled, target)
        assert macs == study.member_cost(scaled, phi)[0]
        walk = [study.member_cost(scaled, i * study.PHI_STEP)[0] for i in range(int(3 / study.PHI_STEP) + 1)]
        assert abs(macs - target) == min(abs(m - target) for m in walk)
        assert abs(macs / target - 1) < 0.15, method  # matched within the steps that rounding leaves


def test_spread_is_mean_and_sample_deviation(study) -> None:
    values = [0.9, 0.92, 0.97]
    assert study.spread(values) == (pytest.approx(statistics.fmean(values)), pytest.approx(statistics.stdev(values)))
    assert study.spread([0.5]) == (0.5, 0.0)


def _row(method: str, level: float, accuracies: list[float], macs: int) -> dict:
    row = {"method": method, "level": level, "phi": level, "coefficients": None if method == "baseline" else
           [1.0, 1.0, 1.0], "macs": macs, "params": 1000, "resolution": 32, "accuracies": accuracies,
           "seconds": [1.0] * len(accuracies)}
    if method != "baseline":
        row["target_macs"] = 2000
    return row


def _fake(compound: list[float], width: list[float]) -> dict:
    rows = [_row("baseline", 0, [0.80, 0.81, 0.82], 1000), _row("compound", 1.0, compound, 2000),
            _row("compound (paper)", 1.0, [0.88, 0.89, 0.90], 2050), _row("width only", 1.0, width, 2100),
            _row("depth only", 1.0, [0.70, 0.71, 0.72], 1950),
            _row("resolution only", 1.0, [0.60, 0.62, 0.64], 1900)]
    grid = {"best": {"alpha": 1.2, "beta": 1.1, "gamma": 1.15, "accuracy": 0.9}, "candidates": 21, "networks": 15,
            "seconds": 60.0}
    return {"rows": rows, "levels": [1.0], "grid": grid, "grid_epochs": 2, "epochs": 3, "seeds": 3,
            "machine": "a test machine", "workers": 2, "seconds": 600.0}


def test_the_verdict_says_which_way_it_went(study) -> None:
    ahead = study.verdict(_fake([0.95, 0.96, 0.97], [0.85, 0.86, 0.87])["rows"], [1.0])
    assert len(ahead) == 1 and "compound leads the best single dimension (width only) by 10.0%" in ahead[0]
    assert "compound (paper) leads the best single dimension (width only) by 3.0%" in ahead[0]
    assert ahead[0].index("compound 96.0%") < ahead[0].index("width only 86.0%") < ahead[0].index("depth only")
    tie = study.verdict(_fake([0.90, 0.92, 0.94], [0.91, 0.92, 0.93])["rows"], [1.0])
    assert "no difference is shown" in tie[0]
    behind = study.verdict(_fake([0.80, 0.81, 0.82], [0.95, 0.96, 0.97])["rows"], [1.0])
    assert "width only beats compound by 15.0%" in behind[0]


def test_the_page_and_the_plot(study) -> None:
    fake = _fake([0.95, 0.96, 0.97], [0.85, 0.86, 0.87])
    page = study.render(fake)
    table = [line for line in page.splitlines() if line.startswith("| ") and not line.startswith("| method")]
    assert [line.split(" | ")[0][2:] for line in table] == ["baseline", "compound", "compound (paper)", "width only",
                                                            "depth only", "resolution only"]
    assert "| width only | 1 | 1 | 1, 1, 1 | 2,100 | +5.0% |" in page  # MACs against compound's
    assert "96.0% | 1.0% | 0.950, 0.960, 0.970 |" in page
    assert "a test machine" in page and "img/scaling-study.svg" in page
    svg = study.plot_svg(fake["rows"])
    for method in ("compound", "compound-paper", "width-only", "depth-only", "resolution-only"):
        assert f'id="{method}"' in svg
    assert not math.isnan(study.spread(fake["rows"][1]["accuracies"])[1])
