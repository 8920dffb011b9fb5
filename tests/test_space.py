"""Search spaces: the syntax, its formatting, the members and their analytic cost.

Generated spaces are plain generated networks (tests/strategies.py) with choices added
to their stages; every property below is checked on them and on the built-in
efficientnet_space.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_fuzz import check_error, examples, mutate
from typer.testing import CliRunner

import effdsl
from effdsl.api import check_spec, format_source, parse_spec
from effdsl.cli import app
from effdsl.diagnostics import EffdslError
from effdsl.language.format import format_spec
from effdsl.language.spec import (
    ACTIVATIONS,
    Block,
    BlockDef,
    Choice,
    ChoiceField,
    ChoiceValue,
    Network,
    Relation,
    SqueezeExcite,
)
from effdsl.scaling.choices import Decision
from effdsl.scaling.rounding import round_channels
from effdsl.search.cost import CostModel, enumerate_costs, lowered_cost
from effdsl.search.space import Space

from conftest import ROOT, check_golden
from strategies import EXPANSIONS, KERNELS, SE_RATIOS, SPAN, block_defs, networks

GOLDEN = ROOT / "tests" / "golden"

MESSY = """\
network tiny_space {   input 3 x 32 ; classes 10
  stem conv k3 s2 c16
  stage {mbconv, fused_mbconv} e{1, 3,6} k{3,5} s2 c40*{0.75,1,1.25} x2+{-1,0,1}   # first
  stage mbconv e6 k3 s1 c{16,24} x{1,2} {skip, noskip} act {relu,silu}
  pool avg ; linear
}
"""

FORMATTED = """\
network tiny_space {
  input 3 x 32
  classes 10

  stem  conv k3 s2 c16
  stage {mbconv,fused_mbconv} e{1,3,6} k{3,5} s2 c40*{0.75,1,1.25} x2+{-1,0,+1}  # first
  stage mbconv                e6       k3     s1 c{16,24}          x{1,2}       {skip,noskip} act{relu,silu}
  pool avg
  linear
}
"""


def test_space_syntax_formats_to_canonical_form() -> None:
    assert format_source(MESSY) == FORMATTED
    assert format_source(FORMATTED) == FORMATTED


def test_space_ast_says_what_was_written() -> None:
    net = parse_spec(FORMATTED)
    assert net.is_space
    first, second = net.stages
    assert [(c.field, c.relation, c.options, c.base) for c in first.choices] == [
        ("block", "set", ("mbconv", "fused_mbconv"), None),
        ("expand", "set", (1.0, 3.0, 6.0), None),
        ("kernel", "set", (3, 5), None),
        ("out_ch", "scale", (0.75, 1.0, 1.25), 40),
        ("repeats", "offset", (-1, 0, 1), 2),
    ]
    assert [(c.field, c.options) for c in second.choices] == [
        ("out_ch", (16, 24)), ("repeats", (1, 2)), ("skip", (True, False)), ("act", ("relu", "silu"))]
    # the stage's fields hold the reference values: first option, or the base
    assert (first.block, first.expand, first.kernel, first.out_ch, first.repeats) == ("mbconv", 1.0, 3, 40, 2)
    assert (second.out_ch, second.repeats, second.skip, second.act) == (16, 1, True, "relu")


def test_members_round_multipliers_with_the_channel_rule() -> None:
    space = Space.load(FORMATTED)
    widths = next(d for d in space.decisions if d.field == "out_ch" and d.stage == 0).values
    assert widths == (32, 40, 48)  # 30 and 50 rounded to multiples of 8
    assert space.size == 2 * 3 * 2 * 3 * 3 * 2 * 2 * 2 * 2


def test_rounding_that_merges_two_multipliers_is_an_error() -> None:
    text = FORMATTED.replace("c{16,24}", "c16*{0.75,1}")
    with pytest.raises(EffdslError) as info:
        check_spec(text)
    (diag,) = info.value.diagnostics
    assert diag.code == "E603" and "both give c16" in diag.message


def test_compile_refuses_a_space_and_says_what_to_do() -> None:
    with pytest.raises(EffdslError) as info:
        effdsl.compile_spec("efficientnet_space")
    (diag,) = info.value.diagnostics
    assert diag.code == "E605"
    assert diag.help is not None and "effdsl space" in diag.help and "effdsl search" in diag.help


def test_check_compiles_every_option(tmp_path: Path) -> None:
    # stride 2 in both stages of a 4-pixel network: only the most-stride member fails
    text = """\
network strided {
  input 3 x 8
  classes 10
  stem conv k3 s2 c16
  stage mbconv e6 k3 s{1,2} c16 x1
  stage mbconv e6 k3 s{2,1} c16 x1
  stage mbconv e6 k3 s{1,2} c16 x1
  pool avg
  linear
}
"""
    with pytest.raises(EffdslError) as info:
        check_spec(text)
    (diag,) = info.value.diagnostics
    assert diag.code == "E301"
    assert diag.help is not None and "stage 1: s2; stage 2: s2; stage 3: s2" in diag.help


def test_b0_is_a_member_of_efficientnet_space() -> None:
    space = Space.load("efficientnet_space")
    b0 = effdsl.parse_spec("efficientnet_b0")
    def value(d: Decision) -> Any:
        found = getattr(b0.stages[d.stage], d.field)
        return b0.defaults.se if found is None else found  # B0's stages take se from the defaults

    picks = tuple(d.values.index(value(d)) for d in space.decisions)
    text = space.text(picks)
    compiled = effdsl.compile_spec(text)
    assert (compiled.summary.params, compiled.summary.macs) == (5_288_548, 385_814_752)
    assert tuple(CostModel(space).cost(picks)) == (5_288_548, 385_814_752)


def test_efficientnet_space_summary(update_goldens: bool) -> None:
    result = CliRunner().invoke(app, ["space", "efficientnet_space", "--resolution", "32", "--in-chans", "1",
                                      "--num-classes", "10"])
    assert result.exit_code == 0, result.output
    assert "76,169,967,501,312 members (35 choices over 7 stages)" in result.stdout
    check_golden(GOLDEN / "efficientnet_space.space.txt", result.stdout, update_goldens)


def test_sampled_members_are_plain_specs_that_compile(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["space", "efficientnet_space", "--sample", "3", "--seed", "7",
                                      "--resolution", "32", "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    files = sorted(tmp_path.glob("*.eff"))
    assert [f.name for f in files] == [f"efficientnet_space_s{i}.eff" for i in range(3)]
    again = CliRunner().invoke(app, ["space", "efficientnet_space", "--sample", "3", "--seed", "7",
                                     "--resolution", "32"])
    assert again.stdout == "\n".join(f.read_text(encoding="utf-8") for f in files)  # same seed, same members
    for path in files:
        compiled = effdsl.compile_spec(path)
        assert not compiled.spec.is_space and compiled.summary.resolution == 32
        assert format_source(str(path)) == path.read_text(encoding="utf-8")


# ---------------------------------------------------------------------------- generated spaces

_FIELDS: tuple[ChoiceField, ...] = ("kernel", "expand", "se", "out_ch", "repeats", "act", "skip", "block")


@st.composite
def spaces(draw: st.DrawFn, max_stages: int = 3, plugin: bool = False) -> Network:
    """A generated network with choices added to some of its stages (always a valid space).

    The networks take every feature the language has ('then' groups, the squeeze-excite's
    shape, fixed expansion inputs, the hidden layer, 'mid_width scaled', 'head_width scaled
    min'), and about half of them a block kind they define (``plugin``: some of its convs
    the example plug-in op), which some stages use."""
    net: Network = draw(networks(max_stages=max_stages, max_repeats=3, max_units=6, max_resolution=64,
                                 presets=False))
    definition = draw(block_defs(plugin)) if plugin or draw(st.booleans()) else None
    stages = []
    for stage in net.stages:
        if definition is not None and draw(st.booleans()):
            stage = _user_stage(draw, stage, definition)
        if stage.parts:  # a stage with 'then' groups carries no choices (E103)
            stages.append(stage)
            continue
        choices: list[Choice] = []
        values: dict[str, Any] = {}
        for field in sorted(draw(st.sets(st.sampled_from(_FIELDS), max_size=4))):
            choice = _field_choice(draw, field, stage, net, definition)
            if choice is None:
                continue
            choices.append(choice)
            if choice.relation == "set":
                values[field] = choice.options[0]
        if any(c.field == "block" for c in choices):
            if stage.block == "conv":  # the other options need an expansion; the reference keeps conv's
                values.setdefault("expand", 1.0)
            values["block"] = next(c.options[0] for c in choices if c.field == "block")
        stages.append(stage.model_copy(update={**values, "choices": tuple(choices)}))
    blocks = () if definition is None else (definition,)
    return net.model_copy(update={"stages": tuple(stages), "blocks": blocks})


def _user_stage(draw: st.DrawFn, stage: Block, definition: BlockDef) -> Block:
    """``stage`` as a stage of the user's block kind: the settings its ops use, no 'then' groups."""
    se = draw(st.none() | st.sampled_from(SE_RATIOS)) if definition.has("se") else None
    return stage.model_copy(update={
        "block": definition.name, "parts": (), "expand_from": None,
        "expand": draw(st.sampled_from(EXPANSIONS[:4])) if definition.uses("mid") else 1.0,
        "se": se, "se_shape": stage.se_shape if se is not None else SqueezeExcite(),
        "skip": draw(st.sampled_from((None, True, False))) if definition.has("residual") else None})


def _choice(field: ChoiceField, options: Sequence[ChoiceValue], relation: Relation = "set",
            base: int | None = None) -> Choice:
    return Choice(span=SPAN, field=field, relation=relation, options=tuple(options), base=base,
                  option_spans=tuple(SPAN for _ in options))


def _field_choice(draw: st.DrawFn, field: ChoiceField, stage: Block, net: Network,
                  definition: BlockDef | None) -> Choice | None:
    """A choice of ``field`` for ``stage``: channel multipliers, repeat offsets or a set; None if it takes none."""
    if field == "out_ch" and draw(st.booleans()):
        s = net.scaling
        multipliers = draw(st.lists(st.sampled_from((0.5, 0.75, 1.0, 1.25, 1.5, 2.0)), min_size=2,
                                    max_size=3, unique=True))
        widths = [round_channels(stage.out_ch, m, s.divisor, s.min_ch, s.guard) for m in multipliers]
        if len(set(widths)) < len(widths):
            return None
        return _choice("out_ch", multipliers, "scale", stage.out_ch)
    if field == "repeats" and draw(st.booleans()):
        offsets = draw(st.lists(st.integers(1 - stage.repeats, 2), min_size=2, max_size=3, unique=True))
        return _choice("repeats", offsets, "offset", stage.repeats)
    user = definition if definition is not None and stage.block == definition.name else None
    options = _set_options(draw, field, stage, net, user)
    return None if options is None else _choice(field, options)


def _set_options(draw: st.DrawFn, field: ChoiceField, stage: Block, net: Network,
                 user: BlockDef | None) -> Sequence[ChoiceValue] | None:
    """The options of a set choice of ``field``; None where the stage takes none (a conv's expand or
    se, an expansion with a fixed input, a ratio with shape words, a user's block's missing ops)."""
    conv = stage.block == "conv"
    expands = not conv and stage.expand_from is None and (user is None or user.uses("mid"))
    excites = not conv and stage.se_shape == SqueezeExcite() and (user is None or user.has("se"))
    if field == "kernel":
        return draw(st.lists(st.sampled_from(KERNELS), min_size=2, max_size=3, unique=True))
    if field == "expand" and expands:
        return draw(st.lists(st.sampled_from(EXPANSIONS), min_size=2, max_size=3, unique=True))
    if field == "se" and excites:
        return draw(st.lists(st.sampled_from(SE_RATIOS), min_size=2, max_size=3, unique=True))
    if field == "act":
        return draw(st.lists(st.sampled_from(tuple(ACTIVATIONS)), min_size=2, max_size=3, unique=True))
    if field == "skip" and (user is None or user.has("residual")):
        return draw(st.permutations((True, False)))
    if field == "block" and user is None:
        return draw(st.lists(st.sampled_from(("mbconv", "fused_mbconv", "conv")), min_size=2, max_size=3,
                             unique=True))
    if field == "out_ch":
        divisor = net.scaling.divisor
        floor = net.scaling.min_ch or divisor
        return draw(st.lists(st.integers(1, 6).map(lambda u: divisor * u).filter(lambda c: c >= floor),
                             min_size=2, max_size=3, unique=True))
    if field == "repeats":
        return draw(st.lists(st.integers(1, 3), min_size=2, max_size=3, unique=True))
    return None


@settings(max_examples=40)
@given(spaces())
def test_generated_spaces_format_and_read_back(net: Network) -> None:
    text = format_spec(net)
    again = parse_spec(text)
    assert format_spec(again) == text
    assert again.is_space == any(stage.choices for stage in net.stages)


@settings(max_examples=30)
@given(spaces(), st.randoms(use_true_random=False))
def test_sampled_members_lie_in_the_space_and_cost_what_they_compile_to(net: Network, rng: random.Random) -> None:
    _check_sampled_members(net, rng)


@settings(max_examples=15)
@given(spaces(plugin=True), st.randoms(use_true_random=False))
def test_members_with_plugin_ops_cost_what_they_compile_to(example_ops_module: None, net: Network,
                                                             rng: random.Random) -> None:
    _check_sampled_members(net, rng)


@pytest.fixture(scope="module")
def example_ops_module(example_ops: None) -> None:
    """The example plug-in, for Hypothesis tests (which take no function-scoped fixtures)."""


def _check_sampled_members(net: Network, rng: random.Random) -> None:
    """Three sampled members: their values are the decisions' picks, and the cost model gives
    what compiling them gives."""
    space = Space.load(format_spec(net))
    model = CostModel(space)
    for _ in range(3):
        picks = space.sample(rng)
        assert len(picks) == len(space.decisions)
        member = space.network(picks)
        assert not member.is_space
        for decision, pick in zip(space.decisions, picks, strict=True):
            assert 0 <= pick < len(decision.values)
            value = getattr(member.stages[decision.stage], decision.field)
            if decision.field in ("expand", "se") and member.stages[decision.stage].block == "conv":
                continue  # a conv member drops them
            assert value == decision.values[pick]
        compiled = effdsl.compile_spec(space.text(picks))
        assert tuple(model.cost(picks)) == (compiled.summary.params, compiled.summary.macs)


@settings(max_examples=30)
@given(spaces(), st.randoms(use_true_random=False))
def test_mutation_changes_exactly_one_choice(net: Network, rng: random.Random) -> None:
    space = Space.load(format_spec(net))
    if not space.decisions:
        return
    picks = space.sample(rng)
    for _ in range(10):
        child = space.mutate(picks, rng)
        assert sum(a != b for a, b in zip(picks, child, strict=True)) == 1
        assert all(0 <= p < len(d.values) for p, d in zip(child, space.decisions, strict=True))
        picks = child


@settings(max_examples=25)
@given(spaces(max_stages=3))
def test_extremes_equal_enumeration(net: Network) -> None:
    space = Space.load(format_spec(net))
    if space.size > 3000:
        return
    model = CostModel(space)
    costs = [cost for _, cost in enumerate_costs(model)]
    found = model.extremes()
    assert found["min_macs"].cost.macs == min(c.macs for c in costs)
    assert found["max_macs"].cost.macs == max(c.macs for c in costs)
    assert found["min_params"].cost.params == min(c.params for c in costs)
    assert found["max_params"].cost.params == max(c.params for c in costs)
    for extreme in found.values():
        assert model.cost(extreme.picks) == extreme.cost


def test_extremes_of_efficientnet_space_compile_to_their_cost() -> None:
    space = Space.load("efficientnet_space")
    model = CostModel(space, in_ch=1, resolution=32, classes=10)
    for extreme in model.extremes().values():
        compiled = effdsl.compile_spec(space.text(extreme.picks, in_ch=1, resolution=32, classes=10))
        assert (compiled.summary.params, compiled.summary.macs) == tuple(extreme.cost)
    # no sampled member lies outside the extremes
    extremes = model.extremes()
    rng = random.Random(0)
    for _ in range(2000):
        cost = model.cost(space.sample(rng))
        assert extremes["min_macs"].cost.macs <= cost.macs <= extremes["max_macs"].cost.macs
        assert extremes["min_params"].cost.params <= cost.params <= extremes["max_params"].cost.params


def test_a_conv_option_drops_expansion_and_squeeze_excite() -> None:
    text = """\
network mixed {
  input 3 x 32
  classes 10
  stem conv k3 s2 c16
  stage {mbconv,conv} e{3,6} k3 s2 c24 x1 se{0,0.25}
  pool avg
  linear
}
"""
    space = Space.load(text)
    keys = {space.key(p) for p in itertools.product(*(range(len(d.values)) for d in space.decisions))}
    assert space.size == 8 and len(keys) == 5  # 4 mbconv members, and one conv for four picks


SPACE_TEXTS = [(ROOT / "specs" / "efficientnet_space.eff").read_text(encoding="utf-8"), FORMATTED]


@settings(max_examples=examples(80))
@given(st.sampled_from(SPACE_TEXTS).flatmap(mutate))
def test_mutated_spaces_give_only_effdsl_errors(text: str) -> None:
    """check, space and sampling on a mutated space: a result or effdsl's own error, nothing else."""
    try:
        check_spec(text)
        space = Space.load(text)
        model = CostModel(space)
        model.extremes()
        picks = space.sample(random.Random(0))
        effdsl.compile_spec(space.text(picks))
    except EffdslError as err:
        check_error(err, text)


def test_a_member_that_leaves_conv_takes_the_default_squeeze_excite() -> None:
    """Found by the Hypothesis test above: the reference is a conv (no squeeze-excite), the
    member an mbconv, which takes 'defaults se'."""
    space = Space.load("""\
network from_conv {
  input 1 x 8
  classes 1
  defaults { se 0.25 }
  stem conv k1 s1 c8
  stage {conv,mbconv} e1 k1 s1 c8 x1
  pool avg
  linear
}
""")
    model = CostModel(space)
    for picks in ((0,), (1,)):
        compiled = effdsl.compile_spec(space.text(picks))
        assert tuple(model.cost(picks)) == (compiled.summary.params, compiled.summary.macs)
    assert model.cost((1,)).params > model.cost((0,)).params


def test_a_conv_option_drops_a_fixed_expansion_input() -> None:
    """'e4 of c16' belongs to the expansion: the conv member has neither, and its text reads back."""
    space = Space.load("""\
network fixed_input {
  input 3 x 32
  classes 10
  stem conv k3 s2 c16
  stage {mbconv,conv} e4 of c16 k3 s2 c24 x2 se 0.25 of mid divisor 8
  pool avg
  linear
}
""")
    model = CostModel(space)
    for picks in ((0,), (1,)):
        text = space.text(picks)
        assert ("of c16" in text) == (picks == (0,))
        compiled = effdsl.compile_spec(text)
        assert tuple(model.cost(picks)) == (compiled.summary.params, compiled.summary.macs)


@settings(max_examples=25)
@given(spaces(), st.randoms(use_true_random=False))
def test_built_in_stages_restated_equal_their_lowered_operators(net: Network, rng: random.Random) -> None:
    """The two ways the model costs a stage agree: the restated formulas of the built-in blocks
    and the compiler's lowering with the cost passes' rules (what user-defined blocks take)."""
    space = Space.load(format_spec(net))
    model = CostModel(space)
    picks = space.sample(rng)
    state = model.start
    for index, mine in enumerate(model.by_stage):
        combo = tuple(picks[i] for i in mine)
        row = replace(model.row(index, combo), in_ch=state[0], base_in=state[1])
        step, after = model.step(index, combo, state)
        assert lowered_cost(model.plan, row, state[2]) == (step, after[2])
        state = after
