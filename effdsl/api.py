"""The Python interface: find a spec, compile it, build the module.

``spec`` may be a path, the name of a built-in spec (``"efficientnet_b0"``) or ``.eff``
source text. Every user mistake raises :class:`~effdsl.diagnostics.EffdslError` with the
source attached, so ``str(err)`` renders the diagnostics with carets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from effdsl.diagnostics import Diagnostic, EffdslError, Span, did_you_mean
from effdsl.ir.graph import CompiledGraph
from effdsl.language.analyze import analyze
from effdsl.language.families import MODELS, Model
from effdsl.language.format import comments_of, format_spec
from effdsl.language.parser import normalize, parse
from effdsl.language.resources import builtin_specs
from effdsl.language.spec import Network
from effdsl.passes.lower import plan_from_spec
from effdsl.passes.pipeline import run_pipeline
from effdsl.passes.scale import architecture, scale_plan
from effdsl.passes.summary import Summary, summarize
from effdsl.scaling.members import Member, resolve_member, resolve_scale

if TYPE_CHECKING:  # torch is imported only when a module is built
    import torch
    from torch import nn

    from effdsl.backends.torch.checkpoint import LoadReport


@dataclass(frozen=True)
class Source:
    text: str
    filename: str


MAX_PARAMS = 1_000_000_000  # 4 GiB of float32 weights: above this, building needs an explicit budget


@dataclass(frozen=True)
class Compiled:
    """A member of a family: the checked spec, its scaled IR and the summary."""

    spec: Network
    graph: CompiledGraph
    summary: Summary
    source: Source

    @property
    def warnings(self) -> list[Diagnostic]:
        """Warnings about this member (W3xx), with their spans."""
        return list(self.graph.warnings)

    def ir(self) -> str:
        """The readable one-line-per-node IR dump."""
        return self.graph.dump()

    def build(self, device: str = "cpu", weights: str | Path | None = None, strict: bool = True,
              features_only: bool = False, max_params: int = MAX_PARAMS, min_fraction: float = 0.5) -> "nn.Module":
        """The PyTorch module; see :func:`build`."""
        from effdsl.backends.torch.builder import build_module

        if self.summary.params > max_params and device != "meta":
            size = self.summary.params * 4
            unit = next(u for u in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB"), (1, "bytes")) if size >= u[0])
            shown = f"{size / unit[0]:.1f} {unit[1]}"
            raise EffdslError(Diagnostic(
                "E303", f"the network has {self.summary.params:,} parameters ({shown} in float32), "
                        f"more than the budget of {max_params:,}", None,
                "raise it with max_params=N; the summary alone needs no weights", arguments=("max_params",),
            )).with_source(self.source.text, self.source.filename)
        state = None
        if weights is not None:  # a missing or unreadable file is reported before any allocation
            from effdsl.backends.torch.checkpoint import read_state_dict

            try:
                state = read_state_dict(weights)
            except EffdslError as err:
                raise err.with_source(self.source.text, self.source.filename)
        module = build_module(self.graph, device=device, features_only=features_only)
        if state is not None:
            self.load_weights(module, state, strict=strict, min_fraction=min_fraction)
        return module

    def load_weights(self, module: "nn.Module", weights: str | Path | dict[str, torch.Tensor], strict: bool = True,
                     min_fraction: float = 0.5) -> LoadReport:
        """Load a checkpoint into ``module`` (built from this network); returns a report.

        ``strict=False`` loads what fits, provided it fills at least ``min_fraction`` of the
        network's tensors (0 accepts any number)."""
        from effdsl.backends.torch.checkpoint import load_weights

        try:
            return load_weights(module, weights, self.graph, strict=strict, min_fraction=min_fraction)
        except EffdslError as err:
            raise err.with_source(self.source.text, self.source.filename)


def load_source(spec: str | Path) -> Source:
    """Resolve a path, a built-in name or source text to the text and a display name."""
    if isinstance(spec, str) and ("{" in spec or "\n" in spec):
        return Source(normalize(spec), "<string>")
    path = Path(spec)
    try:
        is_file = path.is_file()
    except OSError:  # a name too long for a path
        is_file = False
    if not is_file:
        builtins = builtin_specs()
        if isinstance(spec, str) and spec in builtins:
            path = builtins[spec]
        elif isinstance(spec, str) and spec in MODELS:  # a reference model's name: its family's spec
            path = builtins[MODELS[spec].spec]
            spec = MODELS[spec].spec
        else:
            hint = did_you_mean(str(spec), [*builtins, *MODELS])
            raise EffdslError(Diagnostic(
                "E110", f"no such spec file or built-in spec: '{spec}'", None,
                hint if hint and not hint.startswith("expected") else
                "'effdsl list' shows the built-in models by name, 'effdsl list --files' the built-in specs",
            ))
    try:
        data = path.read_bytes()
    except OSError as exc:  # permission denied, an I/O error
        raise EffdslError(Diagnostic("E110", f"cannot read the spec file '{spec}': {exc.strerror or exc}")) from None
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
    return analyze_source(load_source(spec))


def analyze_source(source: Source) -> Network:
    """Parse and check the text of a spec; errors come with the source attached."""
    try:
        return analyze(parse(source.text))
    except EffdslError as err:
        raise err.with_source(source.text, source.filename)


def compile_spec(spec: str | Path, *, phi: float | None = None, preset: str | None = None,
                 width: float | None = None, depth: float | None = None, resolution: int | None = None,
                 num_classes: int | None = None, in_chans: int | None = None,
                 drop_rate: float | None = None, drop_path_rate: float | None = None) -> Compiled:
    """Parse, check, scale and analyse; no weight is allocated.

    ``spec`` is a path, a built-in spec's name, ``.eff`` text, or a built-in model's name
    (``"efficientnet_b3"``: the spec and preset it stands for; ``effdsl list``).

    ``num_classes`` and ``in_chans`` replace the spec's classes and input channels;
    ``drop_rate`` (dropout before the classifier) and ``drop_path_rate`` (stochastic depth,
    scheduled as rate * i / N over the blocks) replace the spec's or the preset's.
    To compile several members of one spec, parse it once (:func:`parse_spec`) and call
    :func:`compile_network` for each.
    """
    source = load_source(spec)
    preset = _model_preset(spec, source, preset, phi=phi, width=width, depth=depth, resolution=resolution)
    member = Member(phi=phi, preset=preset, width=width, depth=depth, resolution=resolution,
                    num_classes=num_classes, in_chans=in_chans, drop_rate=drop_rate,
                    drop_path_rate=drop_path_rate)
    return compile_network(analyze_source(source), member, source=source)


def reference_model(spec: str | Path) -> Model | None:
    """The built-in model ``spec`` names (``"efficientnet_b3"``), or None: for a file that
    exists, a built-in spec's own name, or spec text."""
    if not isinstance(spec, str) or spec not in MODELS or spec in builtin_specs():
        return None
    try:
        return None if Path(spec).is_file() else MODELS[spec]
    except OSError:
        return MODELS[spec]


def _model_preset(spec: str | Path, source: Source, preset: str | None, **member: float | None) -> str | None:
    """The preset a reference model's name stands for (efficientnet_b3: b3 of efficientnet_b0);
    choosing a member another way as well is E401."""
    model = reference_model(spec)
    if model is None or model.preset is None:
        return preset
    chosen = [name for name, value in member.items() if value is not None]
    if preset not in (None, model.preset) or chosen:
        other = "preset" if preset not in (None, model.preset) else chosen[0]
        raise EffdslError(Diagnostic(
            "E401", f"'{spec}' stands for the built-in spec '{model.spec}' with preset={model.preset}; "
                    f"{other} cannot be used with it",
            help=f"for another member of the family, compile '{model.spec}' with phi=F, preset=NAME, "
                 f"or width=W depth=D resolution=R",
            arguments=("phi", "preset", "width", "depth", "resolution"),
        )).with_source(source.text, source.filename)
    return model.preset


def compile_network(network: Network, member: Member | None = None, *, source: Source | None = None) -> Compiled:
    """Compile one member of an already parsed and checked network (the baseline by default).

    ``source`` is the text ``network`` was parsed from: errors and warnings are rendered
    against it. Without it they show their line and column but no source line.
    """
    if source is None:
        source = Source("", f"<network {network.name}>")
    member = member or Member()
    try:
        net, target = resolve_member(network, member)
        graph = run_pipeline(net, target)
        if member.phi:
            _warn_if_collapsed(net, member.phi, graph)
    except EffdslError as err:
        raise err.with_source(source.text, source.filename)
    return Compiled(net, graph, summarize(graph), source)


def _warn_if_collapsed(net: Network, phi: float, graph: CompiledGraph) -> None:
    """W303 when rounding makes phi the same network as phi = 0 or a neighbouring integer."""
    base = plan_from_spec(net)
    mine = architecture(graph.plan)
    for other in sorted({0.0, float(math.floor(phi)), float(math.ceil(phi))} - {phi}):
        theirs = architecture(scale_plan(base, resolve_scale(net, phi=other)))
        if theirs == mine:
            graph.warn(Diagnostic(
                "W303", f"phi {phi:g} gives the same network as phi {other:g}: rounding absorbs the difference",
                None, "compare members with effdsl compile --emit json, or choose phi further apart",
                severity="warning"))
            return


def build(spec: str | Path, phi: float | None = None, preset: str | None = None,
          num_classes: int | None = None, *, width: float | None = None, depth: float | None = None,
          resolution: int | None = None, in_chans: int | None = None, drop_rate: float | None = None,
          drop_path_rate: float | None = None, weights: str | Path | None = None, strict: bool = True,
          features_only: bool = False, device: str = "cpu", max_params: int = MAX_PARAMS,
          min_fraction: float = 0.5) -> "nn.Module":
    """The PyTorch module of one member of a spec's family.

    ``spec`` may also be a built-in model's name (``"efficientnet_b3"``, ``"mnasnet0_5"``:
    see ``effdsl list``), which chooses its preset. Randomly initialized, or loaded from
    ``weights`` (a torchvision, timm or effdsl checkpoint; ``strict=False`` loads the
    tensors that fit and skips the others, provided they fill at least ``min_fraction``
    of the network).
    ``features_only=True`` returns a module whose forward gives the output of every stage.
    A network above ``max_params`` parameters is refused (E303) before any weight is allocated.
    """
    compiled = compile_spec(spec, phi=phi, preset=preset, width=width, depth=depth, resolution=resolution,
                            num_classes=num_classes, in_chans=in_chans, drop_rate=drop_rate,
                            drop_path_rate=drop_path_rate)
    return compiled.build(device=device, weights=weights, strict=strict, features_only=features_only,
                          max_params=max_params, min_fraction=min_fraction)


def check_spec(spec: str | Path) -> Compiled:
    """Validate a spec: the baseline and every preset must compile (all errors together).

    The spec is read and parsed once. Returns the baseline; its ``warnings`` include
    those of every preset. An error of a preset that has no position of its own (E302)
    points at the preset's name.
    """
    source = load_source(spec)
    net = analyze_source(source)
    compiled = compile_network(net, source=source)
    problems: list[Diagnostic] = []
    for preset in net.presets:
        try:
            member = compile_network(net, Member(preset=preset.name), source=source)
        except EffdslError as err:
            problems.extend(d if d.span is not None else replace(d, span=preset.span_of("name"))
                            for d in err.diagnostics)
            continue
        for diag in member.warnings:
            compiled.graph.warn(diag)
    if problems:
        raise EffdslError(problems).with_source(source.text, source.filename)
    return compiled


def format_source(spec: str | Path) -> str:
    """The canonical text of a spec, comments kept (``effdsl fmt``)."""
    source = load_source(spec)
    return format_spec(analyze_source(source), comments_of(source.text))
