"""How a command reports: diagnostics on stderr (text with carets, or JSON) and the exit
status, in one place for every command.

Every command runs its work inside :func:`reporting`: an :class:`EffdslError` (a mistake
in the spec or the arguments) is rendered and ends the command with status 2, an
:class:`InternalError` (a bug in effdsl) is reported as a bug with status 70 and what
to include when reporting it.
"""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from dataclasses import replace
from enum import Enum
from typing import Iterator

import typer

from effdsl.diagnostics import EffdslError, InternalError

EXIT_USER = 2
EXIT_BUG = 70


class Format(str, Enum):
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
    except EffdslError as err:
        fail(err, fmt, to_stdout)
    except InternalError as err:
        bug(err)


def fail(err: EffdslError, fmt: Format = Format.text, to_stdout: bool = False) -> None:
    """Print the diagnostics of ``err`` and exit with status 2."""
    if fmt is Format.json:
        typer.echo(json.dumps([d.to_json(err.filename) for d in err.diagnostics], indent=2), err=not to_stdout)
    else:
        typer.echo(err.render(), err=True)
    raise typer.Exit(EXIT_USER)


def bug(err: InternalError) -> None:
    """Report an internal error as a bug, with what to include in a report; exit 70."""
    from effdsl import __version__

    command = " ".join(["effdsl", *sys.argv[1:]])
    typer.echo(f"{err}\nTo report it, include:\n  effdsl {__version__}, Python {sys.version.split()[0]}\n"
               f"  the command: {command}\n  the spec file, and this message.", err=True)
    raise typer.Exit(EXIT_BUG)


def report_warnings(compiled, fmt: Format, werror: bool, to_stdout: bool = False) -> None:
    """Report the warnings of a successful compile; with -W they fail the command."""
    found = compiled.warnings
    if werror and found:
        err = EffdslError([replace(d, severity="error") for d in found])
        fail(err.with_source(compiled.source.text, compiled.source.filename), fmt, to_stdout)
    if fmt is Format.json:
        if to_stdout or found:
            typer.echo(json.dumps([d.to_json(compiled.source.filename) for d in found], indent=2),
                       err=not to_stdout)
    elif found:
        err = EffdslError(found).with_source(compiled.source.text, compiled.source.filename)
        typer.echo(err.render(), err=True)
