"""Hostile and careless input: every case ends in effdsl's own error with its code, the
right place and exit status 2, never a traceback, and nothing is loaded or drawn."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import effdsl
from effdsl.cli import app

TINY = """network tiny {
  input 3 x 32
  classes 10
  stem conv k3 s2 c16
  stage mbconv e4 k3 c16 x2
  pool avg
  linear
}
"""
STEM_LINE, LINEAR_LINE = 4, 7


@pytest.fixture(scope="module")
def compiled():
    return effdsl.compile_spec(TINY)


@pytest.fixture()
def spec(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.eff"
    path.write_text(TINY, encoding="utf-8")
    return path


def _state(compiled) -> dict[str, torch.Tensor]:
    return compiled.build().state_dict()


def _compile(spec: Path, *args: str):
    result = CliRunner().invoke(app, ["compile", str(spec), *args])
    assert "Traceback" not in result.output
    return result


def _error(spec: Path, checkpoint: Path, code: str, *words: str, line: int | None = None) -> str:
    before = spec.read_bytes()
    result = _compile(spec, "--weights", str(checkpoint), "-o", str(spec.with_suffix(".txt")))
    assert result.exit_code == 2, result.output
    assert f"error[{code}]" in result.stderr
    for word in words:
        assert word in result.stderr, result.stderr
    if line is not None:
        assert f"tiny.eff:{line}:" in result.stderr
    assert spec.read_bytes() == before and not spec.with_suffix(".txt").exists()
    return result.stderr


def test_integer_keys(spec, tmp_path):
    path = tmp_path / "ints.pt"
    torch.save({1: torch.zeros(1)}, path)
    _error(spec, path, "E501", "key 1 (int) is not a tensor name")


@pytest.mark.parametrize("case, code, words, line", [
    ("meta", "E504", ["'stem.conv.weight'", "meta tensor"], STEM_LINE),
    ("int8", "E504", ["'stem.conv.weight' is int8", "floating-point"], STEM_LINE),
    ("bool", "E504", ["'stem.conv.weight' is bool"], STEM_LINE),
    ("complex", "E504", ["'stem.conv.weight' is complex64"], STEM_LINE),
    ("nan", "E504", ["'stem.conv.weight' holds 432 NaN or infinite values", "allow_nonfinite"], STEM_LINE),
    ("inf", "E504", ["holds 1 NaN or infinite value"], STEM_LINE),
    ("sparse", "E504", ["'classifier.weight' is sparse_coo, not a dense tensor"], LINEAR_LINE),
    ("float counter", "E504", ["num_batches_tracked' is float32, but its buffer holds integers"], STEM_LINE),
])
def test_unusable_tensors_point_at_their_layer(compiled, spec, tmp_path, case, code, words, line):
    state = _state(compiled)
    weight = state["stem.conv.weight"]
    if case == "meta":
        state = {k: torch.empty(v.shape, dtype=v.dtype, device="meta") for k, v in state.items()}
    elif case == "int8":
        state["stem.conv.weight"] = weight.to(torch.int8)
    elif case == "bool":
        state["stem.conv.weight"] = weight > 0
    elif case == "complex":
        state["stem.conv.weight"] = weight.to(torch.complex64)
    elif case == "nan":
        state["stem.conv.weight"] = torch.full_like(weight, float("nan"))
    elif case == "inf":
        state["stem.conv.weight"] = weight.clone().index_put_((torch.tensor([0]),) * 4, torch.tensor(float("inf")))
    elif case == "sparse":
        state["classifier.weight"] = state["classifier.weight"].to_sparse()
    elif case == "float counter":
        state["stem.bn.num_batches_tracked"] = torch.tensor(0.0)
    path = tmp_path / f"{case.replace(' ', '_')}.pt"
    torch.save(state, path)
    _error(spec, path, code, *words, line=line)


def test_half_precision_and_bfloat16_checkpoints_are_cast(compiled, tmp_path):
    state = _state(compiled)
    for dtype in (torch.float16, torch.bfloat16, torch.float64):
        cast = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
        module = compiled.build()
        report = compiled.load_weights(module, cast)
        assert report.loaded == len(state)
        got = module.state_dict()["stem.conv.weight"]
        assert got.dtype == torch.float32
        assert torch.equal(got, cast["stem.conv.weight"].float())


def test_a_compressed_bomb_is_refused_before_it_is_unpacked(compiled, spec, tmp_path):
    buffer = io.BytesIO()
    torch.save(_state(compiled), buffer)
    path = tmp_path / "bomb.pt"
    with zipfile.ZipFile(io.BytesIO(buffer.getvalue())) as src, \
            zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dst:
        names = src.namelist()
        for name in names:
            dst.writestr(name, src.read(name))
        dst.writestr(names[0].split("/")[0] + "/data/999", b"\0" * (200 * 2**20))
    assert path.stat().st_size < 2**20  # small on disk, 200 MiB unpacked
    _error(spec, path, "E501", "unpacks to", "more than")


@pytest.mark.parametrize("kind, words", [
    ("directory", "is a directory, not a file"),
    ("fifo", "is a FIFO, not a file"),
    ("loop", "is a symlink loop, not a file"),
    ("missing", "no such checkpoint file"),
])
def test_a_checkpoint_that_is_not_a_file(spec, tmp_path, kind, words):
    path = tmp_path / "ckpt.pt"
    if kind == "directory":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "loop":
        path.symlink_to(path)
    _error(spec, path, "E501", words)


def test_classifier_mismatch_points_at_the_linear_line(compiled, spec, tmp_path):
    path = tmp_path / "ten.pt"
    torch.save(_state(compiled), path)
    result = _compile(spec, "--num-classes", "5", "--weights", str(path), "-o", str(tmp_path / "out.txt"))
    assert result.exit_code == 2
    assert "error[E503]" in result.stderr and "'classifier.weight'" in result.stderr
    assert f"tiny.eff:{LINEAR_LINE}:3:" in result.stderr


def test_a_preset_too_large_points_at_its_line(tmp_path):
    text = TINY.replace("  classes 10\n", "  classes 10\n  preset huge { width 1.0; depth 1e9; resolution 32 }\n")
    with pytest.raises(effdsl.EffdslError) as info:
        effdsl.compile_spec(text, preset="huge")
    (diag,) = info.value.diagnostics
    assert diag.code == "E302" and diag.span is not None
    assert (diag.span.line, diag.span.column) == (4, 10)  # the preset name


@pytest.mark.parametrize("level, words", [("op", "operators at --level op"), ("block", "blocks at --level block")])
def test_viz_refuses_pictures_too_large_to_read(tmp_path, level, words):
    deep = TINY.replace("stage mbconv e4 k3 c16 x2", "\n  ".join(["stage mbconv e1 k3 c16 x1000"] * 6))
    spec = tmp_path / "deep.eff"
    spec.write_text(deep, encoding="utf-8")
    out = tmp_path / "deep.svg"
    result = CliRunner().invoke(app, ["viz", str(spec), "--level", level, "-o", str(out)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "error[E405]" in result.stderr and words in result.stderr and "at most 5,000 boxes" in result.stderr
    assert "--level stage" in result.stderr and not out.exists()


def test_an_html_page_is_bounded_by_its_operators(tmp_path):
    deep = TINY.replace("stage mbconv e4 k3 c16 x2", "stage mbconv e1 k3 c16 x800")
    spec = tmp_path / "deep.eff"
    spec.write_text(deep, encoding="utf-8")
    out = tmp_path / "deep.html"
    result = CliRunner().invoke(app, ["viz", str(spec), "--level", "stage", "-o", str(out)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "error[E405]: cannot draw 5,607 operators in an HTML page" in result.stderr
    assert "write .svg at --level block (802 boxes)" in result.stderr and not out.exists()
    assert CliRunner().invoke(app, ["viz", str(spec), "--level", "block", "-o", str(tmp_path / "d.svg")]).exit_code == 0
