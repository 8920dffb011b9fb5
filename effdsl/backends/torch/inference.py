"""The inference module: a trained module's weights in the network of the inference IR.

:func:`effdsl.passes.inference.inference_graph` folds every batch norm into the conv
before it (the conv names it in ``folded``) and drops dropout and stochastic depth;
:func:`to_inference` builds that network and gives it the trained module's weights, the
folded convs computed in float64:

    scale = gamma / sqrt(running_var + eps)
    weight' = weight * scale (per output channel),  bias' = beta - running_mean * scale

The result is in eval mode, without gradients, with channels-last weights (an NCHW
input works as it is: the first conv switches to channels last, which is faster on
CPUs for the depthwise convs that dominate these networks).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from effdsl.backends.torch import modules
from effdsl.backends.torch.builder import build_module, materialize
from effdsl.diagnostics import InternalError
from effdsl.ir.graph import CompiledGraph


@torch.no_grad()
def folded_state_dict(trained: nn.Module, graph: CompiledGraph) -> dict[str, torch.Tensor]:
    """The tensors of the inference network ``graph`` from a module trained in its training network."""
    theirs = trained.state_dict()
    out: dict[str, torch.Tensor] = {}
    for op in graph.ops():
        if op.kind in ("ln", "plugin"):  # kept as they are (a user's block): every tensor of the module
            out.update({key: value for key, value in theirs.items() if key.startswith(op.name + ".")})
            continue
        if op.kind not in ("conv", "dwconv", "linear") or f"{op.name}.weight" not in theirs:
            continue  # not a layer with weights, or not in this module (a backbone has no head)
        if op.folded is None:
            for leaf in ("weight", "bias") if op.bias else ("weight",):
                out[f"{op.name}.{leaf}"] = theirs[f"{op.name}.{leaf}"]
            continue
        bn = trained.get_submodule(op.folded)
        if not isinstance(bn, nn.BatchNorm2d) or bn.running_mean is None or bn.running_var is None:
            raise InternalError("to_inference", f"{op.folded} is not a batch norm with running statistics")
        weight = theirs[f"{op.name}.weight"]
        scale = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)
        out[f"{op.name}.weight"] = (weight.double() * scale.view(-1, 1, 1, 1)).to(weight.dtype)
        out[f"{op.name}.bias"] = (bn.bias.double() - bn.running_mean.double() * scale).to(weight.dtype)
    return out


def to_inference(trained: nn.Module, graph: CompiledGraph) -> nn.Module:
    """The eval-only module of the inference IR ``graph``, with ``trained``'s weights folded
    (a backbone, ``features_only``, when ``trained`` is one)."""
    if not graph.plan.inference:
        raise InternalError("to_inference", "expected the graph of the inference passes")
    weight = next(trained.parameters())
    features = isinstance(trained, modules.Features)
    out_indices: tuple[int, ...] | None = None
    if features:
        # feature_info is a plain attribute; torch types every Module attribute as Tensor | Module
        out_indices = trained.feature_info.out_indices  # type: ignore[union-attr, assignment]
    module = build_module(graph, device="meta", features_only=features, out_indices=out_indices)
    module = materialize(module, weight.device).to(dtype=weight.dtype)
    module.load_state_dict(folded_state_dict(trained, graph), strict=True)
    # pretrained_cfg is a plain dict attribute; torch types every Module attribute as Tensor | Module
    cfg: dict[str, Any] = dict(getattr(trained, "pretrained_cfg", module.pretrained_cfg))  # type: ignore[arg-type]
    module.pretrained_cfg = cfg  # type: ignore[assignment]
    module.eval().requires_grad_(False)
    return module.to(memory_format=torch.channels_last)
