"""A bug in a pass is reported as a bug: the pass is named, exit 70, no traceback."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

import effdsl
from effdsl.cli import app
from effdsl.passes import pipeline as passes

_COUNT_COST = passes.count_cost


def _broken_count_cost(graph, shapes):
    """count_cost, but it loses the cost of the first conv (an invariant the verifier checks)."""
    costs = _COUNT_COST(graph, shapes)
    first_conv = next(op for op in graph.ops() if op.kind == "conv")
    del costs[first_conv.name]
    return costs


@pytest.fixture
def broken_pass(monkeypatch):
    monkeypatch.setattr(passes, "count_cost", _broken_count_cost)


def test_broken_invariant_names_the_pass(broken_pass):
    with pytest.raises(effdsl.InternalError) as info:
        effdsl.compile_spec("efficientnet_b0")
    assert info.value.stage == "count_cost"
    assert "bug in effdsl" in str(info.value)


def test_cli_reports_a_bug_with_status_70_and_how_to_report_it(broken_pass):
    result = CliRunner().invoke(app, ["compile", "efficientnet_b0"])
    assert result.exit_code == 70
    assert "internal error in pass 'count_cost'" in result.stderr
    assert "To report it" in result.stderr and "the spec file" in result.stderr
    assert "Traceback" not in result.output
