"""The inference passes: the eval-only network of a compiled member.

In eval mode a batch norm is an affine map per channel with fixed numbers, dropout and
stochastic depth are the identity. So, for inference:

- ``fold_batch_norm``: every batch norm that follows a conv is folded into it; the conv
  gets a bias and names the batch norm it absorbed (``folded``), and the batch norm op
  goes. The weights are folded by the backend (``w' = w * g / sqrt(v + eps)``,
  ``b' = beta - m * g / sqrt(v + eps)``; Ioffe and Szegedy 2015 give the eval-mode map);
- ``drop_training_ops``: dropout and stochastic-depth ops go, and the plan says
  ``inference`` (the torch backend builds such a plan eval-only, with channels-last
  weights).

:func:`inference_graph` runs both on a compiled graph, then shape and cost inference
again, verifying after each pass, so the inference IR's dump and parameter count show
the folded convs with their biases.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from effdsl.diagnostics import InternalError
from effdsl.ir.graph import CompiledGraph, Op, OpGraph, evolve
from effdsl.passes.cost import count_cost
from effdsl.passes.shapes import infer_shapes
from effdsl.passes.verify import verify

_TRAINING_ONLY = ("dropout", "drop_path")


def _rewire(graph: OpGraph, plan_changes: dict[str, Any], skip: dict[str, str], changed: dict[str, Op]) -> OpGraph:
    """A copy without the ops in ``skip`` (each replaced by the node named there as an
    operand of its users), with the ops in ``changed`` replaced."""
    out = OpGraph(replace(graph.plan, **plan_changes), list(graph.warnings))

    def resolve(name: str) -> str:
        while name in skip:
            name = skip[name]
        return name

    for op in graph.ops():
        if op.name in skip:
            continue
        out.add(changed.get(op.name, op), *(resolve(src) for src in graph.operands(op.name)))
    return out


def fold_batch_norm(graph: OpGraph) -> OpGraph:
    """Every batch norm whose operand is a conv read only by it, folded into that conv."""
    skip: dict[str, str] = {}
    changed = {}
    for op in graph.ops():
        if op.kind != "bn":
            continue
        (src,) = graph.operands(op.name)
        conv = graph.op(src)
        if conv.kind not in ("conv", "dwconv") or len(graph.users(src)) != 1 or conv.bias:
            raise InternalError("fold_batch_norm", f"{op.name}: a batch norm must follow a conv without bias "
                                                   f"that nothing else reads, not {conv.kind} {src}")
        changed[src] = evolve(conv, bias=True, folded=op.name)
        skip[op.name] = src
    return _rewire(graph, {}, skip, changed)


def drop_training_ops(graph: OpGraph) -> OpGraph:
    """Without dropout and stochastic depth (the identity in eval mode); the plan becomes
    the inference plan, whose rates are zero."""
    skip = {op.name: graph.operands(op.name)[0] for op in graph.ops() if op.kind in _TRAINING_ONLY}
    return _rewire(graph, {"inference": True, "dropout": 0.0, "drop_path": 0.0}, skip, {})


def inference_graph(compiled: CompiledGraph) -> CompiledGraph:
    """The eval-only network of ``compiled``, its shapes and costs, verified after each pass."""
    if compiled.plan.inference:
        return compiled
    graph = fold_batch_norm(compiled.graph)
    verify(graph, "fold_batch_norm")
    graph = drop_training_ops(graph)
    verify(graph, "drop_training_ops")
    shapes = infer_shapes(graph)
    verify(graph, "infer_shapes", shapes)
    costs = count_cost(graph, shapes)
    verify(graph, "count_cost", shapes, costs)
    return CompiledGraph(graph, shapes, costs, list(compiled.warnings))
