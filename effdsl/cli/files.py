"""The one way a command writes a file: :func:`write_output`.

Every file the command line writes (``compile -o`` and its exports, ``sweep -o`` and
``--plot``, ``fmt --write``, ``viz -o``) goes through :func:`write_output`, which
writes atomically: the content goes to a temporary file in the destination's folder,
is flushed and synced to disk, and then takes the destination's name with
``os.replace``. A reader sees the old file or the new one, never half of one, and a
failure (a missing folder, a full disk, a folder given as the file) leaves the
destination as it was and no temporary file behind; it is reported as E405, naming
the path.

An existing file keeps its permissions (``fmt --write`` rewriting a spec); a new one
gets the usual ones (0666 less the umask). A destination that is a symbolic link is
written through (the file it points to is replaced); one that exists but is not a
regular file (``/dev/stdout``, a named pipe) cannot be replaced and is written in place.
"""

from __future__ import annotations

import os
import secrets
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Callable, Union

from effdsl.diagnostics import Diagnostic, EffdslError

# What to write: text (UTF-8), bytes, or a function that writes the file at the path it
# is given (the exports: torch.export, ONNX and safetensors write to a path themselves).
Content = Union[str, bytes, Callable[[Path], None]]

_NAME_ROOM = 200  # of a file name's 255 bytes, what a temporary name keeps of the destination's


def write_output(path: str | Path, content: Content) -> None:
    """Write ``content`` to ``path`` atomically; an OSError becomes E405 naming ``path``."""
    shown = Path(path)
    target = Path(os.path.realpath(shown))
    try:
        if target.is_dir():
            raise EffdslError(_cannot_write(shown, "it is a folder", "name a file, not a folder"))
        if target.exists() and not target.is_file():  # a device or a pipe: nothing to replace
            _write_in_place(target, content)
        elif callable(content):
            _produce_and_replace(target, content)
        else:
            _write_and_replace(target, content.encode("utf-8") if isinstance(content, str) else content)
    except OSError as exc:
        raise EffdslError(_cannot_write(shown, exc.strerror or str(exc))) from None


def _cannot_write(path: Path, why: str, help: str = "check that the folder exists and is writable") -> Diagnostic:
    return Diagnostic("E405", f"cannot write '{path}': {why}", None, help)


def _write_and_replace(target: Path, data: bytes) -> None:
    """Write ``data`` to a new temporary file next to ``target``, sync it, rename it."""
    folder = target.parent
    mode = _mode_of(target)
    fd, temporary = _new_temporary(target)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        if mode is not None:
            os.chmod(temporary, mode)
        os.replace(temporary, target)
    except BaseException:
        _remove(temporary)
        raise
    _sync_folder(folder)


def _produce_and_replace(target: Path, produce: Callable[[Path], None]) -> None:
    """Let ``produce`` write ``target``'s name in a temporary folder next to it, then move
    what it wrote into place: the files beside the main one first (ONNX's external
    data), the main file last."""
    folder = target.parent
    mode = _mode_of(target)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name[:_NAME_ROOM]}.", suffix=".tmp", dir=folder))
    try:
        produce(staging / target.name)
        written = sorted(staging.iterdir(), key=lambda p: p.name == target.name)
        if not written or written[-1].name != target.name:
            raise OSError(f"the export wrote no '{target.name}'")
        for file in written:
            with open(file, "rb") as data:
                os.fsync(data.fileno())
        if mode is not None:
            os.chmod(written[-1], mode)
        for file in written:
            os.replace(file, folder / file.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _sync_folder(folder)


def _write_in_place(target: Path, content: Content) -> None:
    if callable(content):
        content(target)
        return
    with open(target, "wb") as out:
        out.write(content.encode("utf-8") if isinstance(content, str) else content)


def _new_temporary(target: Path) -> tuple[int, str]:
    """A new file beside ``target``, created with the usual permissions (0666 less the umask)."""
    while True:
        name = target.parent / f".{target.name[:_NAME_ROOM]}.{secrets.token_hex(4)}.tmp"
        try:
            return os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), str(name)
        except FileExistsError:
            continue


def _mode_of(target: Path) -> int | None:
    """The permissions of an existing ``target`` (kept by the new file), or None."""
    try:
        return stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        return None


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _sync_folder(folder: Path) -> None:
    """Make the rename durable; some file systems cannot sync a folder, which is fine."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
