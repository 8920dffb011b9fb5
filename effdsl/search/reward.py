"""Targets and the MnasNet reward.

MnasNet (Tan et al., CVPR 2019, eq. 2) rewards a model m with quality ACC(m) and cost
COST(m) against a target T as ``ACC(m) * (COST(m) / T) ** w``:

- soft constraint (``mnasnet``): ``w = -0.07`` everywhere, so that a model twice as
  costly must be about 5% more accurate to rank the same (2 ** 0.07 = 1.0497);
  EfficientNet-B0 was found with this reward and FLOPs as the cost, T = 400M;
- hard constraint (``mnasnet-hard``): ``w = 0`` at or below the target, ``w = -1``
  above it, so that cost beyond the target is paid for in full.

Candidates costlier than ``limit`` times the target are rejected before any weight
exists (:func:`over_limit`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Literal

from effdsl.diagnostics import Diagnostic, EffdslError

RewardKind = Literal["mnasnet", "mnasnet-hard"]
TargetKind = Literal["macs", "params", "latency"]
DEFAULT_W = -0.07
DEFAULT_LIMIT = 2.0

_SUFFIX = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9}
_COUNT = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE]([+-]?[0-9]+))?\s*([kKmMgG]?)\s*$")


def parse_count(text: str, flag: str) -> int:
    """``20M`` -> 20,000,000; ``1.5G``, ``300k``, ``4e6`` and plain integers too (E607)."""
    match = _COUNT.match(text)
    if match is None:
        raise EffdslError(Diagnostic(
            "E607", f"{flag} expects a count like 20M, 300K or 1.5G, got '{text}'", None,
            "K, M and G mean thousands, millions and billions"))
    number, exponent, suffix = match.groups()
    value = float(number) * float(10 ** int(exponent or 0)) * _SUFFIX[suffix.lower()]
    if not math.isfinite(value) or value < 1:
        raise EffdslError(Diagnostic("E607", f"{flag} must be at least 1, got '{text}'"))
    return round(value)


def parse_ms(text: str, flag: str) -> float:
    """A latency in milliseconds: ``5``, ``2.5``, ``2.5ms``."""
    stripped = text.strip().removesuffix("ms").strip()
    try:
        value = float(stripped)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise EffdslError(Diagnostic("E607", f"{flag} expects milliseconds greater than 0, like 5 or 2.5, "
                                             f"got '{text}'"))
    return value


@dataclass(frozen=True)
class Target:
    """What the reward weighs against: MACs, parameters or milliseconds, and how."""

    kind: TargetKind
    value: float
    reward: RewardKind = "mnasnet"
    w: float = DEFAULT_W
    limit: float = DEFAULT_LIMIT  # reject candidates above limit x value

    @property
    def unit(self) -> str:
        return {"macs": "MACs", "params": "parameters", "latency": "ms"}[self.kind]

    def describe(self) -> str:
        shown = f"{self.value:g} ms" if self.kind == "latency" else f"{human(self.value)} {self.unit}"
        if self.reward == "mnasnet":
            rule = f"ACC x (cost / {shown})^{self.w:g}"
        else:
            rule = f"ACC at or below {shown}, ACC x (cost / {shown})^-1 above"
        return f"{rule}; rejected above {self.limit:g} x the target"

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "value": self.value, "reward": self.reward, "w": self.w, "limit": self.limit}


def make_target(macs: str | None, params: str | None, latency: str | None, reward: RewardKind = "mnasnet",
                w: float = DEFAULT_W, limit: float = DEFAULT_LIMIT) -> Target:
    """The one target among ``--target-macs``, ``--target-params`` and ``--target-latency`` (E607)."""
    given = [(flag, text) for flag, text in (("--target-macs", macs), ("--target-params", params),
                                             ("--target-latency", latency)) if text is not None]
    if len(given) != 1:
        what = "no target" if not given else " and ".join(flag for flag, _ in given)
        raise EffdslError(Diagnostic(
            "E607", f"a search needs one target, got {what}", None,
            "give one of --target-macs 20M, --target-params 1M or --target-latency 5 (ms, batch 1, this device)"))
    flag, text = given[0]
    if not math.isfinite(w) or w > 0:
        raise EffdslError(Diagnostic("E607", f"--w must be 0 or negative, got {w:g}", None,
                                     "MnasNet's soft constraint is -0.07"))
    if not math.isfinite(limit) or limit < 1:
        raise EffdslError(Diagnostic("E607", f"--limit must be at least 1 (a multiple of the target), got {limit:g}"))
    if flag == "--target-latency":
        return Target("latency", parse_ms(text, flag), reward, w, limit)
    kind: TargetKind = "macs" if flag == "--target-macs" else "params"
    return Target(kind, parse_count(text, flag), reward, w, limit)


def mnasnet_reward(quality: float, cost: float, target: float, w: float = DEFAULT_W, hard: bool = False) -> float:
    """``quality * (cost / target) ** w``; hard: ``w`` is 0 at or below the target and -1 above."""
    if hard:
        w = 0.0 if cost <= target else -1.0
    factor: float = (cost / target) ** w  # a float: cost and target are positive
    return quality * factor


def reward(target: Target, quality: float, cost: float) -> float:
    return mnasnet_reward(quality, cost, target.value, target.w, hard=target.reward == "mnasnet-hard")


def over_limit(target: Target, cost: float) -> bool:
    """Rejected without training: costlier than ``limit`` x the target."""
    return cost > target.limit * target.value


def human(value: float) -> str:
    """20000000 -> '20M', 1500 -> '1.5K', 7 -> '7'."""
    for unit, size in (("G", 10**9), ("M", 10**6), ("K", 10**3)):
        if abs(value) >= size:
            return f"{value / size:.3g}{unit}"
    return f"{value:.3g}"
