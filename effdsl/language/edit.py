"""Edits of a spec's text that keep everything else as the user wrote it.

:func:`with_coefficients` rewrites the scaling block's alpha, beta and gamma in place,
using the spans the analysis recorded, so comments, layout and every other setting stay
byte for byte; a coefficient the spec does not write is added to its scaling block (or a
scaling block is added after the ``classes`` line). The result is checked by analysing
it again: only the three coefficients may differ.
"""

from __future__ import annotations

from effdsl.diagnostics import InternalError, Span
from effdsl.language.analyze import analyze
from effdsl.language.parser import parse
from effdsl.language.spec import Network


def _offset(lines: list[str], line: int, column: int) -> int:
    """The character offset of a 1-based line:column in the text split into ``lines``."""
    return sum(len(text) + 1 for text in lines[: line - 1]) + column - 1


def with_coefficients(text: str, network: Network, coefficients: dict[str, str]) -> str:
    """``text`` (the source of ``network``) with the given coefficients (``{"alpha": "1.2"}``)."""
    lines = text.split("\n")
    scaling = network.scaling
    edits: list[tuple[int, int, str]] = []  # (start, end, replacement), applied from the end
    missing = []
    for name, value in coefficients.items():
        span: Span | None = scaling.spans.get(name)
        if span is None:
            missing.append(f"{name} {value}")
        else:
            start, end = _offset(lines, span.line, span.column), _offset(lines, span.end_line, span.end_column)
            edits.append((start, end, value))
    if missing:
        edits.append(_insertion(lines, network, "; ".join(missing)))
    out = text
    for start, end, replacement in sorted(edits, reverse=True):
        out = out[:start] + replacement + out[end:]
    _check(out, network, coefficients)
    return out


def _insertion(lines: list[str], network: Network, settings: str) -> tuple[int, int, str]:
    """Where and what to insert for coefficients the spec does not write."""
    text = "\n".join(lines)
    span = network.scaling.span
    start = _offset(lines, span.line, span.column)
    if text.startswith("scaling", start):  # the spec has a scaling block: just after its '{'
        brace = text.index("{", start) + 1
        return brace, brace, f" {settings};"
    anchor = network.spans.get("classes") or network.spans.get("resolution") or network.span
    after = _offset(lines, anchor.end_line, anchor.end_column)
    rest = lines[anchor.end_line - 1][anchor.end_column - 1:]
    if rest.strip() == "" or rest.lstrip().startswith("#"):  # on a line of its own
        line = lines[anchor.line - 1]
        indent = line[: len(line) - len(line.lstrip())]
        end_of_line = _offset(lines, anchor.end_line, len(lines[anchor.end_line - 1]) + 1)
        return end_of_line, end_of_line, f"\n{indent}scaling {{ {settings} }}"
    return after, after, f"; scaling {{ {settings} }}"


def _check(text: str, before: Network, coefficients: dict[str, str]) -> None:
    # the definitions of included files as they were read for ``before`` (no file is read again)
    after = analyze(parse(text), tuple(b for b in before.blocks if b.origin is not None), before.includes)
    for name, value in coefficients.items():
        if getattr(after.scaling, name) != float(value):
            raise InternalError("edit", f"{name} reads back as {getattr(after.scaling, name)}, not {value}")

    def plain(net: Network) -> object:
        data = net.model_dump(exclude={"span", "spans"})
        data["scaling"] = {k: v for k, v in data["scaling"].items() if k not in coefficients and k != "spans"}
        return _without_spans(data)

    if plain(after) != plain(before):
        raise InternalError("edit", "changing the coefficients changed something else in the spec")


def _without_spans(value: object) -> object:
    if isinstance(value, dict):
        return {k: _without_spans(v) for k, v in value.items() if k not in ("span", "spans")}
    if isinstance(value, (list, tuple)):
        return [_without_spans(v) for v in value]
    return value
