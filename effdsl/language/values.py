"""Reading and checking the values of a statement (part of stage 2, :mod:`effdsl.language.analyze`).

:class:`Reader` walks the words of one statement or setting; :func:`check_value` holds
every value rule (what is allowed, the error code, a hint). Mistakes go to a
:class:`~effdsl.diagnostics.Collector`, so that a file's errors are reported together.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable
from typing import Any

from effdsl.diagnostics import Collector, Span, did_you_mean
from effdsl.language.parser import Tok
from effdsl.language.spec import (
    ACTIVATIONS,
    MAX_CHANNELS,
    MAX_CLASSES,
    MAX_EXPAND,
    MAX_KERNEL,
    MAX_REPEATS,
    MAX_RESOLUTION,
)

_ACT_ALIASES = {"swish": "silu", "hswish": "hardswish", "hard_swish": "hardswish", "hsigmoid": "hardsigmoid",
                "hard_sigmoid": "hardsigmoid", "identity": "none"}


class Reader:
    """Walks the items of one statement or setting, recording errors in a collector."""

    def __init__(self, items: tuple[Tok, ...], errors: Collector, anchor: Span):
        self.items = list(items)
        self.pos = 0
        self.errors = errors
        self.anchor = anchor  # where to point when something is missing

    def more(self) -> bool:
        return self.pos < len(self.items)

    def peek(self) -> Tok | None:
        return self.items[self.pos] if self.more() else None

    def take(self) -> Tok:
        tok = self.items[self.pos]
        self.pos += 1
        return tok

    def last_span(self) -> Span:
        """Just after the last item taken (or the anchor): where a missing item belongs."""
        s = self.items[self.pos - 1].span if self.pos else self.anchor
        return Span(s.end_line, s.end_column, s.end_line, s.end_column + 1)

    def number(self, what: str) -> tuple[float | None, Span]:
        tok = self.peek()
        if tok is None or not tok.is_number:
            span = tok.span if tok else self.last_span()
            got = f", got '{tok.text}'" if tok else ""
            self.errors.error("E200", f"expected a number for {what}{got}", span)
            if tok is not None:
                self.take()
            return None, span
        self.take()
        return to_float(tok, what, self.errors), tok.span

    def word(self, what: str) -> Tok | None:
        tok = self.peek()
        if tok is None or tok.is_number:
            span = tok.span if tok else self.last_span()
            self.errors.error("E200", f"expected {what}", span)
            if tok is not None:
                self.take()
            return None
        return self.take()

    def rest_unexpected(self, what: str) -> None:
        while self.more():
            tok = self.take()
            self.errors.error("E103", f"unexpected '{tok.text}' after {what}", tok.span)


def to_float(tok: Tok, what: str, errors: Collector) -> float | None:
    value = float(tok.text)
    if not math.isfinite(value):
        errors.error("E200", f"{what} is out of range: {tok.text}", tok.span)
        return None
    return value


# ---------------------------------------------------------------------------- checks
# Small validators: return an error message, or None when the value is acceptable.

def positive_int(v: float) -> str | None:
    return None if v == int(v) and v >= 1 else "must be a positive integer"


def _odd_kernel(v: float) -> str | None:
    return None if v == int(v) and v >= 1 and int(v) % 2 == 1 else "must be an odd integer >= 1"


def _stride(v: float) -> str | None:
    return None if v in (1, 2) else "must be 1 or 2"


def _ratio(v: float) -> str | None:
    return None if 0 <= v <= 1 else "must be between 0 and 1"


def _rate(v: float) -> str | None:
    return None if 0 <= v < 1 else "must be at least 0 and below 1"


def _at_least_one(v: float) -> str | None:
    return None if v >= 1 else "must be at least 1"


def _positive(v: float) -> str | None:
    return None if v > 0 else "must be greater than 0"


def _crop(v: float) -> str | None:
    return None if 0 < v <= 1 else "must be greater than 0 and at most 1"


_CHECKS: dict[str, tuple[str, str, Callable[[float], str | None], str | None]] = {
    # field: (code, description, check, help)
    "kernel": ("E201", "kernel", _odd_kernel, "use k1, k3, k5 or k7"),
    "stride": ("E202", "stride", _stride, "use s1 or s2"),
    "out_ch": ("E203", "channels", positive_int, None),
    "expand": ("E204", "expansion ratio", _at_least_one, "e1 means no expansion conv"),
    "repeats": ("E205", "repeats", positive_int, None),
    "se": ("E206", "squeeze-excite ratio", _ratio, "se0 disables squeeze-excite"),
    "drop_path": ("E206", "drop_path rate", _rate, None),
    "dropout": ("E206", "dropout rate", _rate, None),
    "crop": ("E206", "crop fraction", _crop, "0.875 resizes to 256 and crops 224; 1 crops nothing"),
    "std": ("E206", "normalization std", _positive, None),
    "eps": ("E207", "batch-norm eps", _positive, None),
    "momentum": ("E207", "batch-norm momentum", _ratio, None),
    "coefficient": ("E209", "scaling coefficient", _at_least_one, "alpha, beta and gamma are >= 1 (phi < 0 shrinks)"),
    "divisor": ("E210", "channel divisor", positive_int, None),
    "min_ch": ("E210", "minimum channels", positive_int, None),
    "guard": ("E210", "round-down guard", _ratio, "0.9 keeps every width within 10% of its ideal value"),
    "multiple": ("E210", "resolution multiple", positive_int, None),
    "head_ratio": ("E210", "head width ratio", _positive, "torchvision's EfficientNet uses 'head_width last 4'"),
    "width": ("E211", "width multiplier", _positive, None),
    "depth": ("E211", "depth multiplier", _positive, None),
    "resolution": ("E212", "resolution", positive_int, None),
    "test_resolution": ("E212", "test resolution", positive_int, None),
    "in_ch": ("E212", "input channels", positive_int, None),
    "classes": ("E212", "number of classes", positive_int, None),
}


# Upper bounds (E215): sizes far beyond any real network (see effdsl.language.spec).
_MAXIMA: dict[str, int] = {
    "kernel": MAX_KERNEL, "out_ch": MAX_CHANNELS, "expand": MAX_EXPAND, "repeats": MAX_REPEATS,
    "divisor": MAX_CHANNELS, "min_ch": MAX_CHANNELS, "multiple": MAX_RESOLUTION, "head_ratio": MAX_CHANNELS,
    "resolution": MAX_RESOLUTION, "in_ch": MAX_CHANNELS, "classes": MAX_CLASSES, "test_resolution": MAX_RESOLUTION,
}


def check_value(field: str, value: float | None, span: Span, errors: Collector, label: str | None = None) -> Any:
    """Validate ``value`` for ``field``; return it (int when integral fields) or None."""
    if value is None:
        return None
    code, what, check, hint = _CHECKS[field]
    problem = check(value)
    shown = int(value) if value == int(value) and abs(value) < 1e15 else value
    if problem:
        errors.error(code, f"{label or what} {problem}, got {shown}", span, hint)
        return None
    limit = _MAXIMA.get(field)
    if limit is not None and value > limit:
        errors.error("E215", f"{label or what} {shown} is too large; at most {limit:,}", span)
        return None
    if check in (positive_int, _odd_kernel, _stride):
        return int(value)
    return value


def check_act(tok: Tok, errors: Collector) -> bool:
    if tok.text in ACTIVATIONS:
        return True
    alias = _ACT_ALIASES.get(tok.text.lower())
    if alias is None:  # a misspelled alias ('swishh') means the aliased name ('silu')
        close = difflib.get_close_matches(tok.text.lower(), (*ACTIVATIONS, *_ACT_ALIASES), n=1, cutoff=0.6)
        alias = _ACT_ALIASES.get(close[0], close[0]) if close else None
    hint = f"did you mean '{alias}'?" if alias else did_you_mean(tok.text, ACTIVATIONS)
    errors.error("E102", f"unknown activation '{tok.text}'", tok.span, hint)
    return False
