"""Block kinds, one module each, and the registry that the passes, the torch modules, the
exports, the pictures and weight import read them from; the torch class library
(:mod:`effdsl.blocks.library`) and the table of blocks that both the torch backend and the
``.py`` export build networks from (:mod:`effdsl.blocks.table`).

Adding a built-in block kind: its definition in the prelude (``grammars/prelude.eff``, the
single source of its IR operators), a module here defining a
:class:`~effdsl.blocks.base.BlockKind` (its parts, the source of its torch class and how a
table row makes one), its entry in :data:`REGISTRY`, the name in the language's table
(:data:`effdsl.language.spec.BLOCK_TYPES`), tests and docs.

May import diagnostics, language, scaling and ir.
"""

from __future__ import annotations

import functools
import keyword
from collections.abc import Callable

from effdsl.blocks import conv, fused_mbconv, mbconv, user
from effdsl.blocks.base import BlockArgs, BlockKind, Builder, ConvRow
from effdsl.ir.plan import Plan

REGISTRY: dict[str, BlockKind] = {kind.name: kind for kind in (mbconv.BLOCK, fused_mbconv.BLOCK, conv.BLOCK)}

# Classes of the torch library besides the blocks' own (see effdsl.blocks.library): a network
# class must not take their names.
HELPER_CLASSES = frozenset({"ConvBNAct", "SqueezeExcite", "StochasticDepth", "Conv2dSame", "Head", "FeatureInfo",
                            "Network", "Features", "UserBlock", "LayerNorm2d"})


def lower_of(plan: Plan, name: str) -> Callable[[Builder, str, BlockArgs], str]:
    """How a block of kind ``name`` lowers: a built-in kind's ``lower``, or the user's
    definition in ``plan`` through :func:`effdsl.blocks.user.lower`."""
    definition = plan.block_def(name)
    if definition is None:
        return REGISTRY[name].lower
    return functools.partial(user.lower, definition)


def kind_of_parts(parts: set[str] | frozenset[str]) -> BlockKind | None:
    """The block kind whose main part is among ``parts`` (one block's operator parts)."""
    found = [kind for kind in REGISTRY.values() if kind.main_part in parts]
    return found[0] if len(found) == 1 else None


def class_name(name: str) -> str:
    """The network class's name: the spec name in CamelCase (``efficientnet_b0`` -> ``EfficientnetB0``).

    Used by the built module and the ``.py`` export alike; a name that is a keyword or
    the name of one of the library's own classes gets a ``Net`` suffix, and so does a name
    ending in ``Features`` (the suffix of a network's backbone class, ``EfficientnetB0Features``).
    """
    cleaned = "".join(part.capitalize() for part in name.replace("-", "_").split("_") if part)
    if not cleaned.isidentifier():
        return "EffdslNetwork"
    reserved = HELPER_CLASSES | {kind.class_name for kind in REGISTRY.values()}
    if keyword.iskeyword(cleaned) or cleaned in reserved or cleaned.endswith("Features"):
        return cleaned + "Net"
    return cleaned


__all__ = ["REGISTRY", "BlockArgs", "BlockKind", "Builder", "ConvRow", "class_name", "kind_of_parts", "lower_of"]
