"""The members of a search space: what its choices name, and the plain spec of one member.

A spec whose stages write choices (``k{3,5}``, ``x2+{-1,0,+1}``, ``c40*{0.75,1,1.25}``,
see :mod:`effdsl.language.choices`) names every network that picks one option of each
choice. :func:`decisions` lists the choices in source order with the value each option
gives the member: a set's option as written, an offset added to the base repeats, a
multiplier applied to the base channels with the spec's channel rule
(:func:`~effdsl.scaling.rounding.round_channels`, the rule of width scaling, so that
``c40*{0.75,1,1.25}`` is 32, 40 or 48 channels with divisor 8). :func:`member` makes the
plain :class:`~effdsl.language.spec.Network` of one pick per decision.

A member keeps the spec's spans, so that an error found in it points at the space's text.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from effdsl.diagnostics import Diagnostic, EffdslError, Span
from effdsl.language.choices import as_number, base_of
from effdsl.language.spec import Choice, Network
from effdsl.scaling.rounding import head_from_last, round_channels

_LETTER = {"kernel": "k", "stride": "s", "expand": "e", "out_ch": "c", "repeats": "x", "se": "se"}


@dataclass(frozen=True, slots=True)
class Decision:
    """One choice of a space: stage ``stage`` (0-based) takes one of ``values`` for ``field``."""

    stage: int
    field: str
    values: tuple[Any, ...]
    span: Span
    option_spans: tuple[Span, ...]

    @property
    def name(self) -> str:
        """``stage3.kernel``: stable across runs, used in records of a search."""
        return f"stage{self.stage + 1}.{self.field}"

    @property
    def letter(self) -> str:
        """What :meth:`word` puts before the value: ``k``, ``se``, ``act `` (nothing for a type or skip)."""
        return _LETTER.get(self.field, "act " if self.field == "act" else "")

    def word(self, pick: int) -> str:
        """The pick as a stage line writes it: ``k5``, ``e6``, ``c48``, ``x3``, ``act relu``, ``noskip``."""
        value = self.values[pick]
        if self.field in _LETTER:
            shown = int(value) if isinstance(value, float) and value.is_integer() else value
            return f"{_LETTER[self.field]}{shown}"
        if self.field == "act":
            return f"act {value}"
        if self.field == "skip":
            return "skip" if value else "noskip"
        return str(value)


def decisions(net: Network) -> tuple[Decision, ...]:
    """The decisions of ``net`` in source order; empty for a plain network.

    Raises E603 when the channel rule makes two multipliers of one choice the same width.
    """
    found = []
    problems = []
    for index, stage in enumerate(net.stages):
        for choice in stage.choices:
            values = _values(net, choice)
            for i, value in enumerate(values):
                first = values.index(value)
                if first < i:
                    problems.append(Diagnostic(
                        "E603", f"the multipliers {_num(as_number(choice.options[first]))} and "
                                f"{_num(as_number(choice.options[i]))} "
                                f"both give c{value} with the channel rule (divisor {net.scaling.divisor})",
                        choice.option_spans[i], "drop one of them, or use multipliers further apart"))
            found.append(Decision(index, choice.field, tuple(values), choice.span, choice.option_spans))
    if problems:
        raise EffdslError(problems)
    return tuple(found)


def _values(net: Network, choice: Choice) -> list[Any]:
    if choice.relation == "offset":
        return [base_of(choice) + as_number(offset) for offset in choice.options]
    if choice.relation == "scale":
        s = net.scaling
        return [round_channels(base_of(choice), as_number(m), s.divisor, s.min_ch, s.guard) for m in choice.options]
    return list(choice.options)


def size(found: Sequence[Decision]) -> int:
    """How many pick combinations the decisions name (1 for a plain network)."""
    return math.prod(len(d.values) for d in found)


def member(net: Network, found: Sequence[Decision], picks: Sequence[int], name: str | None = None) -> Network:
    """The plain network that takes option ``picks[i]`` of decision ``found[i]``.

    A stage that becomes a ``conv`` drops its expansion (with its fixed input width) and
    squeeze-excite (they belong to the inverted-residual blocks); with ``head_width last N`` the head follows the
    member's last stage.
    """
    if len(picks) != len(found):
        raise ValueError(f"{len(picks)} picks for {len(found)} decisions")
    updates: dict[int, dict[str, Any]] = {}
    for decision, pick in zip(found, picks, strict=True):
        updates.setdefault(decision.stage, {})[decision.field] = decision.values[pick]
    stages = list(net.stages)
    for index, stage in enumerate(stages):
        update = updates.get(index, {})
        if not update and not stage.choices:
            continue
        update["choices"] = ()
        if update.get("block", stage.block) == "conv":
            update.update(expand=1.0, expand_from=None, se=None)
        stages[index] = stage.model_copy(update=update)
    head = net.head
    if head.conv is not None and net.scaling.head_from_last is not None:
        out_ch = head_from_last(stages[-1].out_ch, net.scaling.head_from_last)
        head = head.model_copy(update={"conv": head.conv.model_copy(update={"out_ch": out_ch})})
    return net.model_copy(update={"stages": tuple(stages), "head": head, "name": name or net.name})


def covering_picks(found: Sequence[Decision]) -> list[tuple[int, ...]]:
    """A few members that use every option at least once, and the one with the most stride.

    Member j takes option j of every decision (the last where a decision has fewer), so
    ``effdsl check`` compiles each option somewhere; the most-stride member takes every
    stride choice's largest value, the smallest feature maps a resolution must allow.
    """
    widest = max((len(d.values) for d in found), default=1)
    picks = [tuple(min(j, len(d.values) - 1) for d in found) for j in range(widest)]
    strided = tuple(d.values.index(max(d.values)) if d.field == "stride" else 0 for d in found)
    if strided not in picks:
        picks.append(strided)
    return picks


def describe(found: Sequence[Decision], picks: Sequence[int]) -> str:
    """The picks as stage words: ``stage 2: k5 e6; stage 3: x3``."""
    by_stage: dict[int, list[str]] = {}
    for decision, pick in zip(found, picks, strict=False):
        by_stage.setdefault(decision.stage, []).append(decision.word(pick))
    return "; ".join(f"stage {stage + 1}: {' '.join(words)}" for stage, words in sorted(by_stage.items()))


def _num(value: float) -> str:
    return f"{value:g}"
