"""The IR graph read back as a table of blocks: what the network classes are built from.

:func:`read_table` walks a compiled graph once and returns a :class:`NetworkTable`: the
stem and head convs, and one :class:`BlockRow` per run of identical blocks of a stage.
The built PyTorch module (:mod:`effdsl.backends.torch.builder`) and the ``.py`` export
(:mod:`effdsl.export.pysource`) both construct their network from this table, with the
same class (:mod:`effdsl.blocks.library`), so they agree on names and structure by
construction; the numbers come from the IR. Every row is checked against the operators
it was read from, and every block's operators against its definition lowered again (the
user's, or for a built-in kind the prelude's, ``grammars/prelude.eff``): a graph the table
cannot express is a bug (an internal error).

Folded batch norm (the inference IR): a conv with a bias and no batch norm after it reads
as a row whose ``bn`` is ``None``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from effdsl.blocks import REGISTRY, class_name, kind_of_parts, user
from effdsl.blocks.base import BlockArgs, Builder, ConvRow, mid_width
from effdsl.diagnostics import InternalError
from effdsl.ir.graph import CompiledGraph, Op, OpGraph
from effdsl.ir.plan import Plan, Preprocessing
from effdsl.language.prelude import prelude_block
from effdsl.language.spec import BlockDef

_PASS = "table"  # what an InternalError names as the failing stage

# A block's squeeze-excite: its width (0: none), or (width, inner act, gate) when its activation is not
# the block's or its gate not a sigmoid (MobileNetV3's relu and hardsigmoid)
Squeeze = int | tuple[int, str | None, str]
# (stage, kind, repeats, kernel, stride, in_ch, out_ch, mid, squeeze, act, bn, residual)
BlockTuple = tuple[int, str, int, int, int, int, int, int | None, Squeeze, str | None, tuple[float, float] | None,
                   bool]
# (out_ch, kernel, stride, act, bn)
ConvTuple = tuple[int, int, int, str | None, tuple[float, float] | None]


@dataclass(frozen=True, slots=True)
class BlockRow:
    """One block, as a row of the table (without its repeat count)."""

    stage: int
    kind: str
    kernel: int
    stride: int
    in_ch: int
    out_ch: int
    mid: int | None
    squeeze: Squeeze
    act: str | None
    bn: tuple[float, float] | None  # None: folded into the convs (inference)
    residual: bool


@dataclass(frozen=True, slots=True)
class NetworkTable:
    """Everything a network class needs: the stem, the blocks, the head."""

    name: str
    class_name: str
    member: str
    in_ch: int
    resolution: int
    classes: int
    stem: ConvRow
    rows: tuple[tuple[BlockRow, int], ...]  # (block, repeats)
    num_stages: int
    drop_path: float
    head: ConvRow | None
    head_in: int                # the channels the pooling sees
    hidden: tuple[int, str | None] | None  # a hidden linear layer after the pooling: (width, act)
    pool: str
    dropout: float
    padding: str                # 'symmetric' or 'same' (only strided convs differ)
    params: int
    inference: bool             # read from the inference IR (batch norm folded, eval only)
    preprocessing: Preprocessing

    user_blocks: tuple[BlockDef, ...] = ()  # the definitions of the user's block kinds used

    @property
    def kinds(self) -> list[str]:
        """The built-in block kinds used, in registry order."""
        used = {row.kind for row, _ in self.rows}
        return [name for name in REGISTRY if name in used]

    def block_tuples(self) -> list[BlockTuple]:
        """The rows as the network class takes them:
        (stage, kind, repeats, kernel, stride, in_ch, out_ch, mid, squeeze, act, bn, residual)."""
        return [(r.stage, r.kind, n, r.kernel, r.stride, r.in_ch, r.out_ch, r.mid, r.squeeze, r.act, r.bn,
                 r.residual) for r, n in self.rows]

    def stem_tuple(self) -> ConvTuple:
        """(out_ch, kernel, stride, act, bn); the input channels are the network's."""
        s = self.stem
        return (s.out_ch, s.kernel, s.stride, s.act, s.bn)

    def head_tuple(self) -> ConvTuple | None:
        """(out_ch, kernel, stride, act, bn) of the head conv; None when the head only pools."""
        h = self.head
        return None if h is None else (h.out_ch, h.kernel, h.stride, h.act, h.bn)


def _act(name: str | None) -> str | None:
    return None if name in (None, "none") else name


_CONV_SHAPES = (["conv", "bn"], ["conv", "bn", "act"], ["dwconv", "bn"], ["dwconv", "bn", "act"],
                ["conv"], ["conv", "act"], ["dwconv"], ["dwconv", "act"])


def _conv_bn(group: list[Op], where: str) -> ConvRow:
    """The conv, bn and optional act ops that ``lower`` writes for one conv_bn_act (bn folded: no bn op)."""
    kinds = [op.kind for op in group]
    if kinds not in _CONV_SHAPES:
        raise InternalError(_PASS, f"{where}: expected conv, bn[, act], got {kinds}")
    conv = group[0]
    folded = len(group) == 1 or group[1].kind != "bn"
    if conv.kind == "dwconv" and not conv.groups == conv.in_ch == conv.out_ch:
        raise InternalError(_PASS, f"{conv.name}: a depthwise conv must have groups = channels")
    if conv.kind == "conv" and conv.groups != 1:
        raise InternalError(_PASS, f"{conv.name}: expected a dense conv")
    if conv.bias != folded:
        raise InternalError(_PASS, f"{conv.name}: a conv has a bias exactly when its batch norm is folded into it")
    act = _act(group[-1].act) if group[-1].kind == "act" else None
    bn = None if folded else (group[1].eps, group[1].momentum)
    return ConvRow(conv.in_ch, conv.out_ch, conv.kernel, conv.stride, act, bn,
                   conv.padding == "same" and conv.stride > 1)


def _by_part(block_ops: list[Op]) -> dict[str, list[Op]]:
    parts: dict[str, list[Op]] = {}
    for op in block_ops:
        parts.setdefault(op.part, []).append(op)
    return parts


def _block(block_ops: list[Op], same: bool) -> tuple[BlockRow, float]:
    """A block's table row and its stochastic-depth rate, checked against the ops."""
    first = block_ops[0]
    parts = _by_part(block_ops)
    kind = kind_of_parts(set(parts))
    if kind is None:
        raise InternalError(_PASS, f"block {first.block}: cannot tell its kind from parts {sorted(parts)}")
    if not set(parts) <= kind.parts:
        raise InternalError(_PASS, f"block {first.block}: unexpected parts {sorted(set(parts) - kind.parts)}")
    convs = {part: _conv_bn(ops, f"block {first.block} {part}")
             for part, ops in parts.items() if part not in ("se", "residual")}
    main = convs[kind.main_part]
    in_ch = convs.get("expand", main).in_ch
    out_ch = convs.get("project", main).out_ch
    mid = kind.mid(convs, in_ch)
    squeeze: Squeeze = 0
    if "se" in parts:
        se = parts["se"]
        if [op.kind for op in se] != ["pool", "conv", "act", "conv", "gate", "mul"]:
            raise InternalError(_PASS, f"block {first.block}: unexpected squeeze-excite {[op.kind for op in se]}")
        squeeze = se[1].out_ch
        if se[0].pool != "avg" or se[4].act not in ("sigmoid", "hardsigmoid"):
            raise InternalError(_PASS, f"block {first.block}: unexpected squeeze-excite pooling or gate")
        if _act(se[2].act) != main.act or se[4].act != "sigmoid":
            squeeze = (squeeze, _act(se[2].act), str(se[4].act))
    rate = 0.0
    residual = "residual" in parts
    if residual:
        kinds = [op.kind for op in parts["residual"]]
        if kinds not in (["drop_path", "add"], ["add"]):
            raise InternalError(_PASS, f"block {first.block}: unexpected residual ops {kinds}")
        rate = parts["residual"][0].rate if kinds[0] == "drop_path" else 0.0
    bns = {conv.bn for conv in convs.values()}
    acts = {conv.act for part, conv in convs.items() if part != "project"}
    if len(bns) != 1 or len(acts) != 1 or ("project" in convs and convs["project"].act is not None):
        raise InternalError(_PASS, f"block {first.block}: its convs differ in batch norm or activation")
    if any(conv.same != (same and conv.stride > 1) for conv in convs.values()):
        raise InternalError(_PASS, f"block {first.block}: padding differs from the network's")
    row = BlockRow(first.stage, kind.name, main.kernel, main.stride, in_ch, out_ch, mid, squeeze, main.act,
                   bns.pop(), residual)
    return row, rate


@dataclass(slots=True)
class _Parts:
    """A graph's ops sorted by the part of the network they belong to."""

    image: Op | None = None
    classifier: Op | None = None
    stem: list[Op] = field(default_factory=list)
    head: list[Op] = field(default_factory=list)
    hidden: list[Op] = field(default_factory=list)
    blocks: dict[int, list[Op]] = field(default_factory=dict)
    same: bool = False  # a strided conv pads as TensorFlow's 'same'
    params: int = 0


def _parts(graph: CompiledGraph) -> _Parts:
    """One walk over the ops: each to its part, with the padding mode and the parameter count."""
    parts = _Parts()
    for op in graph.ops():
        parts.params += graph.costs[op.name].params
        if op.kind in ("conv", "dwconv") and op.padding == "same" and op.stride > 1:
            parts.same = True
        if op.kind == "input":
            parts.image = op
        elif op.part == "stem":
            parts.stem.append(op)
        elif op.part == "head":
            parts.head.append(op)
        elif op.part == "classifier":
            parts.classifier = op
        elif op.part == "hidden":
            parts.hidden.append(op)
        else:
            parts.blocks.setdefault(op.block, []).append(op)
    return parts


def _pool_and_dropout(head: list[Op]) -> tuple[Op, float]:
    """The global pooling op and the dropout rate at the end of the head, taken off ``head``."""
    dropout = 0.0
    if head[-1].kind == "dropout":
        dropout = head.pop().rate
    pool = head.pop()
    if pool.kind != "pool" or not pool.flatten:
        raise InternalError(_PASS, "expected global pooling (and dropout) before the classifier")
    return pool, dropout


def _block_args(block_ops: list[Op], plan: Plan, rate: float) -> BlockArgs:
    """The arguments a block was lowered with, from its stage (or the stage's ``then`` group it is in)."""
    first = block_ops[0]
    stage = plan.stages[first.stage]
    start = sum(s.repeats for s in plan.stages[: first.stage])
    repeat, setting = first.block - start, stage
    if stage.parts:
        seen = 0
        for group in stage.groups():
            setting = group
            if repeat < seen + group.repeats:
                break
            seen += group.repeats
    return BlockArgs(stage=setting, prefix=".".join(first.name.split(".")[:3]),  # stages.1.0
                     index=first.block, in_ch=first.in_ch, stride=stage.stride if repeat == 0 else 1,
                     drop_path=rate, divisor=plan.divisor, mid=mid_width(plan, setting, repeat == 0))


def _check_lowered(block_ops: list[Op], plan: Plan, definition: BlockDef, args: BlockArgs) -> None:
    """The block's operators are its definition's (a user's, or the prelude's for a built-in
    kind) lowered again (batch norm and stochastic depth aside in the inference IR)."""
    scratch = OpGraph(plan)
    builder = Builder(scratch, plan.padding, plan.bn)
    builder.op("input", "x", (), args.where("input"), in_ch=args.in_ch, out_ch=args.in_ch)
    user.lower(definition, builder, "x", args)
    expected = [_signature(op, plan.inference) for op in list(scratch.ops())[1:]]
    found = [_signature(op, plan.inference) for op in block_ops]
    if [s for s in expected if s is not None] != [s for s in found if s is not None]:
        raise InternalError(_PASS, f"block {block_ops[0].block}: its operators differ from block "
                                   f"'{definition.name}'")


def _user_block(block_ops: list[Op], plan: Plan, definition: BlockDef) -> tuple[BlockRow, float]:
    """A row of a user's block, from its stage; checked by lowering the row again and comparing
    the operators (batch norm and stochastic depth aside in the inference IR)."""
    first = block_ops[0]
    parts = _by_part(block_ops)
    rate = parts["residual"][0].rate if [op.kind for op in parts.get("residual", [])] == ["drop_path", "add"] else 0.0
    args = _block_args(block_ops, plan, rate)
    _check_lowered(block_ops, plan, definition, args)
    stage = args.stage
    settings = stage.bn.over(plan.bn)
    assert settings.eps is not None and settings.momentum is not None  # the defaults always set both
    bn = None if plan.inference else (settings.eps, settings.momentum)
    squeeze = parts["se"][1].out_ch if "se" in parts else 0
    row = BlockRow(first.stage, definition.name, stage.kernel, args.stride, args.in_ch, stage.out_ch,
                   args.mid, squeeze, stage.act, bn, "residual" in parts)
    return row, rate


def _signature(op: Op, inference: bool) -> tuple[object, ...] | None:
    """What lowering decides of an op (None: an op the inference passes remove)."""
    if inference and op.kind in ("bn", "drop_path"):
        return None
    return (op.name, op.kind, op.in_ch, op.out_ch, op.kernel, op.stride, op.groups, op.act, op.eps if op.kind == "ln"
            else 0.0, op.plugin, op.options)


def _hidden(ops: list[Op]) -> tuple[int, str | None] | None:
    """The hidden linear layer (and its activation) after the pooling, as (width, act)."""
    if not ops:
        return None
    kinds = [op.kind for op in ops]
    if kinds not in (["linear"], ["linear", "act"]) or not ops[0].bias:
        raise InternalError(_PASS, f"unexpected hidden layer {kinds}")
    return ops[0].out_ch, _act(ops[-1].act) if len(ops) == 2 else None


def _block_rows(blocks: dict[int, list[Op]], same: bool, plan: Plan) -> list[tuple[BlockRow, int]]:
    """The blocks in order, each run of identical blocks as one row with its repeat count."""
    rows: list[tuple[BlockRow, int]] = []
    num_blocks = len(blocks)
    drop_path = plan.drop_path
    for index in range(num_blocks):
        if index not in blocks:
            raise InternalError(_PASS, f"block {index} is missing")
        definition = plan.block_def(plan.stages[blocks[index][0].stage].block)
        if definition is not None:
            row, rate = _user_block(blocks[index], plan, definition)
        else:
            row, rate = _block(blocks[index], same)
            # the prelude is the single source of a built-in block's operators
            _check_lowered(blocks[index], plan, prelude_block(row.kind), _block_args(blocks[index], plan, rate))
        if row.residual and rate != drop_path * index / num_blocks:
            raise InternalError(_PASS, f"block {index}: drop-path rate {rate} is not rate * i / N")
        if rows and rows[-1][0] == row:
            rows[-1] = (row, rows[-1][1] + 1)
        else:
            rows.append((row, 1))
    return rows


def read_table(graph: CompiledGraph) -> NetworkTable:
    """The table of ``graph``'s network, every row checked against the operators."""
    plan = graph.plan
    parts = _parts(graph)
    image, classifier, stem, head, same = parts.image, parts.classifier, parts.stem, parts.head, parts.same
    if image is None or classifier is None or not stem or not head:
        raise InternalError(_PASS, "the graph lacks an input, stem, head or classifier")
    pool, dropout = _pool_and_dropout(head)
    stem_conv = _conv_bn(stem, "stem")
    head_conv = _conv_bn(head, "head") if head else None
    for conv in (stem_conv, head_conv):
        if conv is not None and conv.same != (same and conv.stride > 1):
            raise InternalError(_PASS, "stem or head padding differs from the network's")

    hidden = _hidden(parts.hidden)
    rows = _block_rows(parts.blocks, same, plan)
    stages = [row.stage for row, _ in rows]
    if stages != sorted(stages) or set(stages) != set(range(len(plan.stages))):
        raise InternalError(_PASS, "blocks are not grouped by stage")

    return NetworkTable(
        name=plan.name, class_name=class_name(plan.name), member=plan.member, in_ch=image.out_ch,
        resolution=plan.resolution, classes=classifier.out_ch, stem=stem_conv,
        rows=tuple(rows), num_stages=len(plan.stages), drop_path=plan.drop_path,
        head=head_conv, head_in=pool.in_ch, hidden=hidden, pool=pool.pool or "avg", dropout=dropout,
        padding="same" if same else "symmetric", params=parts.params, inference=plan.inference,
        preprocessing=plan.preprocessing, user_blocks=plan.blocks,
    )


def _per_channel(values: tuple[float, ...], channels: int) -> tuple[float, ...]:
    """Statistics for ``channels`` input channels: as given, or their average for each channel
    when the count differs (ImageNet's RGB statistics for a one-channel network)."""
    if len(values) == channels:
        return values
    return (round(sum(values) / len(values), 6),) * channels


def pretrained_cfg(table: NetworkTable) -> dict[str, Any]:
    """timm's ``pretrained_cfg`` of a network: input size and preprocessing (from the spec's
    ``preprocess`` and the preset), for ``timm.data.resolve_data_config(model=...)``."""
    res, pre = table.resolution, table.preprocessing
    reduction = table.stem.stride
    for row, repeats in table.rows:
        reduction *= row.stride ** repeats
    cfg: dict[str, Any] = {
        "architecture": table.name,
        "member": table.member,
        "num_classes": table.classes,
        "input_size": (table.in_ch, res, res),
        "pool_size": (max(1, -(-res // reduction)),) * 2,
        "crop_pct": pre.crop,
        "crop_mode": "center",
        "interpolation": pre.interpolation,
        "mean": _per_channel(pre.mean, table.in_ch),
        "std": _per_channel(pre.std, table.in_ch),
        "first_conv": "stem.conv",
        "classifier": "classifier",
    }
    if pre.test_resolution is not None:
        cfg["test_input_size"] = (table.in_ch, pre.test_resolution, pre.test_resolution)
        cfg["test_crop_pct"] = pre.crop
    return cfg
