"""The choices of a search space in a stage line (part of stage 2, :mod:`effdsl.language.analyze`).

A stage may write, in place of a value, a choice between several (MnasNet's factorized
hierarchical space, Tan et al. 2019):

- a set of values after the field's letter: ``k{3,5}``, ``e{1,3,6}``, ``se{0,0.25}``,
  ``s{1,2}``, ``c{16,24}``, ``x{1,2}``, ``act{relu,silu}``; the block type in its place,
  ``stage {mbconv,fused_mbconv} ...``; and the residual, ``{skip,noskip}``;
- choices relative to a baseline: offsets added to the repeats, ``x2+{-1,0,+1}``, and
  multipliers of the channels, ``c40*{0.75,1,1.25}`` (rounded with the spec's channel
  rule when a member is made, see :mod:`effdsl.scaling.choices`).

Every option is checked with the value rules of the field it stands for, so a choice's
mistakes are reported like any other value's, at the option.
"""

from __future__ import annotations

import math
import re
from typing import Any

from effdsl.diagnostics import Collector, Span, did_you_mean
from effdsl.language.parser import Tok
from effdsl.language.spec import BLOCK_TYPES, MAX_CHANNELS, MAX_REPEATS, Choice, ChoiceField, ChoiceValue, Relation
from effdsl.language.values import check_act, check_value

# The field letters of a stage line (see analyze._FIELD), and a field glued to its base
# value with '+' after it: x2+ (the offsets' base).
LETTERS: dict[str, ChoiceField] = {"k": "kernel", "s": "stride", "e": "expand", "c": "out_ch", "x": "repeats",
                                   "se": "se"}
_NUMBER = r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
_BASED = re.compile(rf"^(se|k|s|e|c|x)({_NUMBER})(\+?)$")
_WHAT = {"kernel": "kernel", "stride": "stride", "expand": "expansion ratio", "out_ch": "channels",
         "repeats": "repeats", "se": "squeeze-excite ratio", "act": "activation", "block": "block type",
         "skip": "residual"}
SKIP_WORDS = ("skip", "noskip")
FORMS = "k{3,5}, e{3,6}, se{0,0.25}, act{relu,silu}, x2+{-1,0,+1}, c40*{0.75,1,1.25} or {skip,noskip}"


def as_number(value: ChoiceValue) -> float:
    """An option of a relative choice (an offset or a multiplier), or of a numeric field: a number."""
    if isinstance(value, str):
        raise TypeError(f"the option '{value}' is not a number")
    return value


def base_of(choice: Choice) -> int:
    """The number a relative choice (``x2+{...}``, ``c40*{...}``) applies to."""
    if choice.base is None:
        raise TypeError(f"a choice of {choice.field} by {choice.relation} has no base")
    return choice.base


def takes_choice(word: Tok, choice: Tok) -> bool:
    """Does ``word`` name the field that the ``choice`` after it chooses?

    ``k``, ``act``, ``x2+`` take any choice; a field with its value (``c40``) takes only
    multipliers (``*{...}``). Otherwise the choice stands alone (``{skip,noskip}``).
    """
    if word.is_number or word.is_choice:
        return False
    if word.text in LETTERS or word.text == "act" or word.text.endswith("+"):
        return True
    return _BASED.match(word.text) is not None and choice.text.startswith("*")


def read_choice(word: Tok, choice: Tok, role: str, errors: Collector) -> tuple[str, Any, Choice | None] | None:
    """The field, its reference value and the :class:`Choice` of ``word`` + ``choice``.

    The value and the choice are None when an option was wrong, and the whole is None
    when not even the field is known; the mistakes are reported.
    """
    span = Span.cover(word.span, choice.span)
    star = choice.text.startswith("*")
    if word.text == "act" or word.text in LETTERS:
        field: ChoiceField = "act" if word.text == "act" else LETTERS[word.text]
        if star:
            hint = "multipliers follow the stage's channels: c40*{0.75,1,1.25}"
            what = ("multipliers need the channels they multiply" if field == "out_ch"
                    else f"'*' multiplies channels only, not the {_WHAT[field]}")
            errors.error("E602", what, choice.span, hint)
            return field, None, None
        return _set_choice(field, choice, span, errors)
    match = _BASED.match(word.text)
    if match is None:
        errors.error("E602", f"'{word.text}' cannot take a choice", word.span, "choices look like " + FORMS)
        return None
    field = LETTERS[match.group(1)]
    offsets = match.group(3) == "+"
    if not _relation_fits(field, offsets, star, word, choice, errors):
        return field, None, None
    base_span = Span(word.span.line, word.span.column + len(match.group(1)), word.span.line,
                     word.span.column + len(match.group(1)) + len(match.group(2)))
    base = float(match.group(2))
    checked_base = check_value(field, base if math.isfinite(base) else None, base_span, errors)
    if not math.isfinite(base):
        errors.error("E200", f"{field} is out of range: {word.text}", word.span)
    if checked_base is None:
        return field, None, None
    relation: Relation = "offset" if offsets else "scale"
    numbers = _numbers(choice, "an offset" if offsets else "a multiplier", errors)
    if numbers is None:
        return field, None, None
    options: list[ChoiceValue] = []
    spans: list[Span] = []
    ok = True
    for value, tok in numbers:
        option = _offset(checked_base, value, tok, errors) if offsets \
            else _multiplier(checked_base, value, tok, errors)
        if option is None:
            ok = False
            continue
        options.append(option)
        spans.append(tok.span)
    if not ok or not _distinct(field, list(zip(options, spans, strict=True)), choice, errors):
        return field, None, None
    node = Choice(span=span, field=field, relation=relation, options=tuple(options), base=checked_base,
                  option_spans=tuple(spans))
    return field, checked_base, node


def _relation_fits(field: ChoiceField, offsets: bool, star: bool, word: Tok, choice: Tok, errors: Collector) -> bool:
    """Offsets (``x2+{...}``) only for repeats, multipliers (``c40*{...}``) only for channels
    and never both; a mistake is reported."""
    if offsets and field != "repeats":
        errors.error("E602", f"only repeats take offsets ('+'), not the {_WHAT[field]}", word.span,
                     "x2+{-1,0,+1} is 1, 2 or 3 blocks; channels take multipliers: c40*{0.75,1,1.25}")
        return False
    if star and field != "out_ch":
        errors.error("E602", f"only channels take multipliers ('*'), not the {_WHAT[field]}", choice.span,
                     "c40*{0.75,1,1.25}; repeats take offsets: x2+{-1,0,+1}")
        return False
    if offsets and star:
        errors.error("E602", "offsets are written x2+{-1,0,+1}, without '*'", choice.span)
        return False
    return True


def _offset(base: Any, value: float, tok: Tok, errors: Collector) -> int | None:
    """An offset of the repeats ``base``: a whole number leaving 1 to MAX_REPEATS blocks; None when wrong."""
    if value != int(value):
        errors.error("E602", f"an offset is a whole number of blocks, got {tok.text}", tok.span)
        return None
    offset = int(value)
    blocks = base + offset
    if blocks < 1:
        errors.error("E604", f"x{base}{tok.text if tok.text[0] in '+-' else '+' + tok.text} "
                     f"leaves the stage with {blocks} blocks; a stage has at least 1",
                     tok.span, f"use offsets of at least {1 - base}")
        return None
    if blocks > MAX_REPEATS:
        errors.error("E215", f"repeats {blocks} is too large; at most {MAX_REPEATS:,}", tok.span)
        return None
    return offset


def _multiplier(base: Any, value: float, tok: Tok, errors: Collector) -> float | None:
    """A multiplier of the channels ``base``: above 0, leaving at most MAX_CHANNELS; None when wrong."""
    if value <= 0:
        errors.error("E602", f"a channel multiplier must be greater than 0, got {tok.text}", tok.span)
        return None
    if base * value > MAX_CHANNELS:
        errors.error("E215", f"channels {base} x {tok.text} is too large; at most {MAX_CHANNELS:,}", tok.span)
        return None
    return value


def read_kind_choice(kind: Tok, errors: Collector) -> tuple[Any, Choice | None]:
    """``stage {mbconv,fused_mbconv} ...``: the reference type and the choice (None when wrong)."""
    if kind.text.startswith("*"):
        errors.error("E602", "'*' multiplies channels only, not the block type", kind.span)
        return None, None
    return _set_choice("block", kind, kind.span, errors)[1:]


def read_bare_choice(choice: Tok, role: str, errors: Collector) -> tuple[str, Any, Choice | None] | None:
    """A choice with no field in front: only ``{skip,noskip}`` says what it chooses by itself."""
    words = [o.text for o in choice.choices if not o.is_number]
    if words and all(w in SKIP_WORDS for w in words) and len(words) == len(choice.choices) \
            and not choice.text.startswith("*"):
        return _set_choice("skip", choice, choice.span, errors)
    errors.error("E602", f"a choice without a field in this {role}", choice.span,
                 "write the field's letter before the braces: " + FORMS)
    return None


def _set_choice(field: ChoiceField, choice: Tok, span: Span, errors: Collector) -> tuple[str, Any, Choice | None]:
    options: list[tuple[Any, Span]] = []
    ok = True
    for tok in choice.choices:
        value = _option(field, tok, errors)
        if value is None:
            ok = False
        else:
            options.append((value, tok.span))
    if not ok or not _distinct(field, options, choice, errors):
        return field, None, None
    node = Choice(span=span, field=field, options=tuple(v for v, _ in options),
                  option_spans=tuple(s for _, s in options))
    return field, options[0][0], node


def _option(field: str, tok: Tok, errors: Collector) -> Any:
    """One option of a set choice, checked like the field's value; None when wrong."""
    if field == "act":
        if tok.is_number:
            errors.error("E200", f"expected an activation name, got '{tok.text}'", tok.span)
            return None
        return tok.text if check_act(tok, errors) else None
    if field == "block":
        if tok.text in BLOCK_TYPES:
            return tok.text
        errors.error("E101", f"unknown stage block '{tok.text}'", tok.span, did_you_mean(tok.text, BLOCK_TYPES))
        return None
    if field == "skip":
        return tok.text == "skip"
    if not tok.is_number:
        errors.error("E200", f"expected a number for {_WHAT[field]}, got '{tok.text}'", tok.span)
        return None
    value = float(tok.text)
    if not math.isfinite(value):
        errors.error("E200", f"{field} is out of range: {tok.text}", tok.span)
        return None
    return check_value(field, value, tok.span, errors)


def _numbers(choice: Tok, what: str, errors: Collector) -> list[tuple[float, Tok]] | None:
    found, ok = [], True
    for tok in choice.choices:
        value = float(tok.text) if tok.is_number else math.nan
        if not math.isfinite(value):
            got = f"got '{tok.text}'"
            errors.error("E200", f"expected a number for {what}, {got}", tok.span)
            ok = False
            continue
        found.append((value, tok))
    return found if ok else None


def _distinct(field: str, options: list[tuple[Any, Span]], choice: Tok, errors: Collector) -> bool:
    """At least two options, none listed twice (E603)."""
    seen: dict[Any, Span] = {}
    ok = True
    for value, span in options:
        key = (type(value) is bool, value)
        if key in seen:
            errors.error("E603", f"the option {_shown(value)} is listed twice", span,
                         f"first listed at {seen[key]}")
            ok = False
        else:
            seen[key] = span
    if ok and len(options) < 2:
        only = _shown(options[0][0]) if options else ""
        errors.error("E603", f"a choice of one option ({only}) chooses nothing", choice.span,
                     "write the value itself, or add options")
        ok = False
    return ok


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "skip" if value else "noskip"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
