"""The prelude (``grammars/prelude.eff``): the built-in blocks written in the block language,
and the groups with conditions it needs.

The built-in kinds lower by interpreting the prelude, so the goldens of b0..b7 (unchanged)
check the IR byte for byte; here: the docs quote the prelude as it is, each prelude block
copied into a spec under another name gives the built-in kind's operators (names, parts,
shapes) and, built, a module with the built-in class's parameter names and the same
logits once the weights are copied; a table row that drifts from the prelude is an
internal error; groups round-trip through the formatter and their misuse is diagnosed.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from effdsl.api import Compiled, compile_spec, parse_spec
from effdsl.blocks import table
from effdsl.diagnostics import EffdslError, InternalError
from effdsl.language.format import format_spec
from effdsl.language.prelude import prelude, prelude_block
from effdsl.language.resources import prelude_text

torch.set_num_threads(1)

DOCS = Path(__file__).resolve().parent.parent / "docs" / "language.md"


def _prelude_as(kind: str, name: str) -> str:
    """The prelude's definition of ``kind`` as a spec's block called ``name``."""
    text = prelude_text()
    found = re.search(rf"^block {kind} \{{\n.*?^\}}\n", text, re.S | re.M)
    assert found is not None
    return found.group(0).replace(f"block {kind} ", f"block {name} ", 1)


def _net(block: str, stages: str) -> str:
    return f"""network probe {{
  input 3 x 32
  classes 10
  defaults {{ drop_path 0.2 }}
  stem  conv k3 s2 c16
{stages.replace("BLOCK", block)}
  pool avg
  dropout 0.2
  linear
}}
"""


STAGES = {
    "mbconv": "  stage BLOCK e1 k3 s1 c16 se0.25\n  stage BLOCK e6 k5 s2 c24 x2 se0.25\n  stage BLOCK e4 k3 s1 c24 se0",
    "fused_mbconv": "  stage BLOCK e1 k3 s1 c16 se0\n  stage BLOCK e4 k3 s2 c24 x2 se0.25\n  stage BLOCK e1 k3 s1 c32",
    "conv": "  stage BLOCK k3 s1 c16 skip\n  stage BLOCK k3 s2 c24 x2 skip\n  stage BLOCK k5 s1 c24 noskip",
}


def _signature(compiled: Compiled) -> list[tuple[object, ...]]:
    return [(op.name, op.kind, op.part, op.in_ch, op.out_ch, op.kernel, op.stride, op.groups, op.act)
            for op in compiled.graph.ops()]


def test_the_docs_quote_the_prelude() -> None:
    text = DOCS.read_text(encoding="utf-8")
    section = text.split("### The prelude: the built-in blocks", 1)[1]
    quoted = section.split("```text\n", 1)[1].split("```\n", 1)[0]
    assert quoted == prelude_text()


def test_the_prelude_defines_the_built_in_kinds() -> None:
    from effdsl.blocks import REGISTRY

    assert set(prelude()) == set(REGISTRY)
    assert [op.name for op in prelude_block("mbconv").ops] == [
        "expand.conv", "expand.bn", "expand.act", "dw.conv", "dw.bn", "dw.act", "se", "project.conv", "project.bn",
        "residual"]
    assert prelude_block("fused_mbconv").ops[0].when == ("mid", "!=", "in")


@pytest.mark.parametrize("kind", sorted(STAGES))
def test_a_prelude_block_in_a_spec_is_the_built_in_kind(kind: str) -> None:
    mine = compile_spec(_prelude_as(kind, "copy") + "\n" + _net("copy", STAGES[kind]))
    builtin = compile_spec(_net(kind, STAGES[kind]))
    assert _signature(mine) == _signature(builtin)
    assert (mine.summary.params, mine.summary.macs) == (builtin.summary.params, builtin.summary.macs)
    # built: the generic class of a defined block has the built-in class's parameter names,
    # and the same numbers with the same weights
    torch.manual_seed(0)
    reference = builtin.build().eval()
    copy = mine.build().eval()
    assert [(k, v.shape) for k, v in copy.state_dict().items()] == \
        [(k, v.shape) for k, v in reference.state_dict().items()]
    copy.load_state_dict(reference.state_dict())
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(copy(x), reference(x), atol=1e-6)


def test_a_block_that_drifts_from_the_prelude_is_an_internal_error(monkeypatch: pytest.MonkeyPatch) -> None:
    compiled = compile_spec(_net("mbconv", STAGES["mbconv"]))
    table.read_table(compiled.graph)  # agrees
    without_se = prelude_block("mbconv").model_copy(
        update={"ops": tuple(op for op in prelude_block("mbconv").ops if op.kind != "se")})
    monkeypatch.setattr(table, "prelude_block", lambda name: without_se)
    with pytest.raises(InternalError, match="differ from block 'mbconv'"):
        table.read_table(compiled.graph)


GROUPED = """block twice {
  expand if mid != in: conv to mid; bn; act
  dw: dwconv kernel k stride s; bn; act
  se
  project if in != mid: conv to out; bn
  project if mid == in: conv to out; bn
  residual
}

network grouped {
  input 3 x 32
  classes 10
  stem conv k3 s2 c16
  stage twice e1 k3 s1 c16 se0.25
  stage twice e6 k3 s2 c24 x2
  pool avg
  linear
}
"""


def test_groups_round_trip_through_the_formatter() -> None:
    net = parse_spec(GROUPED)
    text = format_spec(net)
    assert "  expand if mid != in: conv to mid; bn; act\n  dw: dwconv kernel k stride s; bn; act\n" in text
    assert "  project if mid == in: conv to out; bn\n" in text
    assert format_spec(parse_spec(text)) == text
    compiled = compile_spec(text)
    names = [op.name for op in compiled.graph.ops() if op.block == 1]
    assert names[:3] == ["stages.1.0.expand.conv", "stages.1.0.expand.bn", "stages.1.0.expand.act"]
    assert [op.name for op in compiled.graph.ops() if op.block == 0 and op.part == "project"] == [
        "stages.0.0.project.conv", "stages.0.0.project.bn"]


def _codes(text: str) -> list[tuple[str, str]]:
    with pytest.raises(EffdslError) as info:
        compile_spec(text)
    return [(d.code, d.message) for d in info.value.diagnostics]


@pytest.mark.parametrize(("line", "code", "words"), [
    ("  expand: conv to mid; bn; se\n", "E125", "'se' stands on its own"),
    ("  expand: conv to mid; bn\n  expand: act\n", "E125", "group 'expand' is written twice"),
    ("  expand if mid != in: conv to mid; bn\n  expand if mid != out: conv to mid; bn\n", "E125",
     "written twice"),
    ("  expand if mud != in: conv to mid; bn\n", "E104", "unknown width 'mud'"),
    ("  expand if mid == mid: conv to mid; bn\n", "E125", "compares mid with itself"),
    ("  expand: conv to mid\n  more: bn\n", "E125", "a batch norm must follow"),
    ("  conv to mid\n  conv: bn\n", "E125", "'conv' cannot name a group"),
    ("  conv to mid\n  dwconv\n  conv1: dwconv\n", "E125", "'conv1' cannot name a group"),
    ("  forward: conv to mid; bn\n", "E125", "'forward' cannot name a group"),
])
def test_misused_groups_are_diagnosed(line: str, code: str, words: str) -> None:
    text = f"block mine {{\n{line}  conv to out\n  bn\n}}\n\n" + _net("mine", "  stage BLOCK e4 k3 s1 c16")
    found = _codes(text)
    assert any(c == code and words in message for c, message in found), found


def test_a_condition_suggests_the_width() -> None:
    text = "block mine {\n  expand if mdi != in: conv to mid; bn\n  conv to out\n  bn\n}\n\n" + _net(
        "mine", "  stage BLOCK e4 k3 s1 c16")
    with pytest.raises(EffdslError) as info:
        compile_spec(text)
    assert "did you mean 'mid'?" in str(info.value)


def test_a_spec_cannot_redefine_a_prelude_block() -> None:
    found = _codes(_prelude_as("mbconv", "mbconv") + "\n" + _net("mbconv", STAGES["mbconv"]))
    assert found[0][0] == "E121"
