"""effdsl's built-in networks under timm's model names (timm is an optional dependency).

    import timm
    import effdsl.hub

    effdsl.hub.register_timm_models()
    model = timm.create_model("effdsl_efficientnet_b3", num_classes=10)

:func:`register_timm_models` adds one timm entry point per preset of every built-in
spec (``effdsl_efficientnet_b0`` ... ``effdsl_efficientnet_b7``,
``effdsl_tf_efficientnet_b0`` ...; a spec without presets gets ``effdsl_SPEC``). The
entry points take timm's arguments (``num_classes``, ``in_chans``, ``drop_rate``,
``drop_path_rate``, ``features_only``, ``out_indices``) and return effdsl's module, with
its ``pretrained_cfg``. effdsl ships no trained weights: ``pretrained=True`` needs a
checkpoint file, given as timm gives local files,
``pretrained_cfg_overlay=dict(file=PATH)`` (a torchvision, timm or effdsl checkpoint).

Nothing here imports timm or torch until :func:`register_timm_models` is called.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from effdsl.api import build, parse_spec
from effdsl.language.resources import builtin_specs

if TYPE_CHECKING:
    from torch import nn

PREFIX = "effdsl_"
_OPTIONS = ("num_classes", "in_chans", "drop_rate", "drop_path_rate", "features_only", "out_indices", "device")
# What timm.create_model passes to every entry point, whatever the model.
_TIMM_ARGUMENTS = ("pretrained_cfg", "cache_dir")
_registered: set[str] = set()


def model_names() -> dict[str, tuple[str, str | None]]:
    """timm model name -> (built-in spec, preset or None)."""
    names: dict[str, tuple[str, str | None]] = {}
    for spec in builtin_specs():
        presets = [preset.name for preset in parse_spec(spec).presets]
        if not presets:
            names[PREFIX + spec] = (spec, None)
        for preset in presets:
            # efficientnet_b0's preset b3 is efficientnet_b3: the family's name with the member's
            family = spec.rsplit("_", 1)[0] if "_" in spec and spec.rsplit("_", 1)[1] in presets else spec
            names[f"{PREFIX}{family}_{preset}"] = (spec, preset)
    return names


def _entry_point(name: str, spec: str, preset: str | None) -> Callable[..., Any]:
    def create(pretrained: bool = False, pretrained_cfg_overlay: dict[str, Any] | None = None,
               **kwargs: Any) -> nn.Module:
        unknown = sorted(set(kwargs) - set(_OPTIONS) - set(_TIMM_ARGUMENTS) - {"dtype"})
        if unknown:
            raise TypeError(f"{name} does not take {', '.join(unknown)}; it takes {', '.join(_OPTIONS)}")
        weights = (pretrained_cfg_overlay or {}).get("file")
        if pretrained and weights is None:
            raise ValueError(f"effdsl ships no trained weights for {name}: give a checkpoint with "
                             "pretrained_cfg_overlay=dict(file=PATH) (torchvision, timm or effdsl)")
        options = {key: kwargs[key] for key in _OPTIONS if key in kwargs}
        model = build(spec, preset=preset, weights=weights if pretrained else None, **options)
        if "dtype" in kwargs:
            model = model.to(dtype=kwargs["dtype"])
        # a plain dict attribute, which torch's typing of Module attributes (Tensor | Module) cannot express
        cfg: dict[str, Any] = model.pretrained_cfg  # type: ignore[assignment]
        cfg["architecture"] = name
        return model

    create.__name__ = create.__qualname__ = name
    create.__module__ = __name__
    create.__doc__ = f"effdsl's {spec}" + (f", preset {preset}" if preset else "") + " (see effdsl.hub)."
    return create


def register_timm_models() -> list[str]:
    """Register every built-in member with ``timm.create_model``; returns the names."""
    from timm.models import register_model

    module = sys.modules[__name__]
    registered = []
    for name, (spec, preset) in model_names().items():
        registered.append(name)
        if name in _registered:
            continue
        create = _entry_point(name, spec, preset)
        setattr(module, name, create)  # timm looks entry points up in their module
        register_model(create)
        _registered.add(name)
    return registered
