"""Stage 2: raw statements -> checked spec AST (:mod:`effdsl.spec`).

Gives meaning to the words the grammar lets through (``k3``, ``act relu``,
``channels divisor 8 guard 0.9`` ...), checks every value, and reports all mistakes of
a file together, in source order, each with the span of the offending word.
"""

from __future__ import annotations

import difflib
import math
import re
from typing import Any, Callable

from effdsl.diagnostics import Collector, Diagnostic, Span, did_you_mean
from effdsl.parser import RawNetwork, RawSetting, RawStatement, Tok
from effdsl.spec import (
    ACTIVATIONS,
    BLOCK_TYPES,
    MAX_BLOCKS,
    MAX_CHANNELS,
    MAX_CLASSES,
    MAX_EXPAND,
    MAX_KERNEL,
    MAX_REPEATS,
    MAX_RESOLUTION,
    MAX_STAGES,
    PADDINGS,
    POOLS,
    ROUNDING_MODES,
    BatchNorm,
    Block,
    Defaults,
    Head,
    Network,
    Preset,
    Scaling,
)

# k3 s2 e6 c24 x2 se0.25: a one- or two-letter field glued to its number.
_FIELD = re.compile(r"^(se|k|s|e|c|x)([+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)$")
_FIELD_NAMES = {"k": "kernel", "s": "stride", "e": "expand", "c": "out_ch", "x": "repeats", "se": "se"}
_ACT_ALIASES = {"swish": "silu", "hswish": "hardswish", "hard_swish": "hardswish", "identity": "none"}
_STAGE_WORDS = ("k<kernel>", "s<stride>", "e<expand>", "c<channels>", "x<repeats>", "se<ratio>",
                "act", "bn", "skip", "noskip")


class _Reader:
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
        if self.pos:
            s = self.items[self.pos - 1].span
        else:
            s = self.anchor
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
        return _to_float(tok, what, self.errors), tok.span

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


def _to_float(tok: Tok, what: str, errors: Collector) -> float | None:
    value = float(tok.text)
    if not math.isfinite(value):
        errors.error("E200", f"{what} is out of range: {tok.text}", tok.span)
        return None
    return value


# ---------------------------------------------------------------------------- checks
# Small validators: return an error message, or None when the value is acceptable.

def _positive_int(v: float) -> str | None:
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


_CHECKS: dict[str, tuple[str, str, Callable[[float], str | None], str | None]] = {
    # field: (code, description, check, help)
    "kernel": ("E201", "kernel", _odd_kernel, "use k1, k3, k5 or k7"),
    "stride": ("E202", "stride", _stride, "use s1 or s2"),
    "out_ch": ("E203", "channels", _positive_int, None),
    "expand": ("E204", "expansion ratio", _at_least_one, "e1 means no expansion conv"),
    "repeats": ("E205", "repeats", _positive_int, None),
    "se": ("E206", "squeeze-excite ratio", _ratio, "se0 disables squeeze-excite"),
    "drop_path": ("E206", "drop_path rate", _rate, None),
    "dropout": ("E206", "dropout rate", _rate, None),
    "eps": ("E207", "batch-norm eps", _positive, None),
    "momentum": ("E207", "batch-norm momentum", _ratio, None),
    "coefficient": ("E209", "scaling coefficient", _at_least_one, "alpha, beta and gamma are >= 1 (phi < 0 shrinks)"),
    "divisor": ("E210", "channel divisor", _positive_int, None),
    "min_ch": ("E210", "minimum channels", _positive_int, None),
    "guard": ("E210", "round-down guard", _ratio, "0.9 keeps every width within 10% of its ideal value"),
    "multiple": ("E210", "resolution multiple", _positive_int, None),
    "head_ratio": ("E210", "head width ratio", _positive, "torchvision's EfficientNet uses 'head_width last 4'"),
    "width": ("E211", "width multiplier", _positive, None),
    "depth": ("E211", "depth multiplier", _positive, None),
    "resolution": ("E212", "resolution", _positive_int, None),
    "in_ch": ("E212", "input channels", _positive_int, None),
    "classes": ("E212", "number of classes", _positive_int, None),
}


# Upper bounds (E215): sizes far beyond any real network (see effdsl.spec).
_MAXIMA: dict[str, int] = {
    "kernel": MAX_KERNEL, "out_ch": MAX_CHANNELS, "expand": MAX_EXPAND, "repeats": MAX_REPEATS,
    "divisor": MAX_CHANNELS, "min_ch": MAX_CHANNELS, "multiple": MAX_RESOLUTION, "head_ratio": MAX_CHANNELS,
    "resolution": MAX_RESOLUTION, "in_ch": MAX_CHANNELS, "classes": MAX_CLASSES,
}


def _check(field: str, value: float | None, span: Span, errors: Collector, label: str | None = None) -> Any:
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
    if check in (_positive_int, _odd_kernel, _stride):
        return int(value)
    return value


# ---------------------------------------------------------------------------- settings

class _Settings:
    """Reads a ``{ }`` block: each setting name maps to a reader function."""

    def __init__(self, block: str, handlers: dict[str, Callable[[_Reader, RawSetting], None]], errors: Collector,
                 qualified: tuple[str, ...] = ()):
        self.block, self.handlers, self.errors = block, handlers, errors
        self.qualified = qualified  # settings named by their first two words ('fixed width', 'fixed depth')
        self.seen: dict[str, Span] = {}

    def run(self, settings: tuple[RawSetting, ...]) -> None:
        for setting in settings:
            name = setting.name.text
            handler = self.handlers.get(name)
            if handler is None:
                self.errors.error(
                    "E103", f"unknown setting '{name}' in {self.block}", setting.name.span,
                    did_you_mean(name, self.handlers),
                )
                continue
            key = name
            if name in self.qualified and setting.items and not setting.items[0].is_number:
                key = f"{name} {setting.items[0].text}"
            if key in self.seen:
                self.errors.error(
                    "E105", f"'{key}' is set twice in {self.block}", setting.name.span,
                    f"first set at line {self.seen[key].line}",
                )
                continue
            self.seen[key] = setting.name.span
            reader = _Reader(setting.items, self.errors, setting.name.span)
            handler(reader, setting)
            reader.rest_unexpected(f"'{name}'")


def _bn_pairs(reader: _Reader, values: dict[str, Any], spans: dict[str, Span]) -> None:
    """``bn eps 1e-3 momentum 0.01`` (either or both)."""
    if not reader.more():
        reader.errors.error("E200", "expected 'eps' or 'momentum' after 'bn'", reader.last_span())
    while reader.more():
        tok = reader.peek()
        if tok.is_number or tok.text not in ("eps", "momentum"):
            return
        reader.take()
        value, span = reader.number(f"bn {tok.text}")
        key = f"bn_{tok.text}"
        if key in spans:
            reader.errors.error("E105", f"bn {tok.text} is given twice", span, f"first given at {spans[key]}")
            continue
        values[key] = _check(tok.text, value, span, reader.errors)
        spans[key] = span


def _number_setting(values: dict, spans: dict, key: str, field: str | None = None) -> Callable:
    def handler(reader: _Reader, setting: RawSetting) -> None:
        value, span = reader.number(f"'{setting.name.text}'")
        values[key] = _check(field or key, value, span, reader.errors, f"'{setting.name.text}'")
        spans[key] = span
    return handler


def _bn_handler(values: dict, spans: dict) -> Callable:
    return lambda reader, setting: _bn_pairs(reader, values, spans)


def _bn_of(values: dict) -> BatchNorm:
    return BatchNorm(eps=values.pop("bn_eps", None), momentum=values.pop("bn_momentum", None))


def _clean(values: dict) -> dict:
    return {k: v for k, v in values.items() if v is not None}


def _scaling(stmt: RawStatement, n_stages_hint: list[RawStatement], errors: Collector) -> Scaling | None:
    values: dict[str, Any] = {}
    spans: dict[str, Span] = {}

    def channels(reader: _Reader, setting: RawSetting) -> None:
        keys = {"divisor": "divisor", "min": "min_ch", "guard": "guard"}
        if not reader.more():
            errors.error("E200", "expected 'divisor', 'min' or 'guard' after 'channels'", reader.last_span())
        while reader.more():
            tok = reader.word("'divisor', 'min' or 'guard'")
            if tok is None:
                continue
            if tok.text not in keys:
                errors.error("E103", f"unknown channel rule '{tok.text}'", tok.span, did_you_mean(tok.text, keys))
                if reader.peek() is not None and reader.peek().is_number:
                    reader.take()
                continue
            key = keys[tok.text]
            if key in spans:
                errors.error("E105", f"channels {tok.text} is given twice", tok.span,
                             f"first given at {spans[key]}")
            nxt = reader.peek()
            if key == "guard" and nxt is not None and nxt.text == "none":
                reader.take()
                values[key], spans[key] = 0.0, nxt.span
                continue
            value, span = reader.number(f"channels {tok.text}")
            values[key] = _check(key, value, span, errors)
            spans[key] = span

    def rounding(key: str) -> Callable:
        def handler(reader: _Reader, setting: RawSetting) -> None:
            tok = reader.word("a rounding mode (" + ", ".join(ROUNDING_MODES) + ")")
            if tok is None:
                return
            if tok.text not in ROUNDING_MODES:
                errors.error("E104", f"unknown rounding mode '{tok.text}'", tok.span, did_you_mean(tok.text, ROUNDING_MODES))
            else:
                values[key], spans[key] = tok.text, tok.span
            if key == "resolution_rounding" and reader.more():
                word = reader.word("'multiple'")
                if word is not None and word.text != "multiple":
                    errors.error("E103", f"unexpected '{word.text}'; expected 'multiple N'", word.span)
                    return
                value, span = reader.number("resolution multiple")
                values["resolution_multiple"] = _check("multiple", value, span, errors)
                spans["resolution_multiple"] = span
        return handler

    def fixed(reader: _Reader, setting: RawSetting) -> None:
        dim = reader.word("'width' or 'depth' after 'fixed'")
        if dim is None:
            return
        if dim.text == "width":
            parts = []
            while reader.more():
                tok = reader.take()
                if tok.text not in ("stem", "head"):
                    errors.error("E103", f"only 'stem' and 'head' can have fixed width, got '{tok.text}'", tok.span)
                else:
                    parts.append(tok.text)
            if not parts:
                errors.error("E200", "expected 'stem' and/or 'head' after 'fixed width'", reader.last_span())
            values["fixed_width"], spans["fixed_width"] = tuple(parts), setting.span
        elif dim.text == "depth":
            parts: list[Any] = []
            while reader.more():
                tok = reader.take()
                if tok.text in ("first", "last"):
                    parts.append((tok.text, tok.span))
                elif tok.is_number and math.isfinite(float(tok.text)) and _positive_int(float(tok.text)) is None:
                    parts.append((int(float(tok.text)), tok.span))
                else:
                    errors.error("E103", f"expected 'first', 'last' or a stage number, got '{tok.text}'", tok.span)
            if not parts:
                errors.error("E200", "expected 'first', 'last' or stage numbers after 'fixed depth'", reader.last_span())
            values["fixed_depth_raw"], spans["fixed_depth"] = parts, setting.span
        else:
            errors.error("E103", f"expected 'width' or 'depth' after 'fixed', got '{dim.text}'", dim.span)

    def head_width(reader: _Reader, setting: RawSetting) -> None:
        tok = reader.word("'scaled' or 'last N' after 'head_width'")
        if tok is None:
            return
        if tok.text == "scaled":
            values["head_from_last"], spans["head_from_last"] = None, tok.span
        elif tok.text == "last":
            value, span = reader.number("head_width last")
            values["head_from_last"] = _check("head_ratio", value, span, errors)
            spans["head_from_last"] = Span.cover(tok.span, span)
        else:
            errors.error("E103", f"expected 'scaled' or 'last N' after 'head_width', got '{tok.text}'", tok.span)

    handlers = {
        "head_width": head_width,
        "alpha": _number_setting(values, spans, "alpha", "coefficient"),
        "beta": _number_setting(values, spans, "beta", "coefficient"),
        "gamma": _number_setting(values, spans, "gamma", "coefficient"),
        "channels": channels,
        "depth": rounding("depth_rounding"),
        "resolution": rounding("resolution_rounding"),
        "fixed": fixed,
    }
    _Settings("scaling", handlers, errors, qualified=("fixed",)).run(stmt.settings or ())
    raw_fixed = values.pop("fixed_depth_raw", None) or []
    n = len(n_stages_hint)
    depth_fixed = []
    for what, span in raw_fixed:
        index = {"first": 0, "last": n - 1}.get(what, what - 1 if isinstance(what, int) else None)
        if index is None or not 0 <= index < n:
            errors.error("E213", f"there is no stage {what}; the network has {n} stage{'s' if n != 1 else ''}", span)
        else:
            depth_fixed.append(index)
    values["fixed_depth"] = tuple(sorted(set(depth_fixed)))
    try:
        return Scaling(span=stmt.span, spans=spans, **_clean(values))
    except Exception:  # a value already reported above
        return None


def _defaults(stmt: RawStatement, errors: Collector) -> Defaults:
    values: dict[str, Any] = {}
    spans: dict[str, Span] = {}

    def act(reader: _Reader, setting: RawSetting) -> None:
        tok = reader.word("an activation name")
        if tok is not None and _check_act(tok, errors):
            values["act"], spans["act"] = tok.text, tok.span

    def padding(reader: _Reader, setting: RawSetting) -> None:
        tok = reader.word("'symmetric' or 'same' after 'padding'")
        if tok is None:
            return
        if tok.text in PADDINGS:
            values["padding"], spans["padding"] = tok.text, tok.span
        else:
            errors.error("E104", f"unknown padding '{tok.text}'", tok.span, did_you_mean(tok.text, PADDINGS))

    handlers = {
        "act": act,
        "padding": padding,
        "se": _number_setting(values, spans, "se"),
        "bn": _bn_handler(values, spans),
        "drop_path": _number_setting(values, spans, "drop_path"),
        "dropout": _number_setting(values, spans, "dropout"),
    }
    _Settings("defaults", handlers, errors).run(stmt.settings or ())
    bn = _bn_of(values).over(Defaults.model_fields["bn"].default)
    return Defaults(span=stmt.span, spans=spans, bn=bn, **_clean(values))


def _preset(stmt: RawStatement, errors: Collector) -> Preset | None:
    values: dict[str, Any] = {}
    spans: dict[str, Span] = {}
    handlers = {
        "width": _number_setting(values, spans, "width"),
        "depth": _number_setting(values, spans, "depth"),
        "resolution": _number_setting(values, spans, "resolution"),
        "dropout": _number_setting(values, spans, "dropout"),
        "drop_path": _number_setting(values, spans, "drop_path"),
        "bn": _bn_handler(values, spans),
    }
    settings = _Settings(f"preset '{stmt.name.text}'" if stmt.name else "preset", handlers, errors)
    settings.run(stmt.settings or ())
    if stmt.name is None:
        errors.error("E200", "a preset needs a name: preset b0 { width 1.0; depth 1.0; resolution 224 }", stmt.keyword.span)
        return None
    missing = [k for k in ("width", "depth", "resolution") if k not in settings.seen]
    if missing:
        errors.error("E106", f"preset '{stmt.name.text}' does not set {', '.join(missing)}", stmt.name.span,
                     "a preset sets width, depth and resolution (dropout and bn are optional)")
        return None
    bn = _bn_of(values)
    if any(values.get(k) is None for k in ("width", "depth", "resolution")):
        return None
    spans["name"] = stmt.name.span
    return Preset(span=stmt.span, spans=spans, name=stmt.name.text, bn=bn, **_clean(values))


def _check_act(tok: Tok, errors: Collector) -> bool:
    if tok.text in ACTIVATIONS:
        return True
    alias = _ACT_ALIASES.get(tok.text.lower())
    if alias is None:  # a misspelled alias ('swishh') means the aliased name ('silu')
        close = difflib.get_close_matches(tok.text.lower(), (*ACTIVATIONS, *_ACT_ALIASES), n=1, cutoff=0.6)
        alias = _ACT_ALIASES.get(close[0], close[0]) if close else None
    hint = f"did you mean '{alias}'?" if alias else did_you_mean(tok.text, ACTIVATIONS)
    errors.error("E102", f"unknown activation '{tok.text}'", tok.span, hint)
    return False


# ---------------------------------------------------------------------------- blocks

def _block(stmt: RawStatement, errors: Collector) -> Block | None:
    role = stmt.keyword.text
    kind = stmt.name
    allowed = BLOCK_TYPES if role == "stage" else ("conv",)
    ok = True
    if kind.text not in allowed:
        hint = did_you_mean(kind.text, allowed)
        errors.error("E101", f"unknown {role} block '{kind.text}'" if role == "stage"
                     else f"a {role} is a 'conv', got '{kind.text}'", kind.span, hint)
        ok = False
    values: dict[str, Any] = {}
    spans: dict[str, Span] = {"block": kind.span}
    reader = _Reader(stmt.items, errors, kind.span)
    while reader.more():
        tok = reader.take()
        match = None if tok.is_number else _FIELD.match(tok.text)
        if match:
            key = _FIELD_NAMES[match.group(1)]
            value: Any = float(match.group(2))
            if not math.isfinite(value):
                errors.error("E200", f"{key} is out of range: {tok.text}", tok.span)
                ok = False
                continue
            field = key
        elif tok.text == "se" and reader.peek() is not None and reader.peek().is_number:
            field, (value, _) = "se", reader.number("se")
            tok = Tok(tok.text, False, Span.cover(tok.span, reader.items[reader.pos - 1].span))
        elif tok.text == "act":
            name = reader.word("an activation name after 'act'")
            if name is not None and "act" in spans:
                errors.error("E105", "act is given twice", name.span, f"first given at {spans['act']}")
                ok = False
            elif name is not None and _check_act(name, errors):
                values["act"], spans["act"] = name.text, name.span
            continue
        elif tok.text in ("skip", "noskip"):
            field, value = "skip", tok.text == "skip"
        elif tok.text == "bn":
            _bn_pairs(reader, values, spans)
            continue
        else:
            hint = did_you_mean(tok.text, ("act", "bn", "skip", "noskip", "se"))
            if hint is None or hint.startswith("expected"):
                hint = "block options are " + ", ".join(_STAGE_WORDS)
            errors.error("E103", f"unknown option '{tok.text}' for a {role}", tok.span, hint)
            ok = False
            continue
        if field in values or (field in spans and field != "block"):
            errors.error("E105", f"{field} is given twice", tok.span, f"first given at {spans[field]}")
            ok = False
            continue
        spans[field] = tok.span
        if field == "skip":
            values[field] = value
            continue
        checked = _check(field, value, tok.span, errors)
        if checked is None:
            ok = False
        values[field] = checked
    for required, example in (("kernel", "k3"), ("out_ch", "c32")):
        if required not in values:
            errors.error("E106", f"this {role} does not give its {'channels' if required == 'out_ch' else required}",
                         stmt.keyword.span if not stmt.items else Span.cover(stmt.keyword.span, stmt.items[-1].span),
                         f"add {example}")
            ok = False
    if role != "stage":
        for field in ("repeats", "expand", "se", "skip"):
            if field in values:
                errors.error("E103", f"a {role} takes no {field}", spans[field])
                ok = False
    elif kind.text == "conv":
        for field in ("expand", "se"):
            if field in values:
                errors.error("E103", f"a conv stage takes no {field}", spans[field],
                             "expansion and squeeze-excite belong to mbconv and fused_mbconv")
                ok = False
    if not ok:
        return None
    bn = _bn_of(values)
    return Block(span=stmt.span, spans=spans, role=role, block=kind.text, bn=bn, **_clean(values))


# ---------------------------------------------------------------------------- network

_SINGLE = ("input", "classes", "scaling", "defaults", "stem", "head", "pool", "dropout", "linear")
_HEAD_ORDER = ("head", "pool", "dropout", "linear")


def analyze(raw: RawNetwork) -> Network:
    """Check the raw statements and build the spec AST; raise with every error found."""
    errors = Collector()
    first: dict[str, RawStatement] = {}
    stages: list[RawStatement] = []
    presets: list[RawStatement] = []
    last_role = "start"
    for stmt in raw.statements:
        key = stmt.keyword.text
        if key in _SINGLE:
            if key in first:
                errors.error("E105", f"'{key}' is given twice", stmt.keyword.span,
                             f"first given at line {first[key].span.line}")
                continue
            first[key] = stmt
        if key in ("scaling", "defaults") and stmt.name is not None:
            errors.error("E103", f"'{key}' takes no name, got '{stmt.name.text}'", stmt.name.span)
        late_stage = key == "stage" and ("head" in first or "pool" in first or "linear" in first)
        if key == "stage":
            if late_stage:
                after = next(k for k in ("head", "pool", "linear") if k in first)
                errors.error("E107", f"a stage after '{after}' (line {first[after].span.line}); stages come "
                             "between the stem and the head", stmt.keyword.span,
                             "the order is: stem, stages, head, pool, dropout, linear")
            stages.append(stmt)
        elif key == "preset":
            presets.append(stmt)
        if key in ("stem", "stage") + _HEAD_ORDER and not late_stage:  # one error per statement
            last_role = _order_check(key, last_role, stmt, errors)

    in_ch, resolution, classes = _input(first.get("input"), first.get("classes"), raw, errors)
    scaling = _scaling(first["scaling"], stages, errors) if "scaling" in first else Scaling(span=raw.name.span)
    defaults = _defaults(first["defaults"], errors) if "defaults" in first else Defaults(span=raw.name.span)
    preset_nodes = []
    for stmt in presets:
        node = _preset(stmt, errors)
        if node is None:
            continue
        clash = next((p for p in preset_nodes if p.name == node.name), None)
        if clash is not None:
            errors.error("E105", f"preset '{node.name}' is defined twice", node.span_of("name"),
                         f"first defined at line {clash.span.line}")
            continue
        preset_nodes.append(node)

    stem = _block(first["stem"], errors) if "stem" in first else None
    stage_nodes = [_block(s, errors) for s in stages]
    _check_size(stages, stage_nodes, errors)
    head = _head(first, raw, errors)
    for what in ("stem",):
        if what not in first:
            errors.error("E106", "the network has no stem", raw.end, "add a line like: stem conv k3 s2 c32")
    if not stages:
        errors.error("E106", "the network has no stage", raw.end, "add a line like: stage mbconv e6 k3 s2 c24 x2")
    _raise_if_any(errors)
    assert stem is not None and head is not None and scaling is not None
    network = Network(
        span=raw.span,
        spans={"name": raw.name.span, **_input_spans(first.get("input"), first.get("classes"))},
        name=raw.name.text,
        in_ch=in_ch,
        resolution=resolution,
        classes=classes,
        scaling=scaling,
        defaults=defaults,
        presets=tuple(preset_nodes),
        stem=stem,
        stages=tuple(stage_nodes),
        head=head,
    )
    _check_divisible(network, errors)
    _check_head_width(network, errors)
    _raise_if_any(errors)
    return network


_MAX_ERRORS = 50


def _raise_if_any(errors: Collector) -> None:
    """Raise with the first ``_MAX_ERRORS`` diagnostics in source order and a count of the rest."""
    found = sorted(errors.diagnostics, key=Diagnostic.sort_key)
    if len(found) > _MAX_ERRORS:
        hidden = found[_MAX_ERRORS:]
        errors.diagnostics = found[:_MAX_ERRORS] + [Diagnostic(
            "E006", f"{len(hidden):,} more errors from here on are not shown", hidden[0].span,
            "fix the errors above and check again")]
    errors.raise_if_any()


def _check_size(stages: list[RawStatement], nodes: list[Block | None], errors: Collector) -> None:
    """At most MAX_STAGES stages and MAX_BLOCKS blocks in all (E215)."""
    if len(stages) > MAX_STAGES:
        errors.error("E215", f"too many stages: {len(stages):,}; at most {MAX_STAGES}",
                     stages[MAX_STAGES].keyword.span, f"this is stage {MAX_STAGES + 1}")
    blocks = [node for node in nodes if node is not None]
    total = sum(node.repeats for node in blocks)
    if total > MAX_BLOCKS:
        running = 0
        for node in blocks:  # point at the stage that crosses the limit
            running += node.repeats
            if running > MAX_BLOCKS:
                errors.error("E215", f"the stages add up to {total:,} blocks; at most {MAX_BLOCKS:,}",
                             node.span_of("repeats"), "use fewer stages or fewer repeats")
                return


def _order_check(key: str, last: str, stmt: RawStatement, errors: Collector) -> str:
    order = ("start", "stem", "stage") + _HEAD_ORDER
    if order.index(key) < order.index(last):
        errors.error("E107", f"'{key}' must come before '{last}'", stmt.keyword.span,
                     "the order is: stem, stages, head, pool, dropout, linear")
        return last
    return key


def _input(inp: RawStatement | None, cls: RawStatement | None, raw: RawNetwork, errors: Collector):
    in_ch = resolution = classes = None
    if inp is None:
        errors.error("E106", "the network has no 'input' line", raw.name.span,
                     "add a line like: input 3 x 224  (channels x resolution)")
    else:
        ch_tok, res_tok = inp.items
        in_ch = _check("in_ch", _to_float(ch_tok, "input channels", errors), ch_tok.span, errors)
        resolution = _check("resolution", _to_float(res_tok, "resolution", errors), res_tok.span, errors)
    if cls is None:
        errors.error("E106", "the network has no 'classes' line", raw.name.span, "add a line like: classes 1000")
    else:
        (tok,) = cls.items
        classes = _check("classes", _to_float(tok, "classes", errors), tok.span, errors)
    return in_ch, resolution, classes


def _input_spans(inp: RawStatement | None, cls: RawStatement | None) -> dict[str, Span]:
    spans = {}
    if inp is not None:
        spans["in_ch"], spans["resolution"] = inp.items[0].span, inp.items[1].span
    if cls is not None:
        spans["classes"] = cls.items[0].span
    return spans


def _head(first: dict[str, RawStatement], raw: RawNetwork, errors: Collector) -> Head | None:
    conv = _block(first["head"], errors) if "head" in first else None
    spans: dict[str, Span] = {}
    pool = "avg"
    if "pool" in first:
        stmt = first["pool"]
        reader = _Reader(stmt.items, errors, stmt.keyword.span)
        tok = reader.word("a pooling kind ('avg' or 'max') after 'pool'")
        if tok is not None:
            if tok.text in POOLS:
                pool, spans["pool"] = tok.text, tok.span
            else:
                errors.error("E104", f"unknown pooling '{tok.text}'", tok.span, did_you_mean(tok.text, POOLS))
        reader.rest_unexpected("'pool'")
    else:
        errors.error("E106", "the network has no 'pool' line", raw.end, "add 'pool avg' after the head")
    dropout = None
    if "dropout" in first:
        stmt = first["dropout"]
        spans["dropout"] = stmt.keyword.span
        if stmt.items:
            reader = _Reader(stmt.items, errors, stmt.keyword.span)
            value, span = reader.number("dropout")
            dropout = _check("dropout", value, span, errors)
            spans["dropout"] = span
            reader.rest_unexpected("'dropout'")
    if "linear" in first:
        spans["linear"] = first["linear"].keyword.span
    if "linear" not in first:
        errors.error("E106", "the network has no 'linear' classifier", raw.end, "end the network with 'linear'")
    elif first["linear"].items:
        _Reader(first["linear"].items, errors, first["linear"].keyword.span).rest_unexpected("'linear'")
    span = first["head"].span if "head" in first else raw.end
    return Head(span=span, spans=spans, conv=conv, pool=pool, dropout=dropout, linear="linear" in first)


def _check_divisible(net: Network, errors: Collector) -> None:
    """Scaled channel counts are multiples of the divisor; so must the baseline's be.

    Otherwise width 1.0 would silently change the baseline (c20 would become 24).
    """
    div = net.scaling.divisor
    parts: list[Block] = list(net.stages)
    if "stem" not in net.scaling.fixed_width:
        parts.insert(0, net.stem)
    if net.head.conv is not None and "head" not in net.scaling.fixed_width \
            and net.scaling.head_from_last is None:
        parts.append(net.head.conv)
    for block in parts:
        if block.out_ch % div:
            lower = max(div, block.out_ch // div * div)
            errors.error(
                "E208",
                f"channels {block.out_ch} is not a multiple of the channel divisor {div}",
                block.span_of("out_ch"),
                f"use c{lower} or c{lower + div}, or change 'channels divisor' in scaling",
            )
    # The minimum must be a width the rule can produce, and no baseline width may be below it.
    min_ch = net.scaling.min_ch
    if min_ch is not None:
        where = net.scaling.span_of("min_ch")
        if min_ch % div:
            errors.error("E210", f"channels min {min_ch} is not a multiple of the divisor {div}", where,
                         f"use min {max(div, min_ch // div * div)} or leave it out (it defaults to the divisor)")
        smallest = min(parts, key=lambda b: b.out_ch, default=None)
        if smallest is not None and smallest.out_ch < min_ch:
            errors.error("E210", f"channels min {min_ch} is above the baseline's c{smallest.out_ch}, "
                                 "so phi = 0 would change the baseline", where,
                         f"lower the minimum to {smallest.out_ch} or widen that part")
    # Likewise the resolution: phi = 0 rounds it to the multiple (x 2 would become 4).
    multiple = net.scaling.resolution_multiple
    if net.resolution % multiple:
        lower = max(multiple, net.resolution // multiple * multiple)
        errors.error(
            "E212",
            f"resolution {net.resolution} is not a multiple of the resolution multiple {multiple}",
            net.span_of("resolution"),
            f"use {lower} or {lower + multiple}, or change 'resolution ... multiple' in scaling",
        )


def _check_head_width(net: Network, errors: Collector) -> None:
    """``head_width last N`` derives the head from the last stage; the spec must agree at phi = 0."""
    ratio = net.scaling.head_from_last
    if ratio is None:
        return
    where = net.scaling.span_of("head_from_last")
    if net.head.conv is None:
        errors.error("E214", "'head_width last' needs a head conv", where, "add a line like: head conv k1 c1280")
        return
    derived = int(net.stages[-1].out_ch * ratio)
    if net.head.conv.out_ch != derived:
        errors.error(
            "E214",
            f"head channels {net.head.conv.out_ch} disagree with 'head_width last {ratio:g}' "
            f"({ratio:g} x {net.stages[-1].out_ch} = {derived})",
            net.head.conv.span_of("out_ch"),
            f"write c{derived}, or use 'head_width scaled'",
        )
