"""The table of built-in models (``effdsl list``): each family's members by their reference
names, with the spec and preset they are, their resolution, parameters and MACs.

Every member is compiled (no weight is allocated); each spec is parsed once.
"""

from __future__ import annotations

from dataclasses import dataclass

from effdsl.api import analyze_source, compile_network, load_source
from effdsl.language.families import FAMILIES
from effdsl.scaling.members import Member


@dataclass(frozen=True, slots=True)
class ModelRow:
    family: str
    name: str
    spec: str
    preset: str | None
    resolution: int
    params: int
    macs: int
    source: str


def model_rows() -> list[ModelRow]:
    """One row per built-in model, family by family."""
    rows = []
    parsed = {}
    for family in FAMILIES:
        for model in family.models:
            if model.spec not in parsed:
                source = load_source(model.spec)
                parsed[model.spec] = (analyze_source(source), source)
            network, source = parsed[model.spec]
            summary = compile_network(network, Member(preset=model.preset), source=source).summary
            rows.append(ModelRow(family.name, model.name, model.spec, model.preset, summary.resolution,
                                 summary.params, summary.macs, model.source))
    return rows


_COLUMNS = ("family", "model", "spec", "preset", "res", "params", "MACs", "reference")


def render_models(rows: list[ModelRow]) -> str:
    """A plain text table, one model per line (numbers right-aligned)."""
    cells = [_COLUMNS] + [(r.family, r.name, r.spec, r.preset or "-", str(r.resolution), f"{r.params:,}",
                           f"{r.macs:,}", r.source) for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(_COLUMNS))]
    right = {"res", "params", "MACs"}
    lines = []
    for row in cells:
        parts = [cell.rjust(w) if name in right else cell.ljust(w) for name, cell, w in zip(_COLUMNS, row, widths,
                                                                                            strict=True)]
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines) + "\n"
