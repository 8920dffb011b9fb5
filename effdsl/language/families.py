"""The built-in families: every model effdsl ships, by its reference implementation's own name.

A built-in spec (``specs/NAME.eff``) describes one family: a baseline and its presets.
This table names each member the way torchvision and timm do (``efficientnet_b3``,
``mnasnet0_5``, ``tf_efficientnetv2_s``) and says which spec and preset it is, so that
``effdsl compile efficientnet_b3`` and ``effdsl.build("mnasnet0_5")`` need no
``--preset``. A name that is itself a built-in spec is that spec's baseline, which is
also its reference model. Every entry is checked against its reference (params, MACs,
logits with the reference's weights) in ``tests/test_families.py``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Model:
    """One member of a built-in family under its reference model's name."""

    name: str            # the reference model's name: efficientnet_b3, mnasnet0_5
    spec: str            # the built-in spec that describes it (specs/<spec>.eff)
    preset: str | None   # the spec's preset, or None for the spec's baseline
    source: str          # where the reference model is: torchvision, timm, or both


@dataclass(frozen=True, slots=True)
class Family:
    name: str
    paper: str
    models: tuple[Model, ...]


def _family(name: str, paper: str, *models: tuple[str, str, str | None, str]) -> Family:
    return Family(name, paper, tuple(Model(*m) for m in models))


_TV_TIMM = "torchvision, timm"

FAMILIES: tuple[Family, ...] = (
    _family("efficientnet", "Tan & Le, ICML 2019",
            *((f"efficientnet_b{i}", "efficientnet_b0", f"b{i}", _TV_TIMM) for i in range(5)),
            # timm's b5..b7 differ: batch-norm eps 1e-5, not 1e-3 (docs/families.md)
            *((f"efficientnet_b{i}", "efficientnet_b0", f"b{i}", "torchvision") for i in range(5, 8)),
            ("efficientnet_b8", "efficientnet_b0", "b8", "timm")),
    _family("tf_efficientnet", "Tan & Le, ICML 2019; TensorFlow padding and batch norm",
            *((f"tf_efficientnet_b{i}", "tf_efficientnet_b0", f"b{i}", "timm") for i in range(9))),
    _family("efficientnet_lite", "TensorFlow EfficientNet-Lite",
            *((f"efficientnet_lite{i}", "efficientnet_lite0", f"lite{i}", "timm") for i in range(5))),
    _family("efficientnet_v2", "Tan & Le, ICML 2021",
            ("efficientnet_v2_s", "efficientnet_v2_s", None, "torchvision"),
            ("efficientnet_v2_m", "efficientnet_v2_m", None, "torchvision"),
            ("efficientnet_v2_l", "efficientnet_v2_l", None, "torchvision"),
            ("tf_efficientnetv2_s", "tf_efficientnetv2_s", None, "timm")),
    _family("efficientnet_edgetpu", "Gupta & Tan, Google AI blog 2019",
            ("efficientnet_es", "efficientnet_es", None, "timm"),
            ("efficientnet_em", "efficientnet_es", "em", "timm"),
            ("efficientnet_el", "efficientnet_es", "el", "timm")),
    _family("mnasnet", "Tan et al., CVPR 2019",
            *((f"mnasnet{w}", "mnasnet1_0", f"mnasnet{w}", "torchvision") for w in ("0_5", "0_75", "1_0", "1_3")),
            ("mnasnet_100", "mnasnet1_0", "mnasnet1_0", "timm")),
    _family("mobilenet_v2", "Sandler et al., CVPR 2018",
            ("mobilenet_v2", "mobilenet_v2", None, "torchvision"),
            *((f"mobilenetv2_{w}", "mobilenet_v2", f"mobilenetv2_{w}", "timm") for w in ("035", "050", "075")),
            ("mobilenetv2_100", "mobilenet_v2", "mobilenetv2_100", "timm"),
            ("mobilenetv2_140", "mobilenet_v2", "mobilenetv2_140", "timm")),
    _family("mobilenet_v3", "Howard et al., ICCV 2019",
            ("mobilenet_v3_large", "mobilenet_v3_large", None, "torchvision"),
            ("mobilenet_v3_small", "mobilenet_v3_small", None, "torchvision")),
)

MODELS: dict[str, Model] = {model.name: model for family in FAMILIES for model in family.models}


def family_of(name: str) -> Family | None:
    """The family a model name belongs to."""
    return next((family for family in FAMILIES if any(m.name == name for m in family.models)), None)
