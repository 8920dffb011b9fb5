"""Golden outputs of the built-in EfficientNet-B0 spec: IR dumps and the B3 summary.

``pytest --update-goldens tests/test_goldens.py`` rewrites tests/golden/; review the diff.
"""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from effdsl.cli import app

from conftest import ROOT, check_golden

GOLDEN = ROOT / "tests" / "golden"


def run(*args: str) -> str:
    result = CliRunner().invoke(app, ["compile", "efficientnet_b0", *args])
    assert result.exit_code == 0, (result.output, result.exception)
    assert result.stderr == ""
    return result.stdout


def without_elapsed(text: str) -> str:
    """The summary minus its timing line, the only part that varies between runs.

    Trailing blanks (rich pads the table title) are dropped too, so that an editor
    trimming them cannot break the golden file.
    """
    lines = text.splitlines()
    kept = [line.rstrip() for line in lines if not line.startswith("elapsed ")]
    assert len(kept) == len(lines) - 1, "the summary should have exactly one 'elapsed' line"
    return "\n".join(kept) + "\n"


@pytest.mark.parametrize("phi", ["0", "3"])
def test_ir_dump(phi: str, update_goldens: bool) -> None:
    text = run("--phi", phi, "--emit", "ir")
    header = text.splitlines()[0]
    assert header.startswith("# efficientnet_b0: ") and f"phi={float(phi)}" in header
    check_golden(GOLDEN / f"efficientnet_b0.phi{phi}.ir", text, update_goldens)


def test_ir_phi0_is_b0() -> None:
    text = run("--phi", "0", "--emit", "ir")
    assert "resolution=224" in text.splitlines()[0]
    assert "%input = input() : 3x224x224" in text
    assert re.search(r"^%stem\.conv = conv\(%input\) \{k=3, s=2, 3->32\}", text, re.M)
    # The last stage of B0 ends with 320 channels at 7x7, and the classifier has 1000 outputs.
    assert "-> 320x7x7" in text
    assert re.search(r"linear\(.*\) \{1280->1000", text)
    assert sum(map(int, re.findall(r" params=(\d+) ", text))) == 5_288_548  # torchvision's B0
    assert len(set(re.findall(r"^%stages\.(\d+\.\d+)\.", text, re.M))) == 16


def blocks_per_stage(ir: str) -> list[int]:
    blocks = set(re.findall(r"^%stages\.(\d+)\.(\d+)\.", ir, re.M))
    return [sum(1 for s, _ in blocks if int(s) == i) for i in range(7)]


def test_ir_phi3_is_compound_scaled() -> None:
    ir = run("--phi", "3", "--emit", "ir")
    header = ir.splitlines()[0]
    # beta^3 = 1.1^3, alpha^3 = 1.2^3, round(224 * 1.15^3) = round(340.68)
    assert "width_mult=1.331 depth_mult=1.728 resolution=341 phi=3.0" in header
    # repeats = ceil(1.728 * [1, 2, 2, 3, 3, 4, 1])
    assert blocks_per_stage(ir) == [2, 4, 4, 6, 6, 7, 2]


def test_b3_summary(update_goldens: bool) -> None:
    text = without_elapsed(run("--preset", "b3"))
    assert "efficientnet_b0 (preset b3)" in text
    assert re.search(r"^│ stage1 +│ mbconv +│ 3 │ 1 │ 1 │ 40 -> 24 ", text, re.M)
    assert re.search(r"^params +12,233,232$", text, re.M)
    assert re.search(r"^resolution +300$", text, re.M)
    check_golden(GOLDEN / "efficientnet_b0.b3.summary.txt", text, update_goldens)


def test_b3_json(update_goldens: bool) -> None:
    text = run("--preset", "b3", "--emit", "json")
    data = json.loads(text)
    assert data["preset"] == "b3" and data["phi"] is None
    assert data["params"] == 12_233_232
    assert data["resolution"] == 300
    assert data["stem"]["out_ch"] == 40
    assert [s["out_ch"] for s in data["stages"]] == [24, 32, 48, 96, 136, 232, 384]
    assert "elapsed" not in text
    check_golden(GOLDEN / "efficientnet_b0.b3.summary.json", text, update_goldens)
