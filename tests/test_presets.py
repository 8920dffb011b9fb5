"""The official variants b0..b7: exact parameters and MACs, analytically and on the module."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import effdsl

from reference import B0_STAGES, B0_STATE_DICT_TENSORS, EFFICIENTNET, PHI1_PARAMS

PRESETS = sorted(EFFICIENTNET)


@pytest.fixture(scope="module")
def compiled():
    return {p: effdsl.compile_spec("efficientnet_b0", preset=p) for p in PRESETS}


@pytest.mark.parametrize("preset", PRESETS)
def test_ir_params_and_macs_match_reference(compiled, preset):
    width, depth, resolution, dropout, params, macs = EFFICIENTNET[preset]
    summary = compiled[preset].summary
    assert (summary.width_mult, summary.depth_mult, summary.resolution) == (width, depth, resolution)
    assert summary.params == params
    assert summary.macs == macs
    assert summary.flops == 2 * macs


@pytest.mark.parametrize("preset", PRESETS)
def test_module_params_match_reference(compiled, preset):
    module = compiled[preset].build()
    assert sum(p.numel() for p in module.parameters()) == EFFICIENTNET[preset][4]


@pytest.mark.parametrize("preset", PRESETS)
def test_flop_counter_on_module_matches_reference(compiled, preset):
    resolution = EFFICIENTNET[preset][2]
    module = compiled[preset].build(device="meta").eval()
    with FlopCounterMode(display=False) as counter:
        out = module(torch.empty(1, 3, resolution, resolution, device="meta"))
    assert out.shape == (1, 1000)
    assert counter.get_total_flops() // 2 == EFFICIENTNET[preset][5]


def test_flop_counter_on_real_weights_b0():
    module = effdsl.build("efficientnet_b0", preset="b0").eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        out = module(torch.randn(1, 3, 224, 224))
    assert out.shape == (1, 1000)
    assert torch.isfinite(out).all()
    assert counter.get_total_flops() // 2 == EFFICIENTNET["b0"][5]


def test_b0_stage_table_is_the_papers(compiled):
    rows = [r for r in compiled["b0"].summary.rows if r.name.startswith("stage")]
    assert [(r.kernel, r.stride, r.expand, r.out_ch, r.repeats) for r in rows] == B0_STAGES
    assert compiled["b0"].summary.rows[0].out_ch == 32
    assert compiled["b0"].summary.rows[-1].out_ch == 1280


def test_b3_first_stage_needs_the_round_down_guard(compiled):
    stage1 = compiled["b3"].summary.rows[1]
    assert stage1.out_ch == 24  # 16 * 1.2 = 19.2 rounds to 16, below 90%: bumped to 24


def test_phi_one_is_b2_in_width_and_depth():
    phi1 = effdsl.compile_spec("efficientnet_b0", phi=1)
    assert phi1.summary.params == PHI1_PARAMS
    assert phi1.summary.width_mult == pytest.approx(1.1)
    assert phi1.summary.depth_mult == pytest.approx(1.2)


def test_phi_zero_is_the_baseline(compiled):
    base = effdsl.compile_spec("efficientnet_b0", phi=0).summary
    assert base.params == EFFICIENTNET["b0"][4]
    assert base.macs == EFFICIENTNET["b0"][5]
    assert base.resolution == 224


def test_b0_state_dict_has_reference_tensor_count(compiled):
    assert len(compiled["b0"].build(device="meta").state_dict()) == B0_STATE_DICT_TENSORS


def test_phi_seven_is_not_b7():
    phi7 = effdsl.compile_spec("efficientnet_b0", phi=7).summary
    assert 68_000_000 < phi7.params < 69_500_000  # "about 68.7M, not B7's 66.3M"


def test_num_classes_override_changes_only_the_classifier():
    ten = effdsl.compile_spec("efficientnet_b0", preset="b0", num_classes=10).summary
    assert ten.params == EFFICIENTNET["b0"][4] - 1280 * 990 - 990
    module = effdsl.build("efficientnet_b0", preset="b0", num_classes=10, device="meta").eval()
    assert module(torch.empty(2, 3, 224, 224, device="meta")).shape == (2, 10)


def test_preset_dropout_and_bn_settings_reach_the_module():
    b5 = effdsl.build("efficientnet_b0", preset="b5", device="meta")
    bns = [m for m in b5.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and all(m.eps == 1e-3 and m.momentum == 0.01 for m in bns)
    assert b5.head.dropout.p == 0.4
    b0 = effdsl.build("efficientnet_b0", preset="b0", device="meta")
    assert all(m.eps == 1e-5 and m.momentum == 0.1 for m in b0.modules() if isinstance(m, torch.nn.BatchNorm2d))
