"""The registry of diagnostic codes: every code effdsl reports, its title and severity.

This is the one list. A :class:`~effdsl.diagnostics.Diagnostic` with a code that is not
here is refused as an internal error (a bug in effdsl, never the user's fault);
``docs/errors.md`` has one section per code, headed ``## CODE: title``; and the tests
check that every code written in the sources is registered and every registered code is
raised somewhere and documented.

Ranges: E0xx syntax, E1xx names, E2xx values, E3xx shapes and scaling, E4xx usage (the
arguments of a command or of the Python API, and the files a command writes), E5xx
weights (checkpoints), W3xx warnings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class Code:
    """A registered code: ``E201``, ``kernel size not an odd integer``, ``error``."""

    code: str
    title: str
    severity: Severity

    @property
    def range(self) -> str:
        """The range the code belongs to, as the docs name it (``E2xx``)."""
        return self.code[:2] + "xx"


RANGES: dict[str, str] = {
    "E0xx": "syntax",
    "E1xx": "names",
    "E2xx": "values",
    "E3xx": "shapes and scaling",
    "E4xx": "usage",
    "E5xx": "weights",
    "E6xx": "search spaces and searches",
    "W3xx": "warnings",
}


def _codes(*entries: tuple[str, str]) -> dict[str, Code]:
    return {code: Code(code, title, "warning" if code.startswith("W") else "error") for code, title in entries}


CODES: dict[str, Code] = _codes(
    # syntax: the text cannot be read or parsed (parsing stops at the first)
    ("E001", "unexpected word or end of line"),
    ("E002", "unexpected character"),
    ("E003", "unexpected end of file"),
    ("E004", "not UTF-8 text"),
    ("E005", "file too large"),
    ("E006", "too many errors"),
    # names: unknown, misplaced, repeated or missing words and statements
    ("E101", "unknown block type"),
    ("E102", "unknown activation"),
    ("E103", "word out of place"),
    ("E104", "unknown choice"),
    ("E105", "given twice"),
    ("E106", "missing statement or value"),
    ("E107", "statements out of order"),
    ("E110", "no such spec"),
    ("E120", "unknown op in a block definition"),
    ("E121", "block name taken"),
    ("E122", "include cycle"),
    ("E123", "include outside the spec's folder"),
    ("E124", "include not found or beyond the limits"),
    ("E125", "op out of place in a block"),
    ("E130", "broken plug-in op"),
    # values
    ("E200", "value of the wrong kind"),
    ("E201", "kernel size not an odd integer"),
    ("E202", "stride not 1 or 2"),
    ("E203", "channels not a positive integer"),
    ("E204", "expansion ratio below 1"),
    ("E205", "repeats not a positive integer"),
    ("E206", "ratio or rate out of range"),
    ("E207", "batch-norm setting out of range"),
    ("E208", "channels not a multiple of the divisor"),
    ("E209", "scaling coefficient below 1"),
    ("E210", "channel rule out of range"),
    ("E211", "preset multiplier not greater than 0"),
    ("E212", "input, classes or resolution out of range"),
    ("E213", "fixed depth names no stage"),
    ("E214", "head width disagrees with the last stage"),
    ("E215", "beyond the compiler's limits"),
    # shapes and scaling
    ("E301", "resolution below the total stride"),
    ("E302", "member too large"),
    ("E303", "parameter budget exceeded"),
    ("E310", "block output differs from its stage's channels"),
    # usage
    ("E401", "member chosen more than one way"),
    ("E402", "argument out of range"),
    ("E403", "binary output without a file"),
    ("E404", "no spec file to rewrite"),
    ("E405", "output cannot be written"),
    ("E406", "bad phi range"),
    ("E407", "diff without two members"),
    ("E408", "report or plot format unavailable"),
    ("E409", "argument of the wrong type"),
    # weights
    ("E501", "checkpoint cannot be read"),
    ("E502", "checkpoint layout not recognised"),
    ("E503", "checkpoint does not fit"),
    ("E504", "unusable checkpoint tensor"),
    # search spaces and searches
    ("E601", "choice outside a stage line"),
    ("E602", "choice that does not fit its field"),
    ("E603", "choice without distinct options"),
    ("E604", "stage left without blocks"),
    ("E605", "search space where one network is needed"),
    ("E606", "nothing to search, or a package missing"),
    ("E607", "search option out of range"),
    ("E608", "no such data"),
    ("E609", "output folder cannot hold the search"),
    ("E610", "compound-scaling grid too large"),
    ("E611", "no grid point within the tolerance"),
    ("E620", "trials cannot run on Ray"),
    # warnings
    ("W301", "feature map smaller than the kernel"),
    ("W302", "squeeze-excite below one channel"),
    ("W303", "phi collapses onto a neighbour"),
)


def lookup(code: str) -> Code | None:
    """The registered code, or None when ``code`` is not in the registry."""
    return CODES.get(code)
