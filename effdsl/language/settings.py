"""The ``{ }`` blocks of a spec: scaling, defaults, preprocess and presets (part of stage 2).

Each setting name maps to a small reader; unknown or repeated settings are reported with
their spans and a did-you-mean hint.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from effdsl.diagnostics import Collector, Span, did_you_mean
from effdsl.language.parser import RawSetting, RawStatement, Tok
from effdsl.language.spec import (
    INTERPOLATIONS,
    PADDINGS,
    ROUNDING_MODES,
    SE_BASES,
    SE_GATES,
    BatchNorm,
    Defaults,
    Preprocess,
    Preset,
    Scaling,
    SqueezeExcite,
)
from effdsl.language.values import Reader, check_act, check_value, positive_int

# A setting's reader: it takes the setting's words from the reader and records the values.
Handler = Callable[[Reader, RawSetting], None]
# The values read from a block or a line, by field name, before the AST node checks them:
# numbers, words and tuples of them, of a different type for each field. They are handed to
# the pydantic model as keyword arguments, which validates each against its field's type.
Values = dict[str, Any]


class _Settings:
    """Reads a ``{ }`` block: each setting name maps to a reader function."""

    def __init__(self, block: str, handlers: Mapping[str, Handler], errors: Collector,
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
            reader = Reader(setting.items, self.errors, setting.name.span)
            handler(reader, setting)
            reader.rest_unexpected(f"'{name}'")


def bn_pairs(reader: Reader, values: Values, spans: dict[str, Span]) -> None:
    """``bn eps 1e-3 momentum 0.01`` (either or both)."""
    if not reader.more():
        reader.errors.error("E200", "expected 'eps' or 'momentum' after 'bn'", reader.last_span())
    while (tok := reader.peek()) is not None:
        if tok.is_number or tok.text not in ("eps", "momentum"):
            return
        reader.take()
        value, span = reader.number(f"bn {tok.text}")
        key = f"bn_{tok.text}"
        if key in spans:
            reader.errors.error("E105", f"bn {tok.text} is given twice", span, f"first given at {spans[key]}")
            continue
        values[key] = check_value(tok.text, value, span, reader.errors)
        spans[key] = span


# The words that shape a squeeze-excite, after its ratio: se 0.25 of mid divisor 8 inner relu gate hardsigmoid
SE_WORDS: tuple[str, ...] = ("of", "divisor", "inner", "gate")


def se_shape_words(reader: Reader, values: Values, spans: dict[str, Span]) -> None:
    """The words after ``se R`` that shape the squeeze-excite, in any order: ``of in|mid``,
    ``divisor N``, ``inner ACT`` and ``gate sigmoid|hardsigmoid``."""
    errors = reader.errors
    while (tok := reader.peek()) is not None and not tok.is_number and tok.text in SE_WORDS:
        reader.take()
        key = f"se_{tok.text}"
        if tok.text == "divisor":
            number, span = reader.number("the squeeze-excite divisor")
            value = check_value("divisor", number, span, errors, "squeeze-excite divisor")
        else:
            word = reader.word({"of": "'in' or 'mid' after 'of'", "inner": "an activation name after 'inner'",
                                "gate": "'sigmoid' or 'hardsigmoid' after 'gate'"}[tok.text])
            if word is None:
                continue
            value, span = _se_word(tok.text, word, errors), word.span
        if key in spans:
            errors.error("E105", f"se {tok.text} is given twice", tok.span, f"first given at {spans[key]}")
            continue
        values[key], spans[key] = value, span


def _se_word(what: str, word: Tok, errors: Collector) -> str | None:
    """The word after ``of``, ``inner`` or ``gate``; None when it is not one (reported)."""
    if what == "inner":
        return word.text if check_act(word, errors) else None
    allowed = SE_BASES if what == "of" else SE_GATES
    if word.text in allowed:
        return word.text
    alias = {"hsigmoid": "hardsigmoid", "hard_sigmoid": "hardsigmoid", "input": "in", "expanded": "mid"}
    hint = f"did you mean '{alias[word.text]}'?" if word.text in alias else did_you_mean(word.text, allowed)
    errors.error("E104", f"unknown squeeze-excite {'base' if what == 'of' else 'gate'} '{word.text}'", word.span,
                 hint)
    return None


def se_shape_of(values: Values) -> SqueezeExcite:
    """The squeeze-excite shape that ``se_shape_words`` read, taken out of ``values``."""
    return SqueezeExcite(of=values.pop("se_of", None), divisor=values.pop("se_divisor", None),
                         inner=values.pop("se_inner", None), gate=values.pop("se_gate", None))


def _number_setting(values: Values, spans: dict[str, Span], key: str, field: str | None = None) -> Handler:
    def handler(reader: Reader, setting: RawSetting) -> None:
        value, span = reader.number(f"'{setting.name.text}'")
        values[key] = check_value(field or key, value, span, reader.errors, f"'{setting.name.text}'")
        spans[key] = span
    return handler


def _bn_handler(values: Values, spans: dict[str, Span]) -> Handler:
    return lambda reader, setting: bn_pairs(reader, values, spans)


def bn_of(values: Values) -> BatchNorm:
    """The ``bn`` settings that ``bn_pairs`` read, taken out of ``values``."""
    return BatchNorm(eps=values.pop("bn_eps", None), momentum=values.pop("bn_momentum", None))


def clean(values: Values) -> Values:
    """``values`` without the ones that were missing or wrong, so the AST's defaults apply."""
    return {k: v for k, v in values.items() if v is not None}


# ---------------------------------------------------------------------------- scaling

_CHANNEL_RULES = {"divisor": "divisor", "min": "min_ch", "guard": "guard"}  # word: Scaling field


class _ScalingReaders:
    """The readers of the settings of ``scaling { }``; they fill ``values`` and ``spans``."""

    def __init__(self, errors: Collector):
        self.errors = errors
        self.values: Values = {}
        self.spans: dict[str, Span] = {}
        # 'fixed depth': 'first', 'last' or a 1-based stage number, checked against the stages later
        self.fixed_depth: list[tuple[str | int, Span]] = []

    def handlers(self) -> dict[str, Handler]:
        return {
            "head_width": self.head_width,
            "mid_width": self.mid_width,
            "alpha": _number_setting(self.values, self.spans, "alpha", "coefficient"),
            "beta": _number_setting(self.values, self.spans, "beta", "coefficient"),
            "gamma": _number_setting(self.values, self.spans, "gamma", "coefficient"),
            "channels": self.channels,
            "depth": self.rounding("depth_rounding"),
            "resolution": self.rounding("resolution_rounding"),
            "fixed": self.fixed,
        }

    def channels(self, reader: Reader, setting: RawSetting) -> None:
        """``channels divisor 8 min 16 guard 0.9`` (any of them, in any order)."""
        if not reader.more():
            self.errors.error("E200", "expected 'divisor', 'min' or 'guard' after 'channels'", reader.last_span())
        while reader.more():
            tok = reader.word("'divisor', 'min' or 'guard'")
            if tok is not None:
                self._channel_rule(reader, tok)

    def _channel_rule(self, reader: Reader, tok: Tok) -> None:
        key = _CHANNEL_RULES.get(tok.text)
        if key is None:
            self.errors.error("E103", f"unknown channel rule '{tok.text}'", tok.span,
                              did_you_mean(tok.text, _CHANNEL_RULES))
            nxt = reader.peek()
            if nxt is not None and nxt.is_number:
                reader.take()
            return
        if key in self.spans:
            self.errors.error("E105", f"channels {tok.text} is given twice", tok.span,
                              f"first given at {self.spans[key]}")
        nxt = reader.peek()
        if key == "guard" and nxt is not None and nxt.text == "none":
            reader.take()
            self.values[key], self.spans[key] = 0.0, nxt.span
            return
        value, span = reader.number(f"channels {tok.text}")
        self.values[key] = check_value(key, value, span, self.errors)
        self.spans[key] = span

    def rounding(self, key: str) -> Handler:
        """``depth ceil``, ``resolution half_up [multiple 32]``: the rounding mode in ``key``."""
        def handler(reader: Reader, setting: RawSetting) -> None:
            tok = reader.word("a rounding mode (" + ", ".join(ROUNDING_MODES) + ")")
            if tok is None:
                return
            if tok.text not in ROUNDING_MODES:
                self.errors.error("E104", f"unknown rounding mode '{tok.text}'", tok.span,
                                  did_you_mean(tok.text, ROUNDING_MODES))
            else:
                self.values[key], self.spans[key] = tok.text, tok.span
            if key == "resolution_rounding" and reader.more():
                self._resolution_multiple(reader)
        return handler

    def _resolution_multiple(self, reader: Reader) -> None:
        word = reader.word("'multiple'")
        if word is not None and word.text != "multiple":
            self.errors.error("E103", f"unexpected '{word.text}'; expected 'multiple N'", word.span)
            return
        value, span = reader.number("resolution multiple")
        self.values["resolution_multiple"] = check_value("multiple", value, span, self.errors)
        self.spans["resolution_multiple"] = span

    def fixed(self, reader: Reader, setting: RawSetting) -> None:
        """``fixed width stem head`` or ``fixed depth first last 3``: parts that do not scale."""
        dim = reader.word("'width' or 'depth' after 'fixed'")
        if dim is None:
            return
        if dim.text == "width":
            self._fixed_width(reader, setting)
        elif dim.text == "depth":
            self._fixed_depth(reader, setting)
        else:
            self.errors.error("E103", f"expected 'width' or 'depth' after 'fixed', got '{dim.text}'", dim.span)

    def _fixed_width(self, reader: Reader, setting: RawSetting) -> None:
        parts: list[str] = []
        while reader.more():
            tok = reader.take()
            if tok.text not in ("stem", "head"):
                self.errors.error("E103", f"only 'stem' and 'head' can have fixed width, got '{tok.text}'",
                                  tok.span)
            else:
                parts.append(tok.text)
        if not parts:
            self.errors.error("E200", "expected 'stem' and/or 'head' after 'fixed width'", reader.last_span())
        self.values["fixed_width"], self.spans["fixed_width"] = tuple(parts), setting.span

    def _fixed_depth(self, reader: Reader, setting: RawSetting) -> None:
        while reader.more():
            tok = reader.take()
            if tok.text in ("first", "last"):
                self.fixed_depth.append((tok.text, tok.span))
            elif tok.is_number and math.isfinite(float(tok.text)) and positive_int(float(tok.text)) is None:
                self.fixed_depth.append((int(float(tok.text)), tok.span))
            else:
                self.errors.error("E103", f"expected 'first', 'last' or a stage number, got '{tok.text}'",
                                  tok.span)
        if not self.fixed_depth:
            self.errors.error("E200", "expected 'first', 'last' or stage numbers after 'fixed depth'",
                              reader.last_span())
        self.spans["fixed_depth"] = setting.span

    def head_width(self, reader: Reader, setting: RawSetting) -> None:
        """``head_width scaled`` or ``head_width last 4`` (the head from the last stage's width)."""
        tok = reader.word("'scaled' or 'last N' after 'head_width'")
        if tok is None:
            return
        if tok.text == "scaled":
            self.values["head_from_last"], self.spans["head_from_last"] = None, tok.span
            if reader.more():
                self._head_min_width(reader)
        elif tok.text == "last":
            value, span = reader.number("head_width last")
            self.values["head_from_last"] = check_value("head_ratio", value, span, self.errors)
            self.spans["head_from_last"] = Span.cover(tok.span, span)
        else:
            self.errors.error("E103", f"expected 'scaled' or 'last N' after 'head_width', got '{tok.text}'",
                              tok.span)


    def _head_min_width(self, reader: Reader) -> None:
        """``head_width scaled min 1``: the head scales by max(1, width) (MobileNetV2's rule)."""
        word = reader.word("'min' after 'head_width scaled'")
        if word is None:
            return
        if word.text != "min":
            self.errors.error("E103", f"unexpected '{word.text}'; expected 'min W' after 'head_width scaled'",
                              word.span, did_you_mean(word.text, ("min",)))
            return
        value, span = reader.number("head_width scaled min")
        self.values["head_min_width"] = check_value("width", value, span, self.errors, "head_width min")
        self.spans["head_min_width"] = Span.cover(word.span, span)

    def mid_width(self, reader: Reader, setting: RawSetting) -> None:
        """``mid_width scaled``: expanded widths scale with the channel rule, from the baseline's
        (torchvision's MobileNetV3); ``mid_width input`` (the default): e x the scaled input."""
        tok = reader.word("'scaled' or 'input' after 'mid_width'")
        if tok is None:
            return
        if tok.text in ("scaled", "input"):
            self.values["mid_scaled"], self.spans["mid_scaled"] = tok.text == "scaled", tok.span
        else:
            self.errors.error("E104", f"unknown mid_width rule '{tok.text}'", tok.span,
                              did_you_mean(tok.text, ("scaled", "input")))


def _stage_index(what: str | int, n: int) -> int:
    """The 0-based index of ``first``, ``last`` or a 1-based stage number among ``n`` stages."""
    if isinstance(what, int):
        return what - 1
    return 0 if what == "first" else n - 1


def _stage_indices(fixed_depth: list[tuple[str | int, Span]], n: int, errors: Collector) -> tuple[int, ...]:
    """The 0-based, sorted stage indices of ``fixed depth`` words; a stage beyond ``n`` is E213."""
    indices = []
    for what, span in fixed_depth:
        index = _stage_index(what, n)
        if not 0 <= index < n:
            errors.error("E213", f"there is no stage {what}; the network has {n} stage{'s' if n != 1 else ''}", span)
        else:
            indices.append(index)
    return tuple(sorted(set(indices)))


def read_scaling(stmt: RawStatement, n_stages_hint: list[RawStatement], errors: Collector) -> Scaling | None:
    """The ``scaling { }`` block; None when one of its values was wrong (and reported)."""
    readers = _ScalingReaders(errors)
    _Settings("scaling", readers.handlers(), errors, qualified=("fixed",)).run(stmt.settings or ())
    values = readers.values
    values["fixed_depth"] = _stage_indices(readers.fixed_depth, len(n_stages_hint), errors)
    try:
        return Scaling(span=stmt.span, spans=readers.spans, **clean(values))
    except Exception:  # a value already reported above
        return None


def read_defaults(stmt: RawStatement, errors: Collector) -> Defaults:
    values: dict[str, Any] = {}
    spans: dict[str, Span] = {}

    def act(reader: Reader, setting: RawSetting) -> None:
        tok = reader.word("an activation name")
        if tok is not None and check_act(tok, errors):
            values["act"], spans["act"] = tok.text, tok.span

    def padding(reader: Reader, setting: RawSetting) -> None:
        tok = reader.word("'symmetric' or 'same' after 'padding'")
        if tok is None:
            return
        if tok.text in PADDINGS:
            values["padding"], spans["padding"] = tok.text, tok.span
        else:
            errors.error("E104", f"unknown padding '{tok.text}'", tok.span, did_you_mean(tok.text, PADDINGS))

    def se(reader: Reader, setting: RawSetting) -> None:
        value, span = reader.number("'se'")
        values["se"] = check_value("se", value, span, errors, "'se'")
        spans["se"] = span
        se_shape_words(reader, values, spans)

    handlers = {
        "act": act,
        "padding": padding,
        "se": se,
        "bn": _bn_handler(values, spans),
        "drop_path": _number_setting(values, spans, "drop_path"),
        "dropout": _number_setting(values, spans, "dropout"),
    }
    _Settings("defaults", handlers, errors).run(stmt.settings or ())
    bn = bn_of(values).over(Defaults.model_fields["bn"].default)
    se_shape = se_shape_of(values).over(Defaults.model_fields["se_shape"].default)
    return Defaults(span=stmt.span, spans=spans, bn=bn, se_shape=se_shape, **clean(values))


def read_preprocess(stmt: RawStatement, in_ch: int | None, errors: Collector) -> Preprocess:
    """``preprocess { mean M...; std S...; interpolation NAME; crop F }``: mean and std give
    one number per input channel."""
    values: dict[str, Any] = {}
    spans: dict[str, Span] = {}

    def per_channel(key: str) -> Handler:
        def handler(reader: Reader, setting: RawSetting) -> None:
            numbers = []
            while True:
                value, span = reader.number(f"'{key}'")
                if value is not None and key == "std":
                    value = check_value("std", value, span, errors)
                numbers.append(value)
                following = reader.peek()
                if following is None or not following.is_number:
                    break
            covered = Span.cover(setting.items[0].span, setting.items[-1].span) if setting.items else setting.span
            if None in numbers:
                return
            if in_ch is not None and len(numbers) != in_ch:
                errors.error("E200", f"expected {in_ch} values for {key} (one per input channel), got "
                                     f"{len(numbers)}", covered, f"the input line says {in_ch} channels")
                return
            values[key], spans[key] = tuple(numbers), covered
        return handler

    def interpolation(reader: Reader, setting: RawSetting) -> None:
        tok = reader.word("an interpolation (" + ", ".join(INTERPOLATIONS) + ")")
        if tok is None:
            return
        if tok.text in INTERPOLATIONS:
            values["interpolation"], spans["interpolation"] = tok.text, tok.span
        else:
            errors.error("E104", f"unknown interpolation '{tok.text}'", tok.span,
                         did_you_mean(tok.text, INTERPOLATIONS))

    handlers = {
        "mean": per_channel("mean"),
        "std": per_channel("std"),
        "interpolation": interpolation,
        "crop": _number_setting(values, spans, "crop"),
    }
    if stmt.name is not None:
        errors.error("E103", f"'preprocess' takes no name, got '{stmt.name.text}'", stmt.name.span)
    _Settings("preprocess", handlers, errors).run(stmt.settings or ())
    return Preprocess(span=stmt.span, spans=spans, **clean(values))


def read_preset(stmt: RawStatement, errors: Collector) -> Preset | None:
    values: dict[str, Any] = {}
    spans: dict[str, Span] = {}
    handlers = {
        "width": _number_setting(values, spans, "width"),
        "depth": _number_setting(values, spans, "depth"),
        "resolution": _number_setting(values, spans, "resolution"),
        "dropout": _number_setting(values, spans, "dropout"),
        "drop_path": _number_setting(values, spans, "drop_path"),
        "bn": _bn_handler(values, spans),
        "crop": _number_setting(values, spans, "crop"),
        "test_resolution": _number_setting(values, spans, "test_resolution"),
    }
    settings = _Settings(f"preset '{stmt.name.text}'" if stmt.name else "preset", handlers, errors)
    settings.run(stmt.settings or ())
    if stmt.name is None:
        errors.error("E200", "a preset needs a name: preset b0 { width 1.0; depth 1.0; resolution 224 }",
                     stmt.keyword.span)
        return None
    missing = [k for k in ("width", "depth", "resolution") if k not in settings.seen]
    if missing:
        errors.error("E106", f"preset '{stmt.name.text}' does not set {', '.join(missing)}", stmt.name.span,
                     "a preset sets width, depth and resolution (dropout, drop_path, bn, crop and "
                     "test_resolution are optional)")
        return None
    bn = bn_of(values)
    if any(values.get(k) is None for k in ("width", "depth", "resolution")):
        return None
    spans["name"] = stmt.name.span
    return Preset(span=stmt.span, spans=spans, name=stmt.name.text, bn=bn, **clean(values))
