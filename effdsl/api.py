"""The Python interface: find a spec, compile it, build the module.

``spec`` may be a path, the name of a built-in spec (``"efficientnet_b0"``) or ``.eff``
source text. Every user mistake raises :class:`~effdsl.diagnostics.EffdslError` with the
source attached, so ``str(err)`` renders the diagnostics with carets.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, replace
from numbers import Integral, Real
from pathlib import Path
from typing import TYPE_CHECKING, Any

from effdsl.diagnostics import Diagnostic, EffdslError, Span
from effdsl.ir.graph import CompiledGraph
from effdsl.language.analyze import analyze
from effdsl.language.families import MODELS, Model
from effdsl.language.format import comments_of, format_spec
from effdsl.language.includes import include_blocks
from effdsl.language.parser import parse
from effdsl.language.resources import builtin_specs
from effdsl.language.source import Source, decode, load_source
from effdsl.language.spec import MAX_CHANNELS, MAX_CLASSES, Network
from effdsl.passes.inference import inference_graph
from effdsl.passes.lower import plan_from_spec
from effdsl.passes.pipeline import run_pipeline
from effdsl.passes.scale import architecture, scale_plan
from effdsl.passes.summary import Summary, summarize
from effdsl.scaling.choices import covering_picks, decisions, describe
from effdsl.scaling.choices import member as member_of
from effdsl.scaling.members import Member, resolve_member, resolve_scale

if TYPE_CHECKING:  # torch is imported only when a module is built
    from torch import nn

    from effdsl.backends.torch.checkpoint import LoadReport

__all__ = ["MAX_PARAMS", "Compiled", "Source", "analyze_source", "build", "check_member", "check_spec",
           "compile_network", "compile_spec", "decode", "format_source", "load_source", "parse_spec"]


MAX_PARAMS = 1_000_000_000  # 4 GiB of float32 weights: above this, building needs an explicit budget


@dataclass(frozen=True)
class Compiled:
    """A member of a family: the checked spec, its scaled IR and the summary."""

    spec: Network
    graph: CompiledGraph
    summary: Summary
    source: Source
    base: Compiled | None = None  # the member an inference network was made from (see inference())

    @property
    def warnings(self) -> list[Diagnostic]:
        """Warnings about this member (W3xx), with their spans."""
        return list(self.graph.warnings)

    def ir(self) -> str:
        """The readable one-line-per-node IR dump."""
        return self.graph.dump()

    def inference(self) -> Compiled:
        """The eval-only member: batch norm folded into the convs, no dropout or stochastic
        depth (the passes of :mod:`effdsl.passes.inference`). Its ``ir()`` and ``summary``
        show the folded network; its ``build`` gives the inference module."""
        if self.base is not None:
            return self
        graph = inference_graph(self.graph)
        return replace(self, graph=graph, summary=summarize(graph), base=self)

    def to_inference(self, module: nn.Module) -> nn.Module:
        """The inference module of ``module`` (built from this member, weights loaded)."""
        from effdsl.backends.torch.inference import to_inference

        return to_inference(module, self.inference().graph)

    def build(self, device: str = "cpu", weights: str | Path | dict[str, Any] | None = None, strict: bool = True,
              features_only: bool = False, max_params: float = MAX_PARAMS, *,
              out_indices: tuple[int, ...] | None = None, inference: bool = False,
              min_fraction: float = 0.5) -> nn.Module:
        """The PyTorch module; see :func:`build`."""
        try:
            _check_budget(max_params)
        except EffdslError as err:
            raise err.with_source(self.source.text, self.source.filename) from None
        if inference or self.base is not None:
            trained = (self.base or self).build(device, weights, strict, features_only, max_params,
                                                out_indices=out_indices, min_fraction=min_fraction)
            return (self.base or self).to_inference(trained)

        if self.summary.params > max_params and device != "meta":
            size = self.summary.params * 4
            unit = next(u for u in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB"), (1, "bytes")) if size >= u[0])
            shown = f"{size / unit[0]:.1f} {unit[1]}"
            raise EffdslError(Diagnostic(
                "E303", f"the network has {self.summary.params:,} parameters ({shown} in float32), "
                        f"more than the budget of {int(max_params):,}", None,
                "raise it with max_params=N; the summary alone needs no weights", arguments=("max_params",),
            )).with_source(self.source.text, self.source.filename)
        if weights is not None and not isinstance(weights, dict):  # read before any allocation
            from effdsl.backends.torch.checkpoint import read_state_dict

            try:  # at most what a checkpoint of this network can need (parameters and buffers, float64, x4)
                weights = read_state_dict(weights, max_bytes=4 * 8 * 2 * self.summary.params + 64 * 2**20)
            except EffdslError as err:
                raise err.with_source(self.source.text, self.source.filename) from None
        from effdsl.backends.torch.builder import build_module  # torch: only once the budget is known to fit

        try:
            module = build_module(self.graph, device=device, features_only=features_only, out_indices=out_indices)
        except IndexError as err:  # out_indices beyond the feature maps
            raise EffdslError(Diagnostic("E402", str(err))).with_source(
                self.source.text, self.source.filename) from None
        except EffdslError as err:  # a device this machine does not have
            raise err.with_source(self.source.text, self.source.filename) from None
        if weights is not None:
            report = self.load_weights(module, weights, strict=strict, min_fraction=min_fraction)
            if report.stripped:
                warnings.warn(f"every checkpoint key began with '{report.stripped}' (saved from a DataParallel, "
                              "DDP or torch.compile wrapper); effdsl removed it", UserWarning, stacklevel=3)
        return module

    def load_weights(self, module: nn.Module, weights: str | Path | dict[str, Any],
                     strict: bool = True, min_fraction: float = 0.5) -> LoadReport:
        """Load a checkpoint into ``module`` (built from this network); returns a report.

        ``strict=False`` loads what fits, provided it fills at least ``min_fraction`` of the
        network's tensors (0 accepts any number)."""
        from effdsl.backends.torch.checkpoint import load_weights

        try:
            return load_weights(module, weights, self.graph, strict=strict, min_fraction=min_fraction)
        except EffdslError as err:
            raise err.with_source(self.source.text, self.source.filename) from None


def parse_spec(spec: str | Path, *, allow_include_outside: bool = False) -> Network:
    """The checked spec AST (``allow_include_outside``: see :func:`analyze_source`)."""
    return analyze_source(load_source(spec), allow_include_outside=allow_include_outside)


def analyze_source(source: Source, *, allow_include_outside: bool = False) -> Network:
    """Parse and check the text of a spec, reading the files it includes; errors come with the
    source attached (an error inside an included file, with that file's).

    An include may only name a file in the including file's folder or below it, unless
    ``allow_include_outside`` (E123)."""
    try:
        raw = parse(source.text)
        if not raw.includes:
            return analyze(raw)
        library, includes = include_blocks(raw.includes, source.filename, allow_outside=allow_include_outside)
        return analyze(raw, library, includes)
    except EffdslError as err:
        raise err.with_source(source.text, source.filename) from None


def compile_spec(spec: str | Path, *, phi: float | None = None, preset: str | None = None,
                 width: float | None = None, depth: float | None = None, resolution: int | None = None,
                 num_classes: int | None = None, in_chans: int | None = None,
                 drop_rate: float | None = None, drop_path_rate: float | None = None,
                 allow_include_outside: bool = False) -> Compiled:
    """Parse, check, scale and analyse; no weight is allocated.

    ``spec`` is a path, a built-in spec's name, ``.eff`` text, or a built-in model's name
    (``"efficientnet_b3"``: the spec and preset it stands for; ``effdsl list``).

    ``num_classes`` and ``in_chans`` replace the spec's classes and input channels;
    ``drop_rate`` (dropout before the classifier) and ``drop_path_rate`` (stochastic depth,
    scheduled as rate * i / N over the blocks) replace the spec's or the preset's.
    To compile several members of one spec, parse it once (:func:`parse_spec`) and call
    :func:`compile_network` for each. ``allow_include_outside``: an ``include`` may name a
    file outside the spec's folder.
    """
    source = load_source(spec)
    preset = _model_preset(spec, source, preset, phi=phi, width=width, depth=depth, resolution=resolution)
    member = Member(phi=phi, preset=preset, width=width, depth=depth, resolution=resolution,
                    num_classes=num_classes, in_chans=in_chans, drop_rate=drop_rate,
                    drop_path_rate=drop_path_rate)
    return compile_network(analyze_source(source, allow_include_outside=allow_include_outside), member,
                           source=source)


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
        if network.is_space:
            raise _space_error(network)
        member = checked_member(member)
        net, target = resolve_member(network, member)
        graph = run_pipeline(net, target)
        if member.phi:
            _warn_if_collapsed(net, member.phi, graph)
    except EffdslError as err:
        raise err.with_source(source.text, source.filename) from None
    return Compiled(net, graph, summarize(graph), source)


def _space_error(net: Network) -> EffdslError:
    """E605: a search space where one network is needed."""
    choices = [c for stage in net.stages for c in stage.choices]
    return EffdslError(Diagnostic(
        "E605", f"'{net.name}' is a search space ({len(choices)} choice{'s' if len(choices) != 1 else ''}), "
                "not one network", choices[0].span,
        "write members as plain specs with 'effdsl space SPEC --sample N', or search it with 'effdsl search'"))


def _warn_if_collapsed(net: Network, phi: float, graph: CompiledGraph) -> None:
    """W303 when rounding makes phi the same network as phi = 0 or a neighbouring integer, or
    when the spec has no scaling coefficients, so that every phi is the baseline."""
    policy = net.scaling
    if phi != 0 and policy.alpha == policy.beta == policy.gamma == 1:
        graph.warn(Diagnostic(
            "W303", f"phi {phi:g} gives the same network as phi 0: the spec has no scaling coefficients "
                    "(alpha = beta = gamma = 1)", policy.span_of("alpha") if policy.spans else None,
            "give alpha, beta and gamma in a scaling block, or choose the member with --width, --depth and "
            "--resolution (or a preset)", severity="warning"))
        return
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
          drop_path_rate: float | None = None, weights: str | Path | dict[str, Any] | None = None,
          strict: bool = True, features_only: bool = False, device: str = "cpu", max_params: float = MAX_PARAMS,
          out_indices: tuple[int, ...] | None = None, inference: bool = False,
          min_fraction: float = 0.5, allow_include_outside: bool = False) -> nn.Module:
    """The PyTorch module of one member of a spec's family.

    Randomly initialized, or loaded from ``weights``: a torchvision, timm or effdsl
    checkpoint, as a file or a state dict (``strict=False`` loads the tensors that fit and
    skips the others). ``features_only=True`` returns a backbone whose forward gives one
    feature map per distinct reduction (``out_indices`` selects among them).
    ``inference=True`` returns the eval-only module: batch norm folded into the convs,
    channels-last weights (see :meth:`Compiled.inference`). A network above ``max_params``
    parameters is refused (E303) before any weight is allocated.
    """
    compiled = compile_spec(spec, phi=phi, preset=preset, width=width, depth=depth, resolution=resolution,
                            num_classes=num_classes, in_chans=in_chans, drop_rate=drop_rate,
                            drop_path_rate=drop_path_rate, allow_include_outside=allow_include_outside)
    return compiled.build(device=device, weights=weights, strict=strict, features_only=features_only,
                          max_params=max_params, out_indices=out_indices, inference=inference,
                          min_fraction=min_fraction)


def check_spec(spec: str | Path, *, allow_include_outside: bool = False) -> Compiled:
    """Validate a spec: the baseline and every preset must compile (all errors together).

    The spec is read and parsed once. Returns the baseline; its ``warnings`` include
    those of every preset. An error of a preset that has no position of its own (E302)
    points at the preset's name. A search space is checked through a few of its members
    that together use every option (and the one with the most stride); it returns the
    first of them, with ``spec`` the space itself.
    """
    source = load_source(spec)
    net = analyze_source(source, allow_include_outside=allow_include_outside)
    if net.is_space:
        try:
            return _check_space(net, source)
        except EffdslError as err:
            raise err.with_source(source.text, source.filename) from None
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


def _check_space(net: Network, source: Source) -> Compiled:
    """Compile the members that cover every option, at the baseline and every preset."""
    found = decisions(net)
    problems: dict[tuple[str, str, Span | None], Diagnostic] = {}
    first: Compiled | None = None
    seen: list[Diagnostic] = []
    for picks in covering_picks(found):
        plain = member_of(net, found, picks)
        where = f"in the member {describe(found, picks)}"
        for preset in (None, *(p.name for p in net.presets)):
            try:
                graph = run_pipeline(plain, resolve_scale(plain, preset=preset))
            except EffdslError as err:
                for d in err.diagnostics:
                    problems.setdefault((d.code, d.message, d.span), replace(
                        d, help=f"{d.help}; {where}" if d.help else where))
                continue
            if first is None:
                first = Compiled(net, graph, summarize(graph), source)
            seen.extend(d for d in graph.warnings if d not in seen)
    if problems:
        raise EffdslError(list(problems.values()))
    assert first is not None
    for diag in seen:
        if diag not in first.warnings:
            first.graph.warn(diag)
    return first


def format_source(spec: str | Path | Source, *, allow_include_outside: bool = False) -> str:
    """The canonical text of a spec, comments kept (``effdsl fmt``)."""
    source = spec if isinstance(spec, Source) else load_source(spec)
    return format_spec(analyze_source(source, allow_include_outside=allow_include_outside),
                       comments_of(source.text))


# --- arguments ---------------------------------------------------------------------------

_MAX_CLASSES, _MAX_IN_CHANS = MAX_CLASSES, MAX_CHANNELS  # as for the spec's 'classes' and 'input' lines


def checked_member(member: Member) -> Member:
    """``member`` with its real numbers as floats (``Fraction(1, 2)`` is 0.5), once checked
    by :func:`check_member`."""
    check_member(member)
    return replace(member, phi=_as_float(member.phi), width=_as_float(member.width), depth=_as_float(member.depth),
                   drop_rate=_as_float(member.drop_rate), drop_path_rate=_as_float(member.drop_path_rate))


def _as_float(value: float | None) -> float | None:
    return None if value is None else float(value)


def check_member(member: Member) -> None:
    """Refuse a member whose fields are of the wrong type (E409) or beyond the limits of
    the spec's own values (E402), before anything is computed from them.

    Numbers are real numbers (``bool`` and strings are not); ``num_classes`` and
    ``in_chans`` whole numbers from 1 to 1,000,000, ``resolution`` a whole number;
    ``width``, ``depth`` and ``resolution`` finite; ``preset`` a name. The ranges that
    depend on the network (phi's, the rates', the scaled sizes) are checked when the
    member is resolved.
    """
    if member.preset is not None and not isinstance(member.preset, str):
        raise _wrong_type("preset", member.preset, "a preset's name (a string)")
    for name in ("phi", "width", "depth", "resolution", "drop_rate", "drop_path_rate"):
        _check_number(name, getattr(member, name))
    for name in ("width", "depth", "resolution"):
        value = getattr(member, name)
        if value is not None and not math.isfinite(value):
            raise _out_of_range(name, value, "a finite number")
    _check_whole("resolution", member.resolution)
    for name, value, most in (("num_classes", member.num_classes, _MAX_CLASSES),
                              ("in_chans", member.in_chans, _MAX_IN_CHANS)):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, Integral):  # 10.0 classes would count as floats
            raise _wrong_type(name, value, "a whole number (an int)")
        if value > most:
            raise _out_of_range(name, value, f"at most {most:,}")


def _check_budget(max_params: object) -> None:
    """``max_params`` is a whole number (1e9 will do) of at least 0 (E409, E402)."""
    _check_number("max_params", max_params)
    if isinstance(max_params, float) and not math.isfinite(max_params):
        raise _out_of_range("max_params", max_params, "a finite number")
    _check_whole("max_params", max_params)
    if isinstance(max_params, Real) and max_params < 0:
        raise _out_of_range("max_params", max_params, "at least 0")


def _check_number(name: str, value: object) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, Real)):
        raise _wrong_type(name, value, "a number")


def _check_whole(name: str, value: object) -> None:
    """A whole number: an int, or a float such as 224.0 (NaN and infinities are not)."""
    if value is None or isinstance(value, Integral):
        return
    if not (isinstance(value, float) and value.is_integer()):
        raise _wrong_type(name, value, "a whole number")


def _out_of_range(name: str, value: object, expected: str) -> EffdslError:
    shown = f"{value:g}" if isinstance(value, float) else str(value)
    return EffdslError(Diagnostic("E402", f"{name} must be {expected}, got {shown}", arguments=(name,)))


def _wrong_type(name: str, value: object, expected: str) -> EffdslError:
    shown = repr(value)
    if len(shown) > 40:
        shown = shown[:37] + "..."
    return EffdslError(Diagnostic("E409", f"{name} must be {expected}, got {shown} ({type(value).__name__})",
                                  arguments=(name,)))
