"""What the reports share: a spec read once for many members, and a rich table (with
notes under it) rendered as plain text."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console
from rich.table import Table

from effdsl.api import Source, analyze_source, load_source
from effdsl.language.spec import Network


def parsed(spec: str | Path) -> tuple[Source, Network]:
    """Read and check a spec once, for all the members compiled from it."""
    source = load_source(spec)
    return source, analyze_source(source)


def record(table: Table, *lines: str) -> str:
    console = Console(record=True, width=120, force_terminal=False, color_system=None, file=io.StringIO())
    console.print(table)
    for line in lines:
        console.print(line, highlight=False, markup=False, soft_wrap=True)
    return console.export_text()
