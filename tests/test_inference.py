"""The inference path: IR passes fold batch norm into the convs and drop dropout and stochastic
depth; the inference module computes the training module's logits (eval mode) within
1e-4 x max |logit|, and its exports reproduce them."""

from __future__ import annotations

import ast
import importlib.util
import sys

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from typer.testing import CliRunner

import effdsl
from effdsl.cli import app
from effdsl.diagnostics import InternalError
from effdsl.export import python_source, save_onnx, save_pt2
from effdsl.passes import inference as inference_passes

from parity_full import randomize_batch_norm

RESOLUTION = {"b0": 224, "b1": 160, "b2": 160, "b3": 160}  # the fold does not depend on the input size


def _trained(preset: str, seed: int = 1):
    """A b* module with random weights and random batch-norm statistics, in eval mode."""
    torch.manual_seed(seed)
    module = effdsl.build("efficientnet_b0", preset=preset)
    randomize_batch_norm(module, seed)
    return module.eval()


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return (a - b).abs().max().item() <= 1e-4 * b.abs().max().item()


@pytest.mark.parametrize("preset", sorted(RESOLUTION))
def test_inference_module_gives_the_training_modules_logits(preset):
    trained = _trained(preset)
    fast = effdsl.build("efficientnet_b0", preset=preset, weights=trained.state_dict(), inference=True)
    res = RESOLUTION[preset]
    x = torch.randn(2, 3, res, res, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = trained(x)
        got = fast(x)
    assert expected.abs().max() > 0.05  # the batch norms matter: a wrong fold would show
    assert _close(got, expected)
    assert not fast.training and not any(p.requires_grad for p in fast.parameters())
    assert fast.stem.conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert not any(isinstance(m, (torch.nn.BatchNorm2d, torch.nn.Dropout)) for m in fast.modules())
    assert fast.stem.conv.bias is not None and fast.stages[1][0].project.bn is None


def test_inference_ir_shows_folded_convs_with_bias():
    compiled = effdsl.compile_spec("efficientnet_b0", preset="b0")
    folded = compiled.inference()
    kinds = [op.kind for op in folded.graph.ops()]
    assert "bn" not in kinds and "dropout" not in kinds and "drop_path" not in kinds
    convs = [op for op in compiled.graph.ops() if op.kind in ("conv", "dwconv") and op.part != "se"]
    bns = [op for op in compiled.graph.ops() if op.kind == "bn"]
    assert len(convs) == len(bns) == 1 + 2 + 15 * 3 + 1  # stem, blocks (block 0 has no expansion), head
    # each batch norm's 2 x C parameters become the conv's bias of C
    assert folded.summary.params == compiled.summary.params - sum(op.out_ch for op in bns) == 5_267_540
    assert folded.summary.macs == compiled.summary.macs  # a bias is not a multiply-add
    dump = folded.ir()
    assert dump.splitlines()[0].endswith(" inference")
    assert ("%stem.conv = conv(%input) {k=3, s=2, 3->32, bias, folded %stem.bn} : 3x224x224 -> 32x112x112"
            "  params=896 macs=10838016  @25") in dump
    assert "%stem.act = act(%stem.conv)" in dump and "%classifier = linear(%head.pool)" in dump
    assert compiled.ir() == effdsl.compile_spec("efficientnet_b0", preset="b0").ir()  # the default is untouched
    assert folded.inference() is folded


def test_the_verifier_names_a_broken_inference_pass(monkeypatch):
    real = inference_passes.fold_batch_norm

    def broken(graph):
        out = real(graph)
        name = "stem.conv"
        out.set_op(name, inference_passes.evolve(out.op(name), bias=False))  # folded but no bias
        return out

    monkeypatch.setattr(inference_passes, "fold_batch_norm", broken)
    with pytest.raises(InternalError) as info:
        effdsl.compile_spec("efficientnet_b0").inference()
    assert "fold_batch_norm" in str(info.value) and "stem.conv" in str(info.value)


def _import(path, name):
    spec = importlib.util.spec_from_file_location(f"exported_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules.pop(spec.name, None)
    return getattr(module, name)


@pytest.fixture(scope="module")
def b0_inference():
    trained = _trained("b0")
    compiled = effdsl.compile_spec("efficientnet_b0", preset="b0")
    fast = compiled.build(weights=trained.state_dict(), inference=True)
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        logits = fast(x)
    return compiled, fast, x, logits


def test_python_export_of_the_inference_network(b0_inference, tmp_path):
    compiled, fast, x, logits = b0_inference
    source = python_source(compiled.inference().graph)
    assert "in plain PyTorch, for inference (batch norm folded)" in source
    table = source[source.index("BLOCKS = ["):source.index("]\n", source.index("BLOCKS = ["))]
    assert table.count("None,") == table.count("\n    (") and "(1e-05, 0.1)" not in table  # bn: None per row
    assert "STEM = (32, 3, 2, \"silu\", None)" in source
    path = tmp_path / "folded.py"
    path.write_text(source, encoding="utf-8")
    net = _import(path, type(fast).__name__)()
    assert list(net.state_dict()) == list(fast.state_dict())
    net.load_state_dict(fast.state_dict(), strict=True)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    with torch.no_grad():
        assert _close(net.eval()(x), logits)
    assert {n.name for n in ast.parse(source).body if isinstance(n, ast.ClassDef)} >= {"MBConv", "Network"}


def test_pt2_and_onnx_exports_of_the_inference_module(b0_inference, tmp_path):
    _, fast, x, logits = b0_inference
    save_pt2(fast, x, tmp_path / "folded.pt2")
    program = torch.export.load(str(tmp_path / "folded.pt2")).module()
    with torch.no_grad():
        assert _close(program(x), logits)
    save_onnx(fast, x, tmp_path / "folded.onnx")
    session = onnxruntime.InferenceSession(str(tmp_path / "folded.onnx"), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {"image": x.numpy()})
    assert np.abs(out - logits.numpy()).max() <= 1e-4 * logits.abs().max().item()


def test_inference_backbone():
    trained = _trained("b0")
    backbone = effdsl.build("efficientnet_b0", preset="b0", features_only=True, out_indices=(2, 4))
    backbone.load_state_dict(trained.state_dict(), strict=False)
    backbone.eval()
    fast = effdsl.build("efficientnet_b0", preset="b0", weights=trained.state_dict(), features_only=True,
                        out_indices=(2, 4), inference=True)
    x = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        expected, got = backbone(x), fast(x)
    assert [t.shape[1] for t in got] == fast.out_channels == [40, 320]
    assert all(_close(g, e) for g, e in zip(got, expected, strict=True))


def test_cli_inference(tmp_path):
    runner = CliRunner()
    ir = runner.invoke(app, ["compile", "efficientnet_b0", "--inference", "--emit", "ir"])
    assert ir.exit_code == 0, ir.output
    assert "folded %stages.6.0.project.bn" in ir.stdout and " = bn(" not in ir.stdout
    summary = runner.invoke(app, ["compile", "efficientnet_b0", "--inference"])
    assert "params      5,267,540" in summary.stdout
    py = runner.invoke(app, ["compile", "efficientnet_b0", "--inference", "--emit", "py"])
    assert "for inference (batch norm folded)" in py.stdout
    onnx_path = tmp_path / "b0.onnx"
    out = runner.invoke(app, ["compile", "efficientnet_b0", "--inference", "--emit", "onnx", "-o", str(onnx_path)])
    assert out.exit_code == 0, out.output
    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    names = [t.name for t in onnx.load(str(onnx_path)).graph.initializer]
    assert not any("bn" in name for name in names)
    assert session.run(None, {"image": np.zeros((1, 3, 224, 224), np.float32)})[0].shape == (1, 1000)
