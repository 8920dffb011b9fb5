"""The stage table and totals of a compiled network, read off the IR.

Costs are per image at the network's resolution. ``FLOPs = 2 x MACs``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from effdsl.ir.graph import CompiledGraph


@dataclass(frozen=True, slots=True)
class StageRow:
    name: str          # stem, stage1..stageN, head
    block: str
    kernel: int
    stride: int
    expand: float
    in_ch: int
    out_ch: int
    repeats: int
    out_res: int       # output feature-map side
    params: int
    macs: int
    groups: tuple[tuple[int, float, int], ...] = ()  # (kernel, expand, repeats) of each 'then' group, if any


@dataclass(frozen=True, slots=True)
class Summary:
    name: str
    phi: float | None
    preset: str | None
    width_mult: float
    depth_mult: float
    resolution: int
    num_classes: int
    num_blocks: int
    params: int
    macs: int
    rows: tuple[StageRow, ...]

    @property
    def flops(self) -> int:
        return 2 * self.macs

    def to_json(self) -> dict[str, object]:
        """Machine-readable form (``effdsl compile --emit json``)."""
        stages = [
            {k: v for k, v in asdict(row).items()}
            for row in self.rows
            if row.name.startswith("stage")
        ]
        for entry in stages:
            entry["expand"] = _plain_number(entry["expand"])
            if entry["groups"]:
                entry["groups"] = [{"kernel": k, "expand": _plain_number(e), "repeats": r}
                                   for k, e, r in entry["groups"]]
            else:
                del entry["groups"]  # a stage of one kind of block
        return {
            "name": self.name,
            "phi": self.phi,
            "preset": self.preset,
            "width_mult": self.width_mult,
            "depth_mult": self.depth_mult,
            "resolution": self.resolution,
            "num_classes": self.num_classes,
            "num_blocks": self.num_blocks,
            "params": self.params,
            "macs": self.macs,
            "flops": self.flops,
            "stem": _row_json(self.rows[0]),
            "stages": stages,
            "head": _row_json(self.rows[-1]),
        }


def _plain_number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


def _row_json(row: StageRow) -> dict[str, int]:
    return {"kernel": row.kernel, "stride": row.stride, "in_ch": row.in_ch, "out_ch": row.out_ch,
            "out_res": row.out_res, "params": row.params, "macs": row.macs}


def summarize(graph: CompiledGraph) -> Summary:
    """Per-stage totals and the network's totals; needs the shapes and cost passes."""
    plan = graph.plan
    n = len(plan.stages)
    params = [0] * (n + 2)
    macs = [0] * (n + 2)
    out_res = [0] * (n + 2)
    for node in graph.nodes():
        slot = node.op.stage + 1  # stem -> 0, stages -> 1..n, head -> n + 1
        params[slot] += node.params
        macs[slot] += node.macs
        if len(node.out_shape) == 3:
            out_res[slot] = node.out_shape[1]
    rows = [StageRow("stem", "conv", plan.stem.kernel, plan.stem.stride, 1, plan.in_ch, plan.stem.out_ch, 1,
                     out_res[0], params[0], macs[0])]
    for s in plan.stages:
        groups = tuple((g.kernel, g.expand, g.repeats) for g in s.groups()) if s.parts else ()
        rows.append(StageRow(f"stage{s.index + 1}", s.block, s.kernel, s.stride, s.expand, s.in_ch, s.out_ch,
                             s.repeats, out_res[s.index + 1], params[s.index + 1], macs[s.index + 1], groups))
    last = plan.stages[-1].out_ch
    head = plan.head
    rows.append(StageRow("head", "conv" if head else "pool", head.kernel if head else 1, head.stride if head else 1,
                         1, last, head.out_ch if head else last, 1, out_res[n + 1] or 1, params[n + 1], macs[n + 1]))
    return Summary(
        name=plan.name, phi=plan.phi, preset=plan.preset, width_mult=plan.width_mult, depth_mult=plan.depth_mult,
        resolution=plan.resolution, num_classes=plan.classes, num_blocks=plan.num_blocks,
        params=sum(params), macs=sum(macs), rows=tuple(rows),
    )
