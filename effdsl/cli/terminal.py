"""What a command does when its surroundings fail it: stdout that cannot take the output,
Ctrl-C and SIGTERM.

- :func:`write_stdout` writes a command's result. On a terminal or pipe whose encoding is
  not UTF-8 (``PYTHONIOENCODING=ascii``, a Latin-1 locale) tables are drawn with ASCII
  (``+``, ``-``, ``|``) and other characters it cannot show become ``?``. A stdout that
  is closed (``>&-``), full (``/dev/full``) or a pipe whose reader has gone is an E405
  error: one line on stderr and status 2, never a traceback.
- :func:`run` runs the command line: Ctrl-C, wherever it comes, ends the command with the
  one line ``interrupted`` and status 130, SIGTERM with ``terminated`` and status 143.
  Either signal raises :class:`Interrupted` in the work under way, so that every file
  being written is removed or left as it was (see :mod:`effdsl.cli.files`); whatever a
  library makes of the interruption on its way out (torch's exporters wrap it in their
  own errors) is not shown.
"""

from __future__ import annotations

import codecs
import contextlib
import errno
import os
import signal
import sys
import unicodedata
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from effdsl.diagnostics import Diagnostic

EXIT_STATUS = {signal.SIGINT: 130, signal.SIGTERM: 143}  # 128 + the signal, as a shell reports it
MESSAGE = {signal.SIGINT: "interrupted", signal.SIGTERM: "terminated"}


class Interrupted(BaseException):
    """Raised by Ctrl-C or SIGTERM in the work under way. A BaseException, like
    KeyboardInterrupt, so that ``except Exception`` clauses let it through."""


_received: list[signal.Signals] = []  # the signals that interrupted this process


def interrupted() -> bool:
    """Whether Ctrl-C or SIGTERM has interrupted this process."""
    return bool(_received)


def _on_signal(number: int, frame: FrameType | None) -> None:
    _received.append(signal.Signals(number))
    if len(_received) == 1:  # a second Ctrl-C, while the first one unwinds, changes nothing
        raise Interrupted(MESSAGE[signal.Signals(number)])


def run(load: Callable[[], Callable[[], object]]) -> None:
    """Load the command line (``load`` imports the typer app and returns it) and run it,
    with Ctrl-C and SIGTERM ending it in one line from the start."""
    previous = {sig: signal.signal(sig, _on_signal) for sig in EXIT_STATUS}
    try:
        load()()
    except BaseException as exc:
        if interrupted():
            _exit_interrupted()
        if isinstance(exc, SystemExit):
            _flush_stdout()
        if isinstance(exc, OSError) and exc.errno in _STREAM_ERRORS:  # the help or a usage error, printed by typer
            _silence_stdout()
            _say(f"error[E405]: cannot write the output: {exc.strerror}")
            raise SystemExit(2) from None
        raise
    finally:
        if not interrupted():
            for sig, handler in previous.items():
                with contextlib.suppress(TypeError, ValueError):
                    signal.signal(sig, handler)
    _flush_stdout()


# What writing to a closed, full or broken stream fails with.
_STREAM_ERRORS = {errno.EPIPE, errno.ENOSPC, errno.EBADF, errno.EIO, errno.EDQUOT, errno.EFBIG}


def _say(line: str) -> None:
    """``line`` on stderr, if stderr can take it."""
    with contextlib.suppress(Exception):
        if sys.stderr is not None:
            sys.stderr.write(line + "\n")
            sys.stderr.flush()


def _exit_interrupted() -> None:
    """One line on stderr, and 128 + the signal's number as the exit status."""
    first = _received[0]
    for sig in EXIT_STATUS:  # nor does one while the interpreter shuts down
        signal.signal(sig, signal.SIG_IGN)
    _silence_stdout()
    _say(MESSAGE[first])
    raise SystemExit(EXIT_STATUS[first])


def write_stdout(text: str) -> None:
    """Write ``text`` to stdout and flush it, in ASCII where stdout cannot take UTF-8; a
    closed, full or broken stdout is E405."""
    from effdsl.diagnostics import EffdslError  # here: run() starts before anything of effdsl is imported

    out = sys.stdout
    if out is None:
        raise EffdslError(_cannot_write_stdout("it is closed"))
    try:
        out.write(for_encoding(text, getattr(out, "encoding", None)))
        out.flush()
    except (OSError, ValueError) as exc:  # ValueError: a file closed under us
        _silence_stdout()
        raise EffdslError(_cannot_write_stdout(_why(exc))) from None


def _cannot_write_stdout(why: str) -> Diagnostic:
    from effdsl.diagnostics import Diagnostic

    return Diagnostic("E405", f"cannot write to stdout: {why}")


def _why(exc: Exception) -> str:
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc) or type(exc).__name__


def for_encoding(text: str, encoding: str | None) -> str:
    """``text`` as a stream in ``encoding`` can take it: unchanged for UTF-8 (and an unknown
    encoding), else box-drawing lines in ASCII and what the encoding lacks as ``?``."""
    try:
        name = codecs.lookup(encoding or "utf-8").name
    except LookupError:
        return text
    if name.startswith("utf"):
        return text
    return text.translate(_ASCII_BOXES).encode(name, errors="replace").decode(name)


def _ascii_box(char: str) -> str:
    """``-`` for a horizontal line, ``|`` for a vertical one, ``+`` where lines meet."""
    words = set(unicodedata.name(char, "").split())
    across = bool(words & {"HORIZONTAL", "LEFT", "RIGHT"})
    down = bool(words & {"VERTICAL", "UP", "DOWN"})
    return "+" if across == down else "-" if across else "|"


# Box drawing (U+2500..U+257F), as rich draws its tables, in ASCII.
_ASCII_BOXES = {code: _ascii_box(chr(code)) for code in range(0x2500, 0x2580)}


def _flush_stdout() -> None:
    """Flush stdout at the end; a failure is reported in one line, not by Python at exit."""
    out = sys.stdout
    if out is None:
        return
    try:
        out.flush()
    except (OSError, ValueError) as exc:
        _silence_stdout()
        _say(f"error[E405]: cannot write to stdout: {_why(exc)}")
        raise SystemExit(2) from None


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's last flush of what could not be
    written fails no more (it would print 'Exception ignored ...')."""
    out = sys.stdout
    if out is None:
        return
    try:
        fd = out.fileno()
    except (OSError, ValueError, AttributeError):  # not a real file (a test's capture)
        return
    with contextlib.suppress(OSError):
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, fd)
        os.close(null)
