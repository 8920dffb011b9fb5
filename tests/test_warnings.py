"""Warnings (W3xx), -W/--warnings-as-errors, and --format json diagnostics."""

from __future__ import annotations

import json

from typer.testing import CliRunner

import effdsl
from effdsl.cli import app

runner = CliRunner()

TINY = """network tiny {
  input 3 x 32
  classes 10
  scaling { alpha 1.2; beta 1.1; gamma 1.15; depth floor; resolution floor multiple 32 }
  stem  conv k3 s2 c16
  stage mbconv e4 k3 s2 c16 x2 se0.05
  stage mbconv e4 k5 s2 c24 x2
  pool avg
  linear
}
"""


def _codes(diags):
    return [(d.code, d.span.line if d.span else None) for d in diags]


def test_small_squeeze_width_and_small_feature_map_warn_with_their_lines():
    compiled = effdsl.compile_spec(TINY)
    # 16 x 0.05 = 0.8 rounds up to 1 channel (line 6); stage 2's second block sees the
    # 4x4 map its first block made (32 / 2 / 2 / 2), smaller than its 5x5 kernel (line 7).
    assert _codes(compiled.warnings) == [("W302", 6), ("W301", 7)]
    small = effdsl.compile_spec("efficientnet_b0", resolution=64).warnings
    # at 64 px: stages 5 and 6 (k5) see 4x4 maps, stage 7 (k3) sees 2x2.
    assert _codes(small) == [("W301", 30), ("W301", 31), ("W301", 32)]
    assert effdsl.compile_spec("efficientnet_b0", preset="b0").warnings == []


def test_phi_that_rounds_to_a_neighbour_warns():
    # floor depth and resolution floored to 32 px: phi 0.3 changes nothing (depth 1.056,
    # width 1.029 rounds back, 32 x 1.15^0.3 = 33.4 floors to 32).
    collapsed = effdsl.compile_spec(TINY, phi=0.3)
    assert [d.code for d in collapsed.warnings if d.code == "W303"] == ["W303"]
    assert "same network as phi 0" in collapsed.warnings[-1].message
    assert not [d for d in effdsl.compile_spec(TINY, phi=3).warnings if d.code == "W303"]


def test_warnings_are_printed_and_dash_w_makes_them_errors():
    shown = runner.invoke(app, ["compile", "efficientnet_b0", "--resolution", "64"])
    assert shown.exit_code == 0
    assert shown.stderr.count("warning[W301]") == 3 and "31 |   stage mbconv e6 k5 s2 c192 x4" in shown.stderr
    strict = runner.invoke(app, ["compile", "efficientnet_b0", "--resolution", "64", "-W"])
    assert strict.exit_code == 2 and strict.stderr.count("error[W301]") == 3
    assert runner.invoke(app, ["check", "efficientnet_b0", "--warnings-as-errors"]).exit_code == 0


def test_check_format_json(tmp_path):
    bad = tmp_path / "bad.eff"
    bad.write_text(TINY.replace("k5", "k4").replace("x2\n  pool", "x0\n  pool"), encoding="utf-8")
    result = runner.invoke(app, ["check", str(bad), "--format", "json"])
    assert result.exit_code == 2
    diags = json.loads(result.stdout)
    assert [(d["code"], d["line"], d["column"], d["end_column"]) for d in diags] == [
        ("E201", 7, 19, 21), ("E205", 7, 29, 31)]
    assert all(d["severity"] == "error" and d["file"] == str(bad) and d["message"] for d in diags)
    clean = runner.invoke(app, ["check", "efficientnet_b0", "--format", "json"])
    assert clean.exit_code == 0 and json.loads(clean.stdout) == []


def test_compile_format_json_keeps_stdout_for_the_output():
    result = runner.invoke(app, ["compile", "efficientnet_b0", "--resolution", "64", "--emit", "json",
                                 "--format", "json"])
    assert result.exit_code == 0
    assert json.loads(result.stdout)["resolution"] == 64
    assert [d["code"] for d in json.loads(result.stderr)] == ["W301", "W301", "W301"]


def test_phi_without_scaling_coefficients_says_so():
    # no scaling block: alpha = beta = gamma = 1, so every phi is the baseline; rounding is not the cause
    warnings = [d for d in effdsl.compile_spec("mobilenet_v2", phi=2).warnings if d.code == "W303"]
    assert len(warnings) == 1
    assert "the spec has no scaling coefficients (alpha = beta = gamma = 1)" in warnings[0].message
    assert "rounding" not in warnings[0].message
