"""The wheel works on its own: built from this checkout, installed in a fresh virtual environment.

The fresh environment sees the wheel and, for its dependencies, only the distributions
its metadata asks for (and what they ask for, transitively), linked from the
environment running the tests. So nothing is downloaded, a dependency missing from
``pyproject.toml`` shows as an ``ImportError`` or a refused install, and the checkout
itself (or an editable install of it) can not leak in: the commands run from a
temporary directory, without ``PYTHONPATH``.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import re
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import effdsl

from conftest import ROOT, require

# Variables that would let the fresh interpreter see something besides the wheel.
LEAKY = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONUSERBASE", "PYTHONSAFEPATH", "VIRTUAL_ENV",
         "PYTHONNOUSERSITE", "PIP_TARGET", "PIP_PREFIX")
COMMAND = ["compile", "efficientnet_b0", "--phi", "3"]

INSPECT = """
import importlib.metadata, importlib.resources, json, sys
import effdsl
package = importlib.resources.files("effdsl")
print(json.dumps({
    "file": effdsl.__file__,
    "version": effdsl.__version__,
    "metadata_version": importlib.metadata.version("effdsl"),
    "grammar": (package / "grammars" / "effdsl.lark").is_file(),
    "specs": sorted(p.name for p in (package / "specs").iterdir()),
    "py_typed": (package / "py.typed").is_file(),
    "path": sys.path,
}))
"""


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in LEAKY}
    return {**env, "COLUMNS": "120", "PYTHONDONTWRITEBYTECODE": "1", **extra}


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, f"{' '.join(map(str, args))}\n{done.stdout}\n{done.stderr}"
    return done


def _requirements(metadata: str) -> list[str]:
    """Names of the distributions a METADATA file requires outside any extra."""
    names = []
    for line in metadata.splitlines():
        if line.startswith("Requires-Dist:"):
            req = Requirement(line.split(":", 1)[1].strip())
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                names.append(req.name)
    return names


def _link_dependencies(metadata: str, into: Path) -> list[str]:
    """Symlink, into ``into``, every file of the distributions ``metadata`` needs, transitively."""
    seen: set[str] = set()
    todo = _requirements(metadata)
    while todo:
        name = canonicalize_name(todo.pop())
        if name in seen:
            continue
        seen.add(name)
        dist = importlib.metadata.distribution(name)  # PackageNotFoundError: the test env lacks it
        assert dist.files, f"{name} lists no files"
        for top in sorted({f.parts[0] for f in dist.files if f.parts[0] not in ("..", "__pycache__")}):
            target = into / top
            source = Path(dist.locate_file(top))
            if target.is_symlink():
                assert target.resolve() == source.resolve(), f"{top} belongs to two distributions"
            elif source.exists():
                target.symlink_to(source, target_is_directory=source.is_dir())
        todo += _requirements(dist.read_text("METADATA") or "")
    return sorted(seen)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require(importlib.util.find_spec("hatchling") is not None,
            "hatchling (the build backend) is not installed: pip install hatchling, or the test extras")
    dist = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "pip", "--isolated", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
          "--quiet", "--wheel-dir", str(dist), str(ROOT)], cwd=dist, env=_env())
    (built,) = dist.glob("*.whl")
    return built


def test_wheel_holds_the_package_data_and_one_version(wheel: Path):
    assert wheel.name == f"effdsl-{effdsl.__version__}-py3-none-any.whl"
    names = set(zipfile.ZipFile(wheel).namelist())
    specs = {f"effdsl/specs/{p.name}" for p in (ROOT / "specs").glob("*.eff")}
    assert specs and specs <= names
    assert {"effdsl/grammars/effdsl.lark", "effdsl/py.typed", "effdsl/__init__.py", "effdsl/cli/__init__.py"} <= names
    info = f"effdsl-{effdsl.__version__}.dist-info"
    assert f"{info}/licenses/LICENSE" in names
    metadata = zipfile.ZipFile(wheel).read(f"{info}/METADATA").decode("utf-8")
    assert re.search(rf"^Version: {re.escape(effdsl.__version__)}$", metadata, re.MULTILINE)
    assert not {n for n in names if n.startswith(("tests/", "docs/", "benchmarks/"))}


def test_installed_wheel_compiles_by_name_in_a_fresh_environment(wheel: Path, tmp_path: Path):
    fresh, deps, work = tmp_path / "venv", tmp_path / "deps", tmp_path / "work"
    deps.mkdir()
    work.mkdir()
    metadata = zipfile.ZipFile(wheel).read(f"effdsl-{effdsl.__version__}.dist-info/METADATA").decode("utf-8")
    linked = _link_dependencies(metadata, deps)
    assert {"lark", "pydantic", "networkx", "typer", "rich"} <= set(linked)
    assert "effdsl" not in linked

    venv.EnvBuilder(with_pip=False, symlinks=True).create(fresh)
    python = fresh / "bin" / "python"
    site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                     cwd=work, env=_env()).stdout.strip())
    (site / "dependencies.pth").write_text(f"{deps}\n", encoding="utf-8")
    # Not --no-deps: pip must find every requirement of the wheel among the linked ones.
    _run([sys.executable, "-m", "pip", "--isolated", "--python", str(python), "install", "--no-index", "--quiet",
          str(wheel)], cwd=work, env=_env())

    found = json.loads(_run([str(python), "-c", INSPECT], cwd=work, env=_env()).stdout)
    assert Path(found["file"]).parent == site / "effdsl"
    assert found["version"] == found["metadata_version"] == effdsl.__version__
    assert found["grammar"] and found["py_typed"]
    assert found["specs"] == sorted(p.name for p in (ROOT / "specs").glob("*.eff"))
    checkout = str(ROOT)
    assert not [p for p in found["path"] if p == checkout or p.startswith(checkout + os.sep)]

    installed = _run([str(fresh / "bin" / "effdsl"), *COMMAND], cwd=work, env=_env())
    from_checkout = _run([sys.executable, "-m", "effdsl", *COMMAND], cwd=work, env=_env(PYTHONPATH=checkout))

    def table(out: str) -> list[str]:
        return [line for line in out.splitlines() if not line.startswith("elapsed")]

    assert "efficientnet_b0 (phi 3)" in installed.stdout
    assert table(installed.stdout) == table(from_checkout.stdout)
    assert installed.stderr == ""
