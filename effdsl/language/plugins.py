"""Plug-in ops: op kinds that installed packages add through the ``effdsl.ops`` entry points.

A package declares, in its ``pyproject.toml``::

    [project.entry-points."effdsl.ops"]
    grouped_pw = "effdsl_example_ops:GROUPED_PW"

The entry point's name is the op's word in a block definition; the object it names is a
mapping (or an object with these attributes):

``options``
    the op's options and their defaults: numbers, or the widths ``in``, ``mid``, ``out``
    and the stage's ``k`` and ``s``, resolved per block;
``shape(in_shape, options)``
    the output ``(C, H, W)`` of an input ``(C, H, W)`` (raising ``ValueError`` for options
    that do not fit these widths; an option ``to`` gives the output channels, which otherwise
    are the input's);
``cost(in_shape, out_shape, options)``
    ``(params, macs)``, counted as the rest of effdsl counts (trainable parameters; one
    MAC per multiply-add of a conv or matrix product, as ``FlopCounterMode`` / 2);
``class_name`` and ``torch_source``
    the torch module: Python source defining that class (it may use ``torch``, ``nn`` and
    ``math``), made as ``class_name(in_ch, out_ch, **options)``; the built network runs it
    and the ``.py`` export writes it out;
``label`` (optional)
    how pictures name the op.

Only an op that a spec uses is loaded. A plug-in that cannot be loaded, lacks a field or
raises is reported (E130) with the package's name, never with a traceback.
"""

from __future__ import annotations

import importlib.metadata
import keyword
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from effdsl.diagnostics import Diagnostic, EffdslError, Span

GROUP = "effdsl.ops"
Shape3 = tuple[int, int, int]
Resolved = dict[str, int | float]


@dataclass(frozen=True, eq=False)
class PluginOp:
    """A plug-in op kind, checked when loaded."""

    name: str
    package: str
    options: Mapping[str, int | float | str]
    shape: Callable[[Shape3, Resolved], Any]
    cost: Callable[[Shape3, Shape3, Resolved], Any]
    class_name: str
    torch_source: str
    label: str

    def out_shape(self, in_shape: Shape3, options: Resolved, span: Span | None) -> Shape3:
        """The shape rule, called and checked: three positive whole numbers."""
        found = self._call("shape", lambda: self.shape(in_shape, dict(options)), span)
        if not (isinstance(found, (tuple, list)) and len(found) == 3
                and all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in found)):
            raise broken(self.name, self.package, f"its shape rule gave {found!r} for {in_shape}, not (C, H, W) "
                         "of positive whole numbers", span)
        return (found[0], found[1], found[2])

    def params_macs(self, in_shape: Shape3, out_shape: Shape3, options: Resolved, span: Span | None) -> tuple[int, int]:
        """The cost rule, called and checked: two whole numbers >= 0."""
        found = self._call("cost", lambda: self.cost(in_shape, out_shape, dict(options)), span)
        if not (isinstance(found, (tuple, list)) and len(found) == 2
                and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in found)):
            raise broken(self.name, self.package, f"its cost rule gave {found!r}, not (params, macs) "
                         "as whole numbers >= 0", span)
        return (found[0], found[1])

    def _call(self, what: str, call: Callable[[], Any], span: Span | None) -> Any:
        try:
            return call()
        except ValueError as exc:  # the plug-in's way to refuse options or widths that do not fit
            raise EffdslError(Diagnostic(
                "E130", f"the plug-in op '{self.name}' of the package '{self.package}' refuses this block: {exc}",
                span, f"change the options of '{self.name}' in the block definition, or the stage's numbers"),
            ) from None
        except Exception as exc:  # a plug-in's own failure, reported with its package's name
            raise broken(self.name, self.package, f"its {what} rule raised {type(exc).__name__}: {exc}",
                         span) from None


def broken(name: str, package: str, why: str, span: Span | None) -> EffdslError:
    """E130: a plug-in op that cannot be used, naming its package."""
    return EffdslError(Diagnostic("E130", f"the plug-in op '{name}' of the package '{package}' is broken: {why}",
                                  span, f"fix or uninstall '{package}' (pip uninstall {package})"))


def plugin_names() -> dict[str, str]:
    """The installed plug-in ops: op name -> the package that provides it (nothing is loaded)."""
    found: dict[str, str] = {}
    for entry in importlib.metadata.entry_points(group=GROUP):
        dist = getattr(entry, "dist", None)
        found.setdefault(entry.name, dist.name if dist is not None else entry.value.split(":")[0])
    return found


_loaded: dict[tuple[str, str], PluginOp] = {}


def load_plugin(name: str, span: Span | None) -> PluginOp | None:
    """The plug-in op called ``name``, loaded and checked (E130 when it is broken); None when
    no installed package provides it."""
    entries = [e for e in importlib.metadata.entry_points(group=GROUP) if e.name == name]
    if not entries:
        return None
    entry = entries[0]
    dist = getattr(entry, "dist", None)
    package = dist.name if dist is not None else entry.value.split(":")[0]
    key = (name, entry.value)
    if key in _loaded:
        return _loaded[key]
    try:
        obj = entry.load()
    except Exception as exc:  # an import error in the plug-in's package
        raise broken(name, package, f"loading it raised {type(exc).__name__}: {exc}", span) from None
    op = _checked(name, package, obj, span)
    _loaded[key] = op
    return op


def _field(obj: object, field: str) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(field)
    return getattr(obj, field, None)


def _checked(name: str, package: str, obj: object, span: Span | None) -> PluginOp:
    """The fields of a plug-in object, each checked for what it must be."""
    if not name.isidentifier() or keyword.iskeyword(name):
        raise broken(name, package, "its name is not a Python identifier", span)
    options = _field(obj, "options")
    if options is None:
        options = {}
    if not isinstance(options, Mapping) or not all(
            isinstance(k, str) and k.isidentifier() and isinstance(v, (int, float, str)) and not isinstance(v, bool)
            for k, v in options.items()):
        raise broken(name, package, "'options' must map option names to numbers or words", span)
    missing = [f for f in ("shape", "cost", "class_name", "torch_source") if _field(obj, f) is None]
    if missing:
        raise broken(name, package, f"it has no {', '.join(repr(m) for m in missing)}", span)
    shape, cost = _field(obj, "shape"), _field(obj, "cost")
    class_name, source = _field(obj, "class_name"), _field(obj, "torch_source")
    if not callable(shape) or not callable(cost):
        raise broken(name, package, "'shape' and 'cost' must be functions", span)
    if not isinstance(class_name, str) or not class_name.isidentifier() or not isinstance(source, str) \
            or f"class {class_name}" not in source:
        raise broken(name, package, "'torch_source' must be Python source defining the class 'class_name'", span)
    label = _field(obj, "label")
    return PluginOp(name, package, dict(options), shape, cost, class_name, source,
                    label if isinstance(label, str) else name)
