"""What ``effdsl space`` prints: a space's size, its choices and the cost of its extremes.

The fewest and the most MACs and parameters are exact, from the analytic cost model's
dynamic programming over the stages (:meth:`effdsl.search.cost.CostModel.extremes`); no
network is built. Sampled members are plain specs (:func:`sample_members`).
"""

from __future__ import annotations

import io
import random
from dataclasses import dataclass

from rich.console import Console
from rich.table import Table

from effdsl.search.cost import CostModel, Extreme
from effdsl.search.space import Picks, Space

_ROWS = (("fewest MACs", "min_macs"), ("most MACs", "max_macs"), ("fewest params", "min_params"),
         ("most params", "max_params"))


@dataclass(frozen=True)
class SpaceSummary:
    space: Space
    model: CostModel
    extremes: dict[str, Extreme]


def summarize_space(space: Space, *, in_ch: int | None = None, resolution: int | None = None,
                    classes: int | None = None) -> SpaceSummary:
    model = CostModel(space, in_ch=in_ch, resolution=resolution, classes=classes)
    return SpaceSummary(space, model, model.extremes())


def choice_lines(space: Space) -> list[str]:
    """One line per stage with choices: ``stage 2: e{1,3,6} k{3,5} c{20,24,32} x{1,2,3} se{0,0.25}``.

    Relative choices show the values they give (multipliers rounded with the channel rule).
    """
    by_stage: dict[int, list[str]] = {}
    for d in space.decisions:
        options = ",".join(d.word(i)[len(d.letter):] for i in range(len(d.values)))
        by_stage.setdefault(d.stage, []).append(f"{d.letter.strip()}{{{options}}}")
    return [f"stage {stage + 1}: {' '.join(words)}" for stage, words in sorted(by_stage.items())]


def render_space(summary: SpaceSummary) -> str:
    space, model = summary.space, summary.model
    console = Console(record=True, width=100, force_terminal=False, color_system=None, file=io.StringIO())
    n = len(space.decisions)
    stages = len({d.stage for d in space.decisions})
    if n:
        console.print(f"{space.name}: a search space of {space.size:,} members ({n} choice{'s' if n != 1 else ''} "
                      f"over {stages} stage{'s' if stages != 1 else ''})")
    else:
        console.print(f"{space.name}: one network (no choices)")
    for line in choice_lines(space):
        console.print(f"  {line}")
    console.print(f"cost at resolution {model.resolution}, {model.in_ch} input channel"
                  f"{'s' if model.in_ch != 1 else ''}, {model.classes} classes (exact, without weights):")
    table = Table()
    for column in ("member", "params", "MACs"):
        table.add_column(column, justify="left" if column == "member" else "right")
    for label, key in _ROWS:
        cost = summary.extremes[key].cost
        table.add_row(label, f"{cost.params:,}", f"{cost.macs:,}")
    console.print(table)
    ends = Table()
    ends.add_column("stage")
    fewest, most = (space.words(summary.extremes[key].picks) for key in ("min_macs", "max_macs"))
    ends.add_column("fewest MACs")
    ends.add_column("most MACs")
    for stage in sorted({d.stage for d in space.decisions}):
        names = [d.name for d in space.decisions if d.stage == stage]
        ends.add_row(str(stage + 1), " ".join(fewest[k] for k in names), " ".join(most[k] for k in names))
    console.print(ends)
    return console.export_text()


def sample_members(space: Space, count: int, seed: int) -> list[Picks]:
    """``count`` distinct members drawn uniformly with ``seed`` (all of them when the space is smaller)."""
    rng = random.Random(seed)
    found: list[Picks] = []
    keys: set[str] = set()
    attempts = 0
    while len(found) < count and attempts < 100 * count + 1000:
        attempts += 1
        picks = space.sample(rng)
        key = space.key(picks)
        if key not in keys:
            keys.add(key)
            found.append(picks)
    return found
