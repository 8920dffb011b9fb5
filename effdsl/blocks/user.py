"""Blocks the user defines in a spec (``block NAME { ops }``): lowering, and the table of
layers their torch class is built from.

A definition (:class:`~effdsl.language.spec.BlockDef`) lowers through the same
:class:`~effdsl.blocks.base.Builder` as the built-in kinds: each op of the definition is
one IR operator named ``<block path>.<op name>`` (``stages.1.0.conv1``; an op of a group
``<block path>.<group>.<op name>``, in the part named by the group, and left out with its
group when the group's condition does not hold for the block), except
``se`` (the shared squeeze-excite, ``<block path>.se.*``) and ``residual`` (stochastic
depth and the sum, when the shapes allow it). Its widths are resolved per block: ``in``
(the block input), ``mid`` (``e x in`` rounded to the network's channel divisor, as
MBConv's expansion) and ``out`` (the stage's channels); ``k`` is the stage's kernel, ``s``
its stride on the first block and 1 after.

The torch class is one generic ``UserBlock`` (:mod:`effdsl.blocks.library`) made from
:func:`layers_of`, a small table of (name, kind, settings) that the ``.py`` export writes
out as it is, so a user's block has meaningful, stable parameter names
(``stages.1.0.dwconv.weight``).
"""

from __future__ import annotations

import functools

from effdsl.blocks.base import BlockArgs, Builder, Where
from effdsl.diagnostics import Diagnostic, EffdslError
from effdsl.language.plugins import load_plugin
from effdsl.language.spec import BLOCK_OPS, LN_EPS, BatchNorm, BlockDef, OpLine

Sizes = dict[str, int]


def sizes_of(args: BlockArgs) -> Sizes:
    """The words a definition's ops may name, resolved for one block."""
    stage = args.stage
    return {"in": args.in_ch, "mid": args.mid,
            "out": stage.out_ch, "k": stage.kernel, "s": args.stride}


def _value(value: int | float | str, sizes: Sizes) -> int | float:
    return sizes[value] if isinstance(value, str) else value


def lower(definition: BlockDef, b: Builder, x: str, args: BlockArgs) -> str:
    """The operators of one block of a user's kind."""
    stage = args.stage
    sizes = sizes_of(args)
    shortcut, width = x, args.in_ch
    places: dict[str, Where] = {}  # the position of each part, made once per block
    for op in definition.ops:
        if op.when is not None and not _holds(op.when, sizes):
            continue  # its group is left out of this block
        if op.kind == "se":
            x = b.squeeze_excite(x, args, width) if stage.se > 0 else x
        elif op.kind == "residual":
            x = b.residual(shortcut, x, args) if width == stage.out_ch else x  # else: reported below
        elif op.kind in BLOCK_OPS:
            part = op.group or op.name
            where = places.get(part) or places.setdefault(part, args.where(part))
            x, width = _simple(op, b, x, args, sizes, width, where)
        else:
            x, width = _plugin(op, b, x, args, sizes, width)
    if width != stage.out_ch:
        raise EffdslError(Diagnostic(
            "E310", f"block '{definition.name}' gives {width} channels; the stage says c{stage.out_ch}",
            stage.span_of("out_ch"), "end the block with an op to the stage's channels: conv to out"))
    return x


@functools.lru_cache(maxsize=64)
def _bn_settings(stage: BatchNorm, network: BatchNorm) -> BatchNorm:
    """A stage's batch-norm settings over the network's (one pydantic model per pair, not per op)."""
    return stage.over(network)


def _holds(when: tuple[str, str, str], sizes: Sizes) -> bool:
    """Whether a group's condition (``mid != in``) holds for this block."""
    left, cmp, right = when
    return (sizes[left] == sizes[right]) == (cmp == "==")


def _simple(op: OpLine, b: Builder, x: str, args: BlockArgs, sizes: Sizes, width: int,
            where: Where) -> tuple[str, int]:
    """A conv, dwconv, bn, ln or act op; the width after it."""
    name, stage = f"{args.prefix}.{op.name}", args.stage
    if op.kind == "conv" or op.kind == "dwconv":
        depthwise = op.kind == "dwconv"
        out = width if depthwise or op.to is None else int(_value(op.to, sizes))
        x = b.op("dwconv" if depthwise else "conv", name, (x,), where, in_ch=width, out_ch=out,
                 kernel=int(_value(op.kernel, sizes)), stride=int(_value(op.stride, sizes)),
                 groups=width if depthwise else 1, bias=op.bias, padding=b.padding)
        return x, out
    if op.kind == "bn":
        settings = _bn_settings(stage.bn, b.bn)
        return b.op("bn", name, (x,), where, in_ch=width, out_ch=width, eps=settings.eps,
                    momentum=settings.momentum), width
    if op.kind == "ln":
        return b.op("ln", name, (x,), where, in_ch=width, out_ch=width, eps=op.eps or LN_EPS), width
    act = op.act or stage.act
    if op.group is not None and act == "none":
        return x, width  # in a group (as in the built-in blocks), no activation adds no operator
    return b.op("act", name, (x,), where, in_ch=width, out_ch=width, act=act), width


def _plugin(op: OpLine, b: Builder, x: str, args: BlockArgs, sizes: Sizes, width: int) -> tuple[str, int]:
    """A plug-in op: its options resolved for this block; 'to' (if it has one) sets its output width."""
    plugin = load_plugin(op.kind, args.stage.span)
    if plugin is None:  # uninstalled since the spec was read
        raise EffdslError(Diagnostic("E120", f"unknown op '{op.kind}': no installed package provides it",
                                     args.stage.span, "install the package that provides it"))
    options = tuple((key, _value(value, sizes)) for key, value in op.options)
    out = int(dict(options).get("to", width))
    x = b.op("plugin", f"{args.prefix}.{op.name}", (x,), args.where(op.group or op.name), in_ch=width, out_ch=out,
             plugin=op.kind, options=options, stride=int(dict(options).get("stride", 1)))
    return x, out


# ---------------------------------------------------------------- the torch class's table

LayerRow = tuple[str, str, dict[str, object]]


def layers_of(definition: BlockDef) -> tuple[LayerRow, ...]:
    """The definition as ``UserBlock`` takes it: (name, kind, settings) per op, the settings
    only where they differ from the op's defaults; a plug-in op's kind is its class, with
    its options under ``options``."""
    rows: list[LayerRow] = []
    for op in definition.ops:
        settings: dict[str, object] = {}
        if op.kind in ("conv", "dwconv"):
            for key, value, default in (("kernel", op.kernel, 1), ("stride", op.stride, 1), ("to", op.to, None),
                                        ("bias", op.bias, False)):
                if value != default and not (op.kind == "dwconv" and key == "to"):
                    settings[key] = value
        elif op.kind == "ln":
            settings["eps"] = op.eps or LN_EPS
        elif op.kind == "act" and op.act is not None:
            settings["act"] = op.act
        if op.when is not None:
            settings["when"] = op.when
        kind = op.kind
        if op.kind not in ("conv", "dwconv", "bn", "ln", "act", "se", "residual"):
            plugin = load_plugin(op.kind, definition.span)
            kind = plugin.class_name if plugin is not None else op.kind
            settings["options"] = dict(op.options)
        rows.append((op.name, kind, settings))
    return tuple(rows)


def layers_name(name: str) -> str:
    """The constant the ``.py`` export names a block's table with: ``CONVNEXT_LAYERS``."""
    return "".join(c if c.isalnum() else "_" for c in name).upper() + "_LAYERS"
