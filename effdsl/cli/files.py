"""The one way a command writes a file: :func:`write_output`; and :func:`check_destinations`,
run before any work, which refuses an output that is a folder, lies in no folder, or is
one of the command's own inputs.

Every file the command line writes (``compile -o`` and its exports, ``sweep -o`` and
``--plot``, ``fmt --write``, ``viz -o``) goes through :func:`write_output`:

- a regular file, or a name that does not exist yet, is written atomically: the content
  goes to a temporary file in the destination's folder, is flushed and synced to disk,
  and then takes the destination's name with ``os.replace``. A reader sees the old file
  or the new one, never half of one; a failure (a missing folder, a full disk, a folder
  given as the file, Ctrl-C or SIGTERM) leaves the destination as it was and no
  temporary file behind, and is reported as E405, naming the path;
- a symbolic link is written through: the file it points to is replaced, the link stays;
- a device (``/dev/null``) or a named pipe is written directly and stays what it is.

An existing file keeps its permissions (``fmt --write`` rewriting a spec) and, where
the writer may set them, its owner; a new one gets the usual permissions, 0666 less the
umask, whatever the program that produced it chose.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import secrets
import shutil
import signal
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path

from effdsl.diagnostics import Diagnostic, EffdslError

# What to write: text (UTF-8), bytes (or a memoryview of them: an export made in memory
# is not copied once more), or a function that writes the file at the path it is given
# (ONNX and safetensors write to a path themselves).
Content = str | bytes | memoryview | Callable[[Path], None]

_NAME_ROOM = 200  # of a file name's 255 bytes, what a temporary name keeps of the destination's
_CHUNK = 1 << 20


def write_output(path: str | Path, content: Content) -> None:
    """Write ``content`` to ``path`` (atomically for a file); an OSError becomes E405 naming ``path``."""
    shown = Path(path)
    target = Path(os.path.realpath(shown))
    try:
        try:
            mode: int | None = os.stat(target).st_mode
        except FileNotFoundError:
            mode = None
        if mode is not None and stat.S_ISDIR(mode):
            raise EffdslError(_cannot_write(shown, "it is a folder", "name a file, not a folder"))
        if mode is not None and not stat.S_ISREG(mode):  # a device or a pipe: nothing to replace
            _write_in_place(target, content)
        elif callable(content):
            _produce_and_replace(target, content)
        else:
            _write_and_replace(target, _data(content))
    except OSError as exc:
        raise EffdslError(_cannot_write(shown, exc.strerror or str(exc), _HELP.get(exc.errno or 0, _HELP[0]))) from None


def check_destinations(outputs: Iterable[str | Path | None], inputs: Mapping[str, str | Path | None]) -> None:
    """Refuse, before any work, the outputs a command could only fail to write or should
    not write (E405): a folder, a file in a folder that does not exist, a file the command
    reads (``inputs``: what it is -> its path, as ``{"the spec": ..., "the checkpoint":
    ...}``) or the same file as another output. Links and other names of one file count
    as that file. What only writing can tell (a full disk, permissions) is left to
    :func:`write_output`."""
    seen: dict[tuple[int, int], str] = {}
    for what, name in inputs.items():
        key = _regular_file(name)
        if key is not None:
            seen.setdefault(key, f"{what} this command reads ('{name}')")
    for name in outputs:
        if name is None:
            continue
        path = Path(name)
        if path.is_dir():
            raise EffdslError(_cannot_write(path, "it is a folder", "name a file, not a folder"))
        folder = Path(os.path.realpath(path)).parent
        if not folder.is_dir():
            raise EffdslError(_cannot_write(path, os.strerror(errno.ENOENT if not folder.exists() else errno.ENOTDIR)))
        key = _regular_file(name)
        if key is None:
            continue
        if key in seen:
            raise EffdslError(_cannot_write(path, f"it is {seen[key]}", "write the output to another file"))
        seen[key] = f"also the output '{name}'"


def _regular_file(name: str | Path | None) -> tuple[int, int] | None:
    """(device, inode) of the regular file ``name`` names, through links; None otherwise."""
    if name is None:
        return None
    try:
        info = os.stat(name)
    except (OSError, ValueError):
        return None
    return (info.st_dev, info.st_ino) if stat.S_ISREG(info.st_mode) else None


_HELP = {  # what to do, by errno
    0: "check that the folder exists and is writable",
    errno.ENOSPC: "free some space, or write to another disk; the file was left as it was",
    errno.EDQUOT: "free some space, or write to another disk; the file was left as it was",
    errno.EFBIG: "write to another disk; the file was left as it was",
    errno.EROFS: "the disk is read-only; write to another one",
}


def _cannot_write(path: Path, why: str, help: str = _HELP[0]) -> Diagnostic:
    return Diagnostic("E405", f"cannot write '{path}': {why}", None, help)


def _write_and_replace(target: Path, data: bytes | memoryview) -> None:
    """Write ``data`` to a new temporary file next to ``target``, sync it, rename it."""
    folder = target.parent
    old = _stat_or_none(target)
    fd, temporary = _new_temporary(target)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        _take_over(temporary, old)
        os.replace(temporary, target)
    except BaseException:
        with signals_held():
            _remove(temporary)
        raise
    _sync_folder(folder)


def _produce_and_replace(target: Path, produce: Callable[[Path], None]) -> None:
    """Let ``produce`` write ``target``'s name in a temporary folder next to it, then move
    what it wrote into place: the files beside the main one first (ONNX's external
    data), the main file last."""
    folder = target.parent
    old = _stat_or_none(target)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name[:_NAME_ROOM]}.", suffix=".tmp", dir=folder))
    try:
        produce(staging / target.name)
        written = sorted(staging.iterdir(), key=lambda p: p.name == target.name)
        if not written or written[-1].name != target.name:
            raise OSError(f"the export wrote no '{target.name}'")
        for file in written:
            with open(file, "rb") as data:
                os.fsync(data.fileno())
            _take_over(str(file), old if file.name == target.name else None)
        for file in written:
            os.replace(file, folder / file.name)
    finally:
        with signals_held():
            shutil.rmtree(staging, ignore_errors=True)
    _sync_folder(folder)


def _write_in_place(target: Path, content: Content) -> None:
    """Write into a device or a named pipe, which stays what it is. Opened without
    O_CREAT, so a node that vanished meanwhile is an error, not a new regular file."""
    if callable(content):  # produced in a private folder, then copied in
        staging = Path(tempfile.mkdtemp(prefix="effdsl.", suffix=".tmp"))
        try:
            content(staging / target.name)
            with open(staging / target.name, "rb") as produced, _open_node(target) as out:
                while chunk := produced.read(_CHUNK):
                    out.write(chunk)
        finally:
            with signals_held():
                shutil.rmtree(staging, ignore_errors=True)
        return
    with _open_node(target) as out:
        out.write(_data(content))


def _data(content: str | bytes | memoryview) -> bytes | memoryview:
    return content.encode("utf-8") if isinstance(content, str) else content


def _open_node(target: Path) -> io.BufferedWriter:
    return os.fdopen(os.open(target, os.O_WRONLY | getattr(os, "O_CLOEXEC", 0)), "wb")


def _new_temporary(target: Path) -> tuple[int, str]:
    """A new file beside ``target``, created with the usual permissions (0666 less the umask)."""
    while True:
        name = target.parent / f".{target.name[:_NAME_ROOM]}.{secrets.token_hex(4)}.tmp"
        try:
            return os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666), str(name)
        except FileExistsError:
            continue


def _stat_or_none(target: Path) -> os.stat_result | None:
    try:
        return os.stat(target)
    except FileNotFoundError:
        return None


def _take_over(path: str, old: os.stat_result | None) -> None:
    """Give the new file ``path`` the permissions (and, where allowed, the owner) of the
    file it replaces, or the usual permissions of a new file."""
    os.chmod(path, stat.S_IMODE(old.st_mode) if old is not None else 0o666 & ~_umask())
    if old is not None and (old.st_uid, old.st_gid) != (os.getuid(), os.getgid()):
        with contextlib.suppress(OSError):  # only root may give a file away
            os.chown(path, old.st_uid, old.st_gid)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _remove(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


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


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM back while a temporary file is removed, so that a second
    signal cannot leave it behind; they are delivered when the block ends."""
    held = {signal.SIGINT, signal.SIGTERM}
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    before = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)
