"""Blocks defined in a spec (``block NAME { ops }``), included files and plug-in ops.

The ConvNeXt-style block is checked against an independent PyTorch implementation written
here, as ConvNeXt writes it (depthwise 7x7 conv, layer norm over channels-last features,
``nn.Linear`` 4x MLP with GELU, residual): the same parameter count, the same MACs by
``FlopCounterMode`` and the same logits once its weights are copied over. The properties
that hold for built-in blocks (forward shape, IR params = module params, IR MACs =
``FlopCounterMode``, formatter round trip) are checked for generated definitions, with
and without the example plug-in op (``tests/plugins/effdsl_example_ops``).
"""

from __future__ import annotations

import ast
import math
from pathlib import Path

import pytest
import torch
from hypothesis import given, note, settings
from plugin_env import PACKAGE as PLUGIN_PACKAGE
from torch import nn
from torch.utils.flop_counter import FlopCounterMode
from typer.testing import CliRunner

from effdsl.api import compile_spec, parse_spec
from effdsl.cli import app
from effdsl.diagnostics import EffdslError
from effdsl.export.pysource import python_source
from effdsl.language.format import format_spec
from effdsl.language.includes import MAX_INCLUDE_DEPTH
from effdsl.language.spec import Network

from strategies import user_block_networks

torch.set_num_threads(1)

CONVNEXT_BLOCK = """\
# A ConvNeXt block (Liu et al. 2022): depthwise 7x7, layer norm, 4x MLP with GELU, residual.
block convnext {
  dwconv kernel k stride s bias
  ln
  conv to mid bias
  act gelu
  conv to out bias
  residual
}
"""

CONVNEXT_NET = CONVNEXT_BLOCK + """
block downsample {
  conv kernel 3 stride s to out
  bn
}

network tiny_convnext {
  input 3 x 64
  classes 10
  defaults { act relu }
  stem  conv k3 s2 c32
  stage convnext   e4 k7 s1 c32 x2
  stage downsample k3 s2 c64 x1
  stage convnext   e4 k7 s1 c64 x2
  pool avg
  linear
}
"""


# ---------------------------------------------------------------------------- an independent ConvNeXt

class RefConvNeXtBlock(nn.Module):
    """ConvNeXt's block as its authors write it: the MLP as nn.Linear on channels-last features."""

    def __init__(self, dim: int, kernel: int = 7, expand: int = 4):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel, padding=kernel // 2, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, expand * dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(expand * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dwconv(x).permute(0, 2, 3, 1)
        y = self.pwconv2(self.act(self.pwconv1(self.norm(y))))
        return x + y.permute(0, 3, 1, 2)


class RefNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 32, 3, 2, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU())
        self.stage1 = nn.Sequential(RefConvNeXtBlock(32), RefConvNeXtBlock(32))
        self.down = nn.Sequential(nn.Conv2d(32, 64, 3, 2, 1, bias=False), nn.BatchNorm2d(64))
        self.stage2 = nn.Sequential(RefConvNeXtBlock(64), RefConvNeXtBlock(64))
        self.fc = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stage2(self.down(self.stage1(self.stem(x))))
        return self.fc(x.mean((2, 3)))


def _randomize(model: nn.Module) -> None:
    """Random weights everywhere and random batch-norm statistics (so nothing is the identity)."""
    torch.manual_seed(0)
    with torch.no_grad():
        for tensor in model.state_dict().values():
            if tensor.is_floating_point():
                tensor.copy_(torch.rand_like(tensor) * 0.5 + 0.25 if tensor.dim() == 1 else
                             torch.randn_like(tensor) * 0.2)


def _macs(model: nn.Module, resolution: int) -> int:
    with FlopCounterMode(display=False) as counter:
        model(torch.randn(1, 3, resolution, resolution))
    return counter.get_total_flops() // 2


def test_convnext_block_matches_an_independent_implementation() -> None:
    compiled = compile_spec(CONVNEXT_NET)
    ours = compiled.build().eval()
    ref = RefNet().eval()
    _randomize(ref)
    # stem 864 + 64; a block of d channels: 49d + d + 2d + (4d^2 + 4d) + (4d^2 + d) = 8d^2 + 57d, twice
    # at d = 32 and at 64; the downsampling conv 18,432 + 128; the classifier 650
    assert compiled.summary.params == sum(p.numel() for p in ref.parameters()) == 113_002
    assert compiled.summary.macs == _macs(ref, 64) == _macs(ours, 64)
    # The same tensors in the same order; nn.Linear's (out, in) is a 1x1 conv's (out, in, 1, 1).
    theirs, mine = ref.state_dict(), ours.state_dict()
    assert len(theirs) == len(mine)
    ours.load_state_dict({key: value.reshape(mine[key].shape)
                          for key, value in zip(mine, theirs.values(), strict=True)})
    x = torch.randn(4, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x), rtol=0, atol=1e-5)


def test_user_block_parameter_names_follow_its_ops() -> None:
    model = compile_spec(CONVNEXT_NET).build()
    names = [key for key in model.state_dict() if key.startswith("stages.0.0.")]
    assert names == ["stages.0.0.dwconv.weight", "stages.0.0.dwconv.bias", "stages.0.0.ln.weight",
                     "stages.0.0.ln.bias", "stages.0.0.conv1.weight", "stages.0.0.conv1.bias",
                     "stages.0.0.conv2.weight", "stages.0.0.conv2.bias"]


def test_user_block_scales_with_the_spec_rules() -> None:
    """Width multiplies the stage channels (and mid = e x in follows, rounded to the divisor);
    depth multiplies the repeats; the IR stays exact at every member."""
    compiled = compile_spec(CONVNEXT_NET, width=1.5, depth=2.0, resolution=96)
    plan = compiled.graph.plan
    assert [s.out_ch for s in plan.stages] == [48, 96, 96]
    assert [s.repeats for s in plan.stages] == [4, 2, 4]
    mids = {op.out_ch for op in compiled.graph.ops() if op.name.endswith(".conv1")}
    assert mids == {192, 384}
    model = compiled.build(device="meta")
    assert compiled.summary.params == sum(p.numel() for p in model.parameters())


def test_then_groups_are_refused_in_a_stage_of_a_defined_block() -> None:
    """'then' groups vary the settings of mbconv and fused_mbconv blocks; a stage of a defined
    block is refused at the 'then', not built with the stage line's settings."""
    text = CONVNEXT_NET.replace("stage convnext   e4 k7 s1 c64 x2", "stage convnext   e4 k7 s1 c64 x1 then e2")
    with pytest.raises(EffdslError) as err:
        parse_spec(text)
    (diag,) = err.value.diagnostics
    assert diag.code == "E103"
    assert "'then' in a convnext stage line" in diag.message
    line = text.splitlines()[diag.span.line - 1]
    assert line[diag.span.column - 1:].startswith("then")


def test_weights_of_another_layout_load_by_structure() -> None:
    """A checkpoint whose names are not effdsl's (another library's layout, same structure)
    loads through the structural pairing and gives the same logits."""
    compiled = compile_spec(CONVNEXT_NET)
    trained = compiled.build().eval()
    _randomize(trained)
    renames = (("stem.conv.", "conv_stem."), ("stem.bn.", "bn1."), ("stages.", "blocks."), (".conv1.", ".mlp.fc1."),
               (".conv2.", ".mlp.fc2."), (".ln.", ".norm."), ("classifier.", "fc."))
    foreign = {}
    for key, value in trained.state_dict().items():
        for old, new in renames:
            key = key.replace(old, new)
        foreign[key] = value
    fresh = compiled.build().eval()
    report = compiled.load_weights(fresh, foreign)
    assert report.loaded == len(foreign)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(fresh(x), trained(x), rtol=0, atol=0)


def test_py_export_of_a_user_block_loads_the_weights_strictly() -> None:
    compiled = compile_spec(CONVNEXT_NET)
    source = python_source(compiled.graph)
    assert "CONVNEXT_LAYERS = (" in source and "class UserBlock" in source and "class LayerNorm2d" in source
    namespace: dict[str, object] = {}
    exec(compile(source, "tiny_convnext.py", "exec"), namespace)  # noqa: S102  (generated here)
    model = compiled.build().eval()
    _randomize(model)
    exported = namespace["TinyConvnext"]().eval()  # type: ignore[operator]
    exported.load_state_dict(model.state_dict(), strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(exported(x), model(x), rtol=0, atol=0)


def test_inference_module_of_a_user_block_folds_its_batch_norms() -> None:
    compiled = compile_spec(CONVNEXT_NET)
    model = compiled.build().eval()
    _randomize(model)
    folded = compiled.to_inference(model)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), model(x), rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_onnx_export_of_a_user_block(tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    out = tmp_path / "net.onnx"
    spec = tmp_path / "net.eff"
    spec.write_text(CONVNEXT_NET, encoding="utf-8")
    result = CliRunner().invoke(app, ["compile", str(spec), "--emit", "onnx", "-o", str(out)])
    assert result.exit_code == 0, result.output
    model = onnx.load(str(out))
    assert {"LayerNormalization", "Conv"} <= {node.op_type for node in model.graph.node} or \
        "ReduceMean" in {node.op_type for node in model.graph.node}


def test_viz_names_the_user_block_and_its_ops() -> None:
    from effdsl.viz.view import view

    compiled = compile_spec(CONVNEXT_NET)
    blocks = view(compiled.graph, "block")
    assert any("convnext k7 s1 e4" in str(node.lines) for node in blocks.nodes)
    ops = view(compiled.graph, "op")
    assert {node.kind for node in ops.nodes} >= {"ln", "dwconv", "conv", "act"}


# ---------------------------------------------------------------------------- includes

def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


NET_BODY = """
network tiny {
  input 3 x 64
  classes 10
  stem conv k3 s2 c32
  stage convnext e4 k7 s1 c32 x2
  pool avg
  linear
}
"""


def _codes(err: EffdslError) -> list[str]:
    return [d.code for d in err.diagnostics]


def test_include_reads_blocks_relative_to_the_including_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(tmp_path, "lib/blocks.eff", 'include "more.eff"\n' + CONVNEXT_BLOCK)
    _write(tmp_path, "lib/more.eff", "block plain {\n  conv kernel k stride s to out\n  bn\n  act\n}\n")
    body = NET_BODY.replace("x2\n", "x2\n  stage plain k3 c32\n")
    spec = _write(tmp_path, "net.eff", 'include "lib/blocks.eff"\n' + body)
    compiled = compile_spec(spec)
    assert [s.block for s in compiled.graph.plan.stages] == ["convnext", "plain"]
    monkeypatch.chdir(tmp_path)
    net = parse_spec("net.eff")
    # each included definition says where it comes from, as a path from the spec's folder
    assert [b.origin for b in net.blocks] == ["lib/more.eff", "lib/blocks.eff"]
    # The formatter keeps the include and does not copy the included definitions.
    assert format_spec(net).startswith('include "lib/blocks.eff"\n\nnetwork tiny {')


@pytest.mark.parametrize("name", ["\x00", "a\x01b.eff", "a\tb.eff"], ids=["nul", "soh", "tab"])
def test_include_of_a_name_with_a_control_character_is_refused(name: str) -> None:
    """A NUL (which the operating system cannot take) or another control character in the
    file name is E124 at the include, before any file is looked at."""
    text = f'include "{name}"\n' + NET_BODY
    with pytest.raises(EffdslError) as err:
        parse_spec(text)
    (diag,) = err.value.diagnostics
    assert diag.code == "E124" and "control character" in diag.message
    assert diag.span.line == 1 and text.splitlines()[0][diag.span.column - 1:].startswith(f'"{name}"')


def test_include_cycle_is_named(tmp_path: Path) -> None:
    _write(tmp_path, "a.eff", 'include "b.eff"\n' + CONVNEXT_BLOCK)
    _write(tmp_path, "b.eff", 'include "a.eff"\n')
    spec = _write(tmp_path, "net.eff", 'include "a.eff"\n' + NET_BODY)
    with pytest.raises(EffdslError) as info:
        compile_spec(spec)
    assert _codes(info.value) == ["E122"]
    assert "a.eff -> b.eff -> a.eff" in str(info.value)
    assert info.value.filename == str(tmp_path / "b.eff")  # shown against the file that closes the cycle


def test_include_outside_the_folder_needs_the_flag(tmp_path: Path) -> None:
    _write(tmp_path, "shared.eff", CONVNEXT_BLOCK)
    spec = _write(tmp_path, "proj/net.eff", 'include "../shared.eff"\n' + NET_BODY)
    with pytest.raises(EffdslError) as info:
        compile_spec(spec)
    assert _codes(info.value) == ["E123"]
    assert "--allow-include-outside" in str(info.value)
    assert compile_spec(spec, allow_include_outside=True).summary.params > 0
    runner = CliRunner()
    refused = runner.invoke(app, ["check", str(spec)])
    assert refused.exit_code == 2 and "error[E123]" in refused.output and "Traceback" not in refused.output
    allowed = runner.invoke(app, ["check", str(spec), "--allow-include-outside"])
    assert allowed.exit_code == 0, allowed.output


def test_include_limits_and_mistakes(tmp_path: Path) -> None:
    spec = _write(tmp_path, "missing.eff", 'include "nowhere.eff"\n' + NET_BODY)
    with pytest.raises(EffdslError) as info:
        compile_spec(spec)
    assert _codes(info.value) == ["E124"] and "no such file" in str(info.value)
    # A chain deeper than the limit.
    for i in range(MAX_INCLUDE_DEPTH + 1):
        _write(tmp_path, f"deep/{i}.eff", f'include "{i + 1}.eff"\n')
    _write(tmp_path, f"deep/{MAX_INCLUDE_DEPTH + 1}.eff", CONVNEXT_BLOCK)
    spec = _write(tmp_path, "deep/net.eff", 'include "0.eff"\n' + NET_BODY)
    with pytest.raises(EffdslError) as info:
        compile_spec(spec)
    assert _codes(info.value) == ["E124"] and "levels deep" in str(info.value)
    # An included file with a network, and a mistake inside an included file (shown with its name).
    _write(tmp_path, "withnet.eff", NET_BODY)
    with pytest.raises(EffdslError) as info:
        compile_spec(_write(tmp_path, "n1.eff", 'include "withnet.eff"\n' + NET_BODY))
    assert _codes(info.value) == ["E124"]
    _write(tmp_path, "typo.eff", CONVNEXT_BLOCK.replace("  ln\n", "  lnn\n"))
    with pytest.raises(EffdslError) as info:
        compile_spec(_write(tmp_path, "n2.eff", 'include "typo.eff"\n' + NET_BODY))
    assert _codes(info.value) == ["E120"]
    assert str(info.value).startswith(f"{tmp_path / 'typo.eff'}:4:3: error[E120]: unknown op 'lnn'")
    assert "did you mean 'ln'?" in str(info.value)


def test_a_name_defined_in_two_included_files_is_refused(tmp_path: Path) -> None:
    _write(tmp_path, "one.eff", CONVNEXT_BLOCK)
    _write(tmp_path, "two.eff", CONVNEXT_BLOCK)
    spec = _write(tmp_path, "net.eff", 'include "one.eff"\ninclude "two.eff"\n' + NET_BODY)
    with pytest.raises(EffdslError) as info:
        compile_spec(spec)
    assert _codes(info.value) == ["E121"]
    # The same file reached twice is read once.
    _write(tmp_path, "both.eff", 'include "one.eff"\n')
    spec = _write(tmp_path, "net2.eff", 'include "one.eff"\ninclude "both.eff"\n' + NET_BODY)
    assert [b.name for b in parse_spec(spec).blocks] == ["convnext"]


# ---------------------------------------------------------------------------- plug-in ops

PLUGIN_NET = """
block cheap {
  grouped_pw groups 4 to mid
  act
  dwconv kernel k stride s
  bn
  grouped_pw groups 4
  residual
}

network cheap_net {
  input 3 x 32
  classes 10
  stem conv k3 s2 c16
  stage cheap k3 s2 e4 c32 x2
  pool avg
  linear
}
"""


def test_plugin_op_counts_builds_and_exports(example_ops: None) -> None:
    compiled = compile_spec(PLUGIN_NET)
    op = compiled.graph.op("stages.0.0.grouped_pw1")
    assert (op.kind, op.plugin, op.in_ch, op.out_ch, dict(op.options)) == ("plugin", "grouped_pw", 16, 64,
                                                                          {"groups": 4, "to": 64})
    node = compiled.graph.node(op.name)
    assert (node.params, node.macs) == (16 * 64 // 4, 16 * 64 // 4 * 16 * 16)
    model = compiled.build().eval()
    assert compiled.summary.params == sum(p.numel() for p in model.parameters())
    assert compiled.summary.macs == _macs(model, 32)
    source = python_source(compiled.graph)
    assert "class GroupedPointwise" in source
    namespace: dict[str, object] = {}
    exec(compile(source, "cheap_net.py", "exec"), namespace)  # noqa: S102  (generated here)
    exported = namespace["CheapNet"]().eval()  # type: ignore[operator]
    exported.load_state_dict(model.state_dict(), strict=True)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(exported(x), model(x), rtol=0, atol=0)
    ast.parse(source)


@pytest.mark.parametrize(("op", "expected"), [
    ("broken_op", "it has no 'cost', 'class_name', 'torch_source'"),
    ("missing_op", "loading it raised ModuleNotFoundError"),
    ("raising_op", "its shape rule raised RuntimeError: this rule always fails"),
    ("grouped_pw groups 3 to mid", "refuses this block: 3 groups do not divide 16 -> 64 channels"),
])
def test_a_broken_plugin_is_named_not_a_traceback(example_ops: None, tmp_path: Path, op: str,
                                                  expected: str) -> None:
    text = PLUGIN_NET.replace("grouped_pw groups 4 to mid", op if op.startswith("grouped") else f"{op} to mid")
    spec = _write(tmp_path, "net.eff", text.replace("x2\n", "x2\n") if op != "broken_op" else
                  text.replace("broken_op to mid", "broken_op"))
    result = CliRunner().invoke(app, ["compile", str(spec)])
    assert result.exit_code == 2, result.output
    assert "error[E130]" in result.output and expected in result.output
    assert "effdsl-example-ops" in result.output and "Traceback" not in result.output


def test_an_unknown_op_suggests_the_plugin(example_ops: None) -> None:
    with pytest.raises(EffdslError) as info:
        compile_spec(PLUGIN_NET.replace("grouped_pw groups 4 to mid", "grouped_pv groups 4 to mid"))
    assert _codes(info.value) == ["E120"] and "did you mean 'grouped_pw'?" in str(info.value)


# ---------------------------------------------------------------------------- properties

def _check_cost_and_forward(net: Network) -> None:
    text = format_spec(net)
    note(text)
    parsed = parse_spec(text)
    assert _no_spans(parsed.model_dump()) == _no_spans(net.model_dump())
    assert format_spec(parsed) == text
    try:
        compiled = compile_spec(text)
    except EffdslError as err:  # only a block whose output cannot reach the stage's width
        assert {d.code for d in err.diagnostics} <= {"E130"}, str(err)
        return
    model = compiled.build().eval()
    r = compiled.summary.resolution
    assert compiled.summary.params == sum(p.numel() for p in model.parameters())
    x = torch.randn(2, net.in_ch, r, r)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        y = model(x[:1])
    assert y.shape == (1, net.classes)
    assert compiled.summary.macs == counter.get_total_flops() // 2
    with torch.no_grad():
        assert model(x).shape == (2, net.classes)


def _no_spans(value: object) -> object:
    if isinstance(value, dict):
        return {k: _no_spans(v) for k, v in value.items() if k not in ("span", "spans")}
    if isinstance(value, (list, tuple)):
        return [_no_spans(v) for v in value]
    return value


@settings(max_examples=40)
@given(user_block_networks())
def test_user_blocks_count_exactly_and_run(net: Network) -> None:
    _check_cost_and_forward(net)


@settings(max_examples=25)
@given(user_block_networks(plugin=True))
def test_plugin_blocks_count_exactly_and_run(example_ops_module: None, net: Network) -> None:
    _check_cost_and_forward(net)


@pytest.fixture(scope="module")
def example_ops_module(example_ops: None) -> None:
    """The example plug-in, for Hypothesis tests (which take no function-scoped fixtures)."""


def test_widths_stay_whole_numbers() -> None:
    """mid = e x in, rounded to the divisor as MBConv's expansion is: e4.5 on 32 channels is 144."""
    compiled = compile_spec(CONVNEXT_NET.replace("e4 k7 s1 c32", "e4.5 k7 s1 c32"))
    mid = compiled.graph.op("stages.0.0.conv1").out_ch
    assert mid == 144 and math.isclose(mid / 32, 4.5)


def test_the_plugin_op_of_the_docs_is_the_example_package() -> None:
    """docs/extending.md shows the example package's code; the page runs it, this keeps it the same."""
    page = (Path(__file__).resolve().parent.parent / "docs" / "extending.md").read_text(encoding="utf-8")
    block = next(b for b in page.split("```python\n")[1:] if "GROUPED_PW = {" in b).split("```")[0]
    shown = block.split("\nassert ")[0].strip()
    package = (PLUGIN_PACKAGE / "effdsl_example_ops" / "__init__.py").read_text(encoding="utf-8")
    assert shown in package


def test_broken_plugin_message_of_the_errors_page(example_ops: None, tmp_path: Path) -> None:
    """The E130 example of docs/errors.md is what a broken plug-in gives (the page runs it too)."""
    spec = _write(tmp_path, "e130.eff", PLUGIN_NET.replace("grouped_pw groups 4 to mid", "broken_op"))
    result = CliRunner().invoke(app, ["check", str(spec)])
    assert result.exit_code == 2
    assert "is broken: it has no 'cost', 'class_name', 'torch_source'" in result.output


@pytest.mark.slow
def test_a_module_with_a_plugin_op_pickles_into_a_fresh_process(example_ops: None, tmp_path: Path) -> None:
    import pickle
    import subprocess
    import sys

    from plugin_env import PACKAGE

    compiled = compile_spec(PLUGIN_NET)
    model = compiled.build().eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        expected = model(x)
    (tmp_path / "model.pkl").write_bytes(pickle.dumps(model))
    torch.save(x, tmp_path / "x.pt")
    torch.save(expected, tmp_path / "y.pt")
    script = (
        "import sys, pickle, torch; from pathlib import Path\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from plugin_env import install_example_ops\n"
        f"install_example_ops(Path({str(tmp_path / 'site')!r}))\n"
        f"m = pickle.loads(Path({str(tmp_path / 'model.pkl')!r}).read_bytes())\n"
        f"x = torch.load({str(tmp_path / 'x.pt')!r}); y = torch.load({str(tmp_path / 'y.pt')!r})\n"
        "with torch.no_grad(): assert torch.allclose(m(x), y, rtol=1e-5, atol=1e-6)\n"
        "print(type(m.stages[0][0].grouped_pw1).__name__)\n"
    )
    root = str(Path(__file__).resolve().parent.parent)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                            env={**__import__("os").environ, "PYTHONPATH": root})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "GroupedPointwise"
    assert PACKAGE.is_dir()


@pytest.mark.parametrize(("word", "hint"), [("add", "'residual' adds the block input"),
                                            ("linear", "1x1 conv: conv to W bias"), ("pool", "se"),
                                            ("layernorm", "did you mean 'ln'?"),
                                            ("resudial", "did you mean 'residual'?")])
def test_words_of_other_libraries_point_at_the_op(word: str, hint: str) -> None:
    text = CONVNEXT_NET.replace("  residual\n", f"  {word}\n", 1)
    with pytest.raises(EffdslError) as info:
        compile_spec(text)
    (diagnostic,) = info.value.diagnostics
    assert diagnostic.code == "E120" and diagnostic.help is not None and hint in diagnostic.help


@pytest.mark.slow
def test_the_example_plugin_package_builds_with_the_entry_points_the_tests_install(tmp_path: Path) -> None:
    """The package in tests/plugins is a real one: its wheel declares the entry points that
    ``plugin_env`` writes for the tests (what ``pip install`` would put in its .dist-info)."""
    import importlib.util
    import subprocess
    import sys
    import zipfile

    from plugin_env import PACKAGE, install_example_ops

    from conftest import require

    require(importlib.util.find_spec("hatchling") is not None, "hatchling (the build backend) is not installed")
    done = subprocess.run([sys.executable, "-m", "pip", "--isolated", "wheel", "--no-deps", "--no-build-isolation",
                           "--no-index", "--quiet", "--wheel-dir", str(tmp_path), str(PACKAGE)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    (wheel,) = tmp_path.glob("*.whl")
    archive = zipfile.ZipFile(wheel)
    (entry_points,) = [n for n in archive.namelist() if n.endswith(".dist-info/entry_points.txt")]
    assert "effdsl_example_ops/__init__.py" in archive.namelist()
    install_example_ops(tmp_path / "site")
    (written,) = (tmp_path / "site").glob("*.dist-info/entry_points.txt")

    def entries(text: str) -> set[str]:
        return {line.replace(" ", "") for line in text.splitlines() if "=" in line}

    assert entries(archive.read(entry_points).decode()) == entries(written.read_text(encoding="utf-8"))
    assert "grouped_pw=effdsl_example_ops:GROUPED_PW" in entries(written.read_text(encoding="utf-8"))


def test_a_definition_reports_its_group_and_op_mistakes_together() -> None:
    """A mistake in a group's condition does not hide a mistake in an op of the same block."""
    text = CONVNEXT_NET.replace("  conv to mid bias\n", "  wide if mid != foo: conv to mid bias\n").replace(
        "  act gelu\n", "  actt gelu\n")
    with pytest.raises(EffdslError) as err:
        parse_spec(text)
    found = [(d.code, d.message) for d in err.value.diagnostics]
    assert ("E104", "unknown width 'foo' in the condition of group 'wide'") in found
    assert ("E120", "unknown op 'actt' in a block definition") in found
