"""Every example in docs/*.md runs, and says what it shows.

A page is read as a sequence of fenced blocks, classified by the fence's language tag:

``eff``
    A complete spec. It must compile at its baseline (``effdsl.api.compile_spec``); a
    search space, which has no baseline, must pass ``effdsl check``
    (``effdsl.api.check_spec``: the members that together use every option compile).
    A file of block definitions without a network (one that specs ``include``) must read
    without errors, with the files it includes.
``eff-error``
    A spec that must fail (compiled, or checked if it is a search space, as above). A
    leading comment ``# expect: E201`` lists the codes of the diagnostics it must
    produce (several codes separated by spaces or commas); the set of codes produced
    must equal the set listed.
``console``
    Lines starting with ``$ effdsl`` are commands; the lines up to the next ``$`` line
    are the command's exact output (stdout and stderr together, as a terminal shows
    them). Commands run in-process with ``typer.testing.CliRunner`` on
    ``effdsl.cli.app``. Comparison ignores trailing spaces on each line and trailing
    blank lines. The wall-clock line is the one line that varies from run to run: the
    doc writes it as ``elapsed     ...``, and the test rewrites the real
    ``elapsed     12.3 ms`` line the same way before comparing. A command whose expected
    output contains an error (``error[E...]``, or ``error[W...]`` for a warning turned
    into an error by ``-W``) must exit with status 2, any other with status 0.
``python``
    Run with ``exec``, in page order, in one namespace per page; ``assert`` statements
    check what the prose claims.
``text``
    Not an example (a grammar sketch, a formula); not run.

The examples run with the example plug-in package of ``tests/plugins`` installed (its
``grouped_pw`` op, and ``broken_op`` for the diagnostic of a broken plug-in).

An ``eff`` or ``eff-error`` block whose leading comments include ``# file: NAME.eff`` is
also written to ``NAME.eff`` in the page's working directory (a fresh temporary folder,
the current directory for every console and python block of the page), so that the
page's commands can name it. A page may also name the built-in spec ``efficientnet_b0``.
"""

from __future__ import annotations

import importlib.util
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from effdsl.api import check_spec, compile_spec, parse_spec
from effdsl.cli import app
from effdsl.diagnostics import Collector, EffdslError
from effdsl.language.blockdefs import read_block_defs
from effdsl.language.includes import include_blocks
from effdsl.language.parser import parse_file

from conftest import require

DOCS = Path(__file__).resolve().parent.parent / "docs"
PAGES = sorted(DOCS.glob("*.md"))
KINDS = {"eff", "eff-error", "console", "python", "text"}
CHECKED = KINDS - {"text"}

_OPEN = re.compile(r"^```([A-Za-z0-9_-]*)\s*$")
_CLOSE = re.compile(r"^```\s*$")
_EXPECT = re.compile(r"^#\s*expect:\s*(.+?)\s*$")
_FILE = re.compile(r"^#\s*file:\s*(\S+)\s*$")
_ELAPSED = re.compile(r"^elapsed +\d+(\.\d+)? ms$", re.MULTILINE)
ELAPSED_DOC = "elapsed     ..."


@dataclass
class Block:
    page: str
    kind: str
    line: int  # line of the opening fence, 1-based
    text: str

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"

    def leading_comments(self) -> list[str]:
        out = []
        for line in self.text.splitlines():
            if not line.startswith("#"):
                break
            out.append(line)
        return out

    def file_name(self) -> str | None:
        for line in self.leading_comments():
            m = _FILE.match(line)
            if m:
                return m.group(1)
        return None

    def expected_codes(self) -> set[str]:
        for line in self.leading_comments():
            m = _EXPECT.match(line)
            if m:
                return set(re.split(r"[\s,]+", m.group(1)))
        return set()


def blocks_of(path: Path) -> list[Block]:
    blocks: list[Block] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        m = _OPEN.match(lines[i])
        if not m:
            i += 1
            continue
        start = i
        i += 1
        body = []
        while i < len(lines) and not _CLOSE.match(lines[i]):
            body.append(lines[i])
            i += 1
        if i == len(lines):
            raise AssertionError(f"{path.name}:{start + 1}: fenced block is never closed")
        blocks.append(Block(path.name, m.group(1), start + 1, "\n".join(body) + "\n"))
        i += 1
    return blocks


def _normalize(output: str) -> str:
    output = _ELAPSED.sub(ELAPSED_DOC, output)
    lines = [line.rstrip() for line in output.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines)


def console_steps(block: Block) -> list[tuple[list[str], str]]:
    """(argv after 'effdsl', expected output) for each command of a console block."""
    steps: list[tuple[list[str], list[str]]] = []
    for line in block.text.splitlines():
        if line.startswith("$ "):
            argv = shlex.split(line[2:])
            assert argv and argv[0] == "effdsl", f"{block.where}: console commands must run effdsl: {line}"
            steps.append((argv[1:], []))
        else:
            assert steps, f"{block.where}: output before the first '$ effdsl' command"
            steps[-1][1].append(line)
    return [(argv, "\n".join(out)) for argv, out in steps]


CORE_PAGES = ("language.md", "tutorial.md", "scaling.md", "cli.md")


def compile_or_check(text: str) -> None:
    """``compile_spec`` at the baseline; a search space, which has none, through ``check_spec``;
    a file of block definitions (no network) by reading its definitions and its includes."""
    if parse_file(text).network is None:
        raw = parse_file(text)
        library, _ = include_blocks(raw.includes, "<string>")
        errors = Collector()
        read_block_defs(raw.blocks, errors, taken=[b.name for b in library])
        errors.raise_if_any()
        return
    try:
        space = parse_spec(text).is_space
    except EffdslError:
        space = False
    (check_spec if space else compile_spec)(text)


@pytest.mark.parametrize("name", CORE_PAGES)
def test_core_pages_have_checked_examples(name: str):
    page = DOCS / name
    assert page.is_file(), f"docs/{name} is missing"
    assert any(b.kind in CHECKED for b in blocks_of(page)), f"{name} has no checked example"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_blocks_are_classified(page: Path):
    """Every fenced block has a known tag, so that no example is skipped by a typo."""
    for block in blocks_of(page):
        assert block.kind in KINDS, f"{block.where}: fence tag '{block.kind}' is not one of {sorted(KINDS)}"
        if block.kind == "eff-error":
            assert block.expected_codes(), f"{block.where}: an eff-error block starts with '# expect: E...'"


SLOW_PAGES = {"exports.md", "sweep.md", "distributed.md", "grid.md"}  # ONNX, torch.export; plots; Ray; a grid
NEEDS = {"distributed.md": ("ray", "Ray is not installed (pip install 'effdsl[ray]')")}


@pytest.mark.parametrize("page", [pytest.param(p, marks=pytest.mark.slow) if p.name in SLOW_PAGES else p
                                  for p in PAGES], ids=lambda p: p.name)
def test_page_examples(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, example_ops: None):
    if page.name in NEEDS:
        package, reason = NEEDS[page.name]
        require(importlib.util.find_spec(package) is not None, reason)
    blocks = blocks_of(page)
    for block in blocks:
        name = block.file_name()
        if name is not None and block.kind in ("eff", "eff-error"):
            assert not (tmp_path / name).exists(), f"{block.where}: file {name} is defined twice"
            (tmp_path / name).write_text(block.text, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    namespace: dict = {"__name__": f"docs_{page.stem}"}
    for block in blocks:
        if block.kind == "eff":
            try:
                compile_or_check(block.text)
            except EffdslError as err:
                pytest.fail(f"{block.where}: the spec does not check:\n{err}")
        elif block.kind == "eff-error":
            with pytest.raises(EffdslError) as info:
                compile_or_check(block.text)
            got = {d.code for d in info.value.diagnostics}
            assert got == block.expected_codes(), (
                f"{block.where}: expected {sorted(block.expected_codes())}, got {sorted(got)}:\n{info.value}")
        elif block.kind == "console":
            for argv, expected in console_steps(block):
                result = runner.invoke(app, argv, catch_exceptions=False)
                actual = _normalize(result.output)
                shown = "$ effdsl " + " ".join(argv)
                assert actual == _normalize(expected), (
                    f"{block.where}: output of '{shown}' differs\n--- expected\n{expected}\n--- actual\n{actual}")
                status = 2 if "error[" in expected else 0
                assert result.exit_code == status, (
                    f"{block.where}: '{shown}' exited with {result.exit_code}, expected {status}")
        elif block.kind == "python":
            # Padded so that a traceback's line numbers are the page's.
            code = compile("\n" * block.line + block.text, str(page), "exec")
            exec(code, namespace)


def test_elapsed_rule():
    """The one varying line is matched by its doc form, and nothing else is."""
    assert _normalize("params      1\nelapsed     38.8 ms\n") == "params      1\n" + ELAPSED_DOC
    assert _normalize("elapsed 38.8 s") == "elapsed 38.8 s"


_CODE_HEADING = re.compile(r"^## ([EW]\d{3})(?::\s.*)?$")  # '## E201: title'; the title is checked in test_codes.py


def codes_in_package() -> set[str]:
    """Every error and warning code the package can report (a quoted 'E201' or 'W301')."""
    package = Path(__file__).resolve().parent.parent / "effdsl"
    found: set[str] = set()
    for source in package.rglob("*.py"):
        found |= set(re.findall(r"""["']([EW]\d{3})["']""", source.read_text(encoding="utf-8")))
    return found


def code_sections(path: Path) -> list[tuple[str, int]]:
    """(code, line) of each '## E201: title' heading outside fenced blocks, in page order."""
    out = []
    fenced = False
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if fenced:
            fenced = not _CLOSE.match(line)
        elif _OPEN.match(line):
            fenced = True
        else:
            m = _CODE_HEADING.match(line)
            if m:
                out.append((m.group(1), number))
    return out


def _shows(block: Block, code: str) -> bool:
    """The block is a checked example of ``code``."""
    if block.kind == "eff-error":
        return code in block.expected_codes()
    if block.kind == "console":
        return any(f"[{code}]" in expected for _, expected in console_steps(block))
    return False


def test_errors_page_documents_every_code():
    """docs/errors.md has one section per code the package can report, each with an example."""
    page = DOCS / "errors.md"
    sections = code_sections(page)
    headings = [code for code, _ in sections]
    assert len(headings) == len(set(headings)), f"a code has two sections: {sorted(headings)}"
    assert headings == sorted(headings), "the sections of errors.md are not in code order"
    in_code = codes_in_package()
    documented = set(headings)
    assert documented == in_code, (f"no section in errors.md: {sorted(in_code - documented)}; "
                                   f"not in the code: {sorted(documented - in_code)}")
    blocks = blocks_of(page)
    ends = [line for _, line in sections[1:]] + [float("inf")]
    for (code, start), end in zip(sections, ends, strict=True):
        inside = [b for b in blocks if start < b.line < end]
        assert any(_shows(b, code) for b in inside), (
            f"errors.md:{start}: the section of {code} has no checked example (an eff-error block "
            f"expecting {code}, or a console block whose output shows [{code}])")
