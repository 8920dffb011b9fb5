"""Which member of the family to build: phi, a named preset, or explicit multipliers.

A :class:`Member` is the user's choice, as given (``phi=3``, ``preset="b3"``, or
``width``/``depth``/``resolution``), with the overrides of the classifier, the input
channels and the regularization. :func:`resolve_member` checks it against a network and
returns the network with the overrides applied and the :class:`Scale` that selects the
member (width and depth multipliers, resolution in pixels, dropout, drop-path rate,
batch-norm overrides); :func:`resolve_scale` does the scale alone. The three ways of
choosing are mutually exclusive.

Mistakes in the choice are usage errors (E401, E402) that name the Python parameter
(``width must be greater than 0``) and list it in ``Diagnostic.arguments``, so that the
command line can speak of its flags instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from effdsl.diagnostics import Diagnostic, EffdslError, Span, did_you_mean
from effdsl.language.spec import BatchNorm, Network
from effdsl.scaling.rounding import compound_multipliers, round_resolution


@dataclass(frozen=True, slots=True)
class Scale:
    width_mult: float
    depth_mult: float
    resolution: int
    dropout: float
    drop_path: float
    bn: BatchNorm = BatchNorm()
    phi: float | None = None
    preset: str | None = None
    resolution_span: Span | None = None  # where the resolution was written; None for a flag
    resolution_source: str = "the input line"
    span: Span | None = None  # what chose the member: the preset's line, or the scaling block for phi
    crop: float | None = None            # a preset's preprocessing crop
    test_resolution: int | None = None   # a preset's test resolution


_MEMBER_ARGUMENTS = ("phi", "preset", "width", "depth", "resolution")  # the ways of choosing (E401)


@dataclass(frozen=True, slots=True)
class Member:
    """One member of a spec's family, as chosen: by ``phi``, by ``preset`` name, or by
    explicit ``width``/``depth``/``resolution`` (at most one way; none is the baseline),
    with optional overrides of ``num_classes``, ``in_chans``, ``drop_rate`` (dropout
    before the classifier) and ``drop_path_rate`` (stochastic depth)."""

    phi: float | None = None
    preset: str | None = None
    width: float | None = None
    depth: float | None = None
    resolution: int | None = None
    num_classes: int | None = None
    in_chans: int | None = None
    drop_rate: float | None = None
    drop_path_rate: float | None = None


def resolve_member(net: Network, member: Member) -> tuple[Network, Scale]:
    """``net`` with the member's overrides, and the scale that selects the member."""
    if member.num_classes is not None:
        if member.num_classes < 1:
            raise _out_of_range("num_classes", member.num_classes, "at least 1")
        net = net.model_copy(update={"classes": member.num_classes})
    if member.in_chans is not None:
        if member.in_chans < 1:
            raise _out_of_range("in_chans", member.in_chans, "at least 1")
        net = net.model_copy(update={"in_ch": member.in_chans})
    target = resolve_scale(net, phi=member.phi, preset=member.preset, width=member.width, depth=member.depth,
                           resolution=member.resolution)
    if member.drop_rate is not None:
        target = replace(target, dropout=_rate("drop_rate", member.drop_rate))
    if member.drop_path_rate is not None:
        target = replace(target, drop_path=_rate("drop_path_rate", member.drop_path_rate))
    return net, target


def _rate(name: str, rate: float) -> float:
    """``rate`` when it is a dropout or drop-path rate (at least 0, below 1); else E402."""
    if not 0 <= rate < 1:
        raise _out_of_range(name, rate, "at least 0 and below 1")
    return rate


def _out_of_range(name: str, value: object, expected: str) -> EffdslError:
    """E402 for the Python parameter ``name`` (the CLI shows its flag instead)."""
    return EffdslError(Diagnostic("E402", f"{name} must be {expected}, got {value}", arguments=(name,)))


def resolve_scale(net: Network, *, phi: float | None = None, preset: str | None = None,
                  width: float | None = None, depth: float | None = None,
                  resolution: int | None = None) -> Scale:
    """The multipliers for one member of ``net``'s family.

    With nothing given this is the baseline (phi = 0). Mixing ``phi``, ``preset`` and the
    explicit ``width``/``depth``/``resolution`` is a usage error (E401).
    """
    explicit = any(v is not None for v in (width, depth, resolution))
    chosen = [name for name, given in (("phi", phi is not None), ("preset", preset is not None),
                                       ("width/depth/resolution", explicit)) if given]
    if len(chosen) > 1:
        raise EffdslError(Diagnostic(
            "E401", f"{' and '.join(chosen)} cannot be used together",
            help="choose a member of the family one way: phi=F, preset=NAME, or width=W depth=D resolution=R",
            arguments=_MEMBER_ARGUMENTS,
        ))
    base_dropout = net.head.dropout if net.head.dropout is not None else net.defaults.dropout
    if preset is not None:
        return _preset_scale(net, preset, base_dropout)
    if explicit:
        return _explicit_scale(net, width, depth, resolution, base_dropout)
    return _phi_scale(net, 0.0 if phi is None else phi, base_dropout)


def _preset_scale(net: Network, preset: str, base_dropout: float) -> Scale:
    """The member that ``net``'s preset named ``preset`` defines (E104 when there is none)."""
    entry = net.preset(preset)
    if entry is None:
        names = [p.name for p in net.presets]
        hint = did_you_mean(preset, names) if names else f"'{net.name}' defines no presets"
        if names and (hint is None or hint.startswith("expected")):  # nothing close: list what there is
            hint = f"'{net.name}' defines the presets " + ", ".join(names)
        raise EffdslError(Diagnostic("E104", f"unknown preset '{preset}'", None, hint))
    return Scale(
        width_mult=entry.width, depth_mult=entry.depth, resolution=entry.resolution,
        dropout=entry.dropout if entry.dropout is not None else base_dropout,
        drop_path=entry.drop_path if entry.drop_path is not None else net.defaults.drop_path,
        bn=entry.bn, preset=entry.name,
        resolution_span=entry.span_of("resolution"), resolution_source=f"preset '{entry.name}'",
        span=entry.span_of("name"), crop=entry.crop, test_resolution=entry.test_resolution,
    )


def _explicit_scale(net: Network, width: float | None, depth: float | None, resolution: int | None,
                    base_dropout: float) -> Scale:
    """The member with the multipliers and resolution given (1.0 and the spec's elsewhere)."""
    for name, value in (("width", width), ("depth", depth), ("resolution", resolution)):
        if value is not None and not (value > 0 and math.isfinite(value)):
            raise _out_of_range(name, f"{value:g}", "finite" if value > 0 else "greater than 0")
    return Scale(
        width_mult=1.0 if width is None else width,
        depth_mult=1.0 if depth is None else depth,
        resolution=net.resolution if resolution is None else int(resolution),
        dropout=base_dropout, drop_path=net.defaults.drop_path,
        resolution_span=None if resolution is not None else net.span_of("resolution"),
        resolution_source="the resolution given" if resolution is not None else "the input line",
    )


def _phi_scale(net: Network, phi: float, base_dropout: float) -> Scale:
    """The member at ``phi`` by the spec's compound-scaling coefficients and rounding."""
    if not -20 <= phi <= 20:
        raise _out_of_range("phi", f"{phi:g}", "between -20 and 20")
    policy = net.scaling
    try:
        d, w, r = compound_multipliers(phi, policy.alpha, policy.beta, policy.gamma)
        res = round_resolution(net.resolution, r, policy.resolution_rounding, policy.resolution_multiple)
    except OverflowError:  # alpha, beta or gamma ** phi, or the resolution, beyond any float
        raise EffdslError(Diagnostic(
            "E302", f"phi {phi:g} scales '{net.name}' beyond any usable size "
            f"(alpha {policy.alpha:g}, beta {policy.beta:g}, gamma {policy.gamma:g})",
            policy.span, "use a smaller phi or smaller coefficients",
        )) from None
    source = "the input line" if phi == 0 else f"the input line x gamma^{phi:g}"
    return Scale(width_mult=w, depth_mult=d, resolution=res, dropout=base_dropout,
                 drop_path=net.defaults.drop_path, phi=phi,
                 resolution_span=net.span_of("resolution"), resolution_source=source, span=policy.span)
