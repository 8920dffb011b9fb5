"""The built-in families, model by model, against torchvision and timm (code no one here wrote).

Every model reachable by its reference name (``effdsl list``) has its reference's parameters
and MACs: in the IR, in the built module (numel, FlopCounterMode) and in the reference
module built here on the meta device, layer by layer. Loading a reference's weights gives
its logits: one member or more of every family from every library that has it, in the
default run, at 96 px (the architecture does not depend on the input size; 96 px keeps
TensorFlow's asymmetric 'same' padding in play); the largest members are marked slow.
"""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import effdsl
from effdsl.language.families import FAMILIES, MODELS
from effdsl.language.resources import builtin_specs

from parity_full import randomize_batch_norm
from reference import MODELS as REFERENCE

NAMES = sorted(MODELS)
# efficientnet_b0..b7 are the presets that test_presets.py and test_torchvision_oracle.py check module
# by module and layer by layer; the module-level tests here take every other model.
MODULE_NAMES = [n for n in NAMES if not (n.startswith("efficientnet_b") and n[-1] in "01234567")]
BIG = {"efficientnet_b6", "efficientnet_b7", "efficientnet_b8", "tf_efficientnet_b6", "tf_efficientnet_b7",
       "tf_efficientnet_b8", "efficientnet_v2_m", "efficientnet_v2_l"}


def _maybe_slow(names):
    return [pytest.param(n, marks=pytest.mark.slow) if n in BIG else n for n in names]


def reference_model(name: str, device: str = "cpu") -> torch.nn.Module:
    library = REFERENCE[name][0]
    torch.manual_seed(0)
    with torch.device(device):
        if library == "torchvision":
            import torchvision

            return getattr(torchvision.models, name)()
        import timm

        return timm.create_model(name, pretrained=False)


# ---------------------------------------------------------------- the table of names


def test_every_model_has_reference_numbers_and_a_shipped_spec():
    assert set(MODELS) == set(REFERENCE)
    specs = builtin_specs()
    for model in MODELS.values():
        assert model.spec in specs
        assert REFERENCE[model.name][0] in model.source  # the library the numbers come from
    assert sorted(m.name for f in FAMILIES for m in f.models) == NAMES  # no name twice


@pytest.mark.parametrize("name", NAMES)
def test_ir_params_and_macs_are_the_references(name):
    _, params, macs, resolution = REFERENCE[name]
    summary = effdsl.compile_spec(name).summary
    assert (summary.params, summary.macs, summary.resolution) == (params, macs, resolution)
    assert summary.preset == MODELS[name].preset or name in builtin_specs()


@pytest.mark.parametrize("name", sorted(n for n in MODELS if n in builtin_specs()))
def test_a_spec_name_is_its_models_baseline(name):
    # `effdsl compile efficientnet_b0` compiles the spec's baseline; the table says it is preset b0
    model = MODELS[name]
    baseline = effdsl.compile_spec(name)
    member = effdsl.compile_spec(model.spec, preset=model.preset) if model.preset else baseline
    assert baseline.summary.preset is None
    assert baseline.ir().splitlines()[1:] == member.ir().splitlines()[1:]  # the same operators, the same cost


@pytest.mark.parametrize("name", _maybe_slow(MODULE_NAMES))
def test_module_params_and_flop_counter_are_the_references(name):
    _, params, macs, resolution = REFERENCE[name]
    module = effdsl.build(name, device="meta").eval()
    assert sum(p.numel() for p in module.parameters()) == params
    with FlopCounterMode(display=False) as counter:
        out = module(torch.empty(1, 3, resolution, resolution, device="meta"))
    assert out.shape == (1, 1000)
    assert counter.get_total_flops() // 2 == macs


def test_a_name_chooses_its_preset_and_nothing_else():
    b3 = effdsl.compile_spec("efficientnet_b3").summary
    assert (b3.name, b3.preset, b3.width_mult, b3.depth_mult) == ("efficientnet_b0", "b3", 1.2, 1.4)
    assert effdsl.compile_spec("efficientnet_b3", preset="b3").summary.params == b3.params
    for choice in ({"preset": "b4"}, {"phi": 1.0}, {"resolution": 128}):
        with pytest.raises(effdsl.EffdslError) as info:
            effdsl.compile_spec("efficientnet_b3", **choice)
        (diag,) = info.value.diagnostics
        assert diag.code == "E401" and "stands for the built-in spec 'efficientnet_b0' with preset=b3" in diag.message
    # a spec's own name is its baseline: every member choice stays open
    assert effdsl.compile_spec("efficientnet_v2_s", resolution=128).summary.resolution == 128


def test_unknown_model_names_get_the_nearest_one():
    for typo, nearest in (("mnasnet0_50", "mnasnet0_5"), ("efficientnet_v2_xl", "efficientnet_v2_l"),
                          ("tf_efficientnet_v2_s", "tf_efficientnetv2_s"), ("mobilenetv2", "mobilenet_v2")):
        with pytest.raises(effdsl.EffdslError) as info:
            effdsl.compile_spec(typo)
        (diag,) = info.value.diagnostics
        assert diag.code == "E110" and diag.help == f"did you mean '{nearest}'?", (typo, diag.help)


def test_cli_list_shows_every_model_with_its_numbers():
    from typer.testing import CliRunner

    from effdsl.cli import app

    result = CliRunner().invoke(app, ["list"])
    assert result.exit_code == 0, result.output
    header, *lines = result.stdout.splitlines()
    assert header.split() == ["family", "model", "spec", "preset", "res", "params", "MACs", "reference"]
    rows = {line.split()[1]: line.split() for line in lines}
    assert set(rows) == set(MODELS)
    for name, row in rows.items():
        _, params, macs, resolution = REFERENCE[name]
        assert row[4:7] == [str(resolution), f"{params:,}", f"{macs:,}"]
    files = CliRunner().invoke(app, ["list", "--files"]).stdout
    assert dict(line.split("\t") for line in files.splitlines()).keys() == builtin_specs().keys()


def test_the_table_in_the_docs_is_the_compilers_and_the_references():
    from conftest import ROOT

    rows = [line.split("|")[1:-1] for line in (ROOT / "docs" / "families.md").read_text().splitlines()
            if line.startswith("| `")]
    table = {cells[0].strip(" `"): [c.strip(" `") for c in cells] for cells in rows if len(cells) == 9}
    assert set(table) == set(MODELS)
    for name, (_, library, spec, preset, res, params, ref_params, macs, ref_macs) in table.items():
        summary = effdsl.compile_spec(name).summary
        _, reference_params, reference_macs, resolution = REFERENCE[name]
        assert (spec, preset) == (MODELS[name].spec, MODELS[name].preset or "-")
        assert library == MODELS[name].source
        assert (int(res), int(params.replace(",", "")), int(macs.replace(",", ""))) == \
            (summary.resolution, summary.params, summary.macs)
        assert (int(ref_params.replace(",", "")), int(ref_macs.replace(",", ""))) == (reference_params, reference_macs)


# ---------------------------------------------------------------- layer by layer against the reference


def _layers(module: torch.nn.Module):
    """Every conv (in, out, kernel, stride, groups, bias, padding: 'same' or its static size),
    batch norm (channels, eps) and linear layer (in, out), in registration order."""
    rows = []
    for m in module.modules():
        if isinstance(m, torch.nn.Conv2d):
            padding = "same" if type(m).__name__ == "Conv2dSame" else m.padding
            rows.append(("conv", m.in_channels, m.out_channels, m.kernel_size, m.stride, m.groups, m.bias is not None,
                         padding))
        elif isinstance(m, torch.nn.BatchNorm2d):
            rows.append(("bn", m.num_features, m.eps))
        elif isinstance(m, torch.nn.Linear):
            rows.append(("linear", m.in_features, m.out_features))
    return rows


@pytest.mark.oracle
@pytest.mark.parametrize("name", _maybe_slow(MODULE_NAMES))
def test_layers_and_state_dict_match_the_reference(name):
    reference = reference_model(name, device="meta")
    ours = effdsl.build(name, device="meta")
    assert sum(p.numel() for p in reference.parameters()) == REFERENCE[name][1]
    assert _layers(ours) == _layers(reference)
    theirs = reference.state_dict()
    assert [tuple(t.shape) for t in ours.state_dict().values()] == [tuple(t.shape) for t in theirs.values()]


@pytest.mark.oracle
@pytest.mark.parametrize("width", [0.5, 0.75, 1.25])
@pytest.mark.parametrize("spec, reference", [
    ("mobilenet_v2", lambda w: __import__("torchvision").models.mobilenet_v2(width_mult=w)),
    ("mobilenet_v3_large", lambda w: __import__("torchvision").models.mobilenet_v3_large(width_mult=w)),
    ("mobilenet_v3_small", lambda w: __import__("torchvision").models.mobilenet_v3_small(width_mult=w)),
    ("mnasnet1_0", lambda w: __import__("torchvision").models.MNASNet(w)),
])
def test_the_width_flag_is_torchvisions_width_mult(spec, reference, width):
    # the spec's width rule is the family's own: any width, not only the named members
    with torch.device("meta"):
        theirs = reference(width)
    ours = effdsl.build(spec, width=width, depth=1.0, resolution=224, device="meta")
    assert _layers(ours) == _layers(theirs)
    summary = effdsl.compile_spec(spec, width=width, depth=1.0, resolution=224).summary
    assert summary.params == sum(p.numel() for p in theirs.parameters())
    with FlopCounterMode(display=False) as counter:
        theirs.eval()(torch.empty(1, 3, 224, 224, device="meta"))
    assert summary.macs == counter.get_total_flops() // 2


@pytest.mark.oracle
@pytest.mark.parametrize("name", ["mnasnet0_5", "efficientnet_lite3", "efficientnet_es", "tf_efficientnetv2_s",
                                  "efficientnet_em", "mobilenet_v3_large", "mobilenet_v3_small",
                                  pytest.param("efficientnet_v2_l", marks=pytest.mark.slow)])
def test_reference_flop_counter_gives_the_recorded_macs(name):
    _, _, macs, resolution = REFERENCE[name]
    reference = reference_model(name, device="meta").eval()
    with FlopCounterMode(display=False) as counter:
        reference(torch.empty(1, 3, resolution, resolution, device="meta"))
    assert counter.get_total_flops() // 2 == macs


# ---------------------------------------------------------------- weights and logits

TOLERANCE = 1e-5
RESOLUTION = 96

# (model, file format): every family from every library that has it
LOGITS = [
    ("mobilenet_v2", "pt"),
    ("mobilenetv2_140", "safetensors"),
    ("mnasnet0_75", "safetensors"),
    ("mnasnet_100", "pt"),
    ("efficientnet_lite2", "safetensors"),
    ("efficientnet_v2_s", "safetensors"),
    ("tf_efficientnetv2_s", "safetensors"),
    ("efficientnet_es", "pt"),
    ("efficientnet_el", "safetensors"),
    ("mobilenetv2_050", "pt"),
    ("mobilenet_v3_large", "pt"),
    ("mobilenet_v3_small", "safetensors"),
    ("tf_efficientnet_b1", "safetensors"),
    pytest.param("efficientnet_v2_l", "safetensors", marks=pytest.mark.slow),
    pytest.param("efficientnet_b8", "pt", marks=pytest.mark.slow),
]  # and torchvision's and timm's b0 in test_parity.py


def save(state: dict[str, torch.Tensor], path) -> None:
    if str(path).endswith(".safetensors"):
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in state.items()}, str(path))  # keys come back in another order
    else:
        torch.save(state, path)


def logit_difference(reference: torch.nn.Module, ours: torch.nn.Module) -> tuple[float, float]:
    x = torch.randn(2, 3, RESOLUTION, RESOLUTION, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected, got = reference.eval()(x), ours.eval()(x)
    return (expected - got).abs().max().item(), expected.abs().max().item()


@pytest.mark.oracle
@pytest.mark.parametrize("name, fmt", LOGITS)
def test_reference_weights_give_the_reference_logits(name, fmt, tmp_path):
    reference = reference_model(name)
    randomize_batch_norm(reference)
    path = tmp_path / f"{name}.{fmt}"
    save(reference.state_dict(), path)
    ours = effdsl.build(name, weights=path)
    diff, scale = logit_difference(reference, ours)
    assert scale > 0.01  # the logits are not trivially zero (MobileNetV3 initializes its linear layers at std 0.01)
    assert diff <= TOLERANCE * max(1.0, scale)


@pytest.mark.oracle
def test_timm_b5_is_the_member_chosen_by_multipliers():
    # timm's efficientnet_b5..b7 keep batch-norm eps 1e-5, torchvision's (the presets) 1e-3. Choosing
    # the member by its multipliers leaves the spec's default batch norm: timm's layers exactly.
    import timm

    with torch.device("meta"):
        reference = timm.create_model("efficientnet_b5", pretrained=False)
    ours = effdsl.build("efficientnet_b0", width=1.6, depth=2.2, resolution=456, device="meta")
    assert _layers(ours) == _layers(reference)
    assert _layers(effdsl.build("efficientnet_b5", device="meta")) != _layers(reference)


@pytest.mark.oracle
def test_cli_loads_a_model_by_name(tmp_path):
    from typer.testing import CliRunner

    from effdsl.cli import app

    path = tmp_path / "mnasnet.pt"
    torch.save(reference_model("mnasnet0_5").state_dict(), path)
    result = CliRunner().invoke(app, ["compile", "mnasnet0_5", "--weights", str(path)])
    assert result.exit_code == 0, result.output
    assert "loaded 314 tensors from a torchvision checkpoint" in result.stderr
    assert "mnasnet1_0 (preset mnasnet0_5)" in result.stdout


def test_the_stage_table_gives_each_then_groups_settings() -> None:
    """MobileNetV3-Large's fourth stage: expansions 240/40, 200/80, 184/80 and 184/80 (the
    paper's table 1, torchvision's inverted_residual_setting): one row, each group's e."""
    from effdsl.cli.commands import render_summary

    summary = effdsl.compile_spec("mobilenet_v3_large").summary
    stage4 = next(row for row in summary.rows if row.name == "stage4")
    assert stage4.repeats == 4
    assert stage4.groups == ((3, 6.0, 1), (3, 2.5, 1), (3, 2.3, 2))
    line = next(line for line in render_summary(summary).splitlines() if "stage4" in line)
    assert "6/2.5/2.3" in line and "40 -> 80" in line
    stages = summary.to_json()["stages"]
    assert stages[3]["groups"] == [{"kernel": 3, "expand": 6, "repeats": 1}, {"kernel": 3, "expand": 2.5, "repeats": 1},
                                   {"kernel": 3, "expand": 2.3, "repeats": 2}]
    assert "groups" not in stages[2]  # a stage of one kind of block says nothing more
