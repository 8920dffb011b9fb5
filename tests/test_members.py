"""compile_network: members of a parsed network; check, sweep and diff read a spec once."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

import effdsl
from effdsl import api
from effdsl import reports as report
from effdsl.cli import app

from reference import EFFICIENTNET

TINY = """network tiny {
  input 3 x 64
  classes 10
  scaling { alpha 1.2; beta 1.1; gamma 1.15 }
PRESETS
  stem  conv k3 s2 c16
  stage mbconv e6 k3 s2 c24 x2
  stage mbconv e6 k5 s2 c32 x1
  pool avg
  linear
}
"""


def _with_presets(lines: list[str]) -> str:
    return TINY.replace("PRESETS\n", "".join(f"  {line}\n" for line in lines))


def _count_parses(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls = [0]
    parse = api.parse

    def counting(text):
        calls[0] += 1
        return parse(text)

    monkeypatch.setattr(api, "parse", counting)
    return calls


@pytest.mark.parametrize("member, options", [
    (effdsl.Member(), {}),
    (effdsl.Member(phi=2.5), {"phi": 2.5}),
    (effdsl.Member(preset="b3"), {"preset": "b3"}),
    (effdsl.Member(width=1.4, depth=1.8, resolution=380), {"width": 1.4, "depth": 1.8, "resolution": 380}),
    (effdsl.Member(preset="b2", num_classes=10, in_chans=1, drop_rate=0.1, drop_path_rate=0.3),
     {"preset": "b2", "num_classes": 10, "in_chans": 1, "drop_rate": 0.1, "drop_path_rate": 0.3}),
])
def test_compile_network_is_compile_spec_without_the_parse(member, options):
    net = effdsl.parse_spec("efficientnet_b0")
    ours = effdsl.compile_network(net, member)
    theirs = effdsl.compile_spec("efficientnet_b0", **options)
    assert ours.summary == theirs.summary
    assert ours.ir() == theirs.ir()
    assert ours.spec == theirs.spec


def test_compile_network_gives_the_reference_numbers_for_every_preset():
    net = effdsl.parse_spec("efficientnet_b0")
    for name, (_, _, _, _, params, macs) in EFFICIENTNET.items():
        summary = effdsl.compile_network(net, effdsl.Member(preset=name)).summary
        assert (summary.params, summary.macs) == (params, macs)


def test_compile_network_errors_carry_the_source_given_or_the_network_name():
    source = api.load_source(_with_presets(["preset thumb { width 1.0; depth 1.0; resolution 4 }"]))
    net = api.analyze_source(source)
    with pytest.raises(effdsl.EffdslError) as info:
        effdsl.compile_network(net, effdsl.Member(preset="thumb"), source=source)
    assert str(info.value).splitlines()[:4] == [
        "<string>:5:51: error[E301]: resolution 4 (from preset 'thumb') is smaller than the network's total stride 8",
        " --> <string>:5:51",
        "  |",
        "5 |   preset thumb { width 1.0; depth 1.0; resolution 4 }",
    ]
    with pytest.raises(effdsl.EffdslError) as info:
        effdsl.compile_network(net, effdsl.Member(preset="thumb"))
    assert str(info.value).splitlines()[0].startswith("<network tiny>:5:51: error[E301]")


def test_check_sweep_and_diff_parse_the_spec_once(monkeypatch):
    calls = _count_parses(monkeypatch)
    effdsl.api.check_spec("efficientnet_b0")
    assert calls == [1]
    report.sweep("efficientnet_b0", [0, 1, 2, 3])
    assert calls == [2]
    report.diff("efficientnet_b0", [("phi", 1.0), ("preset", "b3")])
    assert calls == [3]


def _many_presets(count: int, bad: dict[int, str]) -> tuple[str, dict[int, int]]:
    """A spec with ``count`` presets, those in ``bad`` replaced; and the line of each preset."""
    lines = [bad.get(i, f"preset p{i} {{ width {1 + i % 7 / 10:.1f}; depth {1 + i % 5 / 10:.1f}; "
                        f"resolution {64 + 8 * (i % 9)} }}") for i in range(count)]
    return _with_presets(lines), {i: 5 + i for i in range(count)}


def test_check_reports_each_bad_preset_at_its_line(tmp_path, monkeypatch):
    bad = {
        17: "preset p17 { width 1.0; depth 1.0; resolution 4 }",           # E301 at the resolution
        118: "preset p118 { width 1.0; depth 1e9; resolution 64 }",         # E302, at the name
        149: "preset p149 { width 1.0; depth 1.0; resolution 6 }",          # E301
    }
    text, line_of = _many_presets(150, bad)
    path = tmp_path / "many.eff"
    path.write_text(text, encoding="utf-8")
    calls = _count_parses(monkeypatch)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["check", "many.eff"])
    assert result.exit_code == 2, result.output
    assert calls == [1]
    headers = re.findall(r"^many\.eff:(\d+):(\d+): error\[(E\d+)\]: (.*)$", result.stderr, re.MULTILINE)
    expected = [(line_of[17], "resolution 4 (from preset 'p17')", "E301"),
                (line_of[118], "preset 'p118' scales the network to", "E302"),
                (line_of[149], "resolution 6 (from preset 'p149')", "E301")]
    assert [(int(line), code) for line, _, code, _ in headers] == [(line, code) for line, _, code in expected]
    for (_, _, _, message), (_, start, _) in zip(headers, expected, strict=True):
        assert message.startswith(start)
    source_lines = text.splitlines()
    columns = [int(col) for _, col, _, _ in headers]
    assert source_lines[line_of[17] - 1][columns[0] - 1:].startswith("4 }")
    assert source_lines[line_of[118] - 1][columns[1] - 1:].startswith("p118 {")


def test_check_reports_the_warnings_of_every_preset_once(tmp_path):
    # p3 and p5 are small enough for the 5x5 kernel of stage 2 to see a 2x2 map (W301, once)
    bad = {3: "preset p3 { width 1.0; depth 1.0; resolution 16 }",
           5: "preset p5 { width 1.2; depth 1.0; resolution 16 }"}
    text, _ = _many_presets(40, bad)
    compiled = effdsl.api.check_spec(text)
    stage2 = text.splitlines().index("  stage mbconv e6 k5 s2 c32 x1") + 1
    assert [(d.code, d.span.line) for d in compiled.warnings] == [("W301", stage2)]
    assert effdsl.compile_spec(text).warnings == []  # the baseline alone is clean
