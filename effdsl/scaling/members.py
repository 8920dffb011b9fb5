"""Which member of the family to build: phi, a named preset, or explicit multipliers.

:func:`resolve_scale` turns the user's choice into a :class:`Scale` (width and depth
multipliers, resolution in pixels, dropout, drop-path rate, batch-norm overrides). The
three ways of choosing are mutually exclusive.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from effdsl.diagnostics import Diagnostic, EffdslError, Span, did_you_mean
from effdsl.scaling.rounding import compound_multipliers, round_resolution
from effdsl.language.spec import BatchNorm, Network


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
    crop: float | None = None            # a preset's preprocessing crop
    test_resolution: int | None = None   # a preset's test resolution


def resolve_scale(net: Network, *, phi: float | None = None, preset: str | None = None,
                  width: float | None = None, depth: float | None = None,
                  resolution: int | None = None) -> Scale:
    """The multipliers for one member of ``net``'s family.

    With nothing given this is the baseline (phi = 0). Mixing ``phi``, ``preset`` and the
    explicit ``width``/``depth``/``resolution`` is a usage error (E401).
    """
    explicit = any(v is not None for v in (width, depth, resolution))
    chosen = [name for name, given in (("--phi", phi is not None), ("--preset", preset is not None),
                                       ("--width/--depth/--resolution", explicit)) if given]
    if len(chosen) > 1:
        raise EffdslError(Diagnostic(
            "E401", f"{' and '.join(chosen)} cannot be used together",
            help="choose a member of the family one way: --phi F, --preset NAME, or --width W --depth D --resolution R",
        ))
    base_dropout = net.head.dropout if net.head.dropout is not None else net.defaults.dropout
    if preset is not None:
        entry = net.preset(preset)
        if entry is None:
            names = [p.name for p in net.presets]
            hint = did_you_mean(preset, names) if names else f"'{net.name}' defines no presets"
            if names and hint.startswith("expected"):  # nothing close: list what there is
                hint = f"'{net.name}' defines the presets " + ", ".join(names)
            raise EffdslError(Diagnostic("E104", f"unknown preset '{preset}'", None, hint))
        return Scale(
            width_mult=entry.width, depth_mult=entry.depth, resolution=entry.resolution,
            dropout=entry.dropout if entry.dropout is not None else base_dropout,
            drop_path=entry.drop_path if entry.drop_path is not None else net.defaults.drop_path,
            bn=entry.bn, preset=entry.name,
            resolution_span=entry.span_of("resolution"), resolution_source=f"preset '{entry.name}'",
            crop=entry.crop, test_resolution=entry.test_resolution,
        )
    if explicit:
        for flag, value in (("--width", width), ("--depth", depth), ("--resolution", resolution)):
            if value is not None and not (value > 0 and math.isfinite(value)):
                expected = "finite" if value > 0 else "greater than 0"
                raise EffdslError(Diagnostic("E402", f"{flag} must be {expected}, got {value:g}"))
        return Scale(
            width_mult=1.0 if width is None else width,
            depth_mult=1.0 if depth is None else depth,
            resolution=net.resolution if resolution is None else int(resolution),
            dropout=base_dropout, drop_path=net.defaults.drop_path,
            resolution_span=None if resolution is not None else net.span_of("resolution"),
            resolution_source="--resolution" if resolution is not None else "the input line",
        )
    phi = 0.0 if phi is None else phi
    if not -20 <= phi <= 20:
        raise EffdslError(Diagnostic("E402", f"--phi must be between -20 and 20, got {phi:g}"))
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
                 resolution_span=net.span_of("resolution"), resolution_source=source)
