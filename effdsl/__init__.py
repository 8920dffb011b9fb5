"""effdsl: a declarative language and compiler for EfficientNet-style networks.

    >>> import effdsl
    >>> model = effdsl.build("efficientnet_b0", phi=3)            # doctest: +SKIP
    >>> effdsl.compile_spec("efficientnet_b0", preset="b3").summary.params
    12233232
"""

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
