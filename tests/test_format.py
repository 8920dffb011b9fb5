"""effdsl fmt: canonical form, comments kept, same spec, idempotent."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from effdsl.api import format_source, parse_spec
from effdsl.cli import app
from effdsl.language.format import comments_of, format_spec

from strategies import networks

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted((ROOT / "specs").glob("*.eff"))


def _semantic(net) -> object:
    """The AST without source positions."""
    def strip(value):
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k not in ("span", "spans")}
        if isinstance(value, (list, tuple)):
            return [strip(v) for v in value]
        return value
    return strip(net.model_dump())


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_builtin_specs_are_formatted_and_round_trip(path):
    text = path.read_text(encoding="utf-8")
    formatted = format_source(str(path))
    assert formatted == text  # the shipped specs are in canonical form
    assert _semantic(parse_spec(formatted)) == _semantic(parse_spec(str(path)))
    assert [c.text for c in comments_of(formatted)] == [c.text for c in comments_of(text)]


def test_layout_is_normalized_and_comments_kept():
    messy = (
        "# a tiny network\n"
        "network tiny {   input 3 x 32 ; classes 10   # ten classes\n"
        "  defaults {act relu;se 0.25}\n"
        "\n\n\n"
        "  # the body\n"
        "  stem conv k3 s2 c16\n"
        "  stage mbconv e6 k3 s2 c24 x2 ; stage   conv k3 s1 c24 x1 noskip\n"
        "  pool avg ; linear\n"
        "}\n"
    )
    expected = (
        "# a tiny network\n"
        "network tiny {\n"
        "  input 3 x 32\n"
        "  classes 10  # ten classes\n"
        "\n"
        "  defaults { act relu; se 0.25 }\n"
        "\n"
        "  # the body\n"
        "  stem  conv k3 s2 c16\n"
        "  stage mbconv e6 k3 s2 c24 x2\n"
        "  stage conv      k3 s1 c24 x1 noskip\n"
        "  pool avg\n"
        "  linear\n"
        "}\n"
    )
    assert format_source(messy) == expected
    assert format_source(expected) == expected


def test_block_definitions_are_formatted_with_their_comments():
    messy = (
        "# shared blocks\n"
        "block inverted {   # an inverted residual\n"
        "  conv to mid ; bn\n"
        "  act\n"
        "  # the spatial part\n"
        "  dwconv kernel k stride s;bn;act relu6\n"
        "  conv kernel 1 to out   # project\n"
        "  bn ; residual\n"
        "}\n"
        "network tiny { input 3 x 32 ; classes 10\n"
        "  stem conv k3 s2 c16\n"
        "  stage inverted e6 k3 s2 c24 x2 noskip\n"
        "  pool avg ; linear\n"
        "}\n"
    )
    expected = (
        "# shared blocks\n"
        "block inverted {  # an inverted residual\n"
        "  conv to mid\n"
        "  bn\n"
        "  act\n"
        "  # the spatial part\n"
        "  dwconv kernel k stride s\n"
        "  bn\n"
        "  act relu6\n"
        "  conv kernel 1 to out  # project\n"
        "  bn\n"
        "  residual\n"
        "}\n"
        "\n"
        "network tiny {\n"
        "  input 3 x 32\n"
        "  classes 10\n"
        "\n"
        "  stem  conv k3 s2 c16\n"
        "  stage inverted e6 k3 s2 c24 x2 noskip\n"
        "  pool avg\n"
        "  linear\n"
        "}\n"
    )
    assert format_source(messy) == expected
    assert format_source(expected) == expected
    assert _semantic(parse_spec(expected)) == _semantic(parse_spec(messy))


@st.composite
def commented_specs(draw):
    """A generated spec with comments on lines of their own and at line ends."""
    lines = format_spec(draw(networks())).splitlines()
    out = []
    for i, line in enumerate(lines):
        if i and draw(st.integers(0, 5)) == 0:
            out.append(f"  # note {i}")
        if line.strip() and not line.strip().endswith("{") and draw(st.integers(0, 3)) == 0:
            line += f"   # about line {i}"
        out.append(line)
    return "\n".join(out) + "\n"


@settings(max_examples=60, deadline=None)
@given(text=commented_specs())
def test_fmt_keeps_the_spec_and_its_comments_and_is_idempotent(text):
    once = format_source(text)
    assert format_source(once) == once
    assert _semantic(parse_spec(once)) == _semantic(parse_spec(text))
    assert sorted(c.text for c in comments_of(once)) == sorted(c.text for c in comments_of(text))


def test_fmt_cli_check_and_write(tmp_path):
    spec = tmp_path / "tiny.eff"
    spec.write_text("network tiny { input 3 x 32; classes 10; stem conv k3 s2 c16\n"
                    "stage mbconv e6 k3 s2 c24 x2; pool avg; linear }\n", encoding="utf-8")
    runner = CliRunner()
    assert runner.invoke(app, ["fmt", "--check", str(spec)]).exit_code == 1
    assert runner.invoke(app, ["fmt", "--write", str(spec)]).exit_code == 0
    assert runner.invoke(app, ["fmt", "--check", str(spec)]).exit_code == 0
    printed = runner.invoke(app, ["fmt", str(spec)])
    assert printed.exit_code == 0 and printed.stdout == spec.read_text(encoding="utf-8")
    broken = tmp_path / "broken.eff"
    broken.write_text("network x {\n", encoding="utf-8")
    result = runner.invoke(app, ["fmt", str(broken)])
    assert result.exit_code == 2 and "error[E003]" in result.stderr


def test_stage_lines_without_trailing_options_have_no_trailing_space():
    # only some stage lines carry 'se ...': the others end at their padded repeats column
    text = ("network t {\n  input 3 x 32\n  classes 10\n  stem conv k3 s2 c16\n"
            "  stage mbconv e1 k3 s1 c16 x1\n  stage mbconv e6 k3 s2 c24 x12 se 0.25 of mid gate hardsigmoid\n"
            "  stage mbconv e6 k3 s2 c32 x3 then e4 x2\n  pool avg\n  linear c64 act relu\n  linear\n}\n")
    formatted = format_spec(parse_spec(text))
    assert all(line == line.rstrip() for line in formatted.splitlines())
    assert "  stage mbconv e1 k3 s1 c16 x1\n" in formatted
    assert "se 0.25 of mid gate hardsigmoid" in formatted and "then e4 x2" in formatted
    assert format_spec(parse_spec(formatted)) == formatted
