"""The upper level of the IR: the stage plan a network's operators are expanded from.

A :class:`Plan` is the stage table of one member of a family: the baseline as lowered
from the spec (``scaled`` false), or the member after compound scaling. Every row keeps
the span of the spec line it came from.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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
class StagePlan:
    """One row of the stage table."""

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

    def span_of(self, name: str) -> Span:
        """Where option ``name`` was written, or the whole stage line."""
        return self.spans.get(name, self.span)


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
