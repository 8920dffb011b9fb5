"""The torch classes of effdsl's networks: the library of :mod:`effdsl.blocks.library`, run here.

The classes (``ConvBNAct``, ``SqueezeExcite``, ``MBConv``, ``FusedMBConv``, ``ConvBlock``,
``Head``, ``FeatureInfo``, ``Network``, ``Features``) are defined by executing their source
text, once per process, in this module's namespace: they are ordinary classes of this
module (``effdsl.backends.torch.modules.MBConv``), so modules built from them pickle,
deep-copy, script, trace and export, and the ``.py`` export writes the very same text.
The text is registered with :mod:`linecache`, so tracebacks and ``inspect.getsource``
(which TorchScript needs) show it.

Each network gets a class of its own name (``EfficientnetB0``, a subclass of ``Network``;
``EfficientnetB0Features`` of ``Features``), made on first use by :func:`network_class`;
a name looked up here that does not exist yet (unpickling in a fresh process) is made the
same way.
"""

from __future__ import annotations

import linecache
import math  # noqa: F401  (the library's namespace)

import torch
import torch.utils.checkpoint  # noqa: F401  (used by Network.forward_stages)
from torch import nn  # noqa: F401  (the library's namespace)

from effdsl.backends.torch.layers import Conv2dSame, StochasticDepth, init_weights  # noqa: F401
from effdsl.blocks import REGISTRY
from effdsl.blocks.library import activations_source, class_source
from effdsl.diagnostics import EffdslError
from effdsl.language.plugins import load_plugin, plugin_names
from effdsl.language.spec import ACTIVATIONS as _NAMES

_FILENAME = "<effdsl.blocks.library>"
SOURCE = activations_source(list(_NAMES)) + class_source(list(REGISTRY), same_padding=True, squeeze_excite=True,
                                                         features=True, layer_norm=True, any_user_block=True)
linecache.cache[_FILENAME] = (len(SOURCE), None, SOURCE.splitlines(keepends=True), _FILENAME)
exec(compile(SOURCE, _FILENAME, "exec"), globals())  # noqa: S102  (effdsl's own text, see above)

_plugins: set[str] = set()


def define_plugin(class_name: str, source: str) -> None:
    """Run a plug-in op's class source in this module's namespace (once per class), where
    ``UserBlock`` finds it by name."""
    if class_name in _plugins:
        return
    filename = f"<effdsl plug-in {class_name}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
    exec(compile(source, filename, "exec"), globals())  # noqa: S102  (an installed package's own source)
    _plugins.add(class_name)


_FEATURES = "Features"
_classes: dict[str, type] = {}


def network_class(name: str, features: bool = False) -> type:
    """The class named ``name`` (``name + "Features"`` for a backbone), a subclass of ``Network``
    (``Features``), made once per process."""
    full = name + _FEATURES if features else name
    cls = _classes.get(full)
    if cls is None:
        base = globals()[_FEATURES] if features else globals()["Network"]
        cls = type(full, (base,), {"__module__": __name__, "__qualname__": full,
                                   "__doc__": f"{name}{' (backbone)' if features else ''}: {base.__doc__}"})
        _classes[full] = cls
    return cls


def _plugin_class(name: str) -> type | None:
    """The class of an installed plug-in op called ``name`` (a module pickled in another process)."""
    for op in plugin_names():
        try:
            plugin = load_plugin(op, None)
        except EffdslError:  # a broken plug-in is not the one asked for
            continue
        if plugin is not None and plugin.class_name == name:
            define_plugin(name, plugin.torch_source)
            found: type = globals()[name]
            return found
    return None


def __getattr__(name: str) -> type:
    # A plug-in op's class or a network class pickled in another process: made again by its name.
    plugin = _plugin_class(name) if name.isidentifier() else None
    if plugin is not None:
        return plugin
    if name.isidentifier() and name[:1].isupper():
        if name.endswith(_FEATURES) and len(name) > len(_FEATURES):
            return network_class(name[: -len(_FEATURES)], features=True)
        return network_class(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
