"""effdsl sweep (a family over phi, against the ideal) and effdsl diff (what transfers)."""

from __future__ import annotations

import csv
import io
import json
import math
import re
import sys
import xml.etree.ElementTree as ET
from fractions import Fraction
from html.parser import HTMLParser
from pathlib import Path

import pytest
from typer.testing import CliRunner

from effdsl import reports as report
from effdsl.api import compile_spec
from effdsl.cli import app
from effdsl.diagnostics import EffdslError

B0 = "efficientnet_b0"
FACTOR = 1.2 * 1.1 ** 2 * 1.15 ** 2  # alpha * beta^2 * gamma^2 of efficientnet_b0
PRESETS = [f"b{i}" for i in range(9)]
DOCS = Path(__file__).resolve().parent.parent / "docs"
runner = CliRunner()
TINY = """network tiny {
  input 3 x 32
  classes 10
  scaling { alpha 1.2; beta 1.1; gamma 1.15; resolution half_up multiple 8 }
  stem  conv k3 s1 c16
  stage conv         k3 s1 c16 x1 skip
  stage fused_mbconv e4 k3 s2 c32 x2
  stage mbconv       e4 k3 s2 c64 x2 se0.25 act silu
  head  conv k1 c256
  pool avg
  linear
}"""


def cli(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def swept() -> report.Sweep:
    return report.sweep(B0, report.parse_phi_range("0:2:0.5"))


# --- the --phi range --------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("0:7:0.5", [Fraction(i, 2) for i in range(15)]),
    ("0:1:0.1", [Fraction(i, 10) for i in range(11)]),   # 1 lands on the grid: no float drift
    ("0:1:0.3", [Fraction(3 * i, 10) for i in range(4)]),  # 1 is off the grid: stops at 0.9
    ("-1:1", [-1, 0, 1]),
    ("2.5", [Fraction(5, 2)]),
    ("0:1:1/3", [0, Fraction(1, 3), Fraction(2, 3), 1]),
])
def test_phi_range(text, expected):
    assert report.parse_phi_range(text) == expected


@pytest.mark.parametrize("text, why", [
    ("0:7:0", "step must be greater than 0"),
    ("0:7:-1", "step must be greater than 0"),
    ("3:1:1", "START is greater than STOP"),
    ("0:7:0.001", "more than 1,000"),
    ("a:b", "expected numbers"),
    ("0:1:1:1", "expected START:STOP:STEP"),
    ("0:25", "-20..20"),
])
def test_bad_phi_range_is_a_usage_error(text, why):
    with pytest.raises(EffdslError) as info:
        report.parse_phi_range(text)
    assert info.value.diagnostics[0].code == "E406" and why in str(info.value)
    result = cli("sweep", B0, "--phi", text)
    assert result.exit_code == 2 and "error[E406]" in result.output and why in result.output


# --- sweep rows -------------------------------------------------------------------------

def test_sweep_rows_are_the_compiled_members(swept):
    assert [row.phi for row in swept.rows] == [0, 0.5, 1, 1.5, 2]
    for row in swept.rows:
        s = compile_spec(B0, phi=row.phi).summary
        assert (row.params, row.macs, row.resolution, row.blocks) == (s.params, s.macs, s.resolution, s.num_blocks)
        assert (row.depth_mult, row.width_mult) == (s.depth_mult, s.width_mult)
        assert row.preset is None


def test_macs_ratio_is_the_documented_definition(swept):
    base = swept.rows[0].macs
    assert swept.base_macs == base and swept.cost_factor == pytest.approx(FACTOR)
    assert swept.rows[0].macs_ratio == 1.0
    for row in swept.rows:
        assert row.macs_ratio == pytest.approx(row.macs / base / FACTOR ** row.phi, rel=1e-12)
        assert row.ideal_macs == pytest.approx(base * FACTOR ** row.phi, rel=1e-12)
    assert report.RATIO_DEFINITION in report.render_sweep(swept)


def test_preset_rows_sit_at_their_equivalent_phi(swept):
    assert [p.preset for p in swept.presets] == PRESETS
    spec = compile_spec(B0).spec
    for row in swept.presets:
        entry = spec.preset(row.preset)
        s = compile_spec(B0, preset=row.preset).summary
        assert (row.params, row.macs, row.resolution) == (s.params, s.macs, entry.resolution)
        nominal = entry.depth * entry.width ** 2 * (entry.resolution / 224) ** 2
        assert row.phi == pytest.approx(math.log(nominal) / math.log(FACTOR))
        assert row.macs_ratio == pytest.approx(s.macs / swept.base_macs / nominal)
    assert swept.presets[0].phi == 0 and 7.5 < swept.presets[-1].phi < 8  # b8


def test_sweep_0_to_7_by_half_has_15_rows(tmp_path):
    result = cli("sweep", B0, "--phi", "0:7:0.5", "-o", str(tmp_path / "r.csv"))
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO((tmp_path / "r.csv").read_text())))
    assert len(rows) == 15 and [float(r["phi"]) for r in rows] == [i / 2 for i in range(15)]


def test_text_table_without_output(swept):
    result = cli("sweep", B0, "--phi", "0:2:0.5", "--presets")
    assert result.exit_code == 0
    text = result.output
    for column in report.COLUMNS:
        assert column in text
    for row in swept.table(True):
        assert f"{row.params:,}" in text and f"{row.macs:,}" in text
    assert re.search(r"~3\.55 . b4 ", text)
    assert report.PRESET_DEFINITION in text
    assert "b4" not in cli("sweep", B0, "--phi", "0:2:0.5").output


# --- report files -----------------------------------------------------------------------

def _number(cell: str) -> float:
    return float(cell.replace(",", "").lstrip("~"))


def test_markdown_parses_back(tmp_path, swept):
    assert cli("sweep", B0, "--phi", "0:2:0.5", "--presets", "-o", str(tmp_path / "r.md")).exit_code == 0
    text = (tmp_path / "r.md").read_text()
    assert report.RATIO_DEFINITION in text
    lines = [line for line in text.splitlines() if line.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert header == list(report.COLUMNS) and set(lines[1]) <= set("|-:")
    body = [dict(zip(header, (c.strip() for c in line.strip("|").split("|")), strict=True)) for line in lines[2:]]
    assert len(body) == len(swept.table(True))
    for cells, row in zip(body, swept.table(True), strict=True):
        assert cells["preset"] == (row.preset or "")
        assert _number(cells["params"]) == row.params and _number(cells["MACs"]) == row.macs
        assert _number(cells["res"]) == row.resolution and _number(cells["blocks"]) == row.blocks
        assert _number(cells["MACs/ideal"]) == pytest.approx(row.macs_ratio, abs=5e-4)
        assert _number(cells["phi"]) == pytest.approx(row.phi, abs=5e-3)


def test_csv_parses_back(tmp_path, swept):
    assert cli("sweep", B0, "--phi", "0:2:0.5", "--presets", "-o", str(tmp_path / "r.csv")).exit_code == 0
    rows = list(csv.DictReader(io.StringIO((tmp_path / "r.csv").read_text())))
    assert list(rows[0]) == list(report.CSV_FIELDS)
    assert len(rows) == len(swept.table(True))
    for got, row in zip(rows, swept.table(True), strict=True):
        assert (got["preset"] or None) == row.preset
        for key in ("resolution", "blocks", "params", "macs"):
            assert int(got[key]) == getattr(row, key)
        for key in ("phi", "depth_mult", "width_mult", "ideal_macs", "macs_ratio"):
            assert float(got[key]) == getattr(row, key)  # repr round-trips exactly


def test_json_parses_back(tmp_path, swept):
    assert cli("sweep", B0, "--phi", "0:2:0.5", "--presets", "-o", str(tmp_path / "r.json")).exit_code == 0
    data = json.loads((tmp_path / "r.json").read_text())
    assert data == json.loads(json.dumps(swept.to_json(True)))
    assert data["rows"][2]["phi"] == 1.0 and data["rows"][2]["macs"] == compile_spec(B0, phi=1).summary.macs
    assert [r["preset"] for r in data["rows"][5:]] == PRESETS
    assert "alpha * beta^2 * gamma^2" in data["definition"]


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def test_html_is_self_contained_with_table_and_plot(tmp_path, swept):
    pytest.importorskip("matplotlib")
    path = tmp_path / "r.html"
    result = cli("sweep", B0, "--phi", "0:2:0.5", "--presets", "-o", str(path))
    assert result.exit_code == 0 and f"wrote {path}" in result.output
    text = path.read_text()
    root = ET.fromstring(text.split("\n", 1)[1])  # well-formed XML after the doctype line
    assert root.tag == "html"
    parser = _Tags()
    parser.feed(text)
    tags = [t for t, _ in parser.tags]
    assert tags.count("tr") == 1 + len(swept.table(True)) and "svg" in tags
    ids = {attrs.get("id") for _, attrs in parser.tags}
    assert {"params", "macs", "ideal-macs", "preset-b7"} <= ids
    for tag, attrs in parser.tags:  # nothing fetched from elsewhere
        assert tag not in ("link", "script", "img", "iframe")
        for key in ("src", "href", "xlink:href"):
            assert not attrs.get(key, "#").startswith(("http", "//")), (tag, attrs)
    assert f"{swept.rows[-1].macs:,}" in text


def test_svg_plot_is_valid_deterministic_and_marks_presets(tmp_path, swept):
    pytest.importorskip("matplotlib")
    svg = report.plot_sweep(swept, "svg")
    assert svg == report.plot_sweep(swept, "svg")
    root = ET.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    assert root.tag == f"{ns}svg"
    ids = {e.get("id") for e in root.iter()}
    assert {"params", "macs", "ideal-macs"} <= ids
    assert {f"preset-{p}" for p in PRESETS} <= ids
    texts = {"".join(e.itertext()).strip() for e in root.iter(f"{ns}text")}
    assert set(PRESETS) <= texts and "phi" in texts
    # the CLI writes the same bytes
    assert cli("sweep", B0, "--phi", "0:2:0.5", "--plot", str(tmp_path / "p.svg")).exit_code == 0
    assert (tmp_path / "p.svg").read_bytes() == svg
    png = report.plot_sweep(swept, "png")
    assert png.startswith(b"\x89PNG\r\n\x1a\n")


def test_docs_plot_is_current():
    """docs/sweep.svg is what `effdsl sweep efficientnet_b0 --phi 0:7:0.5 --plot docs/sweep.svg` writes."""
    matplotlib = pytest.importorskip("matplotlib")
    committed = (DOCS / "sweep.svg").read_bytes()
    made_with = re.search(rb"matplotlib ([0-9][^<\s]*)", committed)
    if not made_with or made_with.group(1).decode() != matplotlib.__version__:
        pytest.skip("docs/sweep.svg was drawn by another matplotlib version")
    fresh = report.plot_sweep(report.sweep(B0, report.parse_phi_range("0:7:0.5")), "svg")
    assert committed == fresh, "docs/sweep.svg is stale: rerun the command in docs/sweep.md"


def test_flat_family_without_presets_plots():
    """alpha = beta = gamma = 1: no preset has an equivalent phi and every ratio is 1."""
    pytest.importorskip("matplotlib")
    spec = """network flat {
      input 3 x 32
      classes 10
      preset big { width 2.0; depth 2.0; resolution 64 }
      stem conv k3 s1 c16
      stage mbconv e4 k3 s2 c32 x2
      pool avg
      linear
    }"""
    flat = report.sweep(spec, report.parse_phi_range("0:1:0.5"))
    assert [row.macs_ratio for row in flat.rows] == [1.0, 1.0, 1.0]
    assert flat.presets[0].phi is None and flat.presets[0].macs_ratio == pytest.approx(
        flat.presets[0].macs / flat.base_macs / 2 / 4 / 4)
    assert "| - | big |" in report.sweep_markdown(flat, True)
    ET.fromstring(report.plot_sweep(flat, "svg"))


@pytest.mark.parametrize("args, message", [
    (["-o", "r.txt"], "-o cannot write a '.txt' file"),
    (["--plot", "p.jpg"], "--plot cannot write a '.jpg' file"),
])
def test_unknown_file_type_is_a_usage_error(tmp_path, args, message):
    args = [str(tmp_path / a) if "." in a else a for a in args]
    result = cli("sweep", B0, *args)
    assert result.exit_code == 2 and "error[E408]" in result.output and message in result.output
    assert not list(tmp_path.iterdir())


def test_plot_without_matplotlib_is_a_usage_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib raises ImportError
    for args in (["--plot", "p.svg"], ["-o", "r.html"]):
        result = cli("sweep", B0, *[str(tmp_path / a) if "." in a else a for a in args])
        assert result.exit_code == 2 and "error[E408]" in result.output and "matplotlib" in result.output
    assert cli("sweep", B0, "--phi", "0:1", "-o", str(tmp_path / "r.md")).exit_code == 0


# --- diff -------------------------------------------------------------------------------

def _diff_json(*args: str) -> dict:
    result = cli("diff", *args, "--emit", "json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_tensors_are_the_module_state_dict():
    torch = pytest.importorskip("torch")
    compiled = compile_spec("tf_efficientnet_b0", phi=1.5)
    state = compiled.build(device="meta").state_dict()
    assert [(t.name, t.shape) for t in report.tensors(compiled)] == [(k, tuple(v.shape)) for k, v in state.items()]
    assert sum(t.numel for t in report.tensors(compiled) if t.param) == compiled.summary.params
    assert isinstance(state["head.bn.num_batches_tracked"], torch.Tensor)


def test_transferred_tensors_are_what_a_partial_load_loads(tmp_path):
    torch = pytest.importorskip("torch")
    d = report.diff(TINY, [("phi", 0.0), ("phi", 1.0)])
    torch.save(d.a.compiled.build().state_dict(), tmp_path / "a.pt")
    # less than half of B transfers: a partial load that small has to be asked for
    loaded = d.b.compiled.load_weights(d.b.compiled.build(), tmp_path / "a.pt", strict=False, min_fraction=0)
    assert loaded.loaded == len(d.unchanged)
    assert set(loaded.skipped) == {n for n, _, _ in d.changed} | {t.name for t in d.only_b}


def test_diff_b0_b1_adds_blocks_and_keeps_channels():
    d = report.diff(B0, [("preset", "b0"), ("preset", "b1")])
    base = [1, 2, 2, 3, 3, 4, 1]
    ref = [math.ceil(n * 1.1) for n in base]  # the reference: ceil(repeats * depth)
    stages = {s.name: s for s in d.stages}
    changed = {name for name, s in stages.items() if s.changed}
    assert changed == {f"stage{i + 1}" for i, (x, y) in enumerate(zip(base, ref, strict=True)) if x != y}
    for i, (x, y) in enumerate(zip(base, ref, strict=True)):
        s = stages[f"stage{i + 1}"]
        assert (s.a.repeats, s.b.repeats) == (x, y)
        assert s.a.out_ch == s.b.out_ch and "channels" not in s.changed
    assert stages["stem"].changed == [] and stages["head"].changed == []
    assert d.changed == () and d.only_a == ()
    new_blocks = {f"stages.{i}.{j}" for i, (x, y) in enumerate(zip(base, ref, strict=True)) for j in range(x, y)}
    assert {report.block_of(t.name) for t in d.only_b} == new_blocks
    b_tensors = report.tensors(d.b.compiled)
    assert list(d.only_b) == [t for t in b_tensors if report.block_of(t.name) in new_blocks]
    assert len(d.unchanged) == len(report.tensors(d.a.compiled))
    assert d.transfer_params == d.a.compiled.summary.params
    assert sum(t.numel for t in d.only_b if t.param) == d.b.compiled.summary.params - d.a.compiled.summary.params

    data = _diff_json(B0, "--preset", "b0", "--preset", "b1")
    assert data["a"]["preset"] == "b0" and data["b"]["preset"] == "b1"
    assert [s["name"] for s in data["stages"] if "repeats" in s["changed"]] == sorted(changed)
    assert data["tensors"]["changed"] == [] and len(data["tensors"]["only_b"]) == len(d.only_b)
    assert data["totals"]["params"] == {"a": 5288548, "b": 7794184, "ratio": pytest.approx(7794184 / 5288548)}
    assert data["totals"]["resolution"]["a"] == 224 and data["totals"]["resolution"]["b"] == 240


def test_diff_b0_b1_text():
    text = cli("diff", B0, "--preset", "b0", "--preset", "b1").output
    assert "A: efficientnet_b0 (preset b0)" in text and "B: efficientnet_b0 (preset b1)" in text
    assert re.search(r"stage6 .*4 -> 5 .* repeats", text)
    assert "  stages.5.4: 22 tensors, 587,952 params" in text
    assert "360 transfer from A unchanged" in text and "0 change shape" in text
    assert "params      5,288,548 -> 7,794,184  (x1.474)" in text


def test_diff_phi0_phi1_shapes_follow_the_ir():
    d = report.diff(B0, [("phi", 0.0), ("phi", 1.0)])
    graphs = [d.a.compiled.graph, d.b.compiled.graph]
    assert d.changed
    for name, shape_a, shape_b in d.changed:
        module, leaf = name.rsplit(".", 1)
        op_a, op_b = (g.op(module) for g in graphs)
        assert op_a.kind == op_b.kind
        for op, shape in ((op_a, shape_a), (op_b, shape_b)):
            if leaf == "weight" and op.kind in ("conv", "dwconv"):
                assert shape == (op.out_ch, op.in_ch // op.groups, op.kernel, op.kernel)
            elif leaf == "weight" and op.kind == "linear":
                assert shape == (op.out_ch, op.in_ch)
            else:
                assert shape == (op.out_ch,)
        assert shape_a != shape_b
    # every B tensor is accounted for exactly once
    n_b = len(report.tensors(d.b.compiled))
    assert len(d.unchanged) + len(d.changed) + len(d.only_b) == n_b
    # channels that grow show up as changed shapes, in the stages marked 'channels'
    widened = {s.name for s in d.stages if "channels" in s.changed}
    assert widened == {"stage3", "stage4", "stage5", "stage6", "stage7", "head"}
    assert ("classifier.weight", (1000, 1280), (1000, 1408)) in d.changed
    unchanged_convs = {t.name for t in d.unchanged if t.name.startswith("stem.")}
    assert unchanged_convs == {t.name for t in report.tensors(d.a.compiled) if t.name.startswith("stem.")}
    text = report.render_diff(d)
    assert "  stages.2.0.project.conv.weight: 40x144x1x1 -> 48x144x1x1" in text
    ir_ops = {op.name for op in d.b.compiled.graph.ops()}
    assert {n.rsplit(".", 1)[0] for n, _, _ in d.changed} <= ir_ops


def test_diff_members_in_command_line_order():
    forward = _diff_json(B0, "--preset", "b2", "--phi", "1")
    backward = _diff_json(B0, "--phi=1", "--preset", "b2")
    assert (forward["a"]["preset"], forward["b"]["phi"]) == ("b2", 1.0)
    assert (backward["a"]["phi"], backward["b"]["preset"]) == (1.0, "b2")
    assert forward["totals"]["resolution"] == {"a": 260, "b": 258, "ratio": pytest.approx(258 / 260)}
    assert report.choices_in_order(["--phi", "--preset", "--phi"], [1.0, 3.0], ["b1"]) == [
        ("phi", 1.0), ("preset", "b1"), ("phi", 3.0)]


def test_diff_one_member_is_against_the_baseline():
    data = _diff_json(B0, "--phi", "2")
    assert data["a"]["label"] == "efficientnet_b0 (baseline)" and data["b"]["phi"] == 2.0


def test_diff_against_another_spec():
    data = _diff_json(B0, "--phi", "1", "--against", "tf_efficientnet_b0")
    assert data["a"]["label"] == "efficientnet_b0 (phi 1)"
    assert data["b"]["label"] == "tf_efficientnet_b0 (phi 1)"
    assert data["tensors"]["changed"] == [] and data["tensors"]["only_b"] == []
    assert data["transfer"]["params"] == data["transfer"]["params_b"]
    small = """network small {
      input 3 x 32
      classes 10
      stem conv k3 s1 c16
      stage mbconv e4 k5 s2 c32 x3
      pool avg
      linear
    }"""
    other = """network other {
      input 3 x 32
      classes 10
      stem conv k3 s1 c16
      stage mbconv e4 k3 s2 c32 x2
      stage mbconv e4 k3 s2 c64 x1
      pool avg
      linear
    }"""
    d = report.diff(small, [], against=other)
    by_name = {s.name: s for s in d.stages}
    assert by_name["stage1"].changed == ["repeats", "kernel"] and by_name["stage2"].changed == ["only in B"]
    assert ("stages.0.0.dw.conv.weight", (64, 1, 5, 5), (64, 1, 3, 3)) in d.changed
    assert {report.block_of(t.name) for t in d.only_a} == {"stages.0.2"}
    assert "kernel 5 -> 3" in report.render_diff(d)


@pytest.mark.parametrize("args, code, message", [
    ([], "E407", "diff compares two members, got nothing"),
    (["--phi", "1", "--phi", "2", "--preset", "b3"], "E407", "got --phi 1, --phi 2, --preset b3"),
    (["--preset", "b1", "--preset", "b9"], "E104", "unknown preset 'b9'"),
    (["--phi", "1", "--against", "no_such.eff"], "E110", "no such spec file"),
    (["--phi", "25", "--phi", "1"], "E402", "--phi must be between -20 and 20"),
])
def test_diff_usage_errors(args, code, message):
    result = cli("diff", B0, *args)
    assert result.exit_code == 2, result.output
    assert f"error[{code}]" in result.output and message in result.output
