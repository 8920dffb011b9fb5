"""The registry of diagnostic codes is the one list: the sources, docs/errors.md and the
Diagnostic constructor all agree with it."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

import effdsl
from effdsl import api
from effdsl.cli import app
from effdsl.diagnostics import CODES, Diagnostic, EffdslError, InternalError
from effdsl.diagnostics.codes import RANGES

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "effdsl"
REGISTRY = PACKAGE / "diagnostics" / "codes.py"
ERRORS_PAGE = ROOT / "docs" / "errors.md"

_LITERAL = re.compile(r"""["']([EW]\d{3})["']""")
_HEADING = re.compile(r"^## ([EW]\d{3})\b(.*)$")


def codes_in_sources() -> dict[str, list[str]]:
    """Each code written as a string literal in effdsl/ (the registry aside) -> where."""
    found: dict[str, list[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == REGISTRY:
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            for code in _LITERAL.findall(line):
                found.setdefault(code, []).append(f"{path.relative_to(ROOT)}:{number}")
    return found


def headings() -> list[tuple[str, str]]:
    """(code, the rest of the heading) of each code section of docs/errors.md, outside fences."""
    out, fenced = [], False
    for line in ERRORS_PAGE.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and (m := _HEADING.match(line)):
            out.append((m.group(1), m.group(2)))
    return out


def test_every_code_in_the_sources_is_registered():
    unregistered = {code: where for code, where in codes_in_sources().items() if code not in CODES}
    assert not unregistered, f"codes used but not in effdsl/diagnostics/codes.py: {unregistered}"


def test_every_registered_code_is_raised_somewhere():
    unused = sorted(set(CODES) - set(codes_in_sources()))
    assert not unused, f"registered but never raised: {unused}"


def test_every_registered_code_is_documented_under_its_title():
    found = headings()
    expected = [(code, f": {entry.title}") for code, entry in sorted(CODES.items())]
    assert found == expected, "docs/errors.md needs one '## CODE: title' section per registered code, in order"


def test_the_registry_is_well_formed():
    assert list(CODES) == sorted(CODES)
    titles = [entry.title for entry in CODES.values()]
    assert len(set(titles)) == len(titles), "two codes share a title"
    for code, entry in CODES.items():
        assert entry.code == code and re.fullmatch(r"[EW]\d{3}", code)
        assert entry.range in RANGES, f"{code} is in no range"
        assert entry.severity == ("warning" if code.startswith("W") else "error")
        assert entry.title and entry.title == entry.title.strip() and not entry.title.endswith(".")
        assert entry.title[0].islower() or entry.title[0].isdigit(), f"{code}: titles start in lower case"


def test_an_unregistered_code_is_a_bug_not_a_user_error():
    with pytest.raises(InternalError) as info:
        Diagnostic("E999", "no such code")
    assert not isinstance(info.value, EffdslError)
    assert "'E999'" in str(info.value) and "not in the registry" in str(info.value)
    assert "bug in effdsl" in str(info.value)
    with pytest.raises(InternalError):
        Diagnostic("e201", "codes are upper case")


def test_an_error_code_cannot_be_reported_as_a_warning_but_a_warning_can_be_raised_to_an_error():
    with pytest.raises(InternalError):
        Diagnostic("E201", "kernel", severity="warning")
    warning = Diagnostic("W301", "small feature map", severity="warning")
    assert replace(warning, severity="error").severity == "error"  # what -W does


def test_cli_reports_an_unregistered_code_as_a_bug(monkeypatch):
    def analyze(_raw):
        raise EffdslError(Diagnostic("E999", "a code nobody registered"))

    monkeypatch.setattr(api, "analyze", analyze)
    result = CliRunner().invoke(app, ["check", "efficientnet_b0"])
    assert result.exit_code == 70, result.output
    assert "internal error" in result.stderr and "'E999'" in result.stderr
    assert "To report it" in result.stderr
    assert "Traceback" not in result.output


def test_the_registry_is_public():
    assert effdsl.diagnostics.CODES["E201"].title == "kernel size not an odd integer"
