"""Reading a spec: a path, the name of a built-in spec, or the text itself.

The file is looked at before it is read, and no more of it is read than a spec can
need. It must be a regular file (a folder, a named pipe, a device such as ``/dev/zero``
or a symbolic link that loops is named for what it is and never opened for reading);
its first bytes tell UTF-16 and UTF-32 text (by their byte-order marks) and binary
files (NUL bytes) from UTF-8 text; and at most :data:`MAX_SOURCE_BYTES` plus one byte
are read, so a checkpoint or a log passed by mistake costs a few kilobytes of memory
and is refused at once. The text is then decoded as UTF-8, a byte-order mark dropped
and line ends normalized.
"""

from __future__ import annotations

import errno
import io
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from effdsl.diagnostics import Diagnostic, EffdslError, Span, did_you_mean
from effdsl.language.families import MODELS
from effdsl.language.parser import MAX_SOURCE_CHARS, normalize
from effdsl.language.resources import builtin_specs

# The most bytes of a spec within MAX_SOURCE_CHARS characters: four per character in
# UTF-8, and a byte-order mark.
MAX_SOURCE_BYTES = 4 * MAX_SOURCE_CHARS + 3

_HEAD_BYTES = 4096  # read first: enough to tell text from binary
_NAME_SHOWN = 120  # of a name quoted back in a message

# Byte-order marks of the encodings a spec is not in, longest first (UTF-32 LE starts
# with UTF-16 LE's mark).
_BOMS = ((b"\xff\xfe\x00\x00", "UTF-32", "utf-32"), (b"\x00\x00\xfe\xff", "UTF-32", "utf-32"),
         (b"\xff\xfe", "UTF-16", "utf-16"), (b"\xfe\xff", "UTF-16", "utf-16"))


@dataclass(frozen=True)
class Source:
    """The text of a spec and the name to show for it (a path, a built-in name, ``<string>``)."""

    text: str
    filename: str


def is_source_text(spec: str | Path) -> bool:
    """A str with a ``{`` or a line break is source text, never a path."""
    return isinstance(spec, str) and ("{" in spec or "\n" in spec)


def load_source(spec: str | Path) -> Source:
    """Resolve a path, a built-in name or source text to the text and a display name.

    A path that exists wins over a built-in name, unless it is not a regular file (a
    folder named like a built-in spec does not hide it).
    """
    if isinstance(spec, str) and is_source_text(spec):
        return Source(normalize(spec), "<string>")
    name = str(spec)
    path = spec_file(spec)
    if path is None:
        builtins = builtin_specs()
        kind = file_kind(name)
        if kind not in ("missing", None):
            raise EffdslError(Diagnostic("E110", f"the spec '{_shown(name)}' is {kind}, not a file", None,
                                         "name a .eff file, or a built-in spec (see 'effdsl list')"))
        hint = did_you_mean(name, [*builtins, *MODELS])
        raise EffdslError(Diagnostic(
            "E110", f"no such spec file or built-in spec: '{_shown(name)}'", None,
            hint if hint and not hint.startswith("expected") else
            "'effdsl list' shows the built-in models by name, 'effdsl list --files' the built-in specs",
        ))
    if isinstance(spec, str) and spec in MODELS and spec not in builtin_specs() and file_kind(spec) is not None:
        name = MODELS[spec].spec  # a reference model's name: shown as its family's spec
    return Source(decode(read_spec_file(path, name), name), name)


def spec_file(spec: str | Path) -> Path | None:
    """The file a spec names: the path itself when it is a regular file (or cannot be
    looked at: reading it says why), else the built-in spec of that name; None for source
    text and for a name that is neither."""
    if isinstance(spec, str) and is_source_text(spec):
        return None
    if file_kind(spec) is None:
        return Path(spec)
    builtins = builtin_specs()
    if not isinstance(spec, str):
        return None
    if spec not in builtins and spec in MODELS:  # a reference model's name: its family's spec
        return builtins.get(MODELS[spec].spec)
    return builtins.get(spec)


def _shown(name: str) -> str:
    return name if len(name) <= _NAME_SHOWN else name[:_NAME_SHOWN] + "..."


def file_kind(path: str | Path) -> str | None:
    """What ``path`` is when it is not a regular file: ``"missing"``, ``"a directory"``,
    ``"a FIFO"``, ``"a character device"``, ``"a symlink loop"`` ...; None for a file."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "a symlink loop"
        if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ENAMETOOLONG, errno.EINVAL):
            return "missing"
        return None  # permission denied and the like: opening the file says why
    except ValueError:  # a NUL character in the name
        return "missing"
    return kind_of_mode(mode)


def kind_of_mode(mode: int) -> str | None:
    """The kind of a file that is not a regular file, from its ``st_mode``; None for a file."""
    if stat.S_ISREG(mode):
        return None
    for test, what in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return what
    return "not a regular file"


def read_spec_file(path: Path, name: str) -> bytes:
    """The bytes of a spec file: at most :data:`MAX_SOURCE_BYTES` + 1 of a regular file,
    with binary and UTF-16/32 files refused from their first bytes (E004) and larger
    files from their size (E005)."""
    try:
        # O_NONBLOCK: a FIFO put in the file's place since it was looked at opens at once
        # (and is refused below) instead of waiting for a writer.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise _unreadable(name, exc) from None
    with os.fdopen(fd, "rb", buffering=0) as file:
        try:
            info = os.fstat(fd)
            kind = kind_of_mode(info.st_mode)
            if kind is not None:
                raise EffdslError(Diagnostic("E110", f"the spec '{_shown(name)}' is {kind}, not a file"))
            head = file.read(_HEAD_BYTES) or b""
            check_text_head(head, name)
            if info.st_size > MAX_SOURCE_BYTES:
                raise too_large(info.st_size).with_source("", name)
            data = head + _read_at_most(file, MAX_SOURCE_BYTES + 1 - len(head))
        except OSError as exc:
            raise _unreadable(name, exc) from None
    if len(data) > MAX_SOURCE_BYTES:  # the file grew since it was looked at
        raise too_large(len(data) - 1, more=True).with_source("", name)
    return data


def _read_at_most(file: io.FileIO, limit: int) -> bytes:
    chunks: list[bytes] = []
    while limit > 0:
        chunk = file.read(min(limit, 1 << 16))
        if not chunk:
            break
        chunks.append(chunk)
        limit -= len(chunk)
    return b"".join(chunks)


def _unreadable(name: str, exc: OSError) -> EffdslError:
    return EffdslError(Diagnostic("E110", f"cannot read the spec file '{_shown(name)}': {exc.strerror or exc}"))


def too_large(size: int, more: bool = False) -> EffdslError:
    """E005 for a file of ``size`` bytes, more than any spec."""
    return EffdslError(Diagnostic(
        "E005", f"the file has {'more than ' if more else ''}{size:,} bytes; a spec has at most "
                f"{MAX_SOURCE_CHARS:,} characters", None, "is this the right file?"))


def check_text_head(head: bytes, filename: str) -> None:
    """Refuse UTF-16 and UTF-32 text (by byte-order mark) and binary data (NUL bytes) from
    the first bytes of a file (E004)."""
    for bom, encoding, codec in _BOMS:
        if head.startswith(bom):
            shown = head.decode(codec, errors="replace")
            err = EffdslError(Diagnostic(
                "E004", f"the file is {encoding} text (it starts with a {encoding} byte-order mark), not UTF-8",
                Span(1, 1, 1, 2), f"save the spec as UTF-8 text, e.g. with iconv -f {encoding} -t UTF-8"))
            raise err.with_source(normalize(shown.removeprefix("\ufeff")), filename)
    if b"\x00" in head:
        offset = head.index(b"\x00")
        raise _not_text(head, offset, "the file is binary (it contains NUL bytes), not .eff text", filename)


def decode(data: bytes, filename: str) -> str:
    """UTF-8 text with a BOM dropped and line ends normalized; binary input is an error."""
    check_text_head(data[:_HEAD_BYTES], filename)
    if b"\x00" in data:
        offset = data.index(b"\x00")
        raise _not_text(data, offset, "the file is binary (it contains NUL bytes), not .eff text", filename)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _not_text(data, exc.start, "the file is not UTF-8 text", filename) from None
    return normalize(text)


def _not_text(data: bytes, offset: int, message: str, filename: str) -> EffdslError:
    before = data[:offset]
    line = before.count(b"\n") + 1
    line_start = before.rfind(b"\n") + 1
    # Columns count characters, like every other span: decode what precedes the bad byte.
    prefix = data[line_start:offset].decode("utf-8", errors="replace")
    if line_start == 0:
        prefix = prefix.removeprefix("\ufeff")  # a BOM is not a column
    column = len(prefix) + 1
    err = EffdslError(Diagnostic("E004", message, Span(line, column, line, column + 1),
                                 "save the spec as UTF-8 text"))
    shown = normalize(data.decode("utf-8", errors="replace").replace("\x00", "\ufffd"))
    return err.with_source(shown, filename)
