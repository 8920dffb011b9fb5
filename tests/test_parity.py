"""Identical outputs: effdsl loading torchvision / timm weights computes their logits.

CI checks b0..b2 at full resolution and b3..b7 at 128 px (the architecture does not
depend on the input size); `python tests/parity_full.py` checks all eight at full
resolution and writes docs/parity.md.
"""

from __future__ import annotations

import pytest
import torch

import effdsl
from effdsl.diagnostics import EffdslError

from parity_full import RESOLUTION, compare, reference_model

TOLERANCE = 1e-5
CI_RESOLUTION = {p: (r if p in ("b0", "b1", "b2") else 128) for p, r in RESOLUTION.items()}


@pytest.mark.oracle
@pytest.mark.slow
@pytest.mark.parametrize("preset", sorted(RESOLUTION))
def test_torchvision_logits(preset):
    diff, scale = compare("torchvision", preset, CI_RESOLUTION[preset])
    assert scale > 0.05  # the logits are not trivially zero
    assert diff <= TOLERANCE


@pytest.mark.oracle
@pytest.mark.parametrize("source, spec", [("timm", "efficientnet_b0"), ("timm-tf", "tf_efficientnet_b0")])
def test_timm_logits(source, spec):
    diff, scale = compare(source, "b0", 224)
    assert scale > 0.05
    assert diff <= TOLERANCE


@pytest.mark.oracle
def test_tf_weights_need_same_padding(tmp_path):
    """The check is sensitive: TF weights in the symmetric-padding spec give other logits."""
    ref = reference_model("timm-tf", "b0")
    path = tmp_path / "tf.pt"
    torch.save(ref.state_dict(), path)
    wrong = effdsl.build("efficientnet_b0", preset="b0", weights=path).eval()
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert (wrong(x) - ref(x)).abs().max().item() > 1e-3


@pytest.mark.oracle
def test_safetensors_checkpoint(tmp_path):
    from safetensors.torch import save_file

    ref = reference_model("torchvision", "b0")
    path = tmp_path / "b0.safetensors"
    save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, str(path))
    ours = effdsl.build("efficientnet_b0", preset="b0", weights=path).eval()
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert (ours(x) - ref(x)).abs().max().item() <= TOLERANCE


def _load_error(checkpoint_preset: str, tmp_path, **target):
    path = tmp_path / f"{checkpoint_preset}.pt"
    torch.save(reference_model("torchvision", checkpoint_preset).state_dict(), path)
    compiled = effdsl.compile_spec("efficientnet_b0", **target)
    module = compiled.build()
    before = {k: v.clone() for k, v in module.state_dict().items()}
    with pytest.raises(EffdslError) as info:
        compiled.load_weights(module, path)
    assert all(torch.equal(before[k], v) for k, v in module.state_dict().items())  # nothing loaded
    (diag,) = info.value.diagnostics
    assert diag.code == "E503"
    line = compiled.source.text.splitlines()[diag.span.line - 1].strip()
    assert f"{diag.span.line} | " in info.value.render()
    return diag.message, line


@pytest.mark.oracle
def test_deeper_checkpoint_names_the_first_extra_tensor_and_its_stage_line(tmp_path):
    # b2 has two blocks in stage 1 (ceil(1 * 1.2)); b0 has one.
    message, line = _load_error("b2", tmp_path, preset="b0")
    assert message == "checkpoint tensor 'features.1.1.block.0.0.weight' has no layer in this network"
    assert line.startswith("stage mbconv e1 k3 s1 c16")


@pytest.mark.oracle
def test_wider_network_names_the_first_tensor_of_another_shape(tmp_path):
    # width 1.1 keeps stages 1-2 (16, 24) but rounds stage 3's 40 channels up to 48.
    message, line = _load_error("b0", tmp_path, width=1.1, depth=1.0)
    assert message == ("checkpoint tensor 'features.3.0.block.3.0.weight' has shape (40, 144, 1, 1), "
                       "but layer 'stages.2.0.project.conv.weight' expects (48, 144, 1, 1)")
    assert line.startswith("stage mbconv e6 k5 s2 c40")


@pytest.mark.oracle
def test_partial_load_skips_the_classifier_for_other_class_counts(tmp_path):
    ref = reference_model("torchvision", "b0")
    path = tmp_path / "b0.pt"
    torch.save(ref.state_dict(), path)
    compiled = effdsl.compile_spec("efficientnet_b0", preset="b0", num_classes=10)
    module = compiled.build()
    with pytest.raises(EffdslError):
        compiled.load_weights(module, path)  # strict by default
    report = compiled.load_weights(module, path, strict=False)
    assert report.origin == "torchvision"
    assert report.skipped == ["classifier.weight", "classifier.bias"]
    assert torch.equal(module.state_dict()["stem.conv.weight"], ref.state_dict()["features.0.0.weight"])


def test_unreadable_and_unknown_checkpoints(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(EffdslError) as info:
        effdsl.build("efficientnet_b0", weights=junk)
    assert info.value.diagnostics[0].code == "E501"
    other = tmp_path / "other.pt"
    torch.save({"encoder.weight": torch.zeros(3)}, other)
    with pytest.raises(EffdslError) as info:
        effdsl.build("efficientnet_b0", weights=other)
    assert info.value.diagnostics[0].code == "E502"


@pytest.mark.oracle
def test_cli_weights_flag(tmp_path):
    from typer.testing import CliRunner

    from effdsl.cli import app

    path = tmp_path / "b0.pt"
    torch.save(reference_model("torchvision", "b0").state_dict(), path)
    runner = CliRunner()
    ok = runner.invoke(app, ["compile", "efficientnet_b0", "--preset", "b0", "--weights", str(path)])
    assert ok.exit_code == 0, ok.output
    assert "loaded 360 tensors from a torchvision checkpoint" in ok.stderr
    bad = runner.invoke(app, ["compile", "efficientnet_b0", "--preset", "b1", "--weights", str(path)])
    assert bad.exit_code == 2
    assert "error[E503]" in bad.stderr and "Traceback" not in bad.output
    partial = runner.invoke(app, ["compile", "efficientnet_b0", "--num-classes", "10", "--weights", str(path),
                                  "--partial"])
    assert partial.exit_code == 0
    assert "loaded 358 tensors" in partial.stderr and "left out: classifier.weight, classifier.bias" in partial.stderr
