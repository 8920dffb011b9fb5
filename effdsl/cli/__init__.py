"""The ``effdsl`` command line: the only place that prints, writes files and exits.

- :mod:`effdsl.cli.commands`: the commands (compile, check, fmt, sweep, diff, viz, list);
- :mod:`effdsl.cli.search`: ``space`` and ``search``;
- :mod:`effdsl.cli.grid`: ``grid`` (the compound-scaling coefficients by grid search);
- :mod:`effdsl.cli.reporting`: how a command ends: diagnostics on stderr (or as JSON)
  and the exit status, in one place for every command;
- :mod:`effdsl.cli.files`: the one function through which a command writes a file;
- :mod:`effdsl.cli.terminal`: stdout that cannot take the output, Ctrl-C and SIGTERM.

Exit status: 0 success, 2 a mistake in the spec or the arguments (rendered with the
source line and a caret on stderr), 70 an internal error (a bug in effdsl), 130 Ctrl-C,
143 SIGTERM. The CLI may import any part of effdsl; nothing in effdsl imports it.

Importing this package loads nothing else: :func:`main` sets up the handling of Ctrl-C
first, so that even an interruption while the compiler is being imported ends in the one
line ``interrupted``.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing before main() starts
if TYPE_CHECKING:
    import typer

    from effdsl.cli.commands import app

__all__ = ["app", "main"]


def main() -> None:
    """The ``effdsl`` program."""
    from effdsl.cli.terminal import run

    run(_app)


def _app() -> typer.Typer:
    from effdsl.cli import grid, search  # noqa: F401  (adds 'space', 'search' and 'grid' to the app)
    from effdsl.cli.commands import app

    return app


def __getattr__(name: str) -> object:
    if name == "app":
        return _app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
