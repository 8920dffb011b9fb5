"""Files shipped with effdsl: the grammar, the prelude (the built-in blocks) and the built-in specs.

In an installed wheel they live inside the package (``effdsl/grammars``,
``effdsl/specs``); in a source checkout they are the top-level ``grammars/`` and
``specs/`` folders. Both layouts are looked up, package first.
"""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path

_CHECKOUT = Path(__file__).resolve().parents[2]


def _folder(name: str) -> Path:
    packaged = resources.files("effdsl") / name
    if packaged.is_dir():
        return Path(str(packaged))
    return _CHECKOUT / name


@functools.lru_cache(maxsize=1)
def grammar_text() -> str:
    return (_folder("grammars") / "effdsl.lark").read_text(encoding="utf-8")


@functools.lru_cache(maxsize=1)
def prelude_text() -> str:
    """The built-in block kinds in the block language (``grammars/prelude.eff``)."""
    return (_folder("grammars") / "prelude.eff").read_text(encoding="utf-8")


def builtin_specs() -> dict[str, Path]:
    """Built-in spec names (file stem) and their paths."""
    folder = _folder("specs")
    return {p.stem: p for p in sorted(folder.glob("*.eff"))}
