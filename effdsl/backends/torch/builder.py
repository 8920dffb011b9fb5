"""The PyTorch backend's builder: compiled IR graph -> a PyTorch module.

The module is a :class:`torch.fx.GraphModule` generated from the IR node by node, so it
computes exactly what the IR says, with one submodule per parametric or stateful
operator at the operator's path (``stages.1.0.dw.conv``). ``print(model.code)`` shows
the generated forward.

Weights are allocated once: modules are created on the ``meta`` device, materialized
with ``to_empty`` and initialized as torchvision initializes EfficientNet (conv:
Kaiming normal, fan-out; batch norm: ones and zeros; linear: uniform in
``+-1/sqrt(out_features)``).
"""

from __future__ import annotations

import operator

import torch
from torch import fx, nn

from effdsl.backends.torch.layers import Conv2dSame, StochasticDepth, init_weights
from effdsl.blocks import class_name
from effdsl.diagnostics import Diagnostic, EffdslError
from effdsl.ir.graph import CompiledGraph, Op
from effdsl.language.spec import ACTIVATIONS


def activation(name: str) -> nn.Module:
    """The torch module of an activation named in a spec (one table: the language's)."""
    module: nn.Module = getattr(nn, ACTIVATIONS[name])()
    return module


def _module(op: Op, device: torch.device | str) -> nn.Module:
    if op.kind in ("conv", "dwconv") and op.padding == "same" and op.stride > 1:
        return Conv2dSame(op.in_ch, op.out_ch, op.kernel, op.stride, groups=op.groups, bias=op.bias, device=device)
    if op.kind in ("conv", "dwconv"):
        return nn.Conv2d(op.in_ch, op.out_ch, op.kernel, op.stride, padding=(op.kernel - 1) // 2,
                         groups=op.groups, bias=op.bias, device=device)
    if op.kind == "bn":
        return nn.BatchNorm2d(op.out_ch, eps=op.eps, momentum=op.momentum, device=device)
    if op.kind in ("act", "gate") and op.act is not None:
        return activation(op.act)
    if op.kind == "pool":
        return nn.AdaptiveAvgPool2d(1) if op.pool == "avg" else nn.AdaptiveMaxPool2d(1)
    if op.kind == "dropout":
        return nn.Dropout(op.rate)
    if op.kind == "drop_path":
        return StochasticDepth(op.rate)
    if op.kind == "linear":
        return nn.Linear(op.in_ch, op.out_ch, bias=op.bias, device=device)
    raise KeyError(op.kind)


def _fx_graph(graph: CompiledGraph, features_only: bool = False) -> fx.Graph:
    g = fx.Graph()
    values: dict[str, fx.Node] = {}
    stage_out: dict[int, fx.Node] = {}
    num_stages = len(graph.plan.stages)
    node: fx.Node | None = None
    for op in graph.ops():
        args = [values[src] for src in graph.operands(op.name)]
        if op.kind == "input":
            node = g.placeholder("x")
        elif op.kind == "mul":
            node = g.call_function(operator.mul, tuple(args))
        elif op.kind == "add":
            node = g.call_function(operator.add, tuple(args))
        else:
            node = g.call_module(op.name, tuple(args))
            if op.kind == "pool" and op.flatten:
                node = g.call_function(torch.flatten, (node, 1))
        values[op.name] = node
        if 0 <= op.stage < num_stages:
            stage_out[op.stage] = node
    if features_only:
        g.output([stage_out[i] for i in sorted(stage_out)])
        for unused in [n for n in reversed(g.nodes) if n.op not in ("output", "placeholder")]:
            if not unused.users:  # the head: not part of a backbone
                g.erase_node(unused)
    else:
        g.output(node)
    return g


def _root(graph: CompiledGraph, device: torch.device | str) -> nn.Module:
    root = nn.Module()
    for op in graph.ops():
        if op.kind in ("input", "mul", "add"):
            continue
        module = _module(op, device)
        *path, leaf = op.name.split(".")
        parent = root
        for part in path:
            child = parent._modules.get(part)
            if child is None:
                child = nn.Module()
                parent.add_module(part, child)
            parent = child
        parent.add_module(leaf, module)
    return root


def build_module(graph: CompiledGraph, device: torch.device | str = "cpu",
                 features_only: bool = False) -> fx.GraphModule:
    """The PyTorch module of a compiled IR graph.

    ``device="meta"`` builds the module without allocating weights (for shape and
    FLOP checks of very large members of a family). ``features_only``: the forward
    returns the list of every stage's output instead of the logits.
    """
    device = usable_device(device)
    root = _root(graph, "meta")
    module = fx.GraphModule(root, _fx_graph(graph, features_only), class_name=class_name(graph.plan.name))
    if device.type != "meta":
        module = module.to_empty(device=device)
        init_weights(module)
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
