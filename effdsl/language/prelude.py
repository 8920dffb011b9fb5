"""The prelude: the built-in block kinds (mbconv, fused_mbconv, conv) defined in the block
language (``grammars/prelude.eff``), read once per process.

These definitions are the single source of the built-in blocks' operators: a built-in
kind lowers by interpreting its definition (:func:`effdsl.blocks.user.lower`), exactly as
a block kind written in a spec does.
"""

from __future__ import annotations

import functools

from effdsl.diagnostics import Collector, EffdslError, InternalError
from effdsl.language.blockdefs import read_block_defs
from effdsl.language.parser import parse_file
from effdsl.language.resources import prelude_text
from effdsl.language.spec import BlockDef


@functools.lru_cache(maxsize=1)
def prelude() -> dict[str, BlockDef]:
    """The prelude's block definitions by name; a mistake in it is a bug of effdsl."""
    try:
        raw = parse_file(prelude_text())
        errors = Collector()
        definitions = read_block_defs(raw.blocks, errors, builtin=True, origin="<prelude>")
        errors.raise_if_any()
    except EffdslError as exc:
        raise InternalError("prelude", f"the prelude does not read: {exc}", what="module") from None
    return {definition.name: definition for definition in definitions}


def prelude_block(name: str) -> BlockDef:
    """The definition of the built-in block kind ``name``."""
    return prelude()[name]
