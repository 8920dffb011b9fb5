"""Search strategies: which member to try next.

- ``random``: every member drawn uniformly (a strong baseline for NAS, Li & Talwalkar 2019).
- ``evolution``: regularized (aging) evolution, Real et al., AAAI 2019: the first
  ``population`` trials are random; after that each child is a copy of the best of
  ``tournament`` members drawn from the population, with one choice mutated, and the
  population is the ``population`` youngest finished trials, so that every member
  ages out however good it was.

A strategy sees the finished trials in order and draws from the search's one random
generator, so the same seed and the same results give the same proposals.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from effdsl.diagnostics import Diagnostic, EffdslError
from effdsl.search.space import Picks, Space

StrategyKind = Literal["random", "evolution"]

# Proposals drawn in a row without a new member within the limit before a search
# concludes that the space has none left.
MAX_ATTEMPTS = 10_000


class Finished(Protocol):
    """What a strategy reads of a finished trial."""

    picks: Picks
    reward: float | None


@dataclass(frozen=True)
class RandomSearch:
    def propose(self, space: Space, rng: random.Random, history: Sequence[Finished]) -> Picks:
        return space.sample(rng)


@dataclass(frozen=True)
class Evolution:
    population: int = 8
    tournament: int = 3

    def propose(self, space: Space, rng: random.Random, history: Sequence[Finished]) -> Picks:
        alive = [t for t in history if t.reward is not None][-self.population:]
        if len(alive) < self.population:
            return space.sample(rng)
        contestants = rng.sample(alive, self.tournament)
        parent = max(contestants, key=_reward)  # the first of equals: deterministic
        return space.mutate(parent.picks, rng)


def make_strategy(kind: StrategyKind, population: int = 8, tournament: int = 3) -> RandomSearch | Evolution:
    if kind == "random":
        return RandomSearch()
    if population < 2 or not 1 <= tournament <= population:
        raise EffdslError(Diagnostic(
            "E607", f"evolution needs --population of at least 2 and a --tournament between 1 and it, "
                    f"got {population} and {tournament}", None, "the defaults are 8 and 3"))
    return Evolution(population, tournament)


def _reward(trial: Finished) -> float:
    """The reward of a trial that finished with one."""
    assert trial.reward is not None, "only trials with a reward take part"
    return trial.reward
