"""How a command reports: diagnostics on stderr (text with carets, or JSON) and the exit
status, in one place for every command.

Every command runs its work inside :func:`reporting`: an :class:`EffdslError` (a mistake
in the spec or the arguments) is rendered and ends the command with status 2, an
:class:`InternalError` (a bug in effdsl) is reported as a bug with status 70 and what
to include when reporting it.

Diagnostics about an argument name the Python parameter (``width must be greater than
0``); :func:`as_flags` writes those names as this command line's flags (``--width``)
before they are shown.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from enum import StrEnum
from typing import TYPE_CHECKING, NoReturn

import typer

from effdsl.cli.terminal import interrupted, write_stdout
from effdsl.diagnostics import Diagnostic, EffdslError, InternalError

if TYPE_CHECKING:
    from effdsl.api import Compiled

EXIT_USER = 2
EXIT_BUG = 70


# The Python parameter behind each flag (compile_spec, build, Compiled.build).
FLAGS: dict[str, str] = {
    "phi": "--phi",
    "preset": "--preset",
    "width": "--width",
    "depth": "--depth",
    "resolution": "--resolution",
    "num_classes": "--num-classes",
    "in_chans": "--in-chans",
    "drop_rate": "--drop-rate",
    "drop_path_rate": "--drop-path-rate",
    "max_params": "--max-params",
    "min_fraction": "--min-fraction",
}


def as_flags(diag: Diagnostic) -> Diagnostic:
    """``diag`` with the parameters it names written as flags: ``width`` -> ``--width``,
    ``width=W`` -> ``--width W``. Only the names listed in ``diag.arguments`` change."""
    names = [name for name in diag.arguments if name in FLAGS]
    if not names:
        return diag
    pattern = re.compile(r"(?<![\w-])(" + "|".join(map(re.escape, sorted(names, key=len, reverse=True)))
                         + r")(?:(=)|(?!\w))")

    def flag(match: re.Match[str]) -> str:
        return FLAGS[match.group(1)] + (" " if match.group(2) else "")

    return replace(diag, message=pattern.sub(flag, diag.message),
                   help=pattern.sub(flag, diag.help) if diag.help is not None else None, arguments=())


def _shown(err: EffdslError) -> EffdslError:
    """``err`` with its diagnostics spelled for the command line (same source attached)."""
    if not any(d.arguments for d in err.diagnostics):
        return err
    shown = EffdslError([as_flags(d) for d in err.diagnostics])
    shown.source, shown.filename = err.source, err.filename
    return shown


class Format(StrEnum):
    text = "text"
    json = "json"


@contextmanager
def reporting(fmt: Format = Format.text, to_stdout: bool = False) -> Iterator[None]:
    """Run a command's work: a user error exits 2 with its diagnostics, a bug exits 70.

    With ``fmt`` JSON the diagnostics are a JSON array, on stdout when ``to_stdout``
    (``check``), else on stderr (``compile``, whose stdout is its result).
    """
    try:
        yield
    except (EffdslError, InternalError) as err:
        if interrupted():  # what the work made of Ctrl-C; terminal.run says 'interrupted'
            raise
        if isinstance(err, EffdslError):
            fail(err, fmt, to_stdout)
        else:
            bug(err)


def fail(err: EffdslError, fmt: Format = Format.text, to_stdout: bool = False) -> NoReturn:
    """Print the diagnostics of ``err`` and exit with status 2."""
    err = _shown(err)
    if fmt is Format.json:
        _echo(json.dumps([d.to_json(err.filename) for d in err.diagnostics], indent=2), to_stdout)
    else:
        typer.echo(err.render(), err=True)
    raise typer.Exit(EXIT_USER)


def _echo(text: str, to_stdout: bool) -> None:
    """``text`` and a line end on stdout, or on stderr; a stdout that fails is reported on stderr."""
    if not to_stdout:
        typer.echo(text, err=True)
        return
    try:
        write_stdout(text + "\n")
    except EffdslError as err:
        typer.echo(err.render(), err=True)
        raise typer.Exit(EXIT_USER) from None


def bug(err: InternalError) -> NoReturn:
    """Report an internal error as a bug, with what to include in a report; exit 70."""
    from effdsl import __version__

    command = " ".join(["effdsl", *sys.argv[1:]])
    typer.echo(f"{err}\nTo report it, include:\n  effdsl {__version__}, Python {sys.version.split()[0]}\n"
               f"  the command: {command}\n  the spec file, and this message.", err=True)
    raise typer.Exit(EXIT_BUG)


def report_warnings(compiled: Compiled, fmt: Format, werror: bool, to_stdout: bool = False) -> None:
    """Report the warnings of a successful compile; with -W they fail the command."""
    found = [as_flags(d) for d in compiled.warnings]
    if werror and found:
        err = EffdslError([replace(d, severity="error") for d in found])
        fail(err.with_source(compiled.source.text, compiled.source.filename), fmt, to_stdout)
    if fmt is Format.json:
        if to_stdout or found:
            _echo(json.dumps([d.to_json(compiled.source.filename) for d in found], indent=2), to_stdout)
    elif found:
        err = EffdslError(found).with_source(compiled.source.text, compiled.source.filename)
        typer.echo(err.render(), err=True)
