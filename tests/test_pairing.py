"""Weight import by structure: a checkpoint's tensors are paired with the network's by order,
kind and shape, never by translating names (effdsl/backends/torch/pairing.py)."""

from __future__ import annotations

import pytest
import torch

import effdsl
from effdsl.backends.torch.pairing import Layer, block_of, layers_of, natural_key, pair

TINY = """network tiny {
  input 3 x 32
  classes 10
  stem conv k3 s2 c16
  stage mbconv e4 k3 c16 x2
  stage mbconv e6 k3 s2 c24 x1 se0.25
  head conv k1 c64
  pool avg
  linear
}
"""


def _conv(out_ch: int, in_ch: int, k: int = 1, bias: bool = False) -> dict[str, tuple[int, ...]]:
    return {"weight": (out_ch, in_ch, k, k), **({"bias": (out_ch,)} if bias else {})}


def _bn(ch: int) -> dict[str, tuple[int, ...]]:
    return {"weight": (ch,), "bias": (ch,), "running_mean": (ch,), "running_var": (ch,), "num_batches_tracked": ()}


def _state(layers: list[tuple[str, dict[str, tuple[int, ...]]]]) -> dict[str, tuple[int, ...]]:
    return {f"{path}.{attr}": shape for path, attrs in layers for attr, shape in attrs.items()}


# One inverted residual in effdsl's layout and in timm's, whose keys a safetensors file sorts.
OURS = _state([("stem.conv", _conv(16, 3, 3)), ("stem.bn", _bn(16)),
               ("stages.0.0.expand.conv", _conv(64, 16)), ("stages.0.0.expand.bn", _bn(64)),
               ("stages.0.0.dw.conv", {"weight": (64, 1, 3, 3)}), ("stages.0.0.dw.bn", _bn(64)),
               ("stages.0.0.se.reduce", _conv(4, 64, bias=True)), ("stages.0.0.se.expand", _conv(64, 4, bias=True)),
               ("stages.0.0.project.conv", _conv(16, 64)), ("stages.0.0.project.bn", _bn(16)),
               ("head.conv", _conv(64, 16)), ("head.bn", _bn(64)),
               ("classifier", {"weight": (10, 64), "bias": (10,)})])
TIMM = _state([("conv_stem", _conv(16, 3, 3)), ("bn1", _bn(16)),
               ("blocks.0.0.conv_pw", _conv(64, 16)), ("blocks.0.0.bn1", _bn(64)),
               ("blocks.0.0.conv_dw", {"weight": (64, 1, 3, 3)}), ("blocks.0.0.bn2", _bn(64)),
               ("blocks.0.0.se.conv_reduce", _conv(4, 64, bias=True)),
               ("blocks.0.0.se.conv_expand", _conv(64, 4, bias=True)),
               ("blocks.0.0.conv_pwl", _conv(16, 64)), ("blocks.0.0.bn3", _bn(16)),
               ("conv_head", _conv(64, 16)), ("bn2", _bn(64)),
               ("classifier", {"weight": (10, 64), "bias": (10,)})])
EXPECTED = {"stem.bn.weight": "bn1.weight", "stages.0.0.expand.bn.weight": "blocks.0.0.bn1.weight",
            "stages.0.0.dw.bn.running_var": "blocks.0.0.bn2.running_var",
            "stages.0.0.dw.conv.weight": "blocks.0.0.conv_dw.weight",
            "stages.0.0.expand.conv.weight": "blocks.0.0.conv_pw.weight",
            "stages.0.0.se.reduce.bias": "blocks.0.0.se.conv_reduce.bias",
            "head.bn.weight": "bn2.weight", "classifier.weight": "classifier.weight"}


@pytest.mark.parametrize("order", ["as saved", "sorted", "reversed"])
def test_timm_layout_pairs_in_any_key_order(order):
    keys = {"as saved": list(TIMM), "sorted": sorted(TIMM), "reversed": list(reversed(TIMM))}[order]
    result = pair({k: TIMM[k] for k in keys}, OURS)
    assert result.problems == []
    assert len(result.loaded) == len(OURS)
    assert {k: result.loaded[k] for k in EXPECTED} == EXPECTED
    assert result.natural == (order != "as saved")  # re-sorted keys are put back in running order


def test_the_running_order_is_rebuilt_from_module_paths():
    paths = ["classifier", "conv_head", "bn2", "blocks.10.0.bn1", "blocks.2.0.conv_dw", "blocks.2.0.bn10",
             "blocks.2.0.bn2", "bn1", "conv_stem"]
    assert sorted(paths, key=natural_key) == ["conv_stem", "bn1", "blocks.2.0.bn2", "blocks.2.0.bn10",
                                              "blocks.2.0.conv_dw", "blocks.10.0.bn1", "conv_head", "bn2",
                                              "classifier"]
    assert [block_of(p) for p in ("blocks.1.0.se.conv_reduce", "features.1.0.block.2.fc1", "conv_stem")] == \
        ["blocks.1.0", "features.1.0.block.2", ""]


def test_layer_kinds_come_from_attributes_and_dimensions():
    kinds = {layer.path: layer.kind for layer in layers_of(_state([
        ("a", _conv(8, 3, 3)), ("b", _bn(8)), ("c", {"weight": (10, 8), "bias": (10,)}),
        ("d", {"weight": (8,), "bias": (8,)}),                      # a layer norm: no running statistics
        ("e", {"running_mean": (8,), "running_var": (8,)}),         # a batch norm without affine parameters
        ("f", {"weight": (8, 3, 3, 3), "scale": (8,)})]))}
    assert kinds == {"a": "conv", "b": "bn", "c": "linear", "d": "other", "e": "bn", "f": "other"}
    assert Layer("x", (("weight", (8, 3, 3, 3)),), ("x.weight",)).signature == ("conv", (("weight", (8, 3, 3, 3)),))


def test_an_extra_block_is_reported_where_it_is():
    # the checkpoint has a second block (e1: dw, bn, project, bn) after the first
    extra = _state([("blocks.0.1.conv_dw", {"weight": (16, 1, 3, 3)}), ("blocks.0.1.bn1", _bn(16)),
                    ("blocks.0.1.conv_pw", _conv(16, 16)), ("blocks.0.1.bn2", _bn(16))])
    keys = list(TIMM)
    at = keys.index("conv_head.weight")
    deeper = {k: TIMM[k] for k in keys[:at]} | extra | {k: TIMM[k] for k in keys[at:]}
    result = pair(deeper, OURS)
    assert not result.complete and len(result.loaded) == len(OURS)
    first = result.problems[0]
    assert (first.kind, first.theirs) == ("extra", "blocks.0.1.conv_dw.weight")
    assert first.near == "stages.0.0.project.bn.weight"  # where the network is when the extra block comes
    assert {p.theirs for p in result.problems} == set(extra)


# ---------------------------------------------------------------- through load_weights


@pytest.fixture(scope="module")
def tiny():
    return effdsl.compile_spec(TINY)


def test_names_do_not_matter_order_and_shapes_do(tiny):
    source = tiny.build().state_dict()
    paths = list(dict.fromkeys(k.rsplit(".", 1)[0] for k in source))  # module paths in running order
    # names that say nothing, numbered backwards: sorting them would reverse the network
    renamed = {f"net.{999 - paths.index(k.rsplit('.', 1)[0])}.{k.rsplit('.', 1)[1]}": v for k, v in source.items()}
    module = tiny.build()
    report = tiny.load_weights(module, renamed)
    assert (report.origin, report.loaded, report.skipped, report.unused) == ("other", len(source), [], [])
    assert all(torch.equal(module.state_dict()[k], v) for k, v in source.items())


def _other_network_checkpoint() -> dict[str, torch.Tensor]:
    other = effdsl.build(TINY.replace("c16", "c24").replace("x2", "x3"))
    return other.state_dict()


def test_another_networks_checkpoint_is_not_recognised_and_says_what_paired(tiny):
    module = tiny.build()
    before = {k: v.clone() for k, v in module.state_dict().items()}
    with pytest.raises(effdsl.EffdslError) as info:
        tiny.load_weights(module, {f"model.{k}": v for k, v in _other_network_checkpoint().items()})
    (diag,) = info.value.diagnostics
    assert diag.code == "E502"
    assert diag.message.startswith("the checkpoint does not fit this network's layout: ")
    total = len(module.state_dict())
    assert f"pair with one of the network's {total} by kind and shape, in order" in diag.message
    assert "checkpoint tensors unpaired, the first 'model.stem.conv.weight' (24, 3, 3, 3)" in diag.help
    assert "network tensors without one, the first 'stem.conv.weight' (16, 3, 3, 3)" in diag.help
    assert all(torch.equal(before[k], v) for k, v in module.state_dict().items())


def test_a_partial_load_of_a_small_fraction_is_refused_unless_asked(tiny, tmp_path):
    state = {f"model.{k}": v for k, v in _other_network_checkpoint().items()}
    module = tiny.build()
    with pytest.raises(effdsl.EffdslError) as info:
        tiny.load_weights(module, state, strict=False)
    (diag,) = info.value.diagnostics
    assert diag.code == "E502" and "a partial load would fill only" in diag.message
    assert "less than the 50% asked for" in diag.message and "min_fraction=0" in diag.help
    report = tiny.load_weights(module, state, strict=False, min_fraction=0)
    assert 0 < report.loaded < len(module.state_dict()) / 2 and report.unused
    with pytest.raises(effdsl.EffdslError) as info:
        tiny.load_weights(module, state, strict=False, min_fraction=2)
    assert info.value.diagnostics[0].code == "E402"

    from typer.testing import CliRunner

    from effdsl.cli import app

    spec, path = tmp_path / "tiny.eff", tmp_path / "other.pt"
    spec.write_text(TINY, encoding="utf-8")
    torch.save(state, path)
    refused = CliRunner().invoke(app, ["compile", str(spec), "--weights", str(path), "--partial"])
    assert refused.exit_code == 2 and "error[E502]" in refused.stderr and "--min-fraction 0" in refused.stderr
    loaded = CliRunner().invoke(app, ["compile", str(spec), "--weights", str(path), "--partial", "--min-fraction", "0"])
    assert loaded.exit_code == 0, loaded.output
    assert f"loaded {report.loaded} tensors from the checkpoint; left out: stem.conv.weight" in loaded.stderr
