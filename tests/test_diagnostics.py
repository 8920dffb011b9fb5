"""Rendering of diagnostics: carets under the span, long lines shown as a window."""

from __future__ import annotations

from effdsl.diagnostics import Diagnostic, Span, render


def _caret_target(rendered: str) -> str:
    _, code_line, caret_line = rendered.splitlines()[2:5]
    code = code_line.split(" | ", 1)[1]
    carets = caret_line.split(" | ", 1)[1]
    start = carets.index("^")
    return code[start:start + carets.count("^")]


def test_caret_sits_under_the_span():
    source = "network x {\n  stage mbconv e6 k4 s2 c24 x2\n}\n"
    text = render(Diagnostic("E201", "bad kernel", Span(2, 19, 2, 21)), source, "x.eff")
    assert text.splitlines()[:2] == ["x.eff:2:19: error[E201]: bad kernel", " --> x.eff:2:19"]
    assert _caret_target(text) == "k4"


def test_a_long_line_is_shown_as_a_window_around_the_mistake():
    line = "  stage mbconv " + "k3 " * 300 + "k4 " + "k3 " * 300
    column = line.index("k4") + 1
    text = render(Diagnostic("E201", "bad kernel", Span(1, column, 1, column + 2)), line + "\n", "x.eff")
    shown = text.splitlines()[3]
    assert len(shown) < 140 and shown.count("...") == 2
    assert _caret_target(text) == "k4"
