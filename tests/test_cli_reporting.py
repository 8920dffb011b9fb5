"""Every command ends the same way: a user error is rendered with exit status 2, a bug is
reported as a bug with status 70, and neither shows a traceback."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from effdsl import api
from effdsl.cli import app
from effdsl.diagnostics import InternalError

runner = CliRunner()

# One invocation per command that reads a spec; 'no_such.eff' makes each fail with E110.
COMMANDS = {
    "compile": ["compile", "{spec}"],
    "compile --emit ir -o": ["compile", "{spec}", "--emit", "ir", "-o", "{tmp}/out.ir"],
    "check": ["check", "{spec}"],
    "check --format json": ["check", "{spec}", "--format", "json"],
    "fmt": ["fmt", "{spec}"],
    "sweep": ["sweep", "{spec}", "--phi", "0:1"],
    "diff": ["diff", "{spec}", "--phi", "1"],
    "viz": ["viz", "{spec}", "-o", "{tmp}/out.svg"],
}


def _argv(name: str, spec: str, tmp) -> list[str]:
    return [arg.format(spec=spec, tmp=tmp) for arg in COMMANDS[name]]


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_a_user_error_exits_2_with_its_diagnostic(name, tmp_path):
    result = runner.invoke(app, _argv(name, "no_such.eff", tmp_path))
    assert result.exit_code == 2, result.output
    assert "E110" in result.output and "no such spec file or built-in spec: 'no_such.eff'" in result.output
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)
    assert not list(tmp_path.iterdir()), "nothing is written after an error"


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_a_bug_exits_70_with_how_to_report_it(name, tmp_path, monkeypatch):
    def broken(_raw):
        raise InternalError("analyze", "a deliberately broken stage")

    monkeypatch.setattr(api, "analyze", broken)
    result = runner.invoke(app, _argv(name, "efficientnet_b0", tmp_path))
    assert result.exit_code == 70, result.output
    assert result.stderr.startswith("internal error in pass 'analyze': a deliberately broken stage\n")
    assert "This is a bug in effdsl" in result.stderr and "To report it, include:" in result.stderr
    assert "Traceback" not in result.output
