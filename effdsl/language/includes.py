"""``include "file.eff"``: the block definitions of other files (part of stage 2).

An include names a file relative to the folder of the file that includes it (source text
given as a string: the current folder). Included files hold block definitions and may
include others; a network in an included file is an error, as is:

- a path that leads out of the including file's folder (E123), unless the caller allows it
  (``allow_outside``: the CLI's ``--allow-include-outside``, the API's
  ``allow_include_outside=True``);
- a cycle (E122, naming the files around it);
- a missing or unreadable file, more than :data:`MAX_INCLUDE_DEPTH` levels,
  more than :data:`MAX_INCLUDES` files, or more than :data:`MAX_INCLUDE_CHARS` characters
  in all (E124).

A file included twice along different paths is read once. A mistake inside an included
file is reported against that file's text.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from effdsl.diagnostics import Collector, Diagnostic, EffdslError
from effdsl.language.blockdefs import read_block_defs
from effdsl.language.parser import MAX_SOURCE_CHARS, RawInclude, parse_file
from effdsl.language.source import decode, file_kind, read_spec_file
from effdsl.language.spec import BlockDef, Include

MAX_INCLUDE_DEPTH = 8
MAX_INCLUDES = 64
MAX_INCLUDE_CHARS = 4 * MAX_SOURCE_CHARS


@dataclass
class _State:
    allow_outside: bool
    done: dict[str, list[BlockDef]] = field(default_factory=dict)  # real path -> its definitions (and its includes')
    chars: int = 0


def include_blocks(includes: tuple[RawInclude, ...], filename: str, *,
                   allow_outside: bool = False) -> tuple[tuple[BlockDef, ...], tuple[Include, ...]]:
    """The block definitions of the files ``includes`` name (and of the files they include),
    for the spec ``filename`` (a path, or ``<string>``: the current folder); and the include
    statements as AST nodes."""
    if not includes:
        return (), ()
    state = _State(allow_outside)
    shown = "" if filename.startswith("<") else os.path.dirname(filename)
    found = _includes(includes, _folder_of(filename), shown, filename, [], state)
    _no_clashes(found)
    unique: dict[str, BlockDef] = {}
    for _, block in found:
        unique.setdefault(block.name, block)
    return tuple(unique.values()), tuple(Include(span=i.span, path=i.path) for i in includes)


def _folder_of(filename: str) -> Path:
    if filename.startswith("<"):
        return Path.cwd()
    return Path(filename).resolve().parent


def _includes(includes: tuple[RawInclude, ...], folder: Path, shown_dir: str, including: str, chain: list[str],
              state: _State) -> list[tuple[RawInclude, BlockDef]]:
    """Every definition reached from ``includes`` (of the file ``including``, in ``folder``;
    ``shown_dir``: that folder as messages show it), with the include line it came through."""
    out: list[tuple[RawInclude, BlockDef]] = []
    for include in includes:
        path = _resolve(include, folder, including, chain, state)
        key = str(path)
        if key not in state.done:
            shown = os.path.normpath(os.path.join(shown_dir, include.path))
            state.done[key] = _read(include, path, shown, chain + [key], state)
        out += [(include, b) for b in state.done[key]]
    return out


def _error(code: str, message: str, include: RawInclude, help: str | None = None) -> EffdslError:
    return EffdslError(Diagnostic(code, message, include.span, help))


def _resolve(include: RawInclude, folder: Path, including: str, chain: list[str], state: _State) -> Path:
    if not include.path.strip():
        raise _error("E124", "an include needs a file name", include, 'include "blocks.eff"')
    if any(ord(c) < 32 or ord(c) == 127 for c in include.path):
        raise _error("E124", f"the file name {include.path!r} has a control character", include,
                     "write the file's name as it is on disk")
    if len(chain) >= MAX_INCLUDE_DEPTH:
        raise _error("E124", f"includes nest more than {MAX_INCLUDE_DEPTH} levels deep", include,
                     "include the files from fewer levels")
    if len(state.done) >= MAX_INCLUDES:
        raise _error("E124", f"more than {MAX_INCLUDES} files are included", include)
    path = Path(os.path.realpath(folder / include.path))
    if not state.allow_outside and not path.is_relative_to(Path(os.path.realpath(folder))):
        where = "the current folder" if including.startswith("<") else f"the folder of '{including}'"
        raise _error("E123", f"'{include.path}' is outside {where}", include,
                     "move the file into that folder, or allow it: --allow-include-outside "
                     "(allow_include_outside=True in Python)")
    if str(path) in chain:
        cycle = [Path(p).name for p in chain[chain.index(str(path)):]] + [path.name]
        raise _error("E122", "the includes form a cycle: " + " -> ".join(cycle), include,
                     "a file of blocks must not include, directly or not, a file that includes it")
    kind = file_kind(path)
    if kind is not None:
        raise _error("E124", f"cannot include '{include.path}': " + ("no such file" if kind == "missing" else
                     f"it is {kind}, not a file"), include)
    return path


def _read(include: RawInclude, path: Path, shown: str, chain: list[str], state: _State) -> list[BlockDef]:
    """The definitions of one included file (after those of the files it includes); ``shown``:
    its name in messages (its path from the spec's folder)."""
    text = decode(read_spec_file(path, shown), shown)
    state.chars += len(text)
    if state.chars > MAX_INCLUDE_CHARS:
        raise _error("E124", f"the included files have more than {MAX_INCLUDE_CHARS:,} characters in all", include)
    try:
        raw = parse_file(text)
        if raw.network is not None:
            raise EffdslError(Diagnostic("E124", f"'{shown}' defines a network; an included file only defines "
                                         "blocks", raw.network.name.span, "include a file of 'block' definitions"))
        found = _includes(raw.includes, path.parent, os.path.dirname(shown), shown, chain, state)
        errors = Collector()
        own = read_block_defs(raw.blocks, errors, taken=[b.name for _, b in found], origin=shown)
        errors.raise_if_any()
    except EffdslError as err:
        raise err.with_source(text, shown) from None
    return [b for _, b in found] + own


def _no_clashes(found: list[tuple[RawInclude, BlockDef]]) -> None:
    """A name defined by two included files is E121 (the spec's own names are checked with
    its definitions)."""
    seen: dict[str, str | None] = {}
    errors = Collector()
    for include, block in found:
        if block.name in seen and seen[block.name] != block.origin:
            errors.error("E121", f"block '{block.name}' of '{block.origin}' is also defined in '{seen[block.name]}'",
                         include.span, "give one of them another name")
        seen.setdefault(block.name, block.origin)
    errors.raise_if_any()
