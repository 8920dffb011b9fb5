"""Hostile and careless input: every case ends in effdsl's own error with its code, the
right place and exit status 2, never a traceback, and nothing is loaded or drawn."""

from __future__ import annotations

import io
import math
import os
import pickle
import signal
import stat
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import effdsl
from effdsl.api import format_source
from effdsl.cli import app
from effdsl.cli.files import write_output

from conftest import require

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
    assert (diag.span.line, diag.span.column) == (4, 10)  # the preset's name


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


# ============================================================================ files, streams, signals
#
# Each case: the exit status, no traceback, the message, and nothing lost (the spec and
# the old outputs byte-equal afterwards, no temporary file left).

ROOT = Path(__file__).resolve().parent.parent
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _invoke(*args: str, runner: CliRunner | None = None):
    result = (runner or CliRunner()).invoke(app, list(args))
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result


def _effdsl(cwd: Path, *args: str, **options) -> subprocess.CompletedProcess:
    """``python -m effdsl ARGS`` in ``cwd``, this checkout's effdsl first on the path."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), **options.pop("env", {})}
    if "stdout" not in options:
        options["capture_output"] = True
    return subprocess.run([sys.executable, "-m", "effdsl", *args], cwd=cwd, env=env, text=True, timeout=300,
                          **options)


# ---------------------------------------------------------------------------- 1. outputs onto inputs

@pytest.mark.parametrize("args, what", [
    (["compile", "{spec}", "--emit", "json", "-o", "{spec}"], "the spec"),
    (["compile", "{spec}", "--emit", "weights", "-o", "{spec}"], "the spec"),
    (["compile", "{spec}", "-o", "{alias}.txt"], "the spec"),  # a link to the spec is the spec
    (["compile", "{spec}", "--weights", "{ckpt}", "--emit", "weights", "-o", "{ckpt}"], "the checkpoint"),
    (["sweep", "{spec}", "--phi", "0", "-o", "{alias}.md"], "the spec"),
    (["viz", "{spec}", "--level", "stage", "-o", "{alias}.svg"], "the spec"),
], ids=lambda v: " ".join(v) if isinstance(v, list) else v)
def test_an_output_onto_an_input_is_refused_before_any_work(compiled, spec, tmp_path, args, what):
    ckpt = tmp_path / "tiny.pt"
    torch.save(_state(compiled), ckpt)
    for suffix in (".txt", ".md", ".svg"):
        (tmp_path / f"alias{suffix}").symlink_to(spec)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    names = {"spec": spec, "ckpt": ckpt, "alias": tmp_path / "alias"}
    result = _invoke(*[a.format(**names) for a in args])
    assert result.exit_code == 2, result.output
    assert f"error[E405]: cannot write '{args[-1].format(**names)}': it is {what} this command reads" in result.stderr
    assert "help: write the output to another file" in result.stderr
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    assert all((tmp_path / f"alias{s}").is_symlink() for s in (".txt", ".md", ".svg"))


def test_an_output_that_cannot_be_written_is_refused_before_any_work(tmp_path):
    """No export is run (torch is not even imported) for an output in no folder, or a folder."""
    code = ("import sys; from typer.testing import CliRunner; from effdsl.cli import app; "
            "runner = CliRunner(); "
            "results = [runner.invoke(app, ['compile', 'efficientnet_b0', '--emit', 'onnx', '-o', out]) "
            "for out in ('missing/model.onnx', '.', 'spec.eff/model.onnx')]; "
            "print([r.exit_code for r in results], 'torch' in sys.modules); "
            "print(''.join(r.stderr for r in results), end='')")
    (tmp_path / "spec.eff").write_text(TINY, encoding="utf-8")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    status, stderr = out.stdout.split("\n", 1)
    assert status == "[2, 2, 2] False", out.stdout + out.stderr
    assert stderr == ("error[E405]: cannot write 'missing/model.onnx': No such file or directory\n"
                      "   = help: check that the folder exists and is writable\n"
                      "error[E405]: cannot write '.': it is a folder\n"
                      "   = help: name a file, not a folder\n"
                      "error[E405]: cannot write 'spec.eff/model.onnx': Not a directory\n"
                      "   = help: check that the folder exists and is writable\n")
    assert _listing(tmp_path) == ["spec.eff"]


def test_fmt_write_alone_rewrites_its_input(tmp_path):
    messy = tmp_path / "messy.eff"
    messy.write_text(TINY.replace("  input 3 x 32\n", "input 3x32\n"), encoding="utf-8")
    result = _invoke("fmt", str(messy), "--write")
    assert result.exit_code == 0 and messy.read_text(encoding="utf-8") == format_source(TINY)
    assert _listing(tmp_path) == ["messy.eff"]


# ---------------------------------------------------------------------------- 2. devices, pipes, links, modes

def test_a_device_node_stays_a_device(spec, tmp_path):
    require(IS_ROOT, "making a device node (mknod) needs root")
    node = tmp_path / "null"
    os.mknod(node, 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # what /dev/null is
    for args in (["--emit", "weights"], ["--emit", "ir"], []):
        result = _invoke("compile", str(spec), *args, "-o", str(node))
        assert result.exit_code == 0, result.output
        info = os.stat(node)
        assert stat.S_ISCHR(info.st_mode) and info.st_rdev == os.makedev(1, 3), args
    assert _listing(tmp_path) == ["null", "tiny.eff"] and spec.read_text(encoding="utf-8") == TINY


def test_a_named_pipe_is_written_into_and_stays_a_pipe(spec, tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    result = _invoke("compile", str(spec), "--emit", "weights", "-o", str(fifo))
    reader.join(timeout=60)
    assert result.exit_code == 0, result.output
    assert stat.S_ISFIFO(os.stat(fifo).st_mode) and _listing(tmp_path) == ["pipe", "tiny.eff"]
    regular = tmp_path / "regular.safetensors"
    assert _invoke("compile", str(spec), "--emit", "weights", "-o", str(regular)).exit_code == 0
    (got,) = received
    header = 8 + int.from_bytes(got[:8], "little")  # the weights are random; the layout is not
    assert len(got) == regular.stat().st_size and got[:header] == regular.read_bytes()[:header]


def test_a_full_device_is_e405_and_stays_a_device(spec):
    require(os.path.exists("/dev/full"), "needs /dev/full")
    result = _invoke("compile", str(spec), "--emit", "weights", "-o", "/dev/full")
    assert result.exit_code == 2
    assert result.stderr.startswith("error[E405]: cannot write '/dev/full': No space left on device\n")
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)


def test_a_symbolic_link_is_written_through(spec, tmp_path):
    real = tmp_path / "real.safetensors"
    real.write_bytes(b"old")
    link = tmp_path / "link.safetensors"
    link.symlink_to(real)
    assert _invoke("compile", str(spec), "--emit", "weights", "-o", str(link)).exit_code == 0
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert real.read_bytes()[8:20] == b'{"__metadata'  # a safetensors header
    assert _listing(tmp_path) == ["link.safetensors", "real.safetensors", "tiny.eff"]


@pytest.mark.parametrize("mask", [0o022, 0o077])
def test_new_files_follow_the_umask(spec, tmp_path, mask):
    old = os.umask(mask)
    try:
        assert _invoke("compile", str(spec), "--emit", "weights", "-o", str(tmp_path / "w.safetensors")).exit_code == 0
        # A producer that creates its file 0600 (safetensors and torch did): the umask decides anyway.
        write_output(tmp_path / "made.onnx", lambda path: os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)))
    finally:
        os.umask(old)
    for name in ("w.safetensors", "made.onnx"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o666 & ~mask, name


# ---------------------------------------------------------------------------- 3. a full or read-only disk

@pytest.fixture()
def small_disk(tmp_path):
    """A 64 KiB tmpfs, to fill up (ENOSPC) or to make read-only."""
    require(IS_ROOT, "mounting a small tmpfs needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)], capture_output=True)
    require(mounted.returncode == 0, f"cannot mount a tmpfs: {mounted.stderr.decode(errors='replace').strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


@pytest.mark.parametrize("args", [["--emit", "ir"], ["--emit", "weights"]], ids=["text", "binary"])
def test_a_full_disk_leaves_the_previous_output_untouched(small_disk, args):
    old = small_disk / "out"
    old.write_bytes(os.urandom(40_000))  # the new output and its temporary file cannot both fit
    before = old.read_bytes()
    result = _invoke("compile", "efficientnet_b0", *args, "-o", str(old))
    assert result.exit_code == 2
    assert result.stderr == (f"error[E405]: cannot write '{old}': No space left on device\n"
                             "   = help: free some space, or write to another disk; the file was left as it was\n")
    assert old.read_bytes() == before and _listing(small_disk) == ["out"]


def test_a_full_disk_during_an_export_leaves_nothing_behind(small_disk):
    (small_disk / "m.onnx").write_bytes(b"old")

    def produce(path: Path) -> None:  # as ONNX does: the model and its external data
        path.with_name(path.name + ".data").write_bytes(os.urandom(100_000))
        path.write_bytes(b"model")

    with pytest.raises(effdsl.EffdslError) as info:
        write_output(small_disk / "m.onnx", produce)
    assert info.value.diagnostics[0].message == f"cannot write '{small_disk / 'm.onnx'}': No space left on device"
    assert _listing(small_disk) == ["m.onnx"] and (small_disk / "m.onnx").read_bytes() == b"old"


def test_a_read_only_disk_is_e405(small_disk):
    (small_disk / "out.txt").write_text("old")
    remounted = subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], capture_output=True)
    require(remounted.returncode == 0, "cannot remount the tmpfs read-only")
    result = _invoke("compile", "efficientnet_b0", "-o", str(small_disk / "out.txt"))
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error[E405]: cannot write '{small_disk / 'out.txt'}': Read-only file system\n")
    assert (small_disk / "out.txt").read_text() == "old" and _listing(small_disk) == ["out.txt"]


# ---------------------------------------------------------------------------- 4. stdout

@pytest.mark.parametrize("args", [
    ["compile", "efficientnet_b0"], ["sweep", "efficientnet_b0", "--phi", "0:1"],
    ["diff", "efficientnet_b0", "--phi", "1"], ["check", "efficientnet_b0"],
], ids=lambda a: a[0])
def test_a_stdout_without_utf8_gets_ascii(args):
    result = _invoke(*args, runner=CliRunner(charset="ascii"))
    assert result.exit_code == 0, result.output
    assert result.stdout_bytes.isascii() and "?" not in result.stdout
    if args[0] != "check":
        assert "+--" in result.stdout and ("| stage" in result.stdout or "| phi" in result.stdout)


def test_a_stdout_without_utf8_in_a_real_process(tmp_path):
    proc = _effdsl(tmp_path, "compile", "efficientnet_b0", env={"PYTHONIOENCODING": "ascii"})
    assert proc.returncode == 0 and "Traceback" not in proc.stderr
    assert proc.stdout.isascii() and "| stage7 | mbconv |" in proc.stdout


def test_a_closed_stdout(tmp_path):
    proc = _effdsl(tmp_path, "compile", "efficientnet_b0", preexec_fn=lambda: os.close(1))
    assert (proc.returncode, proc.stderr) == (2, "error[E405]: cannot write to stdout: it is closed\n")


def test_a_full_stdout(tmp_path):
    require(os.path.exists("/dev/full"), "needs /dev/full")
    with open("/dev/full", "w") as full:
        proc = _effdsl(tmp_path, "check", "efficientnet_b0", stdout=full, stderr=subprocess.PIPE)
    assert (proc.returncode, proc.stderr) == (2, "error[E405]: cannot write to stdout: No space left on device\n")


def test_a_broken_pipe(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "effdsl", "compile", "efficientnet_b0", "--preset", "b7",
                             "--emit", "ir"], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    proc.stdout.close()  # the reader goes away before anything is written (like '| head -0')
    _, err = proc.communicate(timeout=300)
    assert (proc.returncode, err.decode()) == (2, "error[E405]: cannot write to stdout: Broken pipe\n")


# ---------------------------------------------------------------------------- 5. Ctrl-C and SIGTERM

def _interrupt_when(folder: Path, args: list[str], ready, sig: int) -> tuple[int, str]:
    """Start ``effdsl ARGS`` in ``folder``, send ``sig`` once ``ready(process)`` holds."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "effdsl", *args], cwd=folder, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(3000):
            if ready(proc) or proc.poll() is not None:
                break
            time.sleep(0.05)
        assert proc.poll() is None, f"ended before it was interrupted: {proc.communicate()}"
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, err


def _exporting(folder: Path):
    """Ready a second after the export began: its temporary folder beside the output exists."""
    seen: list[float] = []

    def ready(proc) -> bool:
        if not seen and any(p.name.endswith(".tmp") for p in folder.iterdir()):
            seen.append(time.monotonic())
        return bool(seen) and time.monotonic() - seen[0] > 1

    return ready


@pytest.mark.slow
@pytest.mark.parametrize("sig, status, line, args", [
    (signal.SIGINT, 130, "interrupted", ["--preset", "b7"]),  # about 8 s into B7's export, as reported
    (signal.SIGTERM, 143, "terminated", []),
], ids=["ctrl-c", "sigterm"])
def test_a_signal_during_an_onnx_export(tmp_path, sig, status, line, args):
    pytest.importorskip("onnxscript")
    (tmp_path / "model.onnx").write_bytes(b"old model")
    code, err = _interrupt_when(tmp_path, ["compile", "efficientnet_b0", *args, "--emit", "onnx", "-o", "model.onnx"],
                                _exporting(tmp_path), sig)
    assert (code, err) == (status, line + "\n")
    assert _listing(tmp_path) == ["model.onnx"] and (tmp_path / "model.onnx").read_bytes() == b"old model"


def test_ctrl_c_while_writing(tmp_path):
    """Into a named pipe nobody reads: the command waits in the writer until Ctrl-C."""
    (tmp_path / "tiny.eff").write_text(TINY, encoding="utf-8")
    os.mkfifo(tmp_path / "pipe")

    def writing(proc) -> bool:
        try:  # waiting in open() for a reader ('wait_for_partner' in the kernel's fifo_open)
            return Path(f"/proc/{proc.pid}/wchan").read_text() in ("wait_for_partner", "fifo_open")
        except OSError:  # no /proc: give it time to get there
            time.sleep(5)
            return True

    code, err = _interrupt_when(tmp_path, ["compile", "tiny.eff", "-o", "pipe"], writing, signal.SIGINT)
    assert (code, err) == (130, "interrupted\n")
    assert _listing(tmp_path) == ["pipe", "tiny.eff"] and (tmp_path / "tiny.eff").read_text(encoding="utf-8") == TINY


# ---------------------------------------------------------------------------- 6. spec inputs bounded

@pytest.mark.parametrize("kind, message", [
    ("directory", "the spec '{path}' is a directory, not a file"),
    ("fifo", "the spec '{path}' is a FIFO, not a file"),
    ("loop", "the spec '{path}' is a symlink loop, not a file"),
    ("zero", "the spec '/dev/zero' is a character device, not a file"),
])
def test_a_spec_that_is_not_a_file_is_named_for_what_it_is(tmp_path, kind, message):
    path = tmp_path / "spec.eff"
    if kind == "directory":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)  # never opened: a FIFO would wait for a writer
    elif kind == "loop":
        path.symlink_to(path)
    else:
        path = Path("/dev/zero")
    result = _invoke("check", str(path))
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error[E110]: {message.format(path=path)}\n")


@pytest.mark.parametrize("encoding, name", [("utf-16", "UTF-16"), ("utf-16-be", "UTF-16"), ("utf-32", "UTF-32")])
def test_utf16_and_utf32_are_named(tmp_path, encoding, name):
    path = tmp_path / "wide.eff"
    path.write_bytes(("\ufeff" if encoding.endswith("be") else "") .encode(encoding) + TINY.encode(encoding))
    result = _invoke("check", str(path))
    assert result.exit_code == 2
    assert result.stderr.startswith(f"{path}:1:1: error[E004]: the file is {name} text (it starts with a {name} "
                                    "byte-order mark), not UTF-8\n")
    assert "1 | network tiny {" in result.stderr  # the text, decoded, under the caret


def test_a_huge_binary_spec_is_refused_from_its_first_bytes(tmp_path):
    path = tmp_path / "model.pt"
    with open(path, "wb") as file:
        file.write(b"PK\x03\x04" + b"\x00" * 60)
        file.truncate(500 * 2**20)  # 500 MiB on paper, nothing on disk
    result = _invoke("check", str(path))
    assert result.exit_code == 2
    assert "error[E004]: the file is binary (it contains NUL bytes), not .eff text" in result.stderr


def test_a_huge_text_spec_is_refused_from_its_size(tmp_path):
    path = tmp_path / "log.eff"
    with open(path, "wb") as file:
        file.write(b"# a log, not a spec\n" * 300)  # text, as far as the first bytes tell
        file.truncate(2**30)
    result = _invoke("check", str(path))
    assert result.exit_code == 2
    assert result.stderr.startswith(f"{path}: error[E005]: the file has 1,073,741,824 bytes; "
                                    "a spec has at most 100,000 characters\n")


def test_no_more_than_the_limit_is_read_whatever_the_size_says(tmp_path, monkeypatch):
    """Files in /proc say they are empty; the read stops at the limit all the same."""
    from effdsl.language import source

    path = tmp_path / "big.eff"
    with open(path, "wb") as file:
        file.write(b"#" * (2 * source.MAX_SOURCE_BYTES))
    real_fstat = os.fstat
    monkeypatch.setattr(source.os, "fstat", lambda fd: os.stat_result((*real_fstat(fd)[:6], 0, *real_fstat(fd)[7:])))
    read: list[int] = []
    real_read = source._read_at_most
    monkeypatch.setattr(source, "_read_at_most", lambda file, limit: (read.append(limit), real_read(file, limit))[1])
    with pytest.raises(effdsl.EffdslError) as info:
        effdsl.compile_spec(path)
    assert info.value.diagnostics[0].message == (f"the file has more than {source.MAX_SOURCE_BYTES:,} bytes; "
                                                 "a spec has at most 100,000 characters")
    assert sum(read) + 4096 == source.MAX_SOURCE_BYTES + 1


# ---------------------------------------------------------------------------- 7. numbers

@pytest.mark.parametrize("args, message", [
    (["--num-classes", "99999999999999999999999"],
     "error[E402]: --num-classes must be at most 1,000,000, got 99999999999999999999999"),
    (["--in-chans", "100000000000"], "error[E402]: --in-chans must be at most 1,000,000, got 100000000000"),
    (["--in-chans", "1e11"], "Invalid value for '--in-chans'"),
    (["--width", "nan"], "error[E402]: --width must be a finite number, got nan"),
    (["--depth", "inf"], "error[E402]: --depth must be a finite number, got inf"),
    (["--emit", "weights", "-o", "w.st", "--max-params", "2.5"],
     "error[E409]: --max-params must be a whole number, got 2.5 (float)"),
    (["--emit", "weights", "-o", "w.st", "--max-params", "-1"], "error[E402]: --max-params must be at least 0"),
], ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_command_line_numbers_are_checked(spec, args, message):
    result = _invoke("compile", str(spec), *args)
    assert result.exit_code == 2 and message in result.stderr, result.output
    assert spec.read_text(encoding="utf-8") == TINY and not Path("w.st").exists()


def test_the_parameter_budget_is_checked_before_torch_is_imported():
    code = ("import sys; from typer.testing import CliRunner; from effdsl.cli import app; "
            "r = CliRunner().invoke(app, ['compile', 'efficientnet_b0', '--emit', 'weights', '-o', 'x.st', "
            "'--max-params', '0']); print(r.exit_code, 'torch' in sys.modules); print(r.stderr)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    status, stderr = out.stdout.split("\n", 1)
    assert status == "2 False", out.stdout + out.stderr
    assert ("error[E303]: the network has 5,288,548 parameters (20.2 MiB in float32), more than the budget of 0"
            in stderr)


@pytest.mark.parametrize("options, code, message", [
    ({"num_classes": 2.5}, "E409", "num_classes must be a whole number (an int), got 2.5 (float)"),
    ({"in_chans": 1.5}, "E409", "in_chans must be a whole number (an int), got 1.5 (float)"),
    ({"num_classes": True}, "E409", "num_classes must be a whole number (an int), got True (bool)"),
    ({"phi": "3"}, "E409", "phi must be a number, got '3' (str)"),
    ({"preset": 3}, "E409", "preset must be a preset's name (a string), got 3 (int)"),
    ({"resolution": 224.5}, "E409", "resolution must be a whole number, got 224.5 (float)"),
    ({"drop_rate": "0.1"}, "E409", "drop_rate must be a number, got '0.1' (str)"),
    ({"num_classes": 10**23}, "E402", "num_classes must be at most 1,000,000, got 100000000000000000000000"),
    ({"width": math.nan}, "E402", "width must be a finite number, got nan"),
])
def test_api_arguments_are_checked(options, code, message):
    with pytest.raises(effdsl.EffdslError) as info:
        effdsl.compile_spec(TINY, **options)
    (diag,) = info.value.diagnostics
    assert (diag.code, diag.message, diag.arguments) == (code, message, tuple(options))


@pytest.mark.parametrize("device", ["gpu", "cuda:99", 3.5])
def test_a_device_torch_cannot_use_is_e402(compiled, device):
    with pytest.raises(effdsl.EffdslError) as info:
        effdsl.build(TINY, device=device)
    (diag,) = info.value.diagnostics
    assert diag.code == "E402" and diag.arguments == ("device",)
    assert diag.message.startswith(f"device must be a device torch can use, got {device!r} (")


def test_api_numbers_of_other_kinds_are_taken_as_floats():
    from fractions import Fraction

    assert effdsl.compile_spec("efficientnet_b0", phi=Fraction(1, 2)).summary == \
        effdsl.compile_spec("efficientnet_b0", phi=0.5).summary
    assert effdsl.compile_spec(TINY, resolution=64.0).summary.resolution == 64


@pytest.mark.parametrize("build", [{"max_params": -1}, {"max_params": 2.5}, {"max_params": "many"},
                                   {"max_params": math.inf}])
def test_the_budget_is_a_whole_number(compiled, build):
    with pytest.raises(effdsl.EffdslError) as info:
        compiled.build(**build)
    assert info.value.diagnostics[0].code in ("E402", "E409") and "max_params must be" in str(info.value)


def test_a_sweep_range_beyond_any_float_does_not_hang():
    for text, why in (("1e99999999", "phi must lie in -20..20"),
                      ("0:1:1e-99999999", "a value below 1e-30 is no step of a sweep"),
                      ("0:1e999999999999999999999", "phi must lie in -20..20")):
        result = _invoke("sweep", "efficientnet_b0", "--phi", text)
        assert result.exit_code == 2 and f"error[E406]: bad --phi range '{text}': {why}" in result.stderr


def test_fmt_write_of_source_text(tmp_path):
    text = (ROOT / "specs" / "efficientnet_b0.eff").read_text(encoding="utf-8")  # longer than a file name can be
    result = _invoke("fmt", text, "--write")
    assert (result.exit_code, result.stderr) == (2, "error[E404]: --write needs a spec file, not source text\n")


# ---------------------------------------------------------------------------- 8. checkpoints that are not

def _zip_cut(path: Path, compiled) -> None:
    buffer = io.BytesIO()
    torch.save(_state(compiled), buffer)
    path.write_bytes(buffer.getvalue()[:5000])


class _Code:
    def __reduce__(self):
        return (os.system, ("echo this never runs",))


@pytest.mark.parametrize("name, make, words", [
    ("empty.pt", lambda p, c: p.write_bytes(b""), "the file is empty"),
    ("notes.pt", lambda p, c: p.write_text("train for 300 epochs\n"), "it is a text file, not a checkpoint"),
    ("cut.pt", _zip_cut, "it is a zip archive, as torch.save writes, but a truncated or damaged one"),
    ("code.pt", lambda p, c: p.write_bytes(pickle.dumps(_Code(), protocol=2)),
     "it holds Python objects, not only tensors (posix.system); effdsl loads tensors and never runs code"),
    ("noise.pt", lambda p, c: p.write_bytes(bytes(range(256)) * 4),
     "it is neither a torch.save file (a zip archive) nor a safetensors file"),
    ("bad.safetensors", lambda p, c: p.write_bytes(b"\x10" + b"\x00" * 7 + b"{not json}      "),
     "its safetensors header cannot be read"),
])
def test_e501_says_what_the_file_is(compiled, spec, tmp_path, name, make, words):
    if name == "code.pt" and os.name != "posix":
        pytest.skip("the pickled call is os.system, posix.system on POSIX")
    path = tmp_path / name
    make(path, compiled)
    message = _error(spec, path, "E501", f"cannot read checkpoint '{path}': {words}")
    assert "Error" not in message.split("help:")[0]  # words, not exception class names
