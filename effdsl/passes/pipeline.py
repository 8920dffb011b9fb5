"""The pipeline: spec -> plan -> scaled plan -> operators -> shapes -> costs.

:func:`run_pipeline` runs the passes in order and calls the verifier after each one
that produces operators or facts about them, so a broken invariant names the pass that
broke it. Each pass is a function of its inputs:

- ``lower`` (:func:`~effdsl.passes.lower.plan_from_spec`): the baseline's stage plan;
- ``scale`` (:func:`~effdsl.passes.scale.scale_plan`): the member's stage plan;
- ``expand`` (:func:`~effdsl.passes.lower.expand`): the operators, once;
- ``infer_shapes`` (:func:`~effdsl.passes.shapes.infer_shapes`): every tensor's shape;
- ``count_cost`` (:func:`~effdsl.passes.cost.count_cost`): every operator's cost.
"""

from __future__ import annotations

from effdsl.ir.graph import CompiledGraph
from effdsl.language.spec import Network
from effdsl.passes.cost import count_cost
from effdsl.passes.lower import expand, plan_from_spec
from effdsl.passes.scale import scale_plan
from effdsl.passes.shapes import infer_shapes
from effdsl.passes.verify import verify
from effdsl.scaling.members import Scale


def run_pipeline(net: Network, target: Scale) -> CompiledGraph:
    """Compile one member of ``net``'s family, verifying after each pass."""
    plan = scale_plan(plan_from_spec(net), target)
    graph = expand(plan)
    verify(graph, "expand")
    shapes = infer_shapes(graph, target.resolution_source)
    verify(graph, "infer_shapes", shapes)
    costs = count_cost(graph, shapes)
    verify(graph, "count_cost", shapes, costs)
    return CompiledGraph(graph, shapes, costs, graph.warnings)
