"""Stage 2 data: the spec AST, frozen pydantic models with source spans.

A :class:`Network` is exactly what the user wrote, checked but not yet resolved: a
stage's ``act`` is ``None`` when the stage does not override the default. A network
whose stages carry choices (:class:`Choice`) is a search space (:attr:`Network.is_space`);
its stages' fields then hold the reference values (a choice's first option, or the
base of a relative choice). ``spans``
maps a field name to where the user wrote it, so a later stage can point at the value
(``stage.span_of("kernel")``) rather than the whole line.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from effdsl.diagnostics import Span

RoundingMode = Literal["ceil", "floor", "half_up", "half_even"]
BlockType = Literal["mbconv", "fused_mbconv", "conv"]
Role = Literal["stem", "stage", "head"]
Pool = Literal["avg", "max"]
Padding = Literal["symmetric", "same"]

# The words of each closed set, in the order messages list them; typed with their Literal
# so that ``word in BLOCK_TYPES`` also tells the type checker which words remain.
ROUNDING_MODES: tuple[RoundingMode, ...] = ("ceil", "floor", "half_up", "half_even")
BLOCK_TYPES: tuple[BlockType, ...] = ("mbconv", "fused_mbconv", "conv")
ROLES: tuple[Role, ...] = ("stem", "stage", "head")
# Every activation the language names, with the torch.nn class that computes it: the one
# table the torch backend (getattr(nn, ...)) and the .py export ("nn." + ...) both read.
ACTIVATIONS: dict[str, str] = {
    "relu": "ReLU",
    "relu6": "ReLU6",
    "silu": "SiLU",
    "hardswish": "Hardswish",
    "gelu": "GELU",
    "sigmoid": "Sigmoid",
    "hardsigmoid": "Hardsigmoid",
    "none": "Identity",
}
POOLS: tuple[Pool, ...] = ("avg", "max")
# Resize interpolations, as timm's and torchvision's transforms name them.
INTERPOLATIONS: tuple[str, ...] = ("bicubic", "bilinear", "nearest")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PADDINGS: tuple[Padding, ...] = ("symmetric", "same")
SeBase = Literal["in", "mid"]
# What a squeeze-excite width is a fraction of: the block's input or its expanded width.
SE_BASES: tuple[SeBase, ...] = ("in", "mid")
# The functions a squeeze-excite gate may apply (sigmoid, or MobileNetV3's hard sigmoid).
SE_GATES: tuple[str, ...] = ("sigmoid", "hardsigmoid")

# Upper bounds, far above any real network: a slip such as x1e9 or c1e12 is reported
# (E215 for a value of the spec, E302 for a scaled member) instead of making the
# compiler expand a billion blocks or overflow a float.
MAX_KERNEL = 31
MAX_CHANNELS = 1_000_000  # any channel count, also the divisor and the minimum
MAX_EXPAND = 1000
MAX_REPEATS = 1000  # of one stage
MAX_STAGES = 100
MAX_BLOCKS = 10_000  # all stages together, baseline or scaled
MAX_RESOLUTION = 16_384
MAX_CLASSES = 1_000_000


class SpecNode(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    span: Span
    spans: dict[str, Span] = {}

    def span_of(self, name: str) -> Span:
        """Where ``name`` was written, or the whole node when it was not written."""
        return self.spans.get(name, self.span)


class BatchNorm(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    eps: float | None = None
    momentum: float | None = None

    def over(self, base: BatchNorm) -> BatchNorm:
        """These settings where given, ``base``'s elsewhere."""
        return BatchNorm(
            eps=self.eps if self.eps is not None else base.eps,
            momentum=self.momentum if self.momentum is not None else base.momentum,
        )


class Scaling(SpecNode):
    """The compound-scaling policy: coefficients and every rounding rule."""

    alpha: float = 1.0
    beta: float = 1.0
    gamma: float = 1.0
    divisor: int = 8
    min_ch: int | None = None  # None: the divisor
    guard: float = 0.9  # round-down guard: never below guard * ideal channels; 0 disables
    depth_rounding: RoundingMode = "ceil"
    resolution_rounding: RoundingMode = "half_up"
    resolution_multiple: int = 1
    fixed_width: tuple[Literal["stem", "head"], ...] = ()
    fixed_depth: tuple[int, ...] = ()  # 0-based stage indices whose repeats never scale
    head_from_last: float | None = None  # head channels = this x the last stage's (torchvision); None: scaled
    head_min_width: float | None = None  # 'head_width scaled min 1': the head scales by max(this, width)
    mid_scaled: bool = False  # 'mid_width scaled': expanded widths scale with the channel rule (MobileNetV3)


class SqueezeExcite(BaseModel):
    """How a squeeze-excite is shaped, where given: its width is ``ratio`` of the block's input
    (``of in``) or of its expanded width (``of mid``), rounded to a multiple of ``divisor``
    when one is given; ``inner`` is the activation between its two 1x1 convs (None: the
    block's), ``gate`` the function that makes the scale."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    of: SeBase | None = None
    divisor: int | None = None
    inner: str | None = None
    gate: str | None = None

    def over(self, base: SqueezeExcite) -> SqueezeExcite:
        """These settings where given, ``base``'s elsewhere."""
        return SqueezeExcite(**{name: getattr(self, name) if getattr(self, name) is not None else getattr(base, name)
                                for name in SqueezeExcite.model_fields})


class Defaults(SpecNode):
    act: str = "silu"
    se: float = 0.0
    se_shape: SqueezeExcite = SqueezeExcite()
    bn: BatchNorm = BatchNorm(eps=1e-5, momentum=0.1)
    drop_path: float = 0.0
    dropout: float = 0.0
    padding: Padding = "symmetric"


class Preprocess(SpecNode):
    """How images are prepared for the network, as timm's ``pretrained_cfg`` states it:
    per-channel normalization, the resize interpolation, and the center crop as a
    fraction of the resized image (0.875: resize to 256, crop 224)."""

    mean: tuple[float, ...] = IMAGENET_MEAN  # one per input channel
    std: tuple[float, ...] = IMAGENET_STD
    interpolation: Literal["bicubic", "bilinear", "nearest"] = "bicubic"
    crop: float = 0.875


class Preset(SpecNode):
    name: str
    width: float
    depth: float
    resolution: int
    dropout: float | None = None
    drop_path: float | None = None
    bn: BatchNorm = BatchNorm()
    crop: float | None = None             # the preprocessing crop of this member
    test_resolution: int | None = None    # evaluate at another resolution than the member's


ChoiceField = Literal["block", "kernel", "stride", "expand", "out_ch", "repeats", "se", "act", "skip"]
Relation = Literal["set", "offset", "scale"]
ChoiceValue = bool | int | float | str


class Choice(SpecNode):
    """A decision of a search space: one stage field takes one of ``options``.

    ``relation`` says how the options read (MnasNet's factorized hierarchical space has
    both kinds): ``set``, the values themselves (``k{3,5}``); ``offset``, whole numbers
    added to the stage's repeats (``x2+{-1,0,+1}``); ``scale``, multipliers of the
    stage's channels, rounded with the spec's channel rule (``c40*{0.75,1,1.25}``).
    ``base`` is the number a relative choice applies to. ``option_spans`` point at each
    option as written.
    """

    field: ChoiceField
    relation: Relation = "set"
    options: tuple[ChoiceValue, ...]
    base: int | None = None
    option_spans: tuple[Span, ...] = ()


class BlockPart(SpecNode):
    """What one ``then`` group of a stage line changes for its blocks (None: as the stage line says)."""

    expand: float | None = None
    expand_from: int | None = None
    kernel: int | None = None
    repeats: int = 1
    se: float | None = None
    se_shape: SqueezeExcite = SqueezeExcite()
    act: str | None = None
    skip: bool | None = None


class Block(SpecNode):
    """A stem, a stage (``repeats`` blocks) or the head's conv.

    A stage of a search space lists its decisions in ``choices`` (one per field at most).
    ``parts`` are the stage line's ``then`` groups: blocks of the same stage (one stride,
    one width, scaled in depth together) that differ in expansion, kernel, activation or
    squeeze-excite; ``repeats`` counts the blocks before the first ``then``.
    """

    role: Role
    block: str  # a BlockType, or the name of a block the spec defines
    kernel: int
    stride: int = 1
    expand: float = 1.0
    out_ch: int
    repeats: int = 1
    se: float | None = None
    se_shape: SqueezeExcite = SqueezeExcite()
    expand_from: int | None = None  # 'e4 of c24': the expansion's input width, fixed (timm's fc24)
    act: str | None = None
    skip: bool | None = None
    bn: BatchNorm = BatchNorm()
    choices: tuple[Choice, ...] = ()
    parts: tuple[BlockPart, ...] = ()


class Hidden(SpecNode):
    """A hidden linear layer after pooling (``linear c1280 act hardswish``): its width and activation."""

    out_ch: int
    act: str | None = None  # None: no activation


# ---------------------------------------------------------------- user-defined blocks
# The ops a block definition is made of, and the options each takes (a plug-in op, from the
# effdsl.ops entry points, brings its own). 'act' takes an activation name, or none: the stage's.
BLOCK_OPS: dict[str, tuple[str, ...]] = {
    "conv": ("kernel", "stride", "to", "bias"),
    "dwconv": ("kernel", "stride", "bias"),
    "bn": (),
    "ln": ("eps",),
    "act": (),
    "se": (),
    "residual": (),
}
# The widths an op may name: the block's input, its expanded width (e x in, rounded to the
# network's channel divisor) and its output (the stage's channels).
WIDTHS: tuple[str, ...] = ("in", "mid", "out")
LN_EPS = 1e-6  # ConvNeXt's layer norm
MAX_BLOCK_OPS = 64
OptionValue = int | float | str


class OpLine(SpecNode):
    """One op of a block definition, with its module name in the block (``conv1``).

    ``kernel``: a number or ``"k"`` (the stage's kernel); ``stride``: 1 or ``"s"`` (the
    stage's stride on its first block, 1 after); ``to``: the output width, ``"in"``,
    ``"mid"``, ``"out"`` or a number (None: the width it is given). ``options``: a plug-in
    op's, as (name, value) with values numbers or the words above.

    ``group``: the named part the op belongs to (``expand``; its name is then
    ``expand.conv``), None for an op of its own; ``when``: the group's condition, as
    (width, ``"=="`` or ``"!="``, width), None when the group is always there.
    """

    kind: str
    name: str
    group: str | None = None
    when: tuple[str, str, str] | None = None
    kernel: int | str = 1
    stride: int | str = 1
    to: int | str | None = None
    bias: bool = False
    act: str | None = None   # act: the function (None: the stage's)
    eps: float | None = None  # ln (None: LN_EPS)
    options: tuple[tuple[str, OptionValue], ...] = ()


class BlockDef(SpecNode):
    """``block NAME { ops }``: a block kind of the user's, used in stage lines like a built-in one.

    ``origin``: the file it was included from (None: the spec's own file).
    """

    name: str
    ops: tuple[OpLine, ...]
    origin: str | None = None

    def uses(self, value: str) -> bool:
        """Whether an op names ``value`` (``"mid"``, ``"k"``, ``"s"``) as a width, kernel, stride or option."""
        return any(value in (op.kernel, op.stride, op.to) or any(v == value for _, v in op.options)
                   or (op.when is not None and value in op.when) for op in self.ops)

    def has(self, kind: str) -> bool:
        return any(op.kind == kind for op in self.ops)


class Include(SpecNode):
    """``include "path"``: block definitions from another file."""

    path: str


class Head(SpecNode):
    conv: Block | None = None
    pool: Pool = "avg"
    dropout: float | None = None  # None: the preset's, else the defaults'
    hidden: Hidden | None = None  # a hidden linear layer between the pooling and the dropout
    linear: bool = True


class Network(SpecNode):
    name: str
    in_ch: int
    resolution: int
    classes: int
    scaling: Scaling
    defaults: Defaults
    preprocess: Preprocess | None = None  # None: ImageNet's, bicubic, crop 0.875
    presets: tuple[Preset, ...] = ()
    stem: Block
    stages: tuple[Block, ...]
    head: Head
    includes: tuple[Include, ...] = ()
    blocks: tuple[BlockDef, ...] = ()  # defined in the file, then those of its includes (origin set)

    def block_def(self, name: str) -> BlockDef | None:
        """The definition of a user's block kind, or None for a built-in one."""
        return next((b for b in self.blocks if b.name == name), None)

    def preset(self, name: str) -> Preset | None:
        """The preset called ``name`` (the first, should two share it), or None."""
        # An index by name, built on the first lookup (a spec may define thousands of
        # presets). It lives in __dict__ outside the fields, so ==, hashing and dumps
        # ignore it, and it is kept with the tuple it indexes: a copy with other
        # presets (model_copy) builds its own.
        index = self.__dict__.get("_preset_index")
        if index is None or index[0] is not self.presets:
            by_name: dict[str, Preset] = {}
            for p in self.presets:
                by_name.setdefault(p.name, p)
            index = self.__dict__["_preset_index"] = (self.presets, by_name)
        return index[1].get(name)

    @property
    def is_space(self) -> bool:
        """True when a stage has a choice: the spec describes many networks, not one."""
        return any(stage.choices for stage in self.stages)
