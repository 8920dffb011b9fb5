"""Every file the command line writes goes through write_output, which writes atomically
and reports a file it cannot write as E405, leaving nothing half-written behind."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from effdsl.cli import app, files
from effdsl.cli.files import write_output
from effdsl.diagnostics import EffdslError

runner = CliRunner()


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_writes_text_and_bytes_and_replaces_a_file(tmp_path):
    target = tmp_path / "out.txt"
    write_output(target, "héllo\n")
    assert target.read_bytes() == "héllo\n".encode()
    write_output(target, b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"
    assert _listing(tmp_path) == ["out.txt"]
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~_umask()


def test_an_existing_file_keeps_its_permissions(tmp_path):
    target = tmp_path / "spec.eff"
    target.write_text("old")
    target.chmod(0o640)
    write_output(target, "new")
    assert target.read_text() == "new" and stat.S_IMODE(target.stat().st_mode) == 0o640


def test_a_missing_folder_is_e405_naming_the_path(tmp_path):
    target = tmp_path / "no" / "such" / "out.txt"
    with pytest.raises(EffdslError) as info:
        write_output(target, "x")
    (diag,) = info.value.diagnostics
    assert diag.code == "E405"
    assert diag.message == f"cannot write '{target}': No such file or directory"
    assert diag.help == "check that the folder exists and is writable"
    assert _listing(tmp_path) == []


def test_a_folder_as_the_target_is_e405_and_stays_as_it_was(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "kept.txt").write_text("kept")
    with pytest.raises(EffdslError) as info:
        write_output(tmp_path / "out", "x")
    assert info.value.diagnostics[0].message == f"cannot write '{tmp_path / 'out'}': it is a folder"
    assert _listing(tmp_path) == ["out"] and _listing(tmp_path / "out") == ["kept.txt"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "out.txt"
    target.write_text("old")

    def disk_full(src, dst):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(files.os, "replace", disk_full)
    with pytest.raises(EffdslError) as info:
        write_output(target, "new")
    assert info.value.diagnostics[0].message == f"cannot write '{target}': No space left on device"
    assert target.read_text() == "old"
    assert _listing(tmp_path) == ["out.txt"]


def test_the_data_is_synced_before_the_rename(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(files.os, "fsync", lambda fd: (events.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(files.os, "replace", lambda a, b: (events.append("replace"), real_replace(a, b))[1])
    write_output(tmp_path / "out.txt", "data")
    assert events[:2] == ["fsync", "replace"]


def test_a_producer_writes_through_a_temporary_folder(tmp_path):
    seen = []

    def produce(path: Path) -> None:  # like ONNX with external data: the model and a file beside it
        seen.append(path)
        path.write_bytes(b"model")
        path.with_name(path.name + ".data").write_bytes(b"weights")

    write_output(tmp_path / "m.onnx", produce)
    assert seen[0].name == "m.onnx" and seen[0].parent != tmp_path and seen[0].parent.parent == tmp_path
    assert _listing(tmp_path) == ["m.onnx", "m.onnx.data"]
    assert (tmp_path / "m.onnx").read_bytes() == b"model"


def test_a_failing_producer_leaves_nothing_behind(tmp_path):
    (tmp_path / "m.pt2").write_bytes(b"old")

    def produce(path: Path) -> None:
        path.write_bytes(b"half")
        raise RuntimeError("export failed")

    with pytest.raises(RuntimeError):
        write_output(tmp_path / "m.pt2", produce)
    assert _listing(tmp_path) == ["m.pt2"] and (tmp_path / "m.pt2").read_bytes() == b"old"


def test_a_symbolic_link_is_written_through(tmp_path):
    real = tmp_path / "real.txt"
    real.write_text("old")
    (tmp_path / "link.txt").symlink_to(real)
    write_output(tmp_path / "link.txt", "new")
    assert (tmp_path / "link.txt").is_symlink() and real.read_text() == "new"


def test_a_device_is_written_in_place_not_replaced():
    write_output("/dev/null", "discarded")
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder_is_e405(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(EffdslError) as info:
            write_output(folder / "out.txt", "x")
        assert info.value.diagnostics[0].message == f"cannot write '{folder / 'out.txt'}': Permission denied"
    finally:
        folder.chmod(0o700)


# ---------------------------------------------------------------------------- commands

@pytest.mark.parametrize("args", [
    ["compile", "efficientnet_b0", "-o", "{out}.txt"],
    ["compile", "efficientnet_b0", "--emit", "ir", "-o", "{out}.ir"],
    ["sweep", "efficientnet_b0", "--phi", "0:1", "-o", "{out}.csv"],
    ["viz", "efficientnet_b0", "--level", "stage", "-o", "{out}.svg"],
], ids=lambda args: " ".join(args[:1] + args[2:-2]))
def test_commands_report_a_missing_folder_as_e405(args, tmp_path):
    out = tmp_path / "missing" / "out"
    result = runner.invoke(app, [a.format(out=out) for a in args])
    assert result.exit_code == 2, result.output
    target = out.with_suffix(Path(args[-1]).suffix)
    assert result.stderr == (f"error[E405]: cannot write '{target}': No such file or directory\n"
                             "   = help: check that the folder exists and is writable\n")
    assert _listing(tmp_path) == []


def test_compile_to_a_folder_is_e405(tmp_path):
    result = runner.invoke(app, ["compile", "efficientnet_b0", "-o", str(tmp_path)])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error[E405]: cannot write '{tmp_path}': it is a folder\n")


def test_fmt_write_rewrites_in_place_and_keeps_the_mode(tmp_path):
    spec = tmp_path / "messy.eff"
    spec.write_text("network messy {\ninput 3 x 32; classes 10\nstem conv k3 s2 c16\n"
                    "stage mbconv e6 k3 s2 c24 x2\npool avg; linear\n}\n", encoding="utf-8")
    spec.chmod(0o600)
    result = runner.invoke(app, ["fmt", str(spec), "--write"])
    assert result.exit_code == 0, result.output
    assert "  input 3 x 32\n" in spec.read_text() and stat.S_IMODE(spec.stat().st_mode) == 0o600
    assert _listing(tmp_path) == ["messy.eff"]


def test_exports_go_through_the_writer(tmp_path, monkeypatch):
    pytest.importorskip("safetensors")
    written = []
    real = files.write_output

    def spy(path, content):
        written.append((Path(path), callable(content)))
        return real(path, content)

    monkeypatch.setattr("effdsl.cli.commands.write_output", spy)
    target = tmp_path / "w.safetensors"
    result = runner.invoke(app, ["compile", "efficientnet_b0", "--phi", "-3", "--emit", "weights", "-o",
                                 str(target)])
    assert result.exit_code == 0, result.output
    assert written == [(target, True)]
    assert _listing(tmp_path) == ["w.safetensors"] and target.stat().st_size > 0
