"""The built module as PyTorch and timm users meet it: a hierarchy of modules with their own
forward, hooks that fire, feature extraction by stage name, informative reprs, timm's model
interface, detection-ready feature maps, weights from a state dict or a DDP checkpoint, and
the usual round trips (pickle in another process, deepcopy, TorchScript, gradient
checkpointing)."""

from __future__ import annotations

import copy
import pickle
import subprocess
import sys
import warnings

import pytest
import timm
import timm.data
import torch
import torchvision
from torchvision.models.feature_extraction import create_feature_extractor
from typer.testing import CliRunner

import effdsl
import effdsl.hub
from effdsl.cli import app

from parity_full import randomize_batch_norm

MIXED = """
network mixed {
  input 3 x 64
  classes 7
  defaults { se 0.25; drop_path 0.2 }
  stem  conv k3 s2 c16
  stage fused_mbconv e1 k3 s1 c16 x2
  stage fused_mbconv e4 k3 s2 c24 x2
  stage mbconv e4 k5 s2 c40 x2
  stage conv k3 s1 c40 x2 skip
  head  conv k1 c64
  pool avg
  linear
}
"""


@pytest.fixture(scope="module")
def b0():
    torch.manual_seed(0)
    model = effdsl.build("efficientnet_b0", preset="b0")
    randomize_batch_norm(model)
    return model.eval()


@pytest.fixture(scope="module")
def image():
    return torch.randn(2, 3, 128, 128, generator=torch.Generator().manual_seed(5))


def test_stages_and_blocks_are_indexable_callable_modules(b0, image):
    assert len(b0.stages) == 7 and [len(stage) for stage in b0.stages] == [1, 2, 2, 3, 3, 4, 1]
    assert type(b0.stages[3][1]).__name__ == "MBConv"
    assert b0.get_submodule("stages.3.1") is b0.stages[3][1]
    with torch.no_grad():
        logits = b0(image)
        x = b0.stem(image)
        for stage in b0.stages:
            first = stage[0](x)
            x = stage(x)
            if len(stage) == 1:
                assert torch.equal(first, x)  # a stage is its blocks in turn
        assert torch.equal(b0.classifier(b0.head(x)), logits)


def test_forward_hooks_fire_on_stem_stages_blocks_and_head(b0, image):
    calls = []
    names = ["stem", "stages.0", "stages.3", "stages.3.1", "stages.3.1.se", "head", "classifier"]
    handles = [b0.get_submodule(name).register_forward_hook(lambda m, a, out, name=name: calls.append(name))
               for name in names]
    try:
        with torch.no_grad():
            b0(image)
    finally:
        for handle in handles:
            handle.remove()
    assert sorted(calls) == sorted(names)


def test_residual_and_squeeze_excite_happen_inside_the_block(b0):
    block = b0.stages[4][2]
    assert block.residual and block.se is not None
    x = torch.randn(1, 112, 8, 8)
    with torch.no_grad():
        mid = block.dw(block.expand(x))
        gate = block.se.gate(block.se.expand(block.se.act(block.se.reduce(block.se.pool(mid)))))
        assert torch.allclose(block.se(mid.clone()), mid * gate)  # without autograd it scales in place
        assert torch.allclose(block(x), x + block.project(mid * gate), atol=1e-6)
    scaled = block.se(mid.requires_grad_())  # with autograd, out of place
    scaled.sum().backward()
    assert mid.grad is not None and not torch.equal(scaled.detach(), mid.detach())


def test_feature_extraction_by_stage_name_gives_the_post_residual_output(b0, image):
    extractor = create_feature_extractor(b0, {"stages.1": "s1", "stages.4": "s4"})
    block = create_feature_extractor(b0, {"stages.4.2": "b42"})  # the last block: the stage's output
    with torch.no_grad():
        out = extractor(image)
        x = b0.stages[1](b0.stages[0](b0.stem(image)))
        assert torch.equal(out["s1"], x)
        for stage in b0.stages[2:5]:
            x = stage(x)
        assert torch.equal(out["s4"], x) and torch.equal(block(image)["b42"], x)


def test_repr_names_block_kinds_and_numbers():
    model = effdsl.build(MIXED, device="meta")
    text = str(model)
    assert "(0): FusedMBConv(k3 s1 e1 16->16, se 0.25, silu, residual)\n" in text  # rate 0: no stochastic depth
    assert "(1): FusedMBConv(k3 s1 e1 16->16, se 0.25, silu, residual, drop_path 0.025)" in text
    assert "FusedMBConv(k3 s2 e4 16->24, se 0.25, silu)" in text
    assert "MBConv(k5 s2 e4 24->40, se 0.25, silu)" in text
    assert "ConvBlock(k3 s1 40->40, silu, residual, drop_path 0.175)" in text
    assert model.stages[0][0].drop_path is None and model.stages[0][1].drop_path.p == 0.025
    assert "Module(" not in text
    b0 = effdsl.build("efficientnet_b0", preset="b0", device="meta")
    assert repr(b0.stages[2][0]) == "MBConv(k5 s2 e6 24->40, se 0.25, silu)"
    assert len(str(b0).splitlines()) < 60


@pytest.mark.parametrize("preset, size, features, crop", [("b0", 224, 1280, 0.875), ("b3", 300, 1536, 0.9375)])
def test_timm_interface_and_data_config(preset, size, features, crop):
    model = effdsl.build("efficientnet_b0", preset=preset).eval()
    assert (model.num_classes, model.num_features, model.head_hidden_size) == (1000, features, features)
    assert model.get_classifier() is model.classifier
    assert timm.data.resolve_data_config(model=model) == {
        "input_size": (3, size, size), "interpolation": "bicubic", "mean": (0.485, 0.456, 0.406),
        "std": (0.229, 0.224, 0.225), "crop_pct": crop, "crop_mode": "center"}
    assert model.default_cfg is model.pretrained_cfg and model.pretrained_cfg["first_conv"] == "stem.conv"
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        last = model.forward_features(x)
        assert last.shape == (1, features, 2, 2)
        assert torch.equal(model.forward_head(last), model(x))
        assert model.forward_head(last, pre_logits=True).shape == (1, features)
    groups = model.group_matcher()
    assert set(groups) == {"stem", "blocks"}


def test_test_resolution_of_a_preset():
    b2 = effdsl.build("efficientnet_b0", preset="b2", device="meta")
    assert timm.data.resolve_data_config(model=b2)["input_size"] == (3, 260, 260)
    assert timm.data.resolve_data_config(model=b2, use_test_size=True)["input_size"] == (3, 288, 288)
    grey = effdsl.build("efficientnet_b0", in_chans=1, device="meta")
    assert grey.pretrained_cfg["mean"] == (0.449,) and grey.pretrained_cfg["input_size"] == (1, 224, 224)


def test_reset_classifier(b0, image):
    model = copy.deepcopy(b0)
    model.reset_classifier(10)
    assert model.classifier.out_features == 10 and model.num_classes == 10
    with torch.no_grad():
        assert model(image).shape == (2, 10)
        model.reset_classifier(0, global_pool="max")
        pooled = model(image)
        assert pooled.shape == (2, 1280)
        assert torch.equal(pooled, model.forward_features(image).amax((2, 3)))


def test_grad_checkpointing_recomputes_stages_with_the_same_gradients(image):
    torch.manual_seed(0)
    model = effdsl.build("efficientnet_b0", preset="b0", drop_rate=0.0, drop_path_rate=0.0).eval()
    x = image[:1, :, :64, :64]

    def gradients():
        model.zero_grad()
        model(x).square().sum().backward()
        return [p.grad.clone() for p in model.parameters()]

    runs = []
    model.stages[2].register_forward_pre_hook(lambda *args: runs.append(1))
    plain = gradients()
    assert len(runs) == 1
    model.set_grad_checkpointing()
    checkpointed = gradients()
    assert len(runs) == 3  # forward, then again during the backward pass
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(plain, checkpointed, strict=True))


def test_features_only_reductions_out_indices_and_feature_info(b0, image):
    backbone = effdsl.build("efficientnet_b0", preset="b0", features_only=True)
    backbone.load_state_dict(b0.state_dict(), strict=False)
    backbone.eval()
    info = backbone.feature_info
    assert info.reduction() == [2, 4, 8, 16, 32] and len(info) == 5
    assert info.channels() == backbone.out_channels == [16, 24, 40, 112, 320]
    assert [d["module"] for d in info] == ["stages.0", "stages.1", "stages.2", "stages.4", "stages.6"]
    assert info.get_dicts(keys=["num_chs"], idx=1) == {"num_chs": 24}
    with torch.no_grad():
        maps = backbone(image)
        assert [m.shape[-1] for m in maps] == [64, 32, 16, 8, 4]
        assert all(torch.equal(a, b) for a, b in zip(maps, b0.feature_maps(image), strict=True))
        x = b0.stem(image)
        for stage in b0.stages[:5]:
            x = stage(x)
        assert torch.equal(maps[3], x)  # the map at reduction 16 is stage 5's output, after the residual
    picked = effdsl.build("efficientnet_b0", preset="b0", features_only=True, out_indices=(1, -2))
    assert picked.out_channels == [24, 112] and picked.feature_info.reduction() == [4, 16]
    assert len(picked.stages) == 5  # the stages after the last map asked for are left out
    assert not any(key.startswith(("stages.5", "head", "classifier")) for key in picked.state_dict())
    with pytest.raises(effdsl.EffdslError) as info:
        effdsl.build("efficientnet_b0", features_only=True, out_indices=(5,))
    assert info.value.diagnostics[0].code == "E402" and "there are 5" in str(info.value)


def test_feature_maps_include_the_stem_when_it_has_a_reduction_of_its_own():
    net = "network n { input 3 x 64; classes 2; stem conv k3 s2 c16; stage mbconv e4 k3 s2 c24; pool avg; linear }"
    backbone = effdsl.build(net, features_only=True, device="meta")
    assert backbone.feature_info.module_name() == ["stem", "stages.0"]
    assert backbone.feature_info.reduction() == [2, 4]


def test_weights_from_a_state_dict_and_a_ddp_checkpoint(tmp_path, image):
    reference = torchvision.models.efficientnet_b0()
    randomize_batch_norm(reference)
    reference.eval()
    path = tmp_path / "ddp.pt"
    torch.save({"state_dict": {"module." + k: v for k, v in reference.state_dict().items()}}, path)
    from_dict = effdsl.build("efficientnet_b0", preset="b0", weights=reference.state_dict()).eval()
    with pytest.warns(UserWarning, match="'module.'"):
        from_ddp = effdsl.build("efficientnet_b0", preset="b0", weights=path).eval()
    with torch.no_grad():
        expected = reference(image)
        assert torch.equal(from_dict(image), expected) and torch.equal(from_ddp(image), expected)
    result = CliRunner().invoke(app, ["compile", "efficientnet_b0", "--weights", str(path)])
    assert result.exit_code == 0, result.output
    assert "loaded 360 tensors from a torchvision checkpoint (prefix 'module.' of every key removed)" in result.stderr


def test_pickle_in_a_fresh_process_deepcopy_and_torchscript(b0, image, tmp_path):
    with torch.no_grad():
        expected = b0(image)
        assert torch.equal(copy.deepcopy(b0)(image), expected)
        assert torch.equal(pickle.loads(pickle.dumps(b0))(image), expected)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.jit is deprecated in favour of torch.export
            scripted = torch.jit.script(b0)
        assert torch.equal(scripted(image), expected)
    torch.save({"model": b0, "image": image, "expected": expected}, tmp_path / "whole.pt")
    # the same number of threads: a conv's result may depend on how its work is split
    code = ("import torch, sys; torch.set_num_threads(int(sys.argv[2])); "
            "d = torch.load(sys.argv[1], weights_only=False); m = d['model']; "
            "assert type(m).__name__ == 'EfficientnetB0' and type(m.stages[0][0]).__name__ == 'MBConv'; "
            "assert torch.equal(m(d['image']), d['expected']); print('ok')")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "whole.pt"), str(torch.get_num_threads())],
                         capture_output=True, text=True, check=False)
    assert out.stdout.strip() == "ok", out.stderr[-2000:]


def test_timm_create_model_reaches_the_built_in_networks(tmp_path):
    names = effdsl.hub.register_timm_models()
    assert names == effdsl.hub.register_timm_models()  # registering twice is harmless
    assert {"effdsl_efficientnet_b0", "effdsl_efficientnet_b7", "effdsl_tf_efficientnet_b3"} <= set(names)
    assert "effdsl_efficientnet_b3" in timm.list_models("effdsl_*")
    model = timm.create_model("effdsl_efficientnet_b3", num_classes=10, drop_path_rate=0.1)
    assert type(model).__name__ == "EfficientnetB0" and model.num_classes == 10
    assert timm.data.resolve_data_config(model=model)["input_size"] == (3, 300, 300)
    features = timm.create_model("effdsl_efficientnet_b0", features_only=True, out_indices=(2, 3, 4))
    assert features.feature_info.channels() == [40, 112, 320]
    with pytest.raises(ValueError, match="pretrained_cfg_overlay"):
        timm.create_model("effdsl_efficientnet_b0", pretrained=True)
    reference = torchvision.models.efficientnet_b0().eval()
    torch.save(reference.state_dict(), tmp_path / "b0.pt")
    loaded = timm.create_model("effdsl_efficientnet_b0", pretrained=True,
                               pretrained_cfg_overlay={"file": str(tmp_path / "b0.pt")}).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(loaded(x), reference(x))
