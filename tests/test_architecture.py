"""The layout tells the story: data flows one way through the compiler's subpackages."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import networkx as nx

PACKAGE = Path(__file__).resolve().parent.parent / "effdsl"

# Each subpackage (or top-level module) and its rank; a module may import only from its
# own rank or earlier ones. Subpackages of one rank are siblings and never import each other.
RANKS: list[set[str]] = [
    {"diagnostics"},
    {"language"},
    {"scaling"},
    {"ir"},
    {"blocks"},
    {"passes"},
    {"backends"},
    {"export", "viz"},
    {"api"},
    {"reports", "search", "hub"},
    {"__init__"},
    {"cli"},
    {"__main__"},
]
RANK = {name: i for i, names in enumerate(RANKS) for name in names}
TOP_LEVEL_LIMIT = 8


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE).with_suffix("")
    parts = [p for p in rel.parts if p != "__init__"] or ["__init__"]
    return ".".join(parts)


def _unit(module: str) -> str:
    """The subpackage (or top-level module) a module belongs to."""
    return module.split(".")[0]


def _tree(path: Path) -> ast.Module:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    # Imports under `if TYPE_CHECKING:` never run; they do not count.
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            node.body = []
    return tree


def _imports(path: Path, top_level_only: bool = False) -> set[str]:
    tree = _tree(path)
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            if node.module == "effdsl":  # from effdsl import viz
                found.update(f"effdsl.{alias.name}" for alias in node.names if not alias.name.startswith("__"))
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def test_every_module_has_a_rank():
    units = {_unit(m) for m in _modules()}
    assert units <= set(RANK), f"unplaced: {sorted(units - set(RANK))}"


def test_at_most_eight_modules_at_the_top():
    top = [p.name for p in PACKAGE.glob("*.py")]
    assert len(top) <= TOP_LEVEL_LIMIT, top


def test_every_subpackage_says_its_job_and_what_it_may_import():
    for init in PACKAGE.glob("*/__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))
        assert doc, f"{init.parent.name}/__init__.py has no docstring"
        assert "import" in doc, f"{init.parent.name}/__init__.py does not say what it may import"


def test_no_module_imports_a_later_or_sibling_unit():
    for me, path in _modules().items():
        for target in _imports(path):
            if not target.startswith("effdsl."):
                continue
            other = _unit(target.removeprefix("effdsl."))
            mine = _unit(me)
            if other == mine:
                continue
            assert RANK[other] < RANK[mine], f"effdsl.{me} imports {target} (rank {RANK[other]} >= {RANK[mine]})"


def test_module_imports_have_no_cycles():
    graph = nx.DiGraph()
    modules = _modules()
    for me, path in modules.items():
        graph.add_node(me)
        for target in _imports(path):
            if target.startswith("effdsl."):
                other = target.removeprefix("effdsl.")
                while other not in modules and "." in other:  # effdsl.x.y.name -> effdsl.x.y
                    other = other.rsplit(".", 1)[0]
                if other in modules and other != me:
                    graph.add_edge(me, other)
    cycles = list(nx.simple_cycles(graph))
    assert not cycles, f"import cycles: {cycles[:3]}"


# The search trains: its workers import torch, inside the functions that build, train and score.
TORCH_IN_FUNCTIONS = ("search.proxy", "search.data", "search.trial", "search.executor", "search.run")


def test_only_language_imports_lark_and_only_the_torch_backend_and_exports_import_torch():
    for me, path in _modules().items():
        roots = {name.split(".")[0] for name in _imports(path)}
        if "lark" in roots:
            assert me == "language.parser", f"{me} imports lark"
        if roots & {"torch", "safetensors", "onnx"}:
            assert me.startswith(("backends.torch", "export.formats", *TORCH_IN_FUNCTIONS)), f"{me} imports torch"
        top = {name.split(".")[0] for name in _imports(path, top_level_only=True)}
        if _unit(me) != "backends":
            assert not top & {"torch", "safetensors", "onnx"}, f"{me} imports torch at module level"


def test_nothing_imports_the_cli():
    for me, path in _modules().items():
        if me in ("cli", "__main__"):
            continue
        assert "effdsl.cli" not in _imports(path), f"effdsl.{me} imports the CLI"


def test_cli_space_and_search_setup_do_not_import_torch():
    """effdsl space needs no torch; a search's main process leaves torch to its workers."""
    code = (
        "import sys; from effdsl.cli import app; from typer.testing import CliRunner;"
        "r = CliRunner().invoke(app, ['space', 'efficientnet_space', '--resolution', '32']);"
        "assert r.exit_code == 0, r.output;"
        "import effdsl.search.run, effdsl.search.report, effdsl.search.executor;"
        "print('torch' in sys.modules, 'sklearn' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False False"


def test_cli_compile_does_not_import_torch():
    code = (
        "import sys; from effdsl.cli import app; from typer.testing import CliRunner;"
        "r = CliRunner().invoke(app, ['compile', 'efficientnet_b0', '--phi', '3']);"
        "assert r.exit_code == 0, r.output; print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
