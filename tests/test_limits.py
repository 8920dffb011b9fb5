"""Limits before work: a network over the parameter budget is refused before allocation."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

import effdsl
from effdsl.backends.torch import builder as torch_backend
from effdsl.cli import app


def test_budget_is_checked_before_any_weight_is_allocated(monkeypatch):
    compiled = effdsl.compile_spec("efficientnet_b0", phi=12)  # the analysis alone is fine
    assert compiled.summary.params > 400_000_000

    def must_not_build(*args, **kwargs):
        raise AssertionError("build_module was called for a network over budget")

    monkeypatch.setattr(torch_backend, "build_module", must_not_build)
    with pytest.raises(effdsl.EffdslError) as info:
        compiled.build(max_params=100_000_000)
    (diag,) = info.value.diagnostics
    assert diag.code == "E303"
    assert f"{compiled.summary.params:,} parameters" in diag.message
    assert "max_params=N" in diag.help and "--max-params" not in diag.help  # Python speaks of the parameter


def test_budget_can_be_raised_and_meta_builds_are_free():
    small = effdsl.compile_spec("efficientnet_b0", phi=-1)
    with pytest.raises(effdsl.EffdslError):
        small.build(max_params=1000)
    assert sum(p.numel() for p in small.build(max_params=small.summary.params).parameters()) == \
        small.summary.params
    big = effdsl.compile_spec("efficientnet_b0", phi=12)
    assert sum(p.numel() for p in big.build(device="meta", max_params=1).parameters()) == big.summary.params


def test_cli_max_params(tmp_path):
    result = CliRunner().invoke(app, ["compile", "efficientnet_b0", "--emit", "weights", "-o",
                                      str(tmp_path / "w.safetensors"), "--max-params", "1000000"])
    assert result.exit_code == 2 and "error[E303]" in result.stderr
    assert "= help: raise it with --max-params N;" in result.stderr  # the command line, of its flag
    assert not (tmp_path / "w.safetensors").exists()
