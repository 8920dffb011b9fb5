"""The layout tells the story: data flows one way through the compiler stages."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "effdsl"

# Each module's stage; a module may import only from its own stage or earlier ones.
STAGES = [
    {"diagnostics", "resources"},
    {"parser"},
    {"spec"},
    {"values"},
    {"settings"},
    {"analyze", "format"},
    {"rounding", "costs", "scaling"},
    {"ir"},
    {"lower"},
    {"passes"},
    {"summary"},
    {"backends", "backends.torch", "backends.checkpoint", "backends.export", "backends.pysource", "backends.layers",
     "backends.viz", "backends.viz_svg", "backends.viz_html"},
    {"api"},
    {"report"},
    {"cli", "__init__", "__main__"},
]
RANK = {name: i for i, names in enumerate(STAGES) for name in names}


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE).with_suffix("")
    parts = [p for p in rel.parts if p != "__init__"] or ["__init__"]
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    # Imports under `if TYPE_CHECKING:` never run; they do not count.
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            node.body = []
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_every_module_has_a_stage():
    modules = {_module_name(p) for p in PACKAGE.rglob("*.py")}
    assert modules <= set(RANK), f"unplaced modules: {sorted(modules - set(RANK))}"


def test_no_module_imports_a_later_stage():
    for path in PACKAGE.rglob("*.py"):
        me = _module_name(path)
        for target in _imports(path):
            if not target.startswith("effdsl."):
                continue
            other = target.removeprefix("effdsl.")
            assert RANK[other] <= RANK[me], f"effdsl.{me} imports later stage {target}"


def test_only_the_parser_imports_lark_and_only_backends_import_torch():
    for path in PACKAGE.rglob("*.py"):
        me = _module_name(path)
        roots = {name.split(".")[0] for name in _imports(path)}
        if "lark" in roots:
            assert me == "parser", f"{me} imports lark"
        if "torch" in roots or "safetensors" in roots:
            assert me.startswith("backends."), f"{me} imports torch"


def test_cli_compile_does_not_import_torch():
    code = (
        "import sys; from effdsl.cli import app; from typer.testing import CliRunner;"
        "r = CliRunner().invoke(app, ['compile', 'efficientnet_b0', '--phi', '3']);"
        "assert r.exit_code == 0, r.output; print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
