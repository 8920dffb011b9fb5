"""Load checkpoints saved from torchvision, timm or effdsl into a built module.

A checkpoint is a ``state_dict`` saved with ``torch.save`` (read with
``weights_only=True``) or a ``.safetensors`` file. Its origin is recognized from its
keys. torchvision's ``efficientnet_b*``, timm's ``efficientnet_b*`` / ``tf_efficientnet_b*``
and effdsl's own modules hold the same tensors in the same order, so tensors are paired
by position and each pair must agree in kind (weight, bias, running mean ...) and shape.
The first pair that does not is reported with the spec line of the layer it belongs to;
nothing is loaded then, unless a partial load is asked for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import networkx as nx
import torch
from torch import nn

from effdsl.diagnostics import Diagnostic, EffdslError

# A key that only a checkpoint of that origin has.
ORIGINS: dict[str, str] = {
    "features.0.0.weight": "torchvision",
    "conv_stem.weight": "timm",
    "stem.conv.weight": "effdsl",
}


@dataclass
class LoadReport:
    origin: str
    loaded: int
    skipped: list[str] = field(default_factory=list)


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint file (a state_dict, possibly under 'state_dict'/'model')."""
    path = Path(path)
    if not path.is_file():
        raise EffdslError(Diagnostic("E501", f"no such checkpoint file: '{path}'"))
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any unreadable file is the user's to fix, not a crash
        raise EffdslError(Diagnostic(
            "E501", f"cannot read checkpoint '{path}': {str(exc).splitlines()[0][:200]}",
            help="expected a state_dict saved with torch.save, or a .safetensors file",
        )) from None
    for wrapper in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise EffdslError(Diagnostic("E501", f"'{path}' does not hold a state_dict of tensors"))
    return state


def origin_of(keys: list[str]) -> str:
    for key, origin in ORIGINS.items():
        if key in keys:
            return origin
    shown = ", ".join(keys[:3]) or "no tensors"
    raise EffdslError(Diagnostic(
        "E502", f"cannot tell where this checkpoint comes from (first keys: {shown})",
        help="supported: torchvision efficientnet_b*, timm efficientnet_b* / tf_efficientnet_b*, effdsl",
    ))


def _kind(key: str) -> str:
    return key.rsplit(".", 1)[-1]


def _layer_span(graph: nx.DiGraph, key: str):
    node = key.rsplit(".", 1)[0]
    return graph.nodes[node]["op"].span if node in graph else None


def load_weights(module: nn.Module, path: str | Path, graph: nx.DiGraph, strict: bool = True) -> LoadReport:
    """Copy a checkpoint's tensors into ``module`` (built from ``graph``).

    ``strict``: every tensor must pair up; otherwise the first disagreement is an error
    (E503) and nothing is loaded. With ``strict=False`` the pairs that agree are loaded
    and the others are listed in the report.
    """
    theirs = read_state_dict(path)
    origin = origin_of(list(theirs))
    ours = module.state_dict()
    if origin == "effdsl":
        pairs = [(key, key if key in theirs else None) for key in ours]
    else:
        their_keys = list(theirs)
        pairs = [(key, their_keys[i] if i < len(their_keys) else None) for i, key in enumerate(ours)]
    accepted: dict[str, torch.Tensor] = {}
    skipped: list[str] = []
    for mine, other in pairs:
        problem = _disagreement(mine, other, ours, theirs)
        if problem is None:
            accepted[mine] = theirs[other]
            continue
        if strict:
            raise EffdslError(Diagnostic("E503", problem, _layer_span(graph, mine),
                                         "build the preset the checkpoint was trained as, or load partially"))
        skipped.append(mine)
    extra = len(theirs) - len(ours)
    if strict and extra > 0:
        key = list(theirs)[len(ours)]
        raise EffdslError(Diagnostic("E503", f"the checkpoint has {extra} more tensors than the network, "
                                             f"from '{key}' on", None))
    with torch.no_grad():
        for key, value in accepted.items():
            ours[key].copy_(value)
    return LoadReport(origin, len(accepted), skipped)


def _disagreement(mine: str, other: str | None, ours: dict, theirs: dict) -> str | None:
    expected = tuple(ours[mine].shape)
    if other is None:
        return f"the checkpoint has no tensor for layer '{mine}' {expected}"
    got = tuple(theirs[other].shape)
    if _kind(other) != _kind(mine):
        return f"checkpoint tensor '{other}' is a {_kind(other)}, but '{mine}' expects a {_kind(mine)}"
    if got != expected:
        return f"checkpoint tensor '{other}' has shape {got}, but '{mine}' expects {expected}"
    return None


def num_parameters(path: str | Path) -> int:
    """Trainable-tensor elements of a checkpoint (batch-norm statistics excluded)."""
    state = read_state_dict(path)
    stats = ("running_mean", "running_var", "num_batches_tracked")
    return sum(t.numel() for k, t in state.items() if _kind(k) not in stats)
