"""The diff of two members of a family (``effdsl diff``): stage by stage, and tensor by
tensor of the module's state_dict as the IR predicts it (torch not needed).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypedDict

from rich.table import Table

from effdsl.api import Compiled, Source, compile_network
from effdsl.diagnostics import Diagnostic, EffdslError
from effdsl.language.spec import Network
from effdsl.passes.summary import StageRow
from effdsl.reports.common import parsed, record
from effdsl.scaling.members import Member

ChoiceKind = Literal["phi", "preset"]
Choice = tuple[ChoiceKind, float | str]


def choices_in_order(order: list[str], phis: list[float], presets: list[str]) -> list[Choice]:
    """Pair the values of --phi and --preset with the order the flags were written in."""
    remaining: dict[str, tuple[ChoiceKind, Iterator[float | str]]] = {
        "--phi": ("phi", iter(phis)), "--preset": ("preset", iter(presets))}
    chosen: list[Choice] = []
    for flag in order:
        kind, values = remaining[flag]
        value = next(values, None)
        if value is not None:
            chosen.append((kind, value))
    for kind, values in remaining.values():  # values the order did not cover (a call from Python)
        chosen += [(kind, value) for value in values]
    return chosen


@dataclass(frozen=True, slots=True)
class Tensor:
    """A state_dict entry of the PyTorch module: name, shape, and whether it is a parameter."""

    name: str
    shape: tuple[int, ...]
    param: bool = True

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


def tensors(compiled: Compiled) -> list[Tensor]:
    """The module's state_dict names and shapes, read off the IR (torch not needed).

    Module path = operator name; conv: weight (out, in/groups, k, k) and a bias when the
    op has one; batch norm: weight, bias, running_mean, running_var (C,) and
    num_batches_tracked (); linear: weight (out, in) and bias.
    """
    found: list[Tensor] = []
    for op in compiled.graph.ops():
        if op.kind in ("conv", "dwconv"):
            found.append(Tensor(f"{op.name}.weight", (op.out_ch, op.in_ch // op.groups, op.kernel, op.kernel)))
            if op.bias:
                found.append(Tensor(f"{op.name}.bias", (op.out_ch,)))
        elif op.kind == "bn":
            c = (op.out_ch,)
            found += [Tensor(f"{op.name}.weight", c), Tensor(f"{op.name}.bias", c),
                      Tensor(f"{op.name}.running_mean", c, False), Tensor(f"{op.name}.running_var", c, False),
                      Tensor(f"{op.name}.num_batches_tracked", (), False)]
        elif op.kind == "linear":
            found.append(Tensor(f"{op.name}.weight", (op.out_ch, op.in_ch)))
            if op.bias:
                found.append(Tensor(f"{op.name}.bias", (op.out_ch,)))
    return found


def block_of(name: str) -> str:
    """The block (``stages.1.0``) or top-level module (``stem``, ``head``) of a tensor."""
    parts = name.split(".")
    return ".".join(parts[:3]) if parts[0] == "stages" else parts[0]


@dataclass(frozen=True, slots=True)
class StageDiff:
    name: str
    a: StageRow | None
    b: StageRow | None

    @property
    def changed(self) -> list[str]:
        if self.a is None or self.b is None:
            return ["only in " + ("B" if self.a is None else "A")]
        out = []
        for field in ("repeats", "out_ch", "block", "kernel", "stride", "expand"):
            if getattr(self.a, field) != getattr(self.b, field):
                out.append("channels" if field == "out_ch" else field)
        return out

    def to_json(self) -> dict[str, object]:
        def pair(field: str) -> list[object]:
            return [getattr(r, field) if r is not None else None for r in (self.a, self.b)]
        return {"name": self.name, "repeats": pair("repeats"), "channels": pair("out_ch"),
                "block": pair("block"), "kernel": pair("kernel"), "stride": pair("stride"),
                "expand": pair("expand"), "changed": self.changed}


@dataclass(frozen=True, slots=True)
class Side:
    label: str
    compiled: Compiled

    def to_json(self) -> dict[str, object]:
        s = self.compiled.summary
        return {"label": self.label, "name": s.name, "phi": s.phi, "preset": s.preset,
                "width_mult": s.width_mult, "depth_mult": s.depth_mult, "resolution": s.resolution,
                "blocks": s.num_blocks, "params": s.params, "macs": s.macs}


class Total(TypedDict):
    """One total of A and B (params, MACs, resolution, blocks), and B's over A's."""

    a: int
    b: int
    ratio: float | None  # None when A's is 0


@dataclass(frozen=True, slots=True)
class Diff:
    a: Side
    b: Side
    stages: tuple[StageDiff, ...]
    changed: tuple[tuple[str, tuple[int, ...], tuple[int, ...]], ...]  # name, shape in A, shape in B
    only_a: tuple[Tensor, ...]
    only_b: tuple[Tensor, ...]
    unchanged: tuple[Tensor, ...]   # same name and shape: transfers as is

    @property
    def transfer_params(self) -> int:
        """Parameters of B that can be copied from A unchanged."""
        return sum(t.numel for t in self.unchanged if t.param)

    def totals(self) -> dict[str, Total]:
        sa, sb = self.a.compiled.summary, self.b.compiled.summary
        return {key: {"a": x, "b": y, "ratio": y / x if x else None}
                for key, x, y in (("params", sa.params, sb.params), ("macs", sa.macs, sb.macs),
                                  ("resolution", sa.resolution, sb.resolution),
                                  ("blocks", sa.num_blocks, sb.num_blocks))}

    def to_json(self) -> dict[str, object]:
        return {
            "a": self.a.to_json(), "b": self.b.to_json(),
            "stages": [s.to_json() for s in self.stages],
            "tensors": {
                "unchanged": len(self.unchanged),
                "changed": [{"name": n, "a": list(x), "b": list(y)} for n, x, y in self.changed],
                "only_a": [{"name": t.name, "shape": list(t.shape)} for t in self.only_a],
                "only_b": [{"name": t.name, "shape": list(t.shape)} for t in self.only_b],
            },
            "transfer": {"tensors": len(self.unchanged), "tensors_b": len(self.unchanged) + len(self.changed)
                         + len(self.only_b), "params": self.transfer_params,
                         "params_b": self.b.compiled.summary.params},
            "totals": self.totals(),
        }


def diff(spec: str | Path, choices: list[Choice], against: str | Path | None = None) -> Diff:
    """Compare two members: A and B.

    ``choices`` pick the members ((kind, value) with kind ``phi`` or ``preset``): two
    choices are A and B; one choice is B against the baseline, or, with ``against``,
    the member of both specs; none (with ``against``) compares the two baselines.
    ``against`` names B's spec (A's is ``spec``).
    """
    if len(choices) > 2 or (not choices and against is None):
        given = ", ".join(f"--{k} {v:g}" if k == "phi" else f"--{k} {v}" for k, v in choices) or "nothing"
        raise EffdslError(Diagnostic(
            "E407", f"diff compares two members, got {given}", None,
            "give two of --phi/--preset (--phi 1 --phi 3, --preset b0 --phi 1), "
            "one (compared with the baseline), or --against OTHER.eff"))
    first: Choice | None
    second: Choice | None
    if len(choices) == 2:
        first, second = choices
    elif choices:
        first, second = (choices[0], choices[0]) if against is not None else (None, choices[0])
    else:
        first = second = None
    base = parsed(spec)
    a = _side(base, first)
    b = _side(parsed(against) if against is not None else base, second)
    return compare(a, b)


def _side(parsed: tuple[Source, Network], choice: Choice | None) -> Side:
    source, net = parsed
    if choice is None:
        member, which = Member(phi=0.0), "baseline"
    elif choice[0] == "phi":
        member, which = Member(phi=float(choice[1])), f"phi {float(choice[1]):g}"
    else:
        member, which = Member(preset=str(choice[1])), f"preset {choice[1]}"
    compiled = compile_network(net, member, source=source)
    return Side(f"{compiled.source.filename} ({which})", compiled)


def compare(a: Side, b: Side) -> Diff:
    rows_a = {r.name: r for r in a.compiled.summary.rows}
    rows_b = {r.name: r for r in b.compiled.summary.rows}
    n = max(len(side.compiled.graph.plan.stages) for side in (a, b))
    names = ["stem"] + [f"stage{i + 1}" for i in range(n)] + ["head"]
    stages = tuple(StageDiff(name, rows_a.get(name), rows_b.get(name)) for name in names)
    ta, tb = tensors(a.compiled), tensors(b.compiled)
    shapes_a = {t.name: t for t in ta}
    shapes_b = {t.name: t for t in tb}
    changed = tuple((t.name, shapes_a[t.name].shape, t.shape) for t in tb
                    if t.name in shapes_a and shapes_a[t.name].shape != t.shape)
    return Diff(a, b, stages, changed,
                only_a=tuple(t for t in ta if t.name not in shapes_b),
                only_b=tuple(t for t in tb if t.name not in shapes_a),
                unchanged=tuple(t for t in tb if t.name in shapes_a and shapes_a[t.name].shape == t.shape))


def _shape(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape)) if shape else "scalar"


def _pair(x: object, y: object, fmt: Callable[[object], str] = str) -> str:
    return fmt(x) if x == y else f"{fmt(x)} -> {fmt(y)}"


def render_diff(result: Diff) -> str:
    """The diff as plain text (what ``effdsl diff`` prints)."""
    table = Table(title=f"A: {result.a.label}\nB: {result.b.label}", title_justify="left")
    for column in ("stage", "block", "repeats", "channels", "changed"):
        table.add_column(column, justify="right" if column in ("repeats", "channels") else "left")
    for s in result.stages:
        row = s.a or s.b
        if row is None:  # in neither member: compare() lists only the stages of A or B
            continue
        if s.a is None or s.b is None:
            table.add_row(s.name, row.block, str(row.repeats), str(row.out_ch), s.changed[0])
            continue
        notes = [c if c in ("repeats", "channels") else f"{c} {_pair(getattr(s.a, c), getattr(s.b, c), _g)}"
                 for c in s.changed]
        table.add_row(s.name, s.a.block, _pair(s.a.repeats, s.b.repeats), _pair(s.a.out_ch, s.b.out_ch),
                      ", ".join(notes) or "-")
    lines = [""]
    n_b = len(result.unchanged) + len(result.changed) + len(result.only_b)
    pb = result.b.compiled.summary.params
    lines.append(f"tensors of B: {n_b}; {len(result.unchanged)} transfer from A unchanged "
                 f"({result.transfer_params:,} of {pb:,} params, {100 * result.transfer_params / pb:.1f}%), "
                 f"{len(result.changed)} change shape, {len(result.only_b)} only in B; "
                 f"{len(result.only_a)} only in A")
    if result.changed:
        lines += ["", "change shape (A -> B):"]
        lines += [f"  {name}: {_shape(x)} -> {_shape(y)}" for name, x, y in result.changed]
    for side, only in (("A", result.only_a), ("B", result.only_b)):
        if only:
            lines += ["", f"only in {side} (by block):"]
            for block, group in _by_block(only):
                count = sum(t.numel for t in group if t.param)
                lines.append(f"  {block}: {len(group)} tensors, {count:,} params")
    lines += ["", "totals (A -> B):"]
    for key, label in (("params", "params"), ("macs", "MACs"), ("resolution", "resolution"), ("blocks", "blocks")):
        t = result.totals()[key]
        lines.append(f"  {label:<11} {t['a']:,} -> {t['b']:,}  (x{t['ratio']:.3f})")
    return record(table, *lines)


def _by_block(found: Iterable[Tensor]) -> list[tuple[str, list[Tensor]]]:
    groups: dict[str, list[Tensor]] = {}
    for t in found:
        groups.setdefault(block_of(t.name), []).append(t)
    return list(groups.items())


def _g(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)
