"""A search space as the search sees it: its decisions, members as picks, and their text.

A member is a tuple of *picks*, one option index per decision
(:func:`effdsl.scaling.choices.decisions`). :class:`Space` samples members uniformly,
mutates one decision at a time (regularized evolution's mutation, Real et al. 2019),
names members by their architecture (two picks that give the same network, as when a
``conv`` option ignores the expansion, have one key) and writes a member as a plain,
formatted spec that compiles on its own.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from effdsl.api import Source, compile_spec, load_source
from effdsl.diagnostics import Diagnostic, EffdslError
from effdsl.language.analyze import analyze
from effdsl.language.format import format_spec
from effdsl.language.parser import parse
from effdsl.language.spec import Block, Network
from effdsl.scaling.choices import Decision, covering_picks, decisions, describe, member, size

Picks = tuple[int, ...]


@dataclass(frozen=True)
class Space:
    """A parsed search space (a plain network is a space of one member)."""

    net: Network
    decisions: tuple[Decision, ...]
    source: Source

    @classmethod
    def load(cls, spec: str | Path) -> Space:
        """Parse and check a space; errors carry the source."""
        source = load_source(spec)
        try:
            net = analyze(parse(source.text))
            return cls(net, decisions(net), source)
        except EffdslError as err:
            err.with_source(source.text, source.filename)
            raise

    @property
    def name(self) -> str:
        return self.net.name

    @property
    def size(self) -> int:
        return size(self.decisions)

    def reference(self) -> Picks:
        """The first option of every choice (relative choices: the option listed first)."""
        return tuple(0 for _ in self.decisions)

    def sample(self, rng: random.Random) -> Picks:
        """A member drawn uniformly: each decision's option independently."""
        return tuple(rng.randrange(len(d.values)) for d in self.decisions)

    def mutate(self, picks: Picks, rng: random.Random) -> Picks:
        """``picks`` with exactly one decision changed to another of its options."""
        if not self.decisions:
            raise ValueError("a space without choices has nothing to mutate")
        which = rng.randrange(len(self.decisions))
        options = len(self.decisions[which].values)
        new = (picks[which] + 1 + rng.randrange(options - 1)) % options  # any option but the current
        return picks[:which] + (new,) + picks[which + 1:]

    def values(self, picks: Picks) -> dict[str, Any]:
        """``{'stage2.kernel': 5, ...}``: the value each decision takes."""
        return {d.name: d.values[p] for d, p in zip(self.decisions, picks, strict=False)}

    def words(self, picks: Picks) -> dict[str, str]:
        """``{'stage2.kernel': 'k5', ...}``: each pick as the stage line writes it."""
        return {d.name: d.word(p) for d, p in zip(self.decisions, picks, strict=False)}

    def describe(self, picks: Picks) -> str:
        return describe(self.decisions, picks)

    def network(self, picks: Sequence[int], name: str | None = None, *, in_ch: int | None = None,
                resolution: int | None = None, classes: int | None = None) -> Network:
        """The member as a plain network, its input and classifier optionally replaced."""
        net = member(self.net, self.decisions, picks, name)
        update = {k: v for k, v in (("in_ch", in_ch), ("resolution", resolution), ("classes", classes))
                  if v is not None}
        return net.model_copy(update=update) if update else net

    def key(self, picks: Sequence[int]) -> str:
        """The member's architecture as a short string; equal keys are the same network."""
        net = self.network(picks)
        return "|".join(_stage_key(net, stage) for stage in net.stages)

    def text(self, picks: Sequence[int], name: str | None = None, comment: str | None = None,
             **inputs: int | None) -> str:
        """The member as a plain, formatted spec (``comment`` lines above the network)."""
        net = self.network(picks, name, **inputs)
        header = "".join(f"# {line}\n" if line else "#\n" for line in (comment or "").splitlines())
        return header + format_spec(net)


    def check_inputs(self, *, in_ch: int, resolution: int, classes: int) -> None:
        """E607 when some members cannot take these inputs: compile the member with the most stride."""
        picks = covering_picks(self.decisions)[-1]
        text = self.text(picks, in_ch=in_ch, classes=classes)
        try:
            compile_spec(text, resolution=resolution)
        except EffdslError as err:
            first = err.diagnostics[0]
            raise EffdslError(Diagnostic(
                "E607", f"a member of '{self.name}' does not compile for these inputs: {first.message}",
                None, first.help)) from None


def _stage_key(net: Network, stage: Block) -> str:
    se = stage.se if stage.se is not None else (net.defaults.se if stage.block != "conv" else 0.0)
    skip = stage.skip if stage.skip is not None else stage.block != "conv"
    expand = stage.expand if stage.block != "conv" else 1.0
    return (f"{stage.block},k{stage.kernel},s{stage.stride},e{expand:g},c{stage.out_ch},x{stage.repeats},"
            f"se{se:g},{stage.act or net.defaults.act},{'skip' if skip else 'noskip'}")


def require_choices(space: Space) -> None:
    """E606: a search needs a space with at least one choice."""
    if not space.decisions:
        raise EffdslError(Diagnostic(
            "E606", f"'{space.name}' has no choices, so there is nothing to search", space.net.span_of("name"),
            "write choices in its stage lines, like k{3,5} or x2+{-1,0,+1}; see docs/search.md",
        )).with_source(space.source.text, space.source.filename)
