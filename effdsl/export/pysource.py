"""A compiled network as standalone, readable PyTorch source (``effdsl compile --emit py``).

:func:`python_source` writes a ``.py`` file that needs only torch: a small class per
block kind the network uses and a network class whose ``__init__`` loops over a table of
blocks. The table is read off the IR graph (one row per run of identical blocks of a
stage), so a deeper member of a family has the same rows with larger repeat counts, not
more code. Its parameter and buffer names, and their order, are those of
:func:`effdsl.backends.torch.builder.build_module`'s module: the built module's ``state_dict``
loads into it with ``strict=True`` and both compute the same outputs.

This module needs no torch: each block kind's class is text kept with its definition in
:mod:`effdsl.blocks`, and ``StochasticDepth``, ``Conv2dSame`` and ``init_weights`` are
copied from the source of :mod:`effdsl.backends.torch.layers`, which the built modules
use, so ``--emit py`` works where torch is not installed.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

from effdsl.blocks import REGISTRY, ConvRow, class_name, kind_of_parts
from effdsl.blocks.base import CONV_BN_ACT_CLASS, SQUEEZE_EXCITE_CLASS
from effdsl.diagnostics import InternalError
from effdsl.ir.graph import CompiledGraph, Op
from effdsl.ir.plan import Plan
from effdsl.language.spec import ACTIVATIONS

_PASS = "export"  # what an InternalError names as the failing stage


# ------------------------------------------------------------------ reading the IR

@dataclass(frozen=True)
class _Block:
    """One block, as a row of the generated table (without its repeat count)."""

    stage: int
    kind: str
    kernel: int
    stride: int
    in_ch: int
    out_ch: int
    mid: int | None
    squeeze: int
    act: str | None
    bn: tuple[float, float]
    residual: bool


@dataclass(frozen=True)
class _Network:
    name: str
    class_name: str
    in_ch: int
    resolution: int
    classes: int
    stem: ConvRow
    rows: tuple[tuple[_Block, int], ...]  # (block, repeats)
    num_stages: int
    drop_path: float
    head: ConvRow | None
    head_in: int
    pool: str
    dropout: float
    same: bool
    params: int | None
    member: str


def _act(name: str | None) -> str | None:
    return None if name in (None, "none") else name


def _conv_bn(group: list[Op], where: str) -> ConvRow:
    """The conv, bn and optional act ops that ``lower`` writes for one conv_bn_act."""
    kinds = [op.kind for op in group]
    if kinds not in (["conv", "bn"], ["conv", "bn", "act"], ["dwconv", "bn"], ["dwconv", "bn", "act"]):
        raise InternalError(_PASS, f"{where}: expected conv, bn[, act], got {kinds}")
    conv, bn = group[0], group[1]
    if conv.kind == "dwconv" and not conv.groups == conv.in_ch == conv.out_ch:
        raise InternalError(_PASS, f"{conv.name}: a depthwise conv must have groups = channels")
    if conv.kind == "conv" and (conv.groups != 1 or conv.bias):
        raise InternalError(_PASS, f"{conv.name}: expected a dense conv without bias")
    act = _act(group[2].act) if len(group) == 3 else None
    return ConvRow(conv.in_ch, conv.out_ch, conv.kernel, conv.stride, act, (bn.eps, bn.momentum),
                   conv.padding == "same" and conv.stride > 1)


def _by_part(block_ops: list[Op]) -> dict[str, list[Op]]:
    parts: dict[str, list[Op]] = {}
    for op in block_ops:
        parts.setdefault(op.part, []).append(op)
    return parts


def _block(block_ops: list[Op], same: bool) -> tuple[_Block, float]:
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
    squeeze = 0
    if "se" in parts:
        se = parts["se"]
        if [op.kind for op in se] != ["pool", "conv", "act", "conv", "gate", "mul"]:
            raise InternalError(_PASS, f"block {first.block}: unexpected squeeze-excite {[op.kind for op in se]}")
        squeeze = se[1].out_ch
        if _act(se[2].act) != main.act or se[0].pool != "avg" or se[4].act != "sigmoid":
            raise InternalError(_PASS, f"block {first.block}: squeeze-excite differs from its block")
    rate = 0.0
    residual = "residual" in parts
    if residual:
        if [op.kind for op in parts["residual"]] != ["drop_path", "add"]:
            raise InternalError(_PASS, f"block {first.block}: unexpected residual ops")
        rate = parts["residual"][0].rate
    bns = {conv.bn for conv in convs.values()}
    acts = {conv.act for part, conv in convs.items() if part != "project"}
    if len(bns) != 1 or len(acts) != 1 or ("project" in convs and convs["project"].act is not None):
        raise InternalError(_PASS, f"block {first.block}: its convs differ in batch norm or activation")
    if any(conv.same != (same and conv.stride > 1) for conv in convs.values()):
        raise InternalError(_PASS, f"block {first.block}: padding differs from the network's")
    row = _Block(first.stage, kind.name, main.kernel, main.stride, in_ch, out_ch, mid, squeeze, main.act,
                 bns.pop(), residual)
    return row, rate


def _read(graph: CompiledGraph) -> _Network:
    plan = graph.plan
    stem: list[Op] = []
    head: list[Op] = []
    blocks: dict[int, list[Op]] = {}
    classifier = None
    image = None
    for op in graph.ops():
        if op.kind == "input":
            image = op
        elif op.part == "stem":
            stem.append(op)
        elif op.part == "head":
            head.append(op)
        elif op.part == "classifier":
            classifier = op
        else:
            blocks.setdefault(op.block, []).append(op)
    if image is None or classifier is None or not stem or not head:
        raise InternalError(_PASS, "the graph lacks an input, stem, head or classifier")
    same = any(op.padding == "same" and op.stride > 1 for op in graph.ops() if op.kind in ("conv", "dwconv"))
    stem_conv = _conv_bn(stem, "stem")
    head_conv = _conv_bn(head[:-2], "head") if len(head) > 2 else None
    for conv in (stem_conv, head_conv):
        if conv is not None and conv.same != (same and conv.stride > 1):
            raise InternalError(_PASS, "stem or head padding differs from the network's")
    pool, dropout = head[-2:]
    if pool.kind != "pool" or not pool.flatten or dropout.kind != "dropout":
        raise InternalError(_PASS, "expected global pooling and dropout before the classifier")

    rows = _rows(blocks, plan, same)
    return _Network(
        name=plan.name, class_name=class_name(plan.name), in_ch=image.out_ch, resolution=plan.resolution,
        classes=classifier.out_ch, stem=stem_conv, rows=tuple(rows),
        num_stages=len(plan.stages), drop_path=plan.drop_path, head=head_conv, head_in=pool.in_ch,
        pool=pool.pool or "avg", dropout=dropout.rate, same=same,
        params=sum(node.params for node in graph.nodes()), member=plan.member,
    )


def _rows(blocks: dict[int, list[Op]], plan: Plan, same: bool) -> list[tuple[_Block, int]]:
    """The table's rows: each run of identical blocks once, with its length; checked by stage."""
    rows: list[tuple[_Block, int]] = []
    num_blocks = len(blocks)
    for index in range(num_blocks):
        if index not in blocks:
            raise InternalError(_PASS, f"block {index} is missing")
        row, rate = _block(blocks[index], same)
        if row.residual and rate != plan.drop_path * index / num_blocks:
            raise InternalError(_PASS, f"block {index}: drop-path rate {rate} is not rate * i / N")
        if rows and rows[-1][0] == row:
            rows[-1] = (row, rows[-1][1] + 1)
        else:
            rows.append((row, 1))
    stages = [row.stage for row, _ in rows]
    if stages != sorted(stages) or set(stages) != set(range(len(plan.stages))):
        raise InternalError(_PASS, "blocks are not grouped by stage")
    return rows


# ------------------------------------------------------------------ the source file

_HEADER = '''\
"""{class_name}: {name} ({member}, {in_ch}x{res}x{res} input) in plain PyTorch.

Generated by effdsl (``effdsl compile ... --emit py``); it needs only torch. The parameter
names are those of ``effdsl.build``'s module, so its state_dict (or a safetensors file
written with ``--emit weights``) loads here with ``strict=True``.
"""

import math

import torch
from torch import nn

ACTIVATIONS = {activations}
'''

def _layer_source(name: str) -> str:
    """The source of a class of :mod:`effdsl.backends.torch.layers`, read as text (no torch import)."""
    text = (Path(__file__).parent.parent / "backends" / "torch" / "layers.py").read_text(encoding="utf-8")
    node = next(n for n in ast.parse(text).body
                if isinstance(n, (ast.ClassDef, ast.FunctionDef)) and n.name == name)
    decorators = "".join(f"@{ast.get_source_segment(text, d)}\n" for d in node.decorator_list)
    return "\n\n" + decorators + str(ast.get_source_segment(text, node)) + "\n"


_STOCHASTIC_DEPTH = _layer_source("StochasticDepth")
_INIT_WEIGHTS = _layer_source("init_weights")

_CONV_SAME = _layer_source("Conv2dSame") + '''

def conv2d(in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    """A conv without bias; TensorFlow 'same' padding when strided, else (k - 1) // 2 on every side."""
    if stride > 1:
        return Conv2dSame(in_ch, out_ch, kernel, stride, groups=groups, bias=False)
    return nn.Conv2d(in_ch, out_ch, kernel, stride, padding=(kernel - 1) // 2, groups=groups, bias=False)
'''

_CONV_SYMMETRIC = '''

def conv2d(in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    """A conv without bias, padded by (k - 1) // 2 on every side."""
    return nn.Conv2d(in_ch, out_ch, kernel, stride, padding=(kernel - 1) // 2, groups=groups, bias=False)
'''

_HEAD_CONV = '''

class Head(ConvBNAct):
    """The last conv, batch norm and activation, then global {pool} pooling (flattened) and dropout."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, act: str | None,
                 bn: tuple[float, float], dropout: float):
        super().__init__(in_ch, out_ch, kernel, stride, act, bn)
        self.pool = {pool_class}(1)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(torch.flatten(self.pool(super().forward(x)), 1))
'''

_HEAD_POOL = '''

class Head(nn.Module):
    """Global {pool} pooling (flattened) and dropout."""

    def __init__(self, dropout: float):
        super().__init__()
        self.pool = {pool_class}(1)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(torch.flatten(self.pool(x), 1))
'''

_TABLE_DOC = '''

# One row per run of identical blocks; a stage's first block (new width, stride) has its own
# row. mid: the expanded width (mid == in_ch: no expansion); squeeze: the squeeze-excite width
# (0: none); bn: batch-norm (eps, momentum); residual: add the block input (through stochastic depth).
'''

_NETWORK = '''

class {class_name}(nn.Module):
    """{name} ({member}){params_doc}."""

    input_size = ({in_ch}, {res}, {res})

    def __init__(self, num_classes: int = {classes}, in_chans: int = {in_ch}, drop_rate: float = {dropout!r},
                 drop_path_rate: float = {drop_path!r}):
        super().__init__()
        self.stem = ConvBNAct(in_chans, {stem_args})
        num_blocks = sum(row[2] for row in BLOCKS)
        stages = [[] for _ in range({num_stages})]
        index = 0
        for stage, kind, repeats, kernel, stride, in_ch, out_ch, mid, squeeze, act, bn, residual in BLOCKS:
            for _ in range(repeats):
                rate = drop_path_rate * index / num_blocks  # stochastic depth grows linearly
{make_block}
                index += 1
        self.stages = nn.ModuleList(nn.Sequential(*blocks) for blocks in stages)
        self.head = Head({head_args})
        self.classifier = nn.Linear({head_out}, num_classes)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """torchvision's EfficientNet initialization."""
        init_weights(self)

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The output of every stage."""
        features = []
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return self.classifier(self.head(x))
'''

def _lit(value: object) -> str:
    """A Python literal (strings in double quotes, floats that read back exactly)."""
    if isinstance(value, str):
        return '"' + value + '"'
    if isinstance(value, tuple):
        return "(" + ", ".join(_lit(v) for v in value) + ")"
    return repr(value)


def _table(net: _Network) -> str:
    header = ["stage", "kind", "n", "k", "s", "in", "out", "mid", "squeeze", "act", "bn", "residual"]
    left = {"kind", "act", "bn", "residual"}  # columns aligned left; numbers align right
    cells = []
    for block, repeats in net.rows:
        values = (block.stage, block.kind, repeats, block.kernel, block.stride, block.in_ch, block.out_ch,
                  block.mid, block.squeeze, block.act, block.bn, block.residual)
        cells.append([_lit(v) + "," for v in values])
    cells = [row[:-1] + [row[-1][:-1]] for row in cells]  # no comma after the last value
    widths = [max(len(name) + 1, *(len(row[j]) for row in cells)) for j, name in enumerate(header)]
    widths[0] = max(widths[0], len(header[0]) + 2)  # room for the header's "# "
    lines = ["    #" + " ".join(name.ljust(w) if name in left else name.rjust(w - 1) + " "
                             for name, w in zip(header, widths, strict=True)).rstrip()]
    for row in cells:
        lines.append("    (" + " ".join(cell.ljust(w) if name in left else cell.rjust(w)
                                        for name, cell, w in zip(header, row, widths, strict=True)).rstrip() + "),")
    return "BLOCKS = [\n" + "\n".join(lines) + "\n]\n"


def _dict_literal(items: list[str]) -> str:
    one_line = "{" + ", ".join(items) + "}"
    if len(one_line) <= 80:
        return one_line
    return "{\n" + "".join(f"    {item},\n" for item in items) + "}"


def python_source(graph: CompiledGraph) -> str:
    """A standalone, readable PyTorch file defining the network of a compiled graph.

    The network class is named from the spec (``efficientnet_b0`` -> ``EfficientnetB0``);
    its constructor takes ``num_classes``, ``in_chans``, ``drop_rate`` and
    ``drop_path_rate`` with the compiled values as defaults.
    """
    net = _read(graph)
    kinds = {block.kind for block, _ in net.rows}
    has_se = any(block.squeeze for block, _ in net.rows)
    acts = {net.stem.act} | {block.act for block, _ in net.rows}
    if net.head is not None:
        acts.add(net.head.act)
    used = [name for name in ACTIVATIONS if name in acts]

    parts = [_HEADER.format(
        class_name=net.class_name, name=net.name, member=net.member, in_ch=net.in_ch, res=net.resolution,
        activations=_dict_literal([f'"{a}": nn.{ACTIVATIONS[a]}' for a in used]))]
    if any(block.residual for block, _ in net.rows):
        parts.append(_STOCHASTIC_DEPTH)
    parts.append(_CONV_SAME if net.same else _CONV_SYMMETRIC)
    parts.append(_INIT_WEIGHTS)
    parts.append(CONV_BN_ACT_CLASS)
    if has_se:
        parts.append(SQUEEZE_EXCITE_CLASS)
    ordered = [kind for kind in REGISTRY.values() if kind.name in kinds]
    parts += [kind.py_class for kind in ordered]
    pool_class = "nn.AdaptiveAvgPool2d" if net.pool == "avg" else "nn.AdaptiveMaxPool2d"
    pool_word = "average" if net.pool == "avg" else "max"
    parts.append((_HEAD_CONV if net.head else _HEAD_POOL).format(pool=pool_word, pool_class=pool_class))
    parts.append(_TABLE_DOC + _table(net))

    indent = " " * 16
    if len(ordered) == 1:
        lines = [f"{indent}block = {ordered[0].py_make}"]
    else:
        lines = []
        for i, kind in enumerate(ordered):
            if i == len(ordered) - 1:
                lines.append(f"{indent}else:")
            else:
                lines.append(f"{indent}{'if' if i == 0 else 'elif'} kind == {_lit(kind.name)}:")
            lines.append(f"{indent}    block = {kind.py_make}")
    lines.append(f"{indent}stages[stage].append(block)")
    make = "\n".join(lines)
    stem = net.stem
    stem_args = f"{stem.out_ch}, {stem.kernel}, {stem.stride}, {_lit(stem.act)}, {_lit(stem.bn)}"
    if net.head is not None:
        head = net.head
        head_args = (f"{head.in_ch}, {head.out_ch}, {head.kernel}, {head.stride}, {_lit(head.act)}, "
                     f"{_lit(head.bn)}, drop_rate")
        head_out = head.out_ch
    else:
        head_args = "drop_rate"
        head_out = net.head_in
    parts.append(_NETWORK.format(
        class_name=net.class_name, name=net.name, member=net.member,
        params_doc=f", {net.params:,} parameters" if net.params is not None else "",
        in_ch=net.in_ch, res=net.resolution, classes=net.classes, dropout=net.dropout,
        drop_path=net.drop_path, stem_args=stem_args, num_stages=net.num_stages, make_block=make,
        head_args=head_args, head_out=head_out,
    ))
    return "".join(parts)
