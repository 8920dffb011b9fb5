"""The corpus of broken specs under tests/errors/, and command-line usage errors.

Each ``tests/errors/NAME.eff`` is a small network with one mistake (or, for
``several_errors``, several). The diagnostics it must produce are written inline,
mypy-style, in its comments:

- ``# E:COL CODE`` at the end of a line: an error at that line and column;
  several may share a line (``# E:9 E101 E:19 E201``);
- ``# E@LINE:COL CODE`` anywhere: an error at a line with no room for a comment
  (end of file, a line cut by a syntax error);
- ``# ARGS: --preset small`` on the first line: run ``compile FILE ARGS`` instead of
  ``check FILE``.

The whole of stderr is also compared with ``tests/errors/NAME.out``
(``pytest --update-goldens tests/test_errors.py`` rewrites them; review the diff).
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from effdsl.cli import app

from conftest import ROOT, check_golden

ERRORS = ROOT / "tests" / "errors"
SPECS = sorted(ERRORS.glob("*.eff"))

# Files that cannot hold a comment: their expected diagnostics live here.
NO_ROOM = {"syntax_empty.eff": [(1, 1, "E003")]}

_INLINE = re.compile(r"(?<![\w@])E:(\d+)\s+(E\d{3})\b")
_AT = re.compile(r"(?<!\w)E@(\d+):(\d+)\s+(E\d{3})\b")
_ARGS = re.compile(r"^#\s*ARGS:(.*)$")
_HEADER = re.compile(r"^(?P<file>.+?):(?P<line>\d+):(?P<col>\d+): error\[(?P<code>E\d{3})\]: (?P<msg>.+)$")
# Lark's internal names must never reach a user.
_LARK_NAMES = ("$END", "__ANON", "RBRACE", "LBRACE", "SEMICOLON", "_NL", "Token(", "SETTINGS_KW",
               "BLOCK_KW", "LAYER_KW", "<input>", "Traceback")


def _source_lines(path: Path) -> list[str]:
    """The lines as effdsl sees them: BOM dropped, CRLF normalized, bad bytes replaced."""
    text = path.read_bytes().decode("utf-8", errors="replace").removeprefix("\ufeff")
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def expected_errors(path: Path) -> list[tuple[int, int, str]]:
    """The (line, column, code) annotations of a corpus file, in source order."""
    if path.name in NO_ROOM:
        return NO_ROOM[path.name]
    found = []
    for number, line in enumerate(_source_lines(path), start=1):
        if "#" not in line:
            continue
        comment = line[line.index("#"):]
        found += [(number, int(col), code) for col, code in _INLINE.findall(comment)]
        found += [(int(ln), int(col), code) for ln, col, code in _AT.findall(comment)]
    return sorted(found)


def extra_args(path: Path) -> list[str]:
    first = _source_lines(path)[0]
    match = _ARGS.match(first)
    return shlex.split(match.group(1)) if match else []


def command_for(path: Path) -> list[str]:
    rel = path.relative_to(ROOT).as_posix()
    args = extra_args(path)
    return ["compile", rel, *args] if args else ["check", rel]


def reported(stderr: str) -> list[tuple[int, int, str]]:
    return [(int(m["line"]), int(m["col"]), m["code"])
            for m in map(_HEADER.match, stderr.splitlines()) if m]


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.chdir(ROOT)  # spec paths print relative to the repository root
    return CliRunner()


def test_corpus_is_there() -> None:
    assert len(SPECS) >= 30
    for path in SPECS:
        assert expected_errors(path), f"{path.name} has no '# E:COL CODE' annotation"


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_broken_spec(path: Path, runner: CliRunner, update_goldens: bool) -> None:
    result = runner.invoke(app, command_for(path))
    stderr = result.stderr
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert result.stdout == "", "diagnostics belong on stderr"
    for name in _LARK_NAMES:
        assert name not in stderr, f"{name!r} in the output"

    # Exactly the annotated errors, in source order, and nothing else.
    expected = expected_errors(path)
    assert reported(stderr) == expected, stderr
    assert stderr.count("error[") == len(expected), stderr
    rel = path.relative_to(ROOT).as_posix()
    assert all(m["file"] == rel for m in map(_HEADER.match, stderr.splitlines()) if m)

    _check_snippets(path, stderr)
    check_golden(path.with_suffix(".out"), stderr, update_goldens)


def _check_snippets(path: Path, stderr: str) -> None:
    """Each error's snippet shows its source line, with the caret under its column."""
    source = _source_lines(path)
    out = stderr.splitlines()
    for i, text in enumerate(out):
        header = _HEADER.match(text)
        if not header:
            continue
        line, col = int(header["line"]), int(header["col"])
        if line > len(source) or i + 4 > len(out) or not out[i + 2].rstrip().endswith("|"):
            assert path.name in NO_ROOM, f"no snippet for {text}"
            continue
        # rustc's arrow repeats the location, aligned with the gutter
        assert out[i + 1] == " " * len(str(line)) + f"--> {header['file']}:{line}:{col}"
        gutter, shown = out[i + 3].split(" | ", 1)
        assert gutter.strip() == str(line)
        assert shown == source[line - 1].expandtabs(1)
        carets = out[i + 4].split(" | ", 1)[1]
        assert carets.index("^") == col - 1, f"caret misplaced for {text}"
        assert set(carets.strip()) == {"^"}
        # The caret sits on a token, or just after one (where something is missing).
        at = shown[col - 1] if col - 1 < len(shown) else " "
        assert not at.isspace() or (col >= 2 and not shown[col - 2].isspace()), text


def test_several_errors_all_reported_in_order(runner: CliRunner) -> None:
    result = runner.invoke(app, ["check", "tests/errors/several_errors.eff"])
    found = reported(result.stderr)
    assert len(found) == 6
    assert found == sorted(found)
    assert {code for _, _, code in found} == {"E101", "E102", "E201", "E202", "E205", "E206"}


def test_columns_survive_crlf_tabs_and_bom(runner: CliRunner) -> None:
    assert b"\r\n" in (ERRORS / "crlf_tabs.eff").read_bytes()
    assert b"\t" in (ERRORS / "crlf_tabs.eff").read_bytes()
    assert (ERRORS / "utf8_bom.eff").read_bytes().startswith(b"\xef\xbb\xbf")
    crlf = runner.invoke(app, ["check", "tests/errors/crlf_tabs.eff"]).stderr
    assert "crlf_tabs.eff:7:18: error[E201]" in crlf
    assert "\r" not in crlf
    bom = runner.invoke(app, ["check", "tests/errors/utf8_bom.eff"]).stderr
    assert "utf8_bom.eff:1:24: error[E212]" in bom
    assert "\ufeff" not in bom


def test_syntax_messages_say_what_was_expected(runner: CliRunner) -> None:
    def err(name: str) -> str:
        return runner.invoke(app, ["check", f"tests/errors/{name}.eff"]).stderr

    assert "unexpected '64'; expected 'x'" in err("syntax_input_missing_x")
    assert "unexpected end of file; expected '}'" in err("syntax_missing_rbrace")
    assert "the '{' of 'network tiny' at line 3 is never closed" in err("syntax_missing_rbrace")
    assert "unexpected end of line; expected a name" in err("syntax_stage_without_type")
    assert "unexpected character '$'" in err("syntax_stray_dollar")
    assert "the file is empty" in err("syntax_empty")
    assert "the file has only comments" in err("syntax_only_comments")
    assert "did you mean 'mbconv'?" in err("unknown_block_type")
    assert "did you mean 'silu'?" in err("unknown_activation")  # 'swishh' is a misspelled alias


# ---------------------------------------------------------------------------- usage

USAGE = {
    "phi_and_preset": (["--phi", "1", "--preset", "b3"], ["--phi and --preset cannot be used together"]),
    "phi_and_width": (["--phi", "1", "--width", "1.2"],
                      ["--phi and --width/--depth/--resolution cannot be used together"]),
    "unknown_preset": (["--preset", "b9"], ["unknown preset 'b9'", "b0, b1, b2, b3, b4, b5, b6, b7"]),
    "misspelled_preset": (["--preset", "B3"], ["unknown preset 'B3'", "did you mean 'b3'?"]),
    "zero_classes": (["--num-classes", "0"], ["--num-classes must be at least 1, got 0"]),
    "negative_width": (["--width", "-1"], ["--width must be greater than 0"]),
}


@pytest.mark.parametrize("case", sorted(USAGE))
def test_usage_error(case: str, runner: CliRunner, update_goldens: bool) -> None:
    args, needles = USAGE[case]
    result = runner.invoke(app, ["compile", "efficientnet_b0", *args])
    assert result.exit_code == 2, (result.output, result.exception)
    assert result.stdout == ""
    for needle in needles:
        assert needle in result.stderr
    assert re.search(r"error\[E4\d\d\]|error\[E104\]", result.stderr)
    assert "Traceback" not in result.output
    check_golden(ERRORS / f"usage_{case}.out", result.stderr, update_goldens)


def test_missing_spec_file(runner: CliRunner, update_goldens: bool) -> None:
    result = runner.invoke(app, ["check", "tests/errors/no_such_file.eff"])
    assert result.exit_code == 2
    assert "error[E110]: no such spec file or built-in spec: 'tests/errors/no_such_file.eff'" in result.stderr
    assert "<input>" not in result.stderr and "Traceback" not in result.output
    check_golden(ERRORS / "usage_missing_spec_file.out", result.stderr, update_goldens)


def test_misspelled_builtin_spec(runner: CliRunner) -> None:
    result = runner.invoke(app, ["compile", "efficentnet_b3"])
    assert result.exit_code == 2
    assert "did you mean 'efficientnet_b3'?" in result.stderr  # a model's name, not only a spec's


BASE_NETWORK = """\
network tiny {
  input 3 x 64
  classes 10
  stem conv k3 s2 c16
  stage mbconv e1 k3 s1 c16 x1
  stage mbconv e6 k3 s2 c24 x2
  head conv k1 c64
  pool avg
  dropout 0.2
  linear
}
"""


def test_base_network_is_valid(runner: CliRunner, tmp_path: Path) -> None:
    """The control: the network most corpus files break in one place passes as written."""
    spec = tmp_path / "tiny.eff"
    spec.write_text(BASE_NETWORK, encoding="utf-8")
    result = runner.invoke(app, ["check", str(spec)])
    assert result.exit_code == 0, result.output
    assert "ok (tiny: 2 stages" in result.stdout and result.stderr == ""


def test_real_process_reports_on_stderr() -> None:
    path = ERRORS / "bad_kernel_even.eff"
    proc = subprocess.run(
        [sys.executable, "-m", "effdsl", "check", path.relative_to(ROOT).as_posix()],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert "error[E201]: kernel must be an odd integer >= 1, got 4" in proc.stderr
    assert "Traceback" not in proc.stderr
    # The real process prints exactly what the in-process run recorded.
    assert proc.stderr == path.with_suffix(".out").read_text(encoding="utf-8")
