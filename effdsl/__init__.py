"""effdsl: a declarative language and compiler for EfficientNet-style networks.

    >>> import effdsl
    >>> model = effdsl.build("efficientnet_b0", phi=3)            # doctest: +SKIP
    >>> effdsl.compile_spec("efficientnet_b0", preset="b3").summary.params
    12233232

The names below are imported when first used, so that ``import effdsl.cli`` costs
nothing before the command line has set itself up (Ctrl-C handling among it).
"""

from __future__ import annotations

import importlib

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing at start-up
if TYPE_CHECKING:
    from effdsl.api import Compiled, build, compile_network, compile_spec, load_source, parse_spec
    from effdsl.diagnostics import Diagnostic, EffdslError, InternalError
    from effdsl.scaling.members import Member

__version__ = "0.1.0"

__all__ = [
    "Compiled",
    "Diagnostic",
    "EffdslError",
    "InternalError",
    "Member",
    "build",
    "compile_network",
    "compile_spec",
    "load_source",
    "parse_spec",
    "__version__",
]

_HOME = {
    "Compiled": "effdsl.api", "build": "effdsl.api", "compile_network": "effdsl.api",
    "compile_spec": "effdsl.api", "load_source": "effdsl.api", "parse_spec": "effdsl.api",
    "Diagnostic": "effdsl.diagnostics", "EffdslError": "effdsl.diagnostics", "InternalError": "effdsl.diagnostics",
    "Member": "effdsl.scaling.members",
}


def __getattr__(name: str) -> object:
    """The public names above, and the subpackages (``effdsl.api``), imported on first use."""
    if name in _HOME:
        value = getattr(importlib.import_module(_HOME[name]), name)
        globals()[name] = value
        return value
    if not name.startswith("_"):
        try:
            return importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
