"""The upper level of the IR: the stage plan a network's operators are expanded from.

A :class:`Plan` is the stage table of one member of a family: the baseline as lowered
from the spec (``scaled`` false), or the member after compound scaling. Every row keeps
the span of the spec line it came from.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from effdsl.diagnostics import Span
from effdsl.language.spec import IMAGENET_MEAN, IMAGENET_STD, BatchNorm, BlockDef, Scaling


@dataclass(frozen=True, slots=True)
class ConvPlan:
    """Stem or head conv."""

    kernel: int
    stride: int
    out_ch: int
    act: str
    bn: BatchNorm
    span: Span


@dataclass(frozen=True, slots=True)
class StagePart:
    """A ``then`` group of a stage: ``repeats`` blocks with their own settings, every one resolved."""

    repeats: int
    expand: float
    expand_from: int | None
    kernel: int
    act: str
    se: float
    se_of: str
    se_divisor: int | None
    se_inner: str | None
    se_gate: str
    skip: bool
    spans: dict[str, Span] = field(default_factory=dict, hash=False, compare=False)


@dataclass(frozen=True, slots=True)
class StagePlan:
    """One row of the stage table.

    ``repeats`` counts every block of the stage; ``parts`` are its ``then`` groups (the
    blocks at the end of the stage with their own settings), and the first
    ``repeats - sum(part.repeats)`` blocks have the stage's. The squeeze-excite is
    ``se`` of the block input (``se_of`` 'in') or of its expanded width ('mid'), rounded to
    a multiple of ``se_divisor`` when given; ``se_inner`` is its inner activation (None:
    the block's), ``se_gate`` its gate. ``expand_from``: the expansion's fixed input width
    (``e4 of c24``), None for the block's input. ``base_in`` and ``base_out`` are the
    baseline's channels (what ``mid_width scaled`` scales the expanded widths from).
    """

    index: int
    block: str
    kernel: int
    stride: int
    expand: float
    in_ch: int
    out_ch: int
    repeats: int
    se: float
    act: str
    skip: bool
    bn: BatchNorm            # the stage's own overrides; the network's fill the gaps
    span: Span
    spans: dict[str, Span] = field(default_factory=dict, hash=False, compare=False)
    se_of: str = "in"
    se_divisor: int | None = None
    se_inner: str | None = None
    se_gate: str = "sigmoid"
    expand_from: int | None = None
    parts: tuple[StagePart, ...] = ()
    base_in: int = 0
    base_out: int = 0

    def span_of(self, name: str) -> Span:
        """Where option ``name`` was written, or the whole stage line."""
        return self.spans.get(name, self.span)

    @property
    def group_repeats(self) -> tuple[int, ...]:
        """The blocks of each group: the stage line's, then each ``then`` group's."""
        rest = tuple(part.repeats for part in self.parts)
        return (self.repeats - sum(rest), *rest)

    def groups(self) -> list[StagePlan]:
        """The stage as runs of blocks with one setting each: the stage line's blocks, then each
        ``then`` group's, every one a stage row of its own ``repeats`` without parts."""
        first = replace(self, parts=(), repeats=self.group_repeats[0])
        out = [first]
        for part in self.parts:
            out.append(replace(
                first, repeats=part.repeats, expand=part.expand, expand_from=part.expand_from, kernel=part.kernel,
                act=part.act, se=part.se, se_of=part.se_of, se_divisor=part.se_divisor, se_inner=part.se_inner,
                se_gate=part.se_gate, skip=part.skip, spans={**self.spans, **part.spans}))
        return out


@dataclass(frozen=True, slots=True)
class Preprocessing:
    """How a member's input images are prepared (the spec's ``preprocess``, a preset's
    ``crop`` and ``test_resolution``); what timm's ``pretrained_cfg`` reports."""

    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    interpolation: str = "bicubic"
    crop: float = 0.875
    test_resolution: int | None = None  # None: the member's resolution


@dataclass(frozen=True, slots=True)
class Plan:
    """Everything the operators are expanded from, and how it was scaled."""

    name: str
    in_ch: int
    resolution: int
    classes: int
    stem: ConvPlan
    stages: tuple[StagePlan, ...]
    head: ConvPlan | None
    pool: str
    dropout: float
    drop_path: float
    policy: Scaling
    divisor: int
    bn: BatchNorm            # network-wide batch-norm settings (defaults, then the preset's)
    padding: str = "symmetric"
    width_mult: float = 1.0
    depth_mult: float = 1.0
    phi: float | None = None
    preset: str | None = None
    scaled: bool = False
    resolution_span: Span | None = None
    classifier_span: Span | None = None  # the 'linear' line
    inference: bool = False  # the eval-only network of the inference passes (batch norm folded)
    preprocessing: Preprocessing = Preprocessing()
    hidden: tuple[int, str] | None = None  # a hidden linear layer after pooling: (width, activation)
    hidden_span: Span | None = None
    blocks: tuple[BlockDef, ...] = ()  # the definitions of the user's block kinds its stages use

    def block_def(self, name: str) -> BlockDef | None:
        """The definition of a user's block kind, or None for a built-in one."""
        return next((b for b in self.blocks if b.name == name), None)

    @property
    def num_blocks(self) -> int:
        return sum(s.repeats for s in self.stages)

    @property
    def member(self) -> str:
        """Which member of the family this is, in words: 'preset b3', 'phi 3', 'width 1.2, depth 1.4'."""
        if self.preset:
            return f"preset {self.preset}"
        if self.phi is not None:
            return f"phi {self.phi:g}"
        return f"width {self.width_mult:g}, depth {self.depth_mult:g}"
