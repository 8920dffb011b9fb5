"""One definition per block kind: the registry is what lowering, the .py export, weight
import and pictures read, and a kind's operators stay inside the parts it declares."""

from __future__ import annotations

import ast

import pytest

import effdsl
from effdsl.blocks import REGISTRY, class_name, kind_of_parts
from effdsl.export import python_source
from effdsl.language.spec import ACTIVATIONS, BLOCK_TYPES

MIXED = """
network mixed {
  input 3 x 64
  classes 7
  defaults { se 0.25 }
  stem  conv k3 s2 c16
  stage fused_mbconv e1 k3 s1 c16 x2
  stage fused_mbconv e4 k3 s2 c24 x2
  stage mbconv e1 k3 s1 c24
  stage mbconv e4 k5 s2 c40 x2
  stage conv k3 s1 c40 x2 skip
  head  conv k1 c64
  pool avg
  linear
}
"""


def test_the_language_names_exactly_the_registered_kinds():
    assert tuple(REGISTRY) == BLOCK_TYPES


def test_every_kind_has_a_distinct_main_part_and_class():
    mains = [kind.main_part for kind in REGISTRY.values()]
    classes = [kind.class_name for kind in REGISTRY.values()]
    assert len(set(mains)) == len(mains) and len(set(classes)) == len(classes)
    for kind in REGISTRY.values():
        assert kind.main_part in kind.parts
        assert kind_of_parts({kind.main_part, "residual"}) is kind
        assert kind.class_name in kind.py_class and kind.py_make.startswith(kind.class_name + "(")


def test_lowered_blocks_keep_to_their_declared_parts():
    compiled = effdsl.compile_spec(MIXED)
    blocks: dict[int, set[str]] = {}
    for op in compiled.graph.ops():
        if op.block >= 0:
            blocks.setdefault(op.block, set()).add(op.part)
    kinds = [stage.block for stage in compiled.graph.plan.stages for _ in range(stage.repeats)]
    assert len(blocks) == len(kinds) == 2 + 2 + 1 + 2 + 2
    for index, kind in enumerate(kinds):
        assert REGISTRY[kind].main_part in blocks[index]
        assert blocks[index] <= REGISTRY[kind].parts
        assert kind_of_parts(blocks[index]) is REGISTRY[kind]


@pytest.mark.parametrize("name", ["head", "mbconv_net", "class", "conv_block", "squeeze_excite", "x-1"])
def test_built_module_and_export_share_one_class_name(name):
    compiled = effdsl.compile_spec(MIXED.replace("network mixed", f"network {name}"))
    module = compiled.build()
    tree = ast.parse(python_source(compiled.graph))
    exported = [n.name for n in tree.body if isinstance(n, ast.ClassDef)][-1]
    assert type(module).__name__ == exported == class_name(name)
    helpers = {n.name for n in tree.body if isinstance(n, ast.ClassDef)} - {exported}
    assert exported not in helpers


def test_one_activation_table_for_module_and_export():
    compiled = effdsl.compile_spec(MIXED.replace("defaults { se 0.25 }", "defaults { se 0.25; act hardswish }"))
    module = compiled.build()
    acts = {type(m).__name__ for name, m in module.named_modules() if name.endswith(".act")}
    assert acts == {ACTIVATIONS["hardswish"]}
    assert f'"hardswish": nn.{ACTIVATIONS["hardswish"]}' in python_source(compiled.graph)


def test_export_copies_the_one_init_weights():
    source = python_source(effdsl.compile_spec(MIXED).graph)
    tree = ast.parse(source)
    functions = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]
    assert functions.count("init_weights") == 1
    assert "kaiming_normal_" in source and source.count("kaiming_normal_") == 1
