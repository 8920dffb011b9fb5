"""Property tests: generated spec ASTs, printed as text, through the whole pipeline.

Every network comes from :mod:`tests.strategies` as a :class:`~effdsl.language.spec.Network`,
is printed with :func:`~effdsl.language.format.format_spec` and compiled from that text, so
the parser, the analyzer, the scaling passes, the cost model and the torch backend
are all exercised together. The expected sizes come from the rounding rules restated
in :mod:`oracle` (exact arithmetic, independent of :mod:`effdsl.scaling.rounding`).
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import assume, example, given, note, reject
from torch.utils.flop_counter import FlopCounterMode

from effdsl.api import Compiled, compile_spec, parse_spec
from effdsl.diagnostics import EffdslError
from effdsl.ir.plan import Plan
from effdsl.language.format import format_spec
from effdsl.language.spec import Network

import oracle
from strategies import networks, phi_pairs, phis, small_networks

torch.set_num_threads(1)


# ---------------------------------------------------------------------------- helpers

def strip_spans(value):
    """``model_dump()`` output without the ``span``/``spans`` keys, at every depth."""
    if isinstance(value, dict):
        return {k: strip_spans(v) for k, v in value.items() if k not in ("span", "spans")}
    if isinstance(value, (list, tuple)):
        return [strip_spans(v) for v in value]
    return value


def total_stride(net: Network) -> int:
    strides = [net.stem.stride] + [s.stride for s in net.stages]
    if net.head.conv is not None:
        strides.append(net.head.conv.stride)
    return math.prod(strides)


def compile_or_reject(text: str, net: Network, phi: float) -> Compiled:
    """Compile ``text`` at ``phi``; a member too small for the network's stride is rejected.

    Only phi < 0 can shrink the resolution below the total stride (the base resolution
    is a multiple of it), and then E301 is the right answer: that is asserted before
    the example is discarded.
    """
    try:
        return compile_spec(text, phi=phi)
    except EffdslError as err:
        codes = [d.code for d in err.diagnostics]
        assert codes == ["E301"], f"unexpected error at phi={phi}:\n{err}"
        assert phi < 0, f"E301 at phi={phi} >= 0 for base resolution {net.resolution}:\n{err}"
        gamma = net.scaling.gamma
        shrunk = net.resolution * gamma**phi
        assert shrunk < total_stride(net) + net.scaling.resolution_multiple, (
            f"E301 although {net.resolution} x gamma^{phi} = {shrunk} is not near the stride")
        reject()


def plan(compiled: Compiled) -> Plan:
    return compiled.graph.plan


def scaled_widths(net: Network, p: Plan) -> list[tuple[str, int, int]]:
    """(where, base channels, scaled channels) of every width that scales."""
    fixed = net.scaling.fixed_width
    out = []
    if "stem" not in fixed:
        out.append(("stem", net.stem.out_ch, p.stem.out_ch))
    for i, (stage, row) in enumerate(zip(net.stages, p.stages, strict=True)):
        out.append((f"stage{i + 1}", stage.out_ch, row.out_ch))
    if net.head.conv is not None and "head" not in fixed:
        out.append(("head", net.head.conv.out_ch, p.head.out_ch))
    return out


def sizes(p: Plan) -> dict[str, int]:
    """Every width, every repeat count and the resolution of a compiled member."""
    out = {"resolution": p.resolution, "stem": p.stem.out_ch}
    for row in p.stages:
        out[f"stage{row.index + 1}.channels"] = row.out_ch
        out[f"stage{row.index + 1}.repeats"] = row.repeats
    if p.head is not None:
        out["head"] = p.head.out_ch
    return out


# ---------------------------------------------------------------------------- 1. text round trip

@given(networks())
def test_format_then_parse_round_trips(net: Network) -> None:
    text = format_spec(net)
    note(text)
    parsed = parse_spec(text)
    assert strip_spans(parsed.model_dump()) == strip_spans(net.model_dump())
    # The canonical text is a fixed point of printing.
    assert format_spec(parsed) == text


# ---------------------------------------------------------------------------- 2. forward pass

# Bigger than about a GMAC per image is rare (a high-stride net at phi near 4) and slow.
FORWARD_MACS_LIMIT = 10**9


@given(small_networks(), phis())
def test_forward_gives_one_row_of_logits_per_image(net: Network, phi: float) -> None:
    text = format_spec(net)
    note(text)
    compiled = compile_or_reject(text, net, phi)
    r = compiled.summary.resolution
    note(f"resolution {r}, MACs {compiled.summary.macs}")
    assume(compiled.summary.macs <= FORWARD_MACS_LIMIT)
    model = compiled.build().eval()
    x = torch.randn(2, net.in_ch, r, r)
    with torch.no_grad():
        y = model(x)
    assert y.shape == (2, net.classes)
    assert y.dtype == torch.float32
    # Eval mode is deterministic (dropout and drop-path off) and the two images are
    # independent (batch norm uses running statistics). Untrained logits can be large
    # and a batch of one may take another conv algorithm: compare relative to their size.
    with torch.no_grad():
        again = model(x[1:])
    scale = max(1.0, float(y[1:].abs().nan_to_num(0.0, 0.0, 0.0).max()))
    torch.testing.assert_close(again, y[1:], rtol=1e-4, atol=1e-5 * scale, equal_nan=True)


# ---------------------------------------------------------------------------- 3. cost model

@pytest.mark.slow
@given(networks(presets=False), phis())
def test_ir_cost_matches_torch(net: Network, phi: float) -> None:
    text = format_spec(net)
    note(text)
    compiled = compile_or_reject(text, net, phi)
    r = compiled.summary.resolution
    model = compiled.build(device="meta").eval()
    assert compiled.summary.params == sum(p.numel() for p in model.parameters())
    x = torch.empty(1, net.in_ch, r, r, device="meta")
    with FlopCounterMode(display=False) as counter:
        y = model(x)
    assert y.shape == (1, net.classes)
    assert compiled.summary.macs == counter.get_total_flops() // 2
    # The per-row totals add up to the network's.
    assert sum(row.params for row in compiled.summary.rows) == compiled.summary.params
    assert sum(row.macs for row in compiled.summary.rows) == compiled.summary.macs


# ---------------------------------------------------------------------------- 4. channel rounding

@given(networks(presets=False), phis())
def test_scaled_channels_are_divisible_and_guarded(net: Network, phi: float) -> None:
    compiled = compile_or_reject(format_spec(net), net, phi)
    p = plan(compiled)
    policy = net.scaling
    width_mult = policy.beta**phi
    for where, base, scaled in scaled_widths(net, p):
        ideal = base * width_mult
        expected = oracle.round_channels(base, width_mult, policy.divisor, policy.min_ch, policy.guard)
        assert scaled == expected, f"{where}: {base} x {width_mult} gives {scaled} channels, not {expected}"
        assert scaled % policy.divisor == 0, f"{where}: {scaled} channels, divisor {policy.divisor}"
        assert scaled >= policy.divisor, f"{where}: {scaled} channels"
        if policy.guard > 0:
            assert scaled >= policy.guard * ideal, f"{where}: {scaled} < {policy.guard} x {ideal}"
    # Fixed widths are the spec's own.
    if "stem" in policy.fixed_width:
        assert p.stem.out_ch == net.stem.out_ch
    if net.head.conv is not None and "head" in policy.fixed_width:
        assert p.head.out_ch == net.head.conv.out_ch


# ---------------------------------------------------------------------------- 5. monotone in phi

@given(networks(presets=False), phi_pairs())
def test_bigger_phi_never_shrinks_anything(net: Network, pair: tuple[float, float]) -> None:
    phi1, phi2 = pair
    assert phi1 < phi2
    text = format_spec(net)
    small = compile_or_reject(text, net, phi1)
    big = compile_spec(text, phi=phi2)  # a member at least as large as a valid one is valid
    a, b = sizes(plan(small)), sizes(plan(big))
    assert a.keys() == b.keys()
    shrunk = {k: (a[k], b[k]) for k in a if b[k] < a[k]}
    assert not shrunk, f"phi {phi1} -> {phi2} shrinks {shrunk}"
    if not _lost_an_expansion(small, big):
        assert big.summary.params >= small.summary.params
        assert big.summary.macs >= small.summary.macs


def _lost_an_expansion(small: Compiled, big: Compiled) -> bool:
    """A block of ``big`` has an expansion ratio other than 1 but no expansion layer: as in
    torchvision, there is none when the expanded width equals the input, which a fixed
    expansion input (``e2 of c8``) can reach as the width grows; every width still grows."""
    parts: dict[tuple[int, int], set[str]] = {}
    for op in big.graph.ops():
        if op.name.startswith("stages."):
            _, stage, block = op.name.split(".")[:3]
            parts.setdefault((int(stage), int(block)), set()).add(op.part)
    lost = []
    for stage in plan(big).stages:
        own = {"mbconv": "expand", "fused_mbconv": "project"}.get(stage.block)
        groups = [g for g in stage.groups() for _ in range(g.repeats)]
        lost += [(stage.index, j, g) for j, g in enumerate(groups)
                 if own is not None and g.expand != 1 and own not in parts[(stage.index, j)]]
    assert all(g.expand_from is not None for _, _, g in lost), lost  # only a fixed expansion input gets there
    return bool(lost)


# ---------------------------------------------------------------------------- 6. phi = 0 is the baseline

@given(networks(presets=False))
def test_phi_zero_is_the_spec_itself(net: Network) -> None:
    compiled = compile_spec(format_spec(net), phi=0)
    p = plan(compiled)
    assert p.resolution == net.resolution
    assert p.stem.out_ch == net.stem.out_ch
    assert [s.out_ch for s in p.stages] == [s.out_ch for s in net.stages]
    assert [s.group_repeats for s in p.stages] == [(s.repeats, *(g.repeats for g in s.parts)) for s in net.stages]
    assert (p.head.out_ch if p.head else None) == (net.head.conv.out_ch if net.head.conv else None)
    # Compiling without any choice is the same member.
    assert compile_spec(format_spec(net)).summary == compiled.summary


# ---------------------------------------------------------------------------- 7. depth rounding

def _halves(mode: str) -> Network:
    """A network whose repeats and resolution land on exact halves at phi = 1 (x 1.5)."""
    return parse_spec(f"""network halves {{
  input 3 x 24
  classes 10
  scaling {{ alpha 1.5; beta 1.5; gamma 1.5; depth {mode}; resolution {mode} multiple 8 }}
  stem  conv k3 s2 c16
  stage mbconv e6 k3 s1 c16 x1
  stage fused_mbconv e4 k3 s2 c24 x3
  stage conv k3 s2 c32 x5
  pool avg
  dropout
  linear
}}
""")


@example(net=_halves("half_even"), phi=1.0)  # 3 x 1.5 -> 4, 5 x 1.5 -> 8, 24 x 1.5 / 8 -> 32
@example(net=_halves("half_up"), phi=1.0)  # 3 x 1.5 -> 5, 5 x 1.5 -> 8, 24 x 1.5 / 8 -> 40
@given(networks(presets=False), phis())
def test_repeats_follow_the_depth_rounding_mode(net: Network, phi: float) -> None:
    compiled = compile_or_reject(format_spec(net), net, phi)
    depth_mult = net.scaling.alpha**phi
    mode = net.scaling.depth_rounding
    for i, (stage, row) in enumerate(zip(net.stages, plan(compiled).stages, strict=True)):
        groups = [stage.repeats, *(part.repeats for part in stage.parts)]  # 'then' groups scale as one stage
        fixed = i in net.scaling.fixed_depth
        expected = groups if fixed else oracle.round_group_repeats(groups, depth_mult, mode)
        assert list(row.group_repeats) == expected, f"stage {i + 1}: {groups} x {depth_mult} ({mode})"
        assert row.repeats == (sum(groups) if fixed else oracle.round_repeats(sum(groups), depth_mult, mode))
    assert compiled.summary.num_blocks == sum(row.repeats for row in plan(compiled).stages)


@example(net=_halves("half_even"), phi=1.0)
@example(net=_halves("half_up"), phi=1.0)
@given(networks(presets=False), phis())
def test_resolution_follows_its_rounding_mode(net: Network, phi: float) -> None:
    compiled = compile_or_reject(format_spec(net), net, phi)
    policy = net.scaling
    m = policy.resolution_multiple
    expected = oracle.round_resolution(net.resolution, policy.gamma**phi, policy.resolution_rounding, m)
    assert compiled.summary.resolution == expected
    assert compiled.summary.resolution % m == 0
