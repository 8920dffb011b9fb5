"""User-facing diagnostics: source spans, error codes and their rendering.

Every mistake in a spec or in the arguments becomes a :class:`Diagnostic` with a stable
code, a 1-based span into the ``.eff`` text and, where one exists, a hint. Stages raise
:class:`EffdslError` carrying one or more diagnostics; the caller that owns the source
text (the CLI or the Python API) renders them, in the shape::

    specs/bad.eff:12:19: error[E201]: kernel must be an odd integer >= 1, got 4
      --> specs/bad.eff:12:19
       |
    12 |   stage mbconv e6 k4 s2 c24 x2
       |                   ^^
       = help: use k3, k5 or k7

Every code is registered, with its title, in :mod:`effdsl.diagnostics.codes`; a
diagnostic with an unregistered code is a bug (:class:`InternalError`).

A diagnostic about an argument of the Python API (``width=-1``) names the parameter and
lists it in ``arguments``; a front end that spells arguments differently (the CLI's
``--width``) rewrites those names when it renders the diagnostic.

Code ranges: E0xx syntax, E1xx names, E2xx values, E3xx shapes and scaling,
E4xx usage (command-line arguments), E5xx checkpoints, E6xx search spaces and searches.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field

from effdsl.diagnostics.codes import Severity, lookup


@dataclass(frozen=True, slots=True)
class Span:
    """A 1-based, end-exclusive region of source text (columns count characters)."""

    line: int
    column: int
    end_line: int
    end_column: int

    def __str__(self) -> str:
        return f"{self.line}:{self.column}"

    @staticmethod
    def cover(first: Span, last: Span) -> Span:
        """The smallest span reaching from the start of ``first`` to the end of ``last``."""
        return Span(first.line, first.column, last.end_line, last.end_column)


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One message about the user's input."""

    code: str
    message: str
    span: Span | None = None
    help: str | None = None
    severity: Severity = "error"
    # the Python parameters that the message and help name, as ``width`` or ``width=W``
    arguments: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        registered = lookup(self.code)
        if registered is None:
            raise InternalError("diagnostics", f"a diagnostic has the code {self.code!r}, which is not in the "
                                f"registry (effdsl/diagnostics/codes.py): {self.message}", what="module")
        if self.severity == "warning" and registered.severity == "error":  # -W may raise a warning, not lower an error
            raise InternalError("diagnostics", f"{self.code} is an error, reported as a warning", what="module")

    def to_json(self, filename: str | None) -> dict[str, str | int | None]:
        """The machine-readable form (``--format json``); positions are 1-based."""
        span = self.span
        return {
            "code": self.code,
            "severity": self.severity,
            "message": self.message,
            "help": self.help,
            "file": filename,
            "line": span.line if span else None,
            "column": span.column if span else None,
            "end_line": span.end_line if span else None,
            "end_column": span.end_column if span else None,
        }

    def sort_key(self) -> tuple[int, int]:
        return (self.span.line, self.span.column) if self.span else (0, 0)


class EffdslError(Exception):
    """A mistake in the user's input; carries diagnostics, never a traceback for users."""

    def __init__(self, diagnostics: Diagnostic | Iterable[Diagnostic]):
        if isinstance(diagnostics, Diagnostic):
            diagnostics = [diagnostics]
        self.diagnostics: list[Diagnostic] = sorted(diagnostics, key=Diagnostic.sort_key)
        self.source: str | None = None
        self.filename: str | None = None
        super().__init__("; ".join(d.message for d in self.diagnostics))

    def with_source(self, source: str, filename: str) -> EffdslError:
        """Attach the text the spans refer to (done once, by whoever read the file)."""
        if self.source is None:
            self.source = source
            self.filename = filename
        return self

    def render(self) -> str:
        return "\n".join(render(d, self.source, self.filename) for d in self.diagnostics)

    def __str__(self) -> str:
        return self.render()


class InternalError(Exception):
    """A bug in effdsl (an invariant broken by a pass, an unregistered diagnostic code),
    never the user's fault."""

    def __init__(self, stage: str, message: str, what: str = "pass"):
        self.stage = stage
        super().__init__(
            f"internal error in {what} '{stage}': {message}\n"
            "This is a bug in effdsl, not in your spec. Please report it with the spec "
            "and the command line that produced it."
        )


@dataclass
class Collector:
    """Accumulates diagnostics so that semantic checks can report all of them at once."""

    diagnostics: list[Diagnostic] = field(default_factory=list)

    def error(self, code: str, message: str, span: Span | None, help: str | None = None) -> None:
        self.diagnostics.append(Diagnostic(code, message, span, help))

    def raise_if_any(self) -> None:
        if any(d.severity == "error" for d in self.diagnostics):
            raise EffdslError(self.diagnostics)


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """A 'did you mean' hint for a misspelled name, or a list of the valid names."""
    choices = sorted(set(choices))
    same_but_case = [c for c in choices if c.lower() == word.lower()]
    close = same_but_case or difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if not close and len(word) >= 3:  # 'activation' for 'act', 'divisor' for 'div'
        close = [c for c in choices if len(c) >= 3 and (word.startswith(c) or c.startswith(word))][:1]
    if close:
        return f"did you mean '{close[0]}'?"
    if choices:
        return "expected one of: " + ", ".join(choices)
    return None


def render(diag: Diagnostic, source: str | None, filename: str | None) -> str:
    """Render one diagnostic gcc/rustc style, with the source line and carets."""
    where = filename or "<input>"
    code = f"{diag.severity}[{diag.code}]"
    if diag.span is None:
        # No file involved (a missing spec file, a bad flag): no '<input>:' prefix.
        lines = [f"{where}: {code}: {diag.message}" if filename else f"{code}: {diag.message}"]
    else:
        location = f"{where}:{diag.span.line}:{diag.span.column}"
        lines = [f"{location}: {code}: {diag.message}"]
        text_lines = source.splitlines() if source is not None else []
        if 1 <= diag.span.line <= len(text_lines):
            # rustc's arrow under the editor-parsable first line, aligned with the gutter
            lines.append(f"{' ' * len(str(diag.span.line))}--> {location}")
            lines.extend(_snippet(text_lines[diag.span.line - 1], diag.span))
    if diag.help:
        lines.append(f"   = help: {diag.help}")
    return "\n".join(lines)


def _snippet(text: str, span: Span) -> list[str]:
    gutter = str(span.line)
    pad = " " * len(gutter)
    shown = text.expandtabs(1)  # one column per character, as Lark counts them
    start = max(span.column - 1, 0)
    # a span over several lines is underlined to the end of its first
    end = max(span.end_column - 1 if span.end_line == span.line else len(shown), start + 1)
    if len(shown) > _MAX_SHOWN:  # a very long line: show a window around the mistake
        left = max(0, min(start - _MAX_SHOWN // 4, len(shown) - _MAX_SHOWN))
        right = left + _MAX_SHOWN
        prefix = "..." if left else ""
        shown = prefix + shown[left:right] + ("..." if right < len(shown) else "")
        start, end = start - left + len(prefix), min(end, right) - left + len(prefix)
    carets = " " * start + "^" * max(end - start, 1)
    return [f"{pad} |", f"{gutter} | {shown}", f"{pad} | {carets}"]


_MAX_SHOWN = 120  # characters of a source line shown under a diagnostic
