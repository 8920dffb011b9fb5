"""Options users expect of a model builder: classes, input channels, dropout and
stochastic-depth overrides, per-stage feature maps, stochastic depth in training only."""

from __future__ import annotations

import pytest
import torch

import effdsl
from effdsl.backends.torch.builder import StochasticDepth

from reference import EFFICIENTNET


def _drop_path_modules(model):
    return [(name, m) for name, m in model.named_modules() if isinstance(m, StochasticDepth)]


def test_stochastic_depth_follows_rate_i_over_n():
    model = effdsl.build("efficientnet_b0", preset="b0", device="meta")
    blocks = {name.rsplit(".", 1)[0]: m.p for name, m in _drop_path_modules(model)}
    order = [f"stages.{s}.{j}" for s, n in enumerate((1, 2, 2, 3, 3, 4, 1)) for j in range(n)]
    assert len(order) == 16
    for i, block in enumerate(order):
        if block in blocks:  # blocks with a residual connection
            assert blocks[block] == pytest.approx(0.2 * i / 16, abs=1e-12)
    assert len(blocks) == 9  # B0 has 9 residual blocks


def test_drop_path_rate_override_and_training_only():
    model = effdsl.build("efficientnet_b0", preset="b0", drop_path_rate=0.5)
    rates = [m.p for _, m in _drop_path_modules(model)]
    assert max(rates) == pytest.approx(0.5 * 14 / 16)  # block 14 is the last with a residual
    dp = _drop_path_modules(model)[-1][1]
    x = torch.ones(64, 4, 2, 2)
    dp.train()
    y = dp(x)
    kept = (y.flatten(1) != 0).all(1)
    assert 0 < kept.sum() < 64  # whole samples dropped, others kept...
    assert torch.allclose(y[kept], torch.full_like(y[kept], 1 / (1 - dp.p)))  # ...and rescaled
    dp.eval()
    assert torch.equal(dp(x), x)


def test_drop_rate_override():
    assert effdsl.build("efficientnet_b0", preset="b3", drop_rate=0.1, device="meta").head.dropout.p == 0.1
    assert effdsl.build("efficientnet_b0", preset="b3", device="meta").head.dropout.p == 0.3


def test_in_chans_and_num_classes():
    model = effdsl.build("efficientnet_b0", preset="b0", in_chans=1, num_classes=7).eval()
    assert model.stem.conv.in_channels == 1
    with torch.no_grad():
        assert model(torch.randn(2, 1, 64, 64)).shape == (2, 7)
    params = effdsl.compile_spec("efficientnet_b0", preset="b0", in_chans=1, num_classes=7).summary.params
    assert params == sum(p.numel() for p in model.parameters())
    assert params == EFFICIENTNET["b0"][4] - 2 * 32 * 9 - 993 * 1281


def test_features_only_returns_one_map_per_reduction():
    model = effdsl.build("efficientnet_b0", preset="b0", features_only=True).eval()
    with torch.no_grad():
        feats = model(torch.randn(1, 3, 224, 224))
    # the last stage at each reduction 2, 4, 8, 16, 32 (as timm's efficientnet_b0 features_only)
    assert [tuple(f.shape[1:]) for f in feats] == [(16, 112, 112), (24, 56, 56), (40, 28, 28), (112, 14, 14),
                                                    (320, 7, 7)]
    assert not any(k.startswith(("head.", "classifier.")) for k in model.state_dict())


def test_bad_overrides_are_usage_errors():
    for kwargs in ({"drop_rate": 1.0}, {"drop_path_rate": -0.1}, {"in_chans": 0}):
        with pytest.raises(effdsl.EffdslError) as info:
            effdsl.compile_spec("efficientnet_b0", **kwargs)
        assert info.value.diagnostics[0].code == "E402"
