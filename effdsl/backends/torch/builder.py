"""The PyTorch backend's builder: compiled IR graph -> a PyTorch module.

The graph is read back as a table of blocks (:func:`effdsl.blocks.table.read_table`,
which checks every row against the operators), and the network is the library's
``Network`` built from that table (:mod:`effdsl.backends.torch.modules`): ``model.stem``,
``model.stages[i][j]`` (block j of stage i: ``MBConv``, ``FusedMBConv``, ``ConvBlock``),
``model.head`` and ``model.classifier``, each a module with its own forward. The ``.py``
export builds the same class from the same table, so both have the same module names
(``stages.1.0.dw.conv``, the IR's operator paths) and the same code.

Weights are allocated once: modules are created on the ``meta`` device, given storage
(:func:`materialize`) and initialized as torchvision initializes EfficientNet (conv:
Kaiming normal, fan-out; batch norm: ones and zeros; linear: uniform in
``+-1/sqrt(out_features)``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from effdsl.backends.torch.layers import StochasticDepth, init_weights
from effdsl.backends.torch.modules import define_plugin, network_class
from effdsl.blocks.table import BlockTuple, ConvTuple, NetworkTable, pretrained_cfg, read_table
from effdsl.blocks.user import layers_of
from effdsl.diagnostics import Diagnostic, EffdslError
from effdsl.ir.graph import CompiledGraph
from effdsl.language.plugins import load_plugin
from effdsl.language.spec import ACTIVATIONS, BLOCK_OPS

__all__ = ["StochasticDepth", "activation", "build_module", "example_input", "network_args"]


def activation(name: str) -> nn.Module:
    """The torch module of an activation named in a spec (one table: the language's)."""
    module: nn.Module = getattr(nn, ACTIVATIONS[name])()
    return module


# blocks, stem, head, pool, classes, in_ch, dropout, drop_path
NetworkArgs = tuple[list[BlockTuple], ConvTuple, ConvTuple | None, str, int, int, float, float]


def network_args(table: NetworkTable) -> tuple[NetworkArgs, dict[str, Any]]:
    """The arguments of ``Network`` for a table (as the ``.py`` export writes them)."""
    args = (table.block_tuples(), table.stem_tuple(), table.head_tuple(), table.pool, table.classes, table.in_ch,
            table.dropout, table.drop_path)
    kwargs: dict[str, Any] = {"padding": table.padding, "pretrained_cfg": pretrained_cfg(table)}
    if table.hidden is not None:
        kwargs["hidden"] = table.hidden
    return args, kwargs


def build_module(graph: CompiledGraph, device: torch.device | str = "cpu", features_only: bool = False,
                 out_indices: tuple[int, ...] | None = None) -> nn.Module:
    """The PyTorch module of a compiled IR graph.

    ``device="meta"`` builds the module without allocating weights (for shape and FLOP
    checks of very large members of a family). ``features_only``: the backbone, whose
    forward returns one feature map per distinct reduction (``out_indices`` selects
    among them).
    """
    device = usable_device(device)
    table = read_table(graph)
    args, kwargs = network_args(table)
    if table.user_blocks:
        args = (_with_layers(args[0], table), *args[1:])
    if features_only:
        kwargs["out_indices"] = out_indices
    cls = network_class(table.class_name, features=features_only)
    with torch.device("meta"):
        module: nn.Module = cls(*args, **kwargs)
    if device.type != "meta":
        materialize(module, device)
        init_weights(module)
    return module


def _with_layers(blocks: list[BlockTuple], table: NetworkTable) -> list[BlockTuple]:
    """The rows with each user's block kind as (name, its table of layers), which the library's
    ``make_block`` makes a ``UserBlock`` of; the classes of the plug-in ops they use defined."""
    layers = {}
    for definition in table.user_blocks:
        layers[definition.name] = layers_of(definition)
        for op in definition.ops:
            plugin = load_plugin(op.kind, definition.span) if op.kind not in BLOCK_OPS else None
            if plugin is not None:
                define_plugin(plugin.class_name, plugin.torch_source)
    return [(row[0], (row[1], layers[row[1]]), *row[2:]) if row[1] in layers else row  # type: ignore[misc]
            for row in blocks]


def materialize(module: nn.Module, device: torch.device | str) -> nn.Module:
    """Give every parameter and buffer of a module built on ``meta`` uninitialized storage on
    ``device`` (``nn.Module.to_empty``'s job, without its per-tensor stride inference, which
    costs more than the allocation for a network of small tensors)."""
    for m in module.modules():
        for name, p in m._parameters.items():
            if p is not None:
                m._parameters[name] = nn.Parameter(torch.empty(p.shape, dtype=p.dtype, device=device),
                                                   p.requires_grad)
        for name, b in m._buffers.items():
            if b is not None:
                m._buffers[name] = torch.empty(b.shape, dtype=b.dtype, device=device)
    return module


def usable_device(device: object) -> torch.device:
    """``device`` as a torch device this machine has; E402 for a name torch does not know
    ('gpu') or a device that is not there ('cuda' without a GPU), before anything is built."""
    try:
        parsed = device if isinstance(device, torch.device) else torch.device(device)  # type: ignore[call-overload]
        torch.empty(0, device=parsed)
    except (RuntimeError, TypeError, ValueError, AssertionError) as exc:
        why = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EffdslError(Diagnostic("E402", f"device must be a device torch can use, got {device!r} ({why})",
                                     help="cpu, cuda, cuda:N, mps or meta, as this machine has them",
                                     arguments=("device",))) from None
    return parsed


def example_input(graph: CompiledGraph, batch: int = 1) -> torch.Tensor:
    """A random image batch of the network's input channels and resolution."""
    plan = graph.plan
    return torch.randn(batch, plan.in_ch, plan.resolution, plan.resolution)
