"""The example plug-in package (``tests/plugins/effdsl_example_ops``), installed for a test run.

:func:`install_example_ops` does what ``pip install`` does for ``importlib.metadata``
without touching the environment: it writes the package's ``.dist-info`` (its metadata
and the ``effdsl.ops`` entry points of its ``pyproject.toml``) into a folder on
``sys.path``, next to the package's own source folder. effdsl then finds the plug-in
ops by their entry points, as it would find an installed package's.
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent / "plugins" / "effdsl_example_ops"


def install_example_ops(folder: Path) -> None:
    """Make the example package importable and its entry points visible (idempotent)."""
    project = tomllib.loads((PACKAGE / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    name, version = project["name"], project["version"]
    info = folder / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8")
    lines = []
    for group, entries in project["entry-points"].items():
        lines.append(f"[{group}]")
        lines += [f"{entry} = {target}" for entry, target in entries.items()]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    for path in (str(folder), str(PACKAGE)):
        if path not in sys.path:
            sys.path.append(path)
