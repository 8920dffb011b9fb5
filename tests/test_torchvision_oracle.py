"""Layer-by-layer agreement with torchvision's efficientnet_b0..b7 (code no one here wrote).

torchvision models are built on the meta device (no weights allocated); only the
architecture is compared: stem, every block's channels / kernel / stride / expansion /
squeeze width / stochastic-depth rate, repeats per stage, head, and every state_dict
tensor's shape in order.
"""

from __future__ import annotations

import pytest
import torch
from torchvision.models import efficientnet as tv_efficientnet

import effdsl

pytestmark = pytest.mark.oracle

PRESETS = [f"b{i}" for i in range(8)]


def _tv_model(preset: str):
    with torch.device("meta"):
        return getattr(tv_efficientnet, f"efficientnet_{preset}")()


def _tv_blocks(model):
    """(stage, in, mid, out, kernel, stride, squeeze, sd_prob) for every torchvision MBConv."""
    rows = []
    for stage, seq in enumerate(model.features[1:-1]):
        for block in seq:
            convs = [m for m in block.block.modules() if isinstance(m, torch.nn.Conv2d)]
            dw = next(c for c in convs if c.groups > 1)
            se = block.block[-2]
            rows.append((
                stage, convs[0].in_channels, dw.in_channels, convs[-1].out_channels, dw.kernel_size[0],
                dw.stride[0], se.fc1.out_channels, round(block.stochastic_depth.p, 12),
            ))
    return rows


def _our_blocks(graph):
    by_block: dict[int, dict[str, object]] = {}
    for op in graph.ops():
        if op.block < 0:
            continue
        entry = by_block.setdefault(op.block, {"stage": op.stage, "in": None, "sd": 0.0})
        if op.kind in ("conv", "dwconv") and entry["in"] is None:
            entry["in"] = op.in_ch
        if op.kind == "dwconv":
            entry.update(mid=op.in_ch, kernel=op.kernel, stride=op.stride)
        if op.name.endswith("se.reduce"):
            entry["squeeze"] = op.out_ch
        if op.name.endswith("project.conv"):
            entry["out"] = op.out_ch
        if op.kind == "drop_path":
            entry["sd"] = op.rate
    return [
        (e["stage"], e["in"], e["mid"], e["out"], e["kernel"], e["stride"], e["squeeze"], round(e["sd"], 12))
        for _, e in sorted(by_block.items())
    ]


@pytest.mark.parametrize("preset", PRESETS)
def test_blocks_match_torchvision_layer_by_layer(preset):
    tv = _tv_model(preset)
    compiled = effdsl.compile_spec("efficientnet_b0", preset=preset)
    ours = _our_blocks(compiled.graph)
    theirs = _tv_blocks(tv)
    assert len(ours) == len(theirs)
    for mine, ref in zip(ours, theirs, strict=True):
        # torchvision applies stochastic depth to every block; only residual blocks need it here,
        # so the rate is compared where a residual exists (stride 1 and in == out).
        has_residual = mine[5] == 1 and mine[1] == mine[3]
        assert mine[:7] == ref[:7]
        if has_residual:
            assert mine[7] == pytest.approx(ref[7], abs=1e-12)


@pytest.mark.parametrize("preset", PRESETS)
def test_stem_repeats_head_and_classifier_match_torchvision(preset):
    tv = _tv_model(preset)
    summary = effdsl.compile_spec("efficientnet_b0", preset=preset).summary
    stages = [r for r in summary.rows if r.name.startswith("stage")]
    assert [r.repeats for r in stages] == [len(seq) for seq in tv.features[1:-1]]
    assert [r.out_ch for r in stages] == [seq[-1].block[-1][0].out_channels for seq in tv.features[1:-1]]
    assert summary.rows[0].out_ch == tv.features[0][0].out_channels
    assert summary.rows[-1].out_ch == tv.features[-1][0].out_channels
    assert tv.classifier[1].in_features == summary.rows[-1].out_ch
    assert tv.classifier[0].p == effdsl.build("efficientnet_b0", preset=preset, device="meta").head.dropout.p


@pytest.mark.parametrize("preset", PRESETS)
def test_state_dict_shapes_match_torchvision_in_order(preset):
    tv = _tv_model(preset).state_dict()
    ours = effdsl.build("efficientnet_b0", preset=preset, device="meta").state_dict()
    assert [tuple(t.shape) for t in ours.values()] == [tuple(t.shape) for t in tv.values()]


@pytest.mark.parametrize("preset", PRESETS)
def test_batch_norm_settings_match_torchvision(preset):
    tv = [m for m in _tv_model(preset).modules() if isinstance(m, torch.nn.BatchNorm2d)]
    ours = [m for m in effdsl.build("efficientnet_b0", preset=preset, device="meta").modules()
            if isinstance(m, torch.nn.BatchNorm2d)]
    assert [(m.eps, m.momentum) for m in ours] == [(m.eps, m.momentum) for m in tv]
