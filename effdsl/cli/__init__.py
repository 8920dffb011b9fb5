"""The ``effdsl`` command line: the only place that prints, writes files and exits.

- :mod:`effdsl.cli.commands`: the commands (compile, check, fmt, sweep, diff, viz, list);
- :mod:`effdsl.cli.reporting`: how a command ends: diagnostics on stderr (or as JSON)
  and the exit status, in one place for every command;
- :mod:`effdsl.cli.files`: the one function through which a command writes a file.

Exit status: 0 success, 2 a mistake in the spec or the arguments (rendered with the
source line and a caret on stderr), 70 an internal error (a bug in effdsl). The CLI may
import any part of effdsl; nothing in effdsl imports it.
"""

from effdsl.cli.commands import app, main

__all__ = ["app", "main"]
