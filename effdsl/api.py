"""The Python interface: find a spec, compile it, build the module.

``spec`` may be a path, the name of a built-in spec (``"efficientnet_b0"``) or ``.eff``
source text. Every user mistake raises :class:`~effdsl.diagnostics.EffdslError` with the
source attached, so ``str(err)`` renders the diagnostics with carets.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import networkx as nx

from effdsl.analyze import analyze
from effdsl.diagnostics import Diagnostic, EffdslError, Span, did_you_mean
from effdsl.ir import dump
from effdsl.parser import normalize, parse
from effdsl.passes import run_pipeline
from effdsl.resources import builtin_specs
from effdsl.scaling import resolve_scale
from effdsl.spec import Network
from effdsl.summary import Summary, summarize

if TYPE_CHECKING:  # torch is imported only when a module is built
    from torch import nn


@dataclass(frozen=True)
class Source:
    text: str
    filename: str


@dataclass(frozen=True)
class Compiled:
    """A member of a family: the checked spec, its scaled IR and the summary."""

    spec: Network
    graph: nx.DiGraph
    summary: Summary
    source: Source

    def ir(self) -> str:
        """The readable one-line-per-node IR dump."""
        return dump(self.graph)

    def build(self, device: str = "cpu") -> "nn.Module":
        from effdsl.backends.torch import build_module

        return build_module(self.graph, device=device)


def load_source(spec: str | Path) -> Source:
    """Resolve a path, a built-in name or source text to the text and a display name."""
    if isinstance(spec, str) and ("{" in spec or "\n" in spec):
        return Source(normalize(spec), "<string>")
    path = Path(spec)
    if not path.is_file():
        builtins = builtin_specs()
        if isinstance(spec, str) and spec in builtins:
            path = builtins[spec]
        else:
            hint = did_you_mean(str(spec), builtins)
            raise EffdslError(Diagnostic(
                "E110", f"no such spec file or built-in spec: '{spec}'", None,
                hint if hint and not hint.startswith("expected") else
                "built-in specs: " + ", ".join(builtins),
            ))
    data = path.read_bytes()
    return Source(decode(data, str(spec)), str(spec))


def decode(data: bytes, filename: str) -> str:
    """UTF-8 text with a BOM dropped and line ends normalized; binary input is an error."""
    if b"\x00" in data:
        offset = data.index(b"\x00")
        raise _not_text(data, offset, "the file is binary (it contains NUL bytes), not .eff text", filename)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _not_text(data, exc.start, "the file is not UTF-8 text", filename) from None
    return normalize(text)


def _not_text(data: bytes, offset: int, message: str, filename: str) -> EffdslError:
    before = data[:offset]
    line = before.count(b"\n") + 1
    line_start = before.rfind(b"\n") + 1
    # Columns count characters, like every other span: decode what precedes the bad byte.
    prefix = data[line_start:offset].decode("utf-8", errors="replace")
    if line_start == 0:
        prefix = prefix.removeprefix("\ufeff")  # a BOM is not a column
    column = len(prefix) + 1
    err = EffdslError(Diagnostic("E004", message, Span(line, column, line, column + 1),
                                 "save the spec as UTF-8 text"))
    shown = normalize(data.decode("utf-8", errors="replace").replace("\x00", "\ufffd"))
    return err.with_source(shown, filename)


def parse_spec(spec: str | Path) -> Network:
    """The checked spec AST."""
    source = load_source(spec)
    try:
        return analyze(parse(source.text))
    except EffdslError as err:
        raise err.with_source(source.text, source.filename)


def compile_spec(spec: str | Path, *, phi: float | None = None, preset: str | None = None,
                 width: float | None = None, depth: float | None = None, resolution: int | None = None,
                 num_classes: int | None = None) -> Compiled:
    """Parse, check, scale and analyse; no weight is allocated."""
    source = load_source(spec)
    try:
        net = analyze(parse(source.text))
        if num_classes is not None:
            if num_classes < 1:
                raise EffdslError(Diagnostic("E402", f"--num-classes must be at least 1, got {num_classes}"))
            net = net.model_copy(update={"classes": num_classes})
        target = resolve_scale(net, phi=phi, preset=preset, width=width, depth=depth, resolution=resolution)
        graph = run_pipeline(net, target)
    except EffdslError as err:
        raise err.with_source(source.text, source.filename)
    return Compiled(net, graph, summarize(graph), source)


def build(spec: str | Path, phi: float | None = None, preset: str | None = None,
          num_classes: int | None = None, *, width: float | None = None, depth: float | None = None,
          resolution: int | None = None, device: str = "cpu") -> "nn.Module":
    """The PyTorch module of one member of a spec's family (randomly initialized)."""
    compiled = compile_spec(spec, phi=phi, preset=preset, width=width, depth=depth, resolution=resolution,
                            num_classes=num_classes)
    return compiled.build(device=device)
