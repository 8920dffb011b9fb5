"""Hypothesis strategies for valid spec ASTs (:class:`effdsl.language.spec.Network`).

Tests print a generated AST with :func:`effdsl.language.format.format_spec` and run the whole
pipeline on the text, so spans are a dummy value here. Every network drawn is one that
``analyze`` accepts: channel counts are multiples of the divisor (except a fixed-width
stem or head), conv stages carry no expansion and no squeeze-excite, the total stride
is at most 32 and the base resolution is a multiple of it and of the resolution multiple.

The size bounds are keyword arguments so that tests that run the network (forward
pass, FLOP counting) can draw smaller ones.
"""

from __future__ import annotations

import math
import string

from hypothesis import strategies as st

from effdsl.diagnostics import Span
from effdsl.language.spec import (
    ACTIVATIONS,
    BLOCK_TYPES,
    POOLS,
    ROUNDING_MODES,
    BatchNorm,
    Block,
    BlockDef,
    BlockPart,
    Defaults,
    Head,
    Hidden,
    Network,
    OpLine,
    Preset,
    Scaling,
    SqueezeExcite,
)

SPAN = Span(1, 1, 1, 2)
MAX_TOTAL_STRIDE = 32

_NAME_START = string.ascii_letters + "_"
_NAME_REST = string.ascii_letters + string.digits + "_.+-"

KERNELS = (1, 3, 5, 7)
EXPANSIONS = (1.0, 2.0, 3.0, 4.0, 4.5, 5.0, 6.0)
SE_RATIOS = (0.0, 0.25, 0.5)


def names() -> st.SearchStrategy[str]:
    """Words the grammar reads as a name (``WORD``)."""
    return st.builds(lambda a, b: a + b, st.sampled_from(_NAME_START),
                     st.text(alphabet=_NAME_REST, max_size=10))


def rates(high: float = 0.5) -> st.SearchStrategy[float]:
    """Dropout / drop-path rates: round values and arbitrary floats (round-trip of the text)."""
    return st.one_of(st.sampled_from((0.0, 0.1, 0.2, 0.3)),
                     st.floats(0.0, high, allow_nan=False, allow_infinity=False))


def eps_values() -> st.SearchStrategy[float]:
    return st.one_of(st.sampled_from((1e-5, 1e-3)), st.floats(1e-6, 1e-2))


def momenta() -> st.SearchStrategy[float]:
    return st.one_of(st.sampled_from((0.1, 0.01)), st.floats(0.0, 1.0))


def batch_norms(full: bool = False) -> st.SearchStrategy[BatchNorm]:
    """A block's overrides (either may be missing), or fully set (``full``, the defaults')."""
    if full:
        return st.builds(BatchNorm, eps=eps_values(), momentum=momenta())
    return st.one_of(
        st.just(BatchNorm()),
        st.builds(BatchNorm, eps=st.none() | eps_values(), momentum=st.none() | momenta()),
    )


def coefficients() -> st.SearchStrategy[float]:
    # 1.25 and 1.5 at whole phi give exact halves (3 x 1.5 = 4.5) for the half_* modes.
    return st.one_of(st.sampled_from((1.0, 1.1, 1.15, 1.2, 1.25, 1.5)), st.floats(1.0, 1.5))


def activations() -> st.SearchStrategy[str | None]:
    """A block's activation override (None: the default applies)."""
    return st.none() | st.sampled_from(tuple(ACTIVATIONS))


def _strides(draw, count: int, budget: int, p_two: st.SearchStrategy[bool]) -> list[int]:
    """``count`` strides of 1 or 2 whose product stays within ``budget``."""
    out = []
    for _ in range(count):
        if budget >= 2 and draw(p_two):
            out.append(2)
            budget //= 2
        else:
            out.append(1)
    return out


def se_shapes() -> st.SearchStrategy[SqueezeExcite]:
    """How a squeeze-excite is shaped, where given (None: the default's, or the language's)."""
    return st.builds(SqueezeExcite, of=st.sampled_from((None, "in", "mid")),
                     divisor=st.sampled_from((None, 4, 8)), inner=activations(),
                     gate=st.sampled_from((None, "sigmoid", "hardsigmoid")))


@st.composite
def parts(draw, expansions: list[float], max_repeats: int) -> BlockPart:
    """A 'then' group of a stage: what its blocks change."""
    return BlockPart(
        span=SPAN, expand=draw(st.none() | st.sampled_from(expansions)),
        kernel=draw(st.none() | st.sampled_from(KERNELS)), repeats=draw(st.integers(1, max_repeats)),
        se=(se := draw(st.none() | st.sampled_from(SE_RATIOS))),
        se_shape=SqueezeExcite() if se is None else draw(se_shapes()), act=draw(activations()),
        skip=draw(st.sampled_from((None, True, False))))


@st.composite
def networks(draw, *, max_stages: int = 5, max_repeats: int = 4, max_units: int = 8,
             max_resolution: int = 96, max_expand: float = 6.0, presets: bool = True) -> Network:
    """A small valid network AST.

    ``max_units``: channels are ``divisor * 1..max_units``; ``max_resolution``: the base
    resolution is lcm(total stride, resolution multiple) times 1..3, at most this (but
    at least that lcm).
    """
    divisor = draw(st.sampled_from((8, 4)))
    n_stages = draw(st.integers(1, max_stages))
    has_head_conv = draw(st.booleans())

    # Strides: stem first, then stages, then (rarely) the head conv; total <= 32.
    two = st.booleans()
    stem_stride, *stage_strides = _strides(draw, 1 + n_stages, MAX_TOTAL_STRIDE, two)
    used = stem_stride * math.prod(stage_strides)
    head_stride = 1
    if has_head_conv and MAX_TOTAL_STRIDE // used >= 2 and draw(st.integers(0, 4)) == 0:
        head_stride = 2
    total_stride = used * head_stride

    # Scaling policy.
    fixed_width = draw(st.sampled_from(((), ("stem",), ("head",), ("stem", "head"), ("head", "stem"))))
    fixed_depth = tuple(sorted(draw(st.sets(st.integers(0, n_stages - 1), max_size=n_stages))))
    resolution_multiple = draw(st.sampled_from((1, 2, 4, 8)))
    scaling = Scaling(
        span=SPAN,
        alpha=draw(coefficients()),
        beta=draw(coefficients()),
        gamma=draw(coefficients()),
        divisor=divisor,
        min_ch=draw(st.sampled_from((None, divisor))),
        guard=draw(st.sampled_from((0.9, 0.9, 0.9, 0.0, 0.5, 1.0))),
        depth_rounding=draw(st.sampled_from(ROUNDING_MODES)),
        resolution_rounding=draw(st.sampled_from(ROUNDING_MODES)),
        resolution_multiple=resolution_multiple,
        fixed_width=fixed_width,
        fixed_depth=fixed_depth,
        head_min_width=draw(st.sampled_from((None, None, 1.0))),
        mid_scaled=draw(st.booleans()),
    )

    # A multiple of the total stride and of the resolution multiple (analyze's rule: the
    # baseline must not move at phi = 0), 1..3 times that, at most max_resolution.
    unit = math.lcm(total_stride, resolution_multiple)
    resolution = unit * draw(st.integers(1, max(1, min(3, max_resolution // unit))))

    defaults = Defaults(
        span=SPAN,
        act=draw(st.sampled_from(tuple(ACTIVATIONS))),
        se=draw(st.sampled_from(SE_RATIOS)),
        se_shape=draw(se_shapes()),
        bn=draw(batch_norms(full=True)),
        drop_path=draw(rates()),
        dropout=draw(rates()),
    )

    def channels(fixed: bool) -> int:
        if fixed and draw(st.booleans()):
            return draw(st.integers(1, divisor * max_units))  # a fixed width need not be a multiple
        return divisor * draw(st.integers(1, max_units))

    stem = Block(
        span=SPAN, role="stem", block="conv", kernel=draw(st.sampled_from(KERNELS)), stride=stem_stride,
        out_ch=channels("stem" in fixed_width), act=draw(activations()), bn=draw(batch_norms()),
    )

    expansions = [e for e in EXPANSIONS if e <= max_expand]
    stages = []
    for stride in stage_strides:
        kind = draw(st.sampled_from(BLOCK_TYPES))
        conv = kind == "conv"
        stages.append(Block(
            span=SPAN, role="stage", block=kind, kernel=draw(st.sampled_from(KERNELS)), stride=stride,
            expand=1.0 if conv else draw(st.sampled_from(expansions)),
            out_ch=channels(False),
            repeats=draw(st.integers(1, max_repeats)),
            se=(se := None if conv else draw(st.none() | st.sampled_from(SE_RATIOS))),
            se_shape=SqueezeExcite() if se is None else draw(se_shapes()),  # the words follow a ratio
            expand_from=None if conv else draw(st.none() | st.just(divisor * draw(st.integers(1, max_units)))),
            act=draw(activations()),
            skip=draw(st.sampled_from((None, True, False))),
            bn=draw(batch_norms()),
            parts=() if conv else tuple(draw(st.lists(parts(expansions, max_repeats), max_size=2))),
        ))

    head_conv = None
    if has_head_conv:
        head_conv = Block(
            span=SPAN, role="head", block="conv", kernel=draw(st.sampled_from(KERNELS)), stride=head_stride,
            out_ch=channels("head" in fixed_width), act=draw(activations()), bn=draw(batch_norms()),
        )
    hidden = None
    if draw(st.integers(0, 3)) == 0:
        hidden = Hidden(span=SPAN, out_ch=channels("head" in fixed_width), act=draw(activations()))
    head = Head(span=SPAN, conv=head_conv, pool=draw(st.sampled_from(POOLS)),
                dropout=draw(st.none() | rates()), hidden=hidden, linear=True)

    preset_nodes: tuple[Preset, ...] = ()
    if presets:
        preset_names = draw(st.lists(names(), max_size=2, unique=True))
        preset_nodes = tuple(
            Preset(
                span=SPAN, name=name,
                width=draw(st.floats(0.25, 3.0)), depth=draw(st.floats(0.25, 3.0)),
                resolution=draw(st.integers(1, 600)),
                dropout=draw(st.none() | rates(0.9)), drop_path=draw(st.none() | rates(0.9)),
                bn=draw(batch_norms()),
            )
            for name in preset_names
        )

    return Network(
        span=SPAN,
        name=draw(names()),
        in_ch=draw(st.integers(1, 4)),
        resolution=resolution,
        classes=draw(st.integers(1, 20)),
        scaling=scaling,
        defaults=defaults,
        presets=preset_nodes,
        stem=stem,
        stages=tuple(stages),
        head=head,
    )


def small_networks() -> st.SearchStrategy[Network]:
    """Networks small enough to run on a CPU (forward pass) at phi up to 4."""
    return networks(max_stages=4, max_repeats=3, max_units=6, max_resolution=64, presets=False)


PHI_MIN, PHI_MAX = -1.0, 4.0


def phis() -> st.SearchStrategy[float]:
    """Compound coefficients: round values and arbitrary floats in [-1, 4]."""
    return st.one_of(st.sampled_from((0.0, 1.0, 2.0, 3.0, PHI_MIN, PHI_MAX, 0.5)),
                     st.floats(PHI_MIN, PHI_MAX, allow_nan=False, allow_infinity=False))


@st.composite
def phi_pairs(draw) -> tuple[float, float]:
    """Two compound coefficients ``phi1 < phi2`` in [-1, 4]."""
    a, b = sorted((draw(phis()), draw(phis())))
    if a == b:
        if b < PHI_MAX:
            b = draw(st.floats(b, PHI_MAX, exclude_min=True))
        else:
            a = draw(st.floats(PHI_MIN, a, exclude_max=True))
    return a, b


# ---------------------------------------------------------------------------- user-defined blocks

USER_BLOCK_NAMES = ("my_block", "convnext", "ghost_b", "b2")


def _ops(draw, plugin: bool) -> list[tuple[str, dict]]:
    """(kind, fields) of a block definition that analyze accepts, ending at the width 'out'."""
    ops: list[tuple[str, dict]] = []

    def conv_like(to: str, **fields) -> None:
        """A conv (or the plug-in op) to ``to``, then maybe a batch norm and an activation."""
        if plugin and not fields and draw(st.booleans()):
            ops.append(("grouped_pw", {"options": (("groups", 1), ("to", to))}))
        else:
            bias = draw(st.booleans()) and draw(st.booleans())
            ops.append(("conv", {"to": to, "bias": bias, **fields}))
            if not bias and draw(st.booleans()):
                ops.append(("bn", {}))
        if draw(st.booleans()):
            ops.append(("act", {"act": draw(st.none() | st.sampled_from(tuple(ACTIVATIONS)))}))

    width = "in"
    if draw(st.booleans()):
        conv_like("mid")
        width = "mid"
    kernel = draw(st.sampled_from(("k", 1, 3)))
    if draw(st.booleans()):
        ops.append(("dwconv", {"kernel": kernel, "stride": "s"}))
        if draw(st.booleans()):
            ops.append(("bn", {}))
    else:
        width = draw(st.sampled_from(("mid", "out")))
        conv_like(width, kernel=kernel, stride="s")
    if draw(st.booleans()):
        ops.append(("ln", {"eps": draw(st.sampled_from((None, 1e-5)))}))
    if draw(st.booleans()):
        ops.append(("se", {}))
    if width != "out" or draw(st.booleans()):
        conv_like("out")
    if draw(st.booleans()):
        ops.append(("residual", {}))
    return ops


@st.composite
def block_defs(draw, plugin: bool = False) -> BlockDef:
    """A block definition: an optional expansion to ``mid``, one op with the stage's stride,
    optional layer norm and squeeze-excite, a conv to ``out``, an optional residual; with
    ``plugin``, some convs are the example plug-in's ``grouped_pw``."""
    ops = _ops(draw, plugin)
    # Sometimes the leading expansion (an op to mid and its bn and act) is a group, as in the
    # prelude's mbconv: 'expand: ...', or 'expand if mid != in: ...' (left out for e1).
    grouped = 0
    if ops[0][1].get("to") == "mid" and draw(st.booleans()):
        grouped = 1 + next((i for i, (kind, _) in enumerate(ops[1:]) if kind not in ("bn", "act")), len(ops) - 1)
    when = draw(st.sampled_from((None, ("mid", "!=", "in")))) if grouped else None

    def word(index: int, kind: str) -> str:
        return "conv" if index < grouped and kind == "dwconv" else kind

    counts: dict[tuple[bool, str], int] = {}
    for index, (kind, _) in enumerate(ops):
        key = (index < grouped, word(index, kind))
        counts[key] = counts.get(key, 0) + 1
    seen: dict[tuple[bool, str], int] = {}
    lines = []
    for index, (kind, fields) in enumerate(ops):
        key = (index < grouped, word(index, kind))
        seen[key] = seen.get(key, 0) + 1
        name = key[1] if counts[key] == 1 else f"{key[1]}{seen[key]}"
        if index < grouped:
            lines.append(OpLine(span=SPAN, kind=kind, name=f"expand.{name}", group="expand", when=when, **fields))
        else:
            lines.append(OpLine(span=SPAN, kind=kind, name=name, **fields))
    return BlockDef(span=SPAN, name=draw(st.sampled_from(USER_BLOCK_NAMES)), ops=tuple(lines))


@st.composite
def user_block_networks(draw, plugin: bool = False) -> Network:
    """A small network whose stages are partly of a block kind it defines."""
    net = draw(small_networks())
    definition = draw(block_defs(plugin))
    stages = []
    for stage in net.stages:
        if draw(st.booleans()):
            se = draw(st.none() | st.sampled_from(SE_RATIOS)) if definition.has("se") else None
            stage = stage.model_copy(update={
                "block": definition.name,
                "expand": draw(st.sampled_from(EXPANSIONS[:4])) if definition.uses("mid") else 1.0,
                "se": se, "se_shape": stage.se_shape if se is not None else SqueezeExcite(),
                "expand_from": None, "parts": (),  # the expansion's words and 'then' belong to built-in blocks
                "skip": draw(st.sampled_from((None, True, False))) if definition.has("residual") else None,
            })
        stages.append(stage)
    return net.model_copy(update={"stages": tuple(stages), "blocks": (definition,)})
