"""A compiled network as standalone, readable PyTorch source (``effdsl compile --emit py``).

:func:`python_source` writes a ``.py`` file that needs only torch: a small class per
block kind the network uses and a network class whose ``__init__`` loops over a table of
blocks. The table is read off the IR graph (one row per run of identical blocks of a
stage), so a deeper member of a family has the same rows with larger repeat counts, not
more code. Its parameter and buffer names, and their order, are those of
:func:`effdsl.backends.torch.builder.build_module`'s module: the built module's ``state_dict``
loads into it with ``strict=True`` and both compute the same outputs.

This module needs no torch: the class templates below are text, and ``StochasticDepth``
and ``Conv2dSame`` are copied from the source of :mod:`effdsl.backends.torch.layers`, which
the built modules use, so ``--emit py`` works where torch is not installed.
"""

from __future__ import annotations

import ast
import keyword
from dataclasses import dataclass
from pathlib import Path

import networkx as nx

from effdsl.diagnostics import InternalError
from effdsl.ir.graph import Op, ops, plan_of

_PASS = "export"  # what an InternalError names as the failing stage

# effdsl's activation names and the torch.nn classes the generated file uses for them
# (the same as effdsl.backends.torch.builder.ACTIVATIONS; 'none' is written as None).
_ACT_CLASSES = {
    "relu": "nn.ReLU",
    "relu6": "nn.ReLU6",
    "silu": "nn.SiLU",
    "hardswish": "nn.Hardswish",
    "gelu": "nn.GELU",
    "sigmoid": "nn.Sigmoid",
}
_BLOCK_CLASSES = {"mbconv": "MBConv", "fused_mbconv": "FusedMBConv", "conv": "ConvBlock"}
_MAIN_PART = {"dw": "mbconv", "fused": "fused_mbconv", "conv": "conv"}
_PARTS = {
    "mbconv": {"expand", "dw", "se", "project", "residual"},
    "fused_mbconv": {"fused", "se", "project", "residual"},
    "conv": {"conv", "residual"},
}


# ------------------------------------------------------------------ reading the IR

@dataclass(frozen=True)
class _ConvBN:
    """A conv + batch norm (+ activation) triple of the IR."""

    in_ch: int
    out_ch: int
    kernel: int
    stride: int
    act: str | None
    bn: tuple[float, float]
    same: bool  # TensorFlow 'same' padding (only changes anything when strided)


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
    stem: _ConvBN
    rows: tuple[tuple[_Block, int], ...]  # (block, repeats)
    num_stages: int
    drop_path: float
    head: _ConvBN | None
    head_in: int
    pool: str
    dropout: float
    same: bool
    params: int | None
    member: str


def _act(name: str | None) -> str | None:
    return None if name in (None, "none") else name


def _conv_bn(group: list[Op], where: str) -> _ConvBN:
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
    return _ConvBN(conv.in_ch, conv.out_ch, conv.kernel, conv.stride, act, (bn.eps, bn.momentum),
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
    mains = [part for part in _MAIN_PART if part in parts]
    if len(mains) != 1:
        raise InternalError(_PASS, f"block {first.block}: cannot tell its kind from parts {sorted(parts)}")
    kind = _MAIN_PART[mains[0]]
    if not set(parts) <= _PARTS[kind]:
        raise InternalError(_PASS, f"block {first.block}: unexpected parts {sorted(set(parts) - _PARTS[kind])}")
    convs = {part: _conv_bn(parts[part], f"block {first.block} {part}")
             for part in ("expand", "dw", "fused", "conv", "project") if part in parts}
    main = convs[mains[0]]
    in_ch = convs.get("expand", main).in_ch
    out_ch = convs.get("project", main).out_ch
    if kind == "mbconv":
        mid = main.in_ch
    elif kind == "fused_mbconv":
        mid = convs["project"].in_ch if "project" in convs else in_ch
    else:
        mid = None
    squeeze = 0
    if "se" in parts:
        se = parts["se"]
        if [op.kind for op in se] != ["pool", "conv", "act", "conv", "gate", "mul"]:
            raise InternalError(_PASS, f"block {first.block}: unexpected squeeze-excite {[op.kind for op in se]}")
        squeeze = se[1].out_ch
        if _act(se[2].act) != main.act or se[0].act != "avg" or se[4].act != "sigmoid":
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
    row = _Block(first.stage, kind, main.kernel, main.stride, in_ch, out_ch, mid, squeeze, main.act,
                 bns.pop(), residual)
    return row, rate


def _read(graph: nx.DiGraph) -> _Network:
    plan = plan_of(graph)
    stem: list[Op] = []
    head: list[Op] = []
    blocks: dict[int, list[Op]] = {}
    classifier = None
    image = None
    for op in ops(graph):
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
    same = any(op.padding == "same" and op.stride > 1 for op in ops(graph) if op.kind in ("conv", "dwconv"))
    stem_conv = _conv_bn(stem, "stem")
    head_conv = _conv_bn(head[:-2], "head") if len(head) > 2 else None
    for conv in (stem_conv, head_conv):
        if conv is not None and conv.same != (same and conv.stride > 1):
            raise InternalError(_PASS, "stem or head padding differs from the network's")
    pool, dropout = head[-2:]
    if pool.kind != "pool" or not pool.flatten or dropout.kind != "dropout":
        raise InternalError(_PASS, "expected global pooling and dropout before the classifier")

    rows: list[list] = []
    num_blocks = len(blocks)
    for index in range(num_blocks):
        if index not in blocks:
            raise InternalError(_PASS, f"block {index} is missing")
        row, rate = _block(blocks[index], same)
        if row.residual and rate != plan.drop_path * index / num_blocks:
            raise InternalError(_PASS, f"block {index}: drop-path rate {rate} is not rate * i / N")
        if rows and rows[-1][0] == row:
            rows[-1][1] += 1
        else:
            rows.append([row, 1])
    stages = [row.stage for row, _ in rows]
    if stages != sorted(stages) or set(stages) != set(range(len(plan.stages))):
        raise InternalError(_PASS, "blocks are not grouped by stage")

    params = [op.params for op in ops(graph)]
    member = (f"preset {plan.preset}" if plan.preset else f"phi {plan.phi:g}" if plan.phi is not None
              else f"width {plan.width_mult:g}, depth {plan.depth_mult:g}")
    return _Network(
        name=plan.name, class_name=class_name(plan.name), in_ch=image.out_ch, resolution=plan.resolution,
        classes=classifier.out_ch, stem=stem_conv, rows=tuple((r, n) for r, n in rows),
        num_stages=len(plan.stages), drop_path=plan.drop_path, head=head_conv, head_in=pool.in_ch,
        pool=pool.act, dropout=dropout.rate, same=same,
        params=None if None in params else sum(params), member=member,
    )


_RESERVED = {"ConvBNAct", "SqueezeExcite", "MBConv", "FusedMBConv", "ConvBlock", "StochasticDepth",
             "Conv2dSame", "Head"}


def class_name(name: str) -> str:
    """The network class's name: the spec name in CamelCase, as ``build_module`` names it."""
    cleaned = "".join(part.capitalize() for part in name.replace("-", "_").split("_") if part)
    if not cleaned.isidentifier():
        return "EffdslNetwork"
    if keyword.iskeyword(cleaned) or cleaned in _RESERVED:
        return cleaned + "Net"
    return cleaned


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
    node = next(n for n in ast.parse(text).body if isinstance(n, ast.ClassDef) and n.name == name)
    return "\n\n" + ast.get_source_segment(text, node) + "\n"


_STOCHASTIC_DEPTH = _layer_source("StochasticDepth")

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

_CONV_BN_ACT = '''

class ConvBNAct(nn.Module):
    """Conv, batch norm (bn = (eps, momentum)) and activation (none when act is None)."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, act: str | None,
                 bn: tuple[float, float], groups: int = 1):
        super().__init__()
        eps, momentum = bn
        self.conv = conv2d(in_ch, out_ch, kernel, stride, groups)
        self.bn = nn.BatchNorm2d(out_ch, eps=eps, momentum=momentum)
        self.act = ACTIVATIONS[act]() if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))
'''

_SQUEEZE_EXCITE = '''

class SqueezeExcite(nn.Module):
    """Global average pool, 1x1 reduce to `squeeze` channels, act, 1x1 expand, sigmoid gate."""

    def __init__(self, channels: int, squeeze: int, act: str | None):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.reduce = nn.Conv2d(channels, squeeze, 1)
        self.act = ACTIVATIONS[act]() if act else nn.Identity()
        self.expand = nn.Conv2d(squeeze, channels, 1)
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(self.expand(self.act(self.reduce(self.pool(x)))))
'''

_MBCONV = '''

class MBConv(nn.Module):
    """Inverted residual: 1x1 expand to `mid` (unless mid == in_ch), depthwise kxk, squeeze-excite
    (when squeeze > 0), 1x1 project without activation; the residual goes through stochastic depth."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, mid: int, squeeze: int,
                 act: str | None, bn: tuple[float, float], residual: bool, drop_path: float):
        super().__init__()
        self.expand = ConvBNAct(in_ch, mid, 1, 1, act, bn) if mid != in_ch else None
        self.dw = ConvBNAct(mid, mid, kernel, stride, act, bn, groups=mid)
        self.se = SqueezeExcite(mid, squeeze, act) if squeeze else None
        self.project = ConvBNAct(mid, out_ch, 1, 1, None, bn)
        self.residual = residual
        self.drop_path = StochasticDepth(drop_path) if residual else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x if self.expand is None else self.expand(x)
        out = self.dw(out)
        if self.se is not None:
            out = self.se(out)
        out = self.project(out)
        if self.residual:
            out = x + self.drop_path(out)
        return out
'''

_FUSED_MBCONV = '''

class FusedMBConv(nn.Module):
    """EfficientNetV2's block: one kxk conv expands to `mid` (or, when mid == in_ch, goes straight to
    out_ch and is the whole block), squeeze-excite, 1x1 project; residual as in MBConv."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, mid: int, squeeze: int,
                 act: str | None, bn: tuple[float, float], residual: bool, drop_path: float):
        super().__init__()
        width = mid if mid != in_ch else out_ch
        self.fused = ConvBNAct(in_ch, width, kernel, stride, act, bn)
        self.se = SqueezeExcite(width, squeeze, act) if squeeze else None
        self.project = ConvBNAct(mid, out_ch, 1, 1, None, bn) if mid != in_ch else None
        self.residual = residual
        self.drop_path = StochasticDepth(drop_path) if residual else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.fused(x)
        if self.se is not None:
            out = self.se(out)
        if self.project is not None:
            out = self.project(out)
        if self.residual:
            out = x + self.drop_path(out)
        return out
'''

_CONV_BLOCK = '''

class ConvBlock(nn.Module):
    """A plain kxk conv, batch norm and activation, with an optional residual."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, act: str | None,
                 bn: tuple[float, float], residual: bool, drop_path: float):
        super().__init__()
        self.conv = ConvBNAct(in_ch, out_ch, kernel, stride, act, bn)
        self.residual = residual
        self.drop_path = StochasticDepth(drop_path) if residual else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        if self.residual:
            out = x + self.drop_path(out)
        return out
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

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """torchvision's EfficientNet initialization."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
                m.reset_running_stats()
            elif isinstance(m, nn.Linear):
                bound = 1.0 / math.sqrt(m.out_features)
                nn.init.uniform_(m.weight, -bound, bound)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

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

_MAKE = {
    "mbconv": "MBConv(in_ch, out_ch, kernel, stride, mid, squeeze, act, bn, residual, rate)",
    "fused_mbconv": "FusedMBConv(in_ch, out_ch, kernel, stride, mid, squeeze, act, bn, residual, rate)",
    "conv": "ConvBlock(in_ch, out_ch, kernel, stride, act, bn, residual, rate)",
}


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
                             for name, w in zip(header, widths)).rstrip()]
    for row in cells:
        lines.append("    (" + " ".join(cell.ljust(w) if name in left else cell.rjust(w)
                                        for name, cell, w in zip(header, row, widths)).rstrip() + "),")
    return "BLOCKS = [\n" + "\n".join(lines) + "\n]\n"


def _dict_literal(items: list[str]) -> str:
    one_line = "{" + ", ".join(items) + "}"
    if len(one_line) <= 80:
        return one_line
    return "{\n" + "".join(f"    {item},\n" for item in items) + "}"


def python_source(graph: nx.DiGraph) -> str:
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
    used = [name for name in _ACT_CLASSES if name in acts]

    parts = [_HEADER.format(
        class_name=net.class_name, name=net.name, member=net.member, in_ch=net.in_ch, res=net.resolution,
        activations=_dict_literal([f'"{a}": {_ACT_CLASSES[a]}' for a in used]))]
    if any(block.residual for block, _ in net.rows):
        parts.append(_STOCHASTIC_DEPTH)
    parts.append(_CONV_SAME if net.same else _CONV_SYMMETRIC)
    parts.append(_CONV_BN_ACT)
    if has_se:
        parts.append(_SQUEEZE_EXCITE)
    for kind, template in (("mbconv", _MBCONV), ("fused_mbconv", _FUSED_MBCONV), ("conv", _CONV_BLOCK)):
        if kind in kinds:
            parts.append(template)
    pool_class = "nn.AdaptiveAvgPool2d" if net.pool == "avg" else "nn.AdaptiveMaxPool2d"
    pool_word = "average" if net.pool == "avg" else "max"
    parts.append((_HEAD_CONV if net.head else _HEAD_POOL).format(pool=pool_word, pool_class=pool_class))
    parts.append(_TABLE_DOC + _table(net))

    indent = " " * 16
    ordered = [kind for kind in _MAKE if kind in kinds]
    if len(ordered) == 1:
        lines = [f"{indent}block = {_MAKE[ordered[0]]}"]
    else:
        lines = []
        for i, kind in enumerate(ordered):
            if i == len(ordered) - 1:
                lines.append(f"{indent}else:")
            else:
                lines.append(f"{indent}{'if' if i == 0 else 'elif'} kind == {_lit(kind)}:")
            lines.append(f"{indent}    block = {_MAKE[kind]}")
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


# ------------------------------------------------------------------ binary formats
