"""The everyday commands: compile's table, JSON and IR outputs, check and list."""

from __future__ import annotations

import json
import math

from typer.testing import CliRunner

from effdsl.cli import app

from reference import EFFICIENTNET

runner = CliRunner()


def _run(*args: str):
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result


def test_compile_phi3_prints_stage_table_and_totals():
    out = _run("compile", "specs/efficientnet_b0.eff", "--phi", "3").stdout
    assert "efficientnet_b0 (phi 3)" in out
    for stage in range(1, 8):
        assert f"stage{stage}" in out
    expected_res = math.floor(224 * 1.15**3 + 0.5)  # half_up, as the spec says
    assert f"resolution  {expected_res}" in out
    assert "width_mult  1.331" in out and "depth_mult  1.728" in out
    assert "elapsed" in out and "FLOPs" in out


def test_compile_json_has_the_documented_keys_and_reference_numbers():
    data = json.loads(_run("compile", "efficientnet_b0", "--preset", "b3", "--emit", "json").stdout)
    for key in ("name", "phi", "preset", "width_mult", "depth_mult", "resolution", "params", "macs", "flops",
                "stages"):
        assert key in data
    width, depth, resolution, _, params, macs = EFFICIENTNET["b3"]
    assert (data["preset"], data["phi"], data["width_mult"], data["depth_mult"]) == ("b3", None, width, depth)
    assert (data["resolution"], data["params"], data["macs"], data["flops"]) == (resolution, params, macs, 2 * macs)
    assert len(data["stages"]) == 7
    for stage in data["stages"]:
        assert {"block", "kernel", "stride", "expand", "in_ch", "out_ch", "repeats"} <= set(stage)
    chained = [data["stem"]["out_ch"]] + [s["out_ch"] for s in data["stages"]]
    assert [s["in_ch"] for s in data["stages"]] == chained[:-1]


def test_compile_ir_dump_has_one_line_per_operator(tmp_path):
    target = tmp_path / "b0.ir"
    _run("compile", "efficientnet_b0", "--emit", "ir", "-o", str(target))
    lines = target.read_text().splitlines()
    assert lines[0].startswith("# efficientnet_b0")
    body = lines[1:]
    assert all(line.startswith("%") for line in body)
    assert sum(" = conv(" in line or " = dwconv(" in line for line in body) == 81  # B0: 65 convs + 16 dw
    assert body[-1].startswith("%classifier = linear(%head.dropout)")


def test_explicit_multipliers_equal_the_preset():
    by_flags = json.loads(_run("compile", "efficientnet_b0", "--width", "1.4", "--depth", "1.8",
                               "--resolution", "380", "--emit", "json").stdout)
    assert (by_flags["params"], by_flags["macs"]) == EFFICIENTNET["b4"][4:]


def test_negative_phi_shrinks_the_network():
    small = json.loads(_run("compile", "efficientnet_b0", "--phi", "-1", "--emit", "json").stdout)
    assert small["params"] < EFFICIENTNET["b0"][4] and small["resolution"] == math.floor(224 / 1.15 + 0.5)


def test_num_classes_flag():
    data = json.loads(_run("compile", "efficientnet_b0", "--num-classes", "10", "--emit", "json").stdout)
    assert data["num_classes"] == 10
    assert data["params"] == EFFICIENTNET["b0"][4] - 1280 * 990 - 990


def test_check_and_list():
    assert "ok" in _run("check", "efficientnet_b0").stdout
    assert "efficientnet_b0" in _run("list").stdout
