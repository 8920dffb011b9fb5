"""Exports (effdsl.export): each format is loaded back and computes what the built module does.

For efficientnet_b0 and tf_efficientnet_b0 (TensorFlow 'same' padding, eps 1e-3) at
preset b0: the generated ``.py`` file (imported, its class loads the built state_dict
strictly), a ``torch.export`` program, an ONNX model run with onnxruntime, and a
safetensors file. The batch norms get random statistics first, so that a wrong eps, a
wrong padding or a missing layer shows in the logits (a freshly initialized network
outputs values near zero).
"""

from __future__ import annotations

import ast
import importlib.util
import sys

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from safetensors.torch import load_file

import effdsl
from effdsl.export import python_source, save_onnx, save_pt2, save_weights

SPECS = ["efficientnet_b0", "tf_efficientnet_b0"]
BLOCK_CLASSES = {"StochasticDepth", "ConvBNAct", "SqueezeExcite", "MBConv", "Head", "FeatureInfo", "Network"}
MAX_LINE = 110

# Every block kind, per-stage batch norm and activation (act none included), no residual
# where noskip, a strided kxk head, max pooling, 'same' padding and 4 input channels.
MIXED = """
network mixed {
  input 4 x 64
  classes 7
  defaults { se 0.25; drop_path 0.3; dropout 0.1; bn eps 1e-3 momentum 0.01; padding same }
  stem  conv k3 s2 c16 act relu6
  stage fused_mbconv e1 k3 s1 c16 x2
  stage fused_mbconv e4 k3 s2 c24 x2 se0 bn eps 2e-5 momentum 0.3
  stage mbconv e4.5 k5 s2 c40 x3 act hardswish
  stage mbconv e1 k3 s1 c40 x2 noskip act none
  stage conv k3 s1 c40 x2 skip act relu
  stage conv k3 s2 c48 act gelu
  head  conv k3 s2 c64 act sigmoid
  pool max
  dropout
  linear
}
"""
HEADLESS = ("network headless { input 3 x 32; classes 5; stem conv k3 s2 c16; stage mbconv e4 k3 c16 x2; "
            "pool avg; linear }")


def _randomize(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random batch-norm statistics and affine parameters, so that the logits are O(1)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(n, generator=gen) * 0.5 + 0.75)
                m.weight.copy_(torch.rand(n, generator=gen) * 0.5 + 0.75)
                m.bias.copy_(torch.randn(n, generator=gen) * 0.1)
    return module.eval()


def _max_diff(a, b) -> float:
    return float(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)).max())


def _import(path, class_name: str):
    spec = importlib.util.spec_from_file_location(f"exported_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules.pop(spec.name, None)
    return getattr(module, class_name)


@pytest.fixture(scope="module", params=SPECS)
def network(request):
    """(spec name, compiled b0, built module with random batch-norm statistics, input, logits)."""
    compiled = effdsl.compile_spec(request.param, preset="b0")
    module = _randomize(compiled.build())
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        logits = module(x)
    assert logits.abs().max() > 0.1  # not a vanishing signal
    return request.param, compiled, module, x, logits


def _generated(compiled, module, tmp_path):
    path = tmp_path / f"{compiled.spec.name}.py"
    path.write_text(python_source(compiled.graph), encoding="utf-8")
    return _import(path, type(module).__name__)


def test_python_source_loads_and_matches(network, tmp_path):
    _, compiled, module, x, logits = network
    net = _generated(compiled, module, tmp_path)()
    expected = module.state_dict()
    got = net.state_dict()
    assert list(got) == list(expected)  # same names in the same order
    assert [t.shape for t in got.values()] == [t.shape for t in expected.values()]
    net.load_state_dict(expected, strict=True)
    net.eval()
    with torch.no_grad():
        assert _max_diff(net(x), logits) <= 1e-6
        assert _max_diff(net.forward_features(x), module.forward_features(x)) <= 1e-6
        features = compiled.build(features_only=True)
        features.load_state_dict(expected, strict=False)  # the backbone's tensors
        maps = features.eval()(x)
        assert len(maps) == 5  # one per reduction: 2, 4, 8, 16, 32
        for ours, theirs in zip(net.feature_maps(x), maps, strict=True):
            assert _max_diff(ours, theirs) <= 1e-6
    # batch-norm settings and stochastic-depth rates are the built module's, layer by layer
    built = dict(module.named_modules())
    for name, m in net.named_modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            assert (m.eps, m.momentum) == (built[name].eps, built[name].momentum), name
        elif type(m).__name__ == "StochasticDepth":
            assert m.p == built[name].p, name


def test_python_source_reads_like_code(network):
    spec, compiled, module, _, _ = network
    source = python_source(compiled.graph)
    tree = ast.parse(source)
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module.split(".")[0])
    assert imported == {"torch", "math"}
    classes = [node.name for node in tree.body if isinstance(node, ast.ClassDef)]
    expected = BLOCK_CLASSES | {type(module).__name__} | ({"Conv2dSame"} if spec.startswith("tf_") else set())
    assert sorted(classes) == sorted(expected)  # one class per block kind used, and the network's
    assert max(len(line) for line in source.splitlines()) <= MAX_LINE
    # the blocks are a table looped over, not one statement per operator
    assert "BLOCKS = [" in source
    assert source.count("MBConv(in_ch") == 1
    assert "stages.1.0" not in source


def test_deeper_member_has_the_same_code():
    b0 = python_source(effdsl.compile_spec("efficientnet_b0", preset="b0").graph)
    b7 = python_source(effdsl.compile_spec("efficientnet_b0", preset="b7").graph)
    assert len(b7.splitlines()) < len(b0.splitlines()) + 30
    assert "(0.001, 0.01)" in b7 and "(0.001, 0.01)" not in b0  # b7's batch norm is TF's


@pytest.mark.parametrize("text", [MIXED, HEADLESS], ids=["mixed", "headless"])
def test_python_source_every_block_kind(text, tmp_path):
    compiled = effdsl.compile_spec(text)
    module = _randomize(compiled.build())
    source = python_source(compiled.graph)
    classes = {node.name for node in ast.parse(source).body if isinstance(node, ast.ClassDef)}
    if text is MIXED:
        assert {"MBConv", "FusedMBConv", "ConvBlock", "Conv2dSame"} <= classes
        assert "nn.AdaptiveMaxPool2d(1)" in source and "(2e-05, 0.3)" in source
    else:
        assert not classes & {"FusedMBConv", "ConvBlock", "Conv2dSame", "SqueezeExcite"}
    assert max(len(line) for line in source.splitlines()) <= MAX_LINE
    path = tmp_path / "net.py"
    path.write_text(source, encoding="utf-8")
    net = _import(path, type(module).__name__)()
    assert list(net.state_dict()) == list(module.state_dict())
    net.load_state_dict(module.state_dict(), strict=True)
    plan = compiled.graph.plan
    x = torch.randn(2, plan.in_ch, plan.resolution, plan.resolution)
    with torch.no_grad():
        assert _max_diff(net.eval()(x), module(x)) <= 1e-6


@pytest.mark.slow
def test_pt2_round_trip(network, tmp_path):
    _, _, module, x, logits = network
    path = tmp_path / "model.pt2"
    module.train()
    save_pt2(module, x, path)
    assert module.training  # the caller's mode is restored
    module.eval()
    loaded = torch.export.load(str(path)).module()
    with torch.no_grad():
        assert _max_diff(loaded(x), logits) <= 1e-6


@pytest.mark.slow
def test_onnx_runs_in_onnxruntime(network, tmp_path):
    _, _, module, x, logits = network
    path = tmp_path / "model.onnx"
    save_onnx(module, x, path)
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    assert model.opset_import[0].version >= 17
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["image"]
    (out,) = session.run(None, {"image": x.numpy()})
    assert _max_diff(out, logits) <= 1e-4
    batch = torch.randn(3, *x.shape[1:])  # the batch dimension is dynamic
    with torch.no_grad():
        assert _max_diff(session.run(None, {"image": batch.numpy()})[0], module(batch)) <= 1e-4


def test_weights_round_trip(network, tmp_path):
    spec, compiled, module, x, logits = network
    path = tmp_path / "model.safetensors"
    save_weights(module, path)
    tensors = load_file(str(path))
    assert sorted(tensors) == sorted(module.state_dict())  # safetensors stores the names sorted
    fresh = compiled.build()
    fresh.load_state_dict(tensors, strict=True)
    via_build = effdsl.build(spec, preset="b0", weights=path)  # the checkpoint loader reads it too
    with torch.no_grad():
        assert _max_diff(fresh.eval()(x), logits) == 0
        assert _max_diff(via_build.eval()(x), logits) == 0


@pytest.mark.parametrize("name", ["mobilenet_v3_small", "mobilenet_v3_large"])
def test_python_source_of_mobilenet_v3(name, tmp_path):
    # hard-sigmoid gates with ReLU inside, 'then' groups and the hidden layer after pooling
    compiled = effdsl.compile_spec(name)
    module = _randomize(compiled.build())
    source = python_source(compiled.graph)
    assert '"relu", "hardsigmoid")' in source and "HIDDEN = (" in source and "hidden=HIDDEN" in source
    assert max(len(line) for line in source.splitlines()) <= 120  # the squeeze-excite tuples widen the table
    net = _generated(compiled, module, tmp_path)()
    assert list(net.state_dict()) == list(module.state_dict())
    net.load_state_dict(module.state_dict(), strict=True)
    x = torch.randn(2, 3, 96, 96, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert _max_diff(net.eval()(x), module(x)) <= 1e-6


@pytest.mark.slow
def test_onnx_of_mobilenet_v3(tmp_path):
    compiled = effdsl.compile_spec("mobilenet_v3_small")
    module = _randomize(compiled.build())
    x = torch.randn(1, 3, 96, 96, generator=torch.Generator().manual_seed(5))
    path = tmp_path / "v3.onnx"
    save_onnx(module, x, path)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {"image": x.numpy()})
    with torch.no_grad():
        assert _max_diff(out, module(x)) <= 1e-4
