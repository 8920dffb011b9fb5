"""Load checkpoints saved from torchvision, timm or effdsl into a built module.

A checkpoint is a ``state_dict`` saved with ``torch.save`` (read with
``weights_only=True``) or a ``.safetensors`` file. Its tensors are paired with the
network's by structure, layer by layer in order with every kind and shape verified
(:mod:`effdsl.backends.torch.pairing`), so that any network the spec describes loads
from any library's checkpoint without a table of names; an effdsl checkpoint is read by
its names. Every layer must get a tensor of its shape; the first that does not is
reported with the spec line of the layer; nothing is loaded then, unless a partial load
is asked for.
"""

from __future__ import annotations

import re
import stat
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from effdsl.backends.torch.pairing import RESYNC, Pairing, Problem, Shape, pair
from effdsl.diagnostics import Diagnostic, EffdslError, Span
from effdsl.ir.graph import CompiledGraph

# A key that only a checkpoint of that origin has: the name of the layout in reports.
ORIGINS: dict[str, str] = {
    "features.0.0.weight": "torchvision",  # efficientnet_*, mobilenet_v2
    "layers.0.weight": "torchvision",      # mnasnet*
    "conv_stem.weight": "timm",
    "stem.conv.weight": "effdsl",
}


@dataclass
class LoadReport:
    """What a load did: the checkpoint's layout, how many tensors were copied, the network's
    tensors left as they were (``skipped``) and the checkpoint's that were not used."""

    origin: str
    loaded: int
    skipped: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)
    stripped: str | None = None  # a prefix every key had ('module.' of DataParallel/DDP), removed


# Prefixes that wrappers put before every key: DataParallel and DistributedDataParallel
# ('module.'), torch.compile ('_orig_mod.').
WRAPPER_PREFIXES = ("module.", "_orig_mod.")


def strip_wrapper_prefix(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], str | None]:
    """The state dict without a wrapper's prefix on every key, and the prefix removed (or None)."""
    removed = ""
    while state and (prefix := next((p for p in WRAPPER_PREFIXES if all(k.startswith(p) for k in state)), None)):
        state = {k[len(prefix):]: v for k, v in state.items()}
        removed += prefix
    return state, removed or None


# Floating dtypes a float parameter accepts (cast on load); integer buffers take integers.
FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
INT_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


def checkpoint_budget(module: nn.Module) -> int:
    """The most bytes a checkpoint for ``module`` may unpack to: four times its tensors in
    float64 (room for optimizer state and EMA copies) plus 64 MiB. A file that declares more
    is refused before anything is unpacked."""
    elements = sum(int(t.numel()) for t in module.state_dict().values())
    return 4 * 8 * elements + 64 * 2**20


def _file_kind(path: Path) -> str | None:
    """What a path is when it is not a regular file ('a directory', 'a FIFO', ...), or None."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        if exc.errno == 40:  # ELOOP
            return "a symlink loop"
        return None if path.is_symlink() else "missing"
    if stat.S_ISREG(mode):
        return None
    for test, what in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return what
    return "not a regular file"


def _unpacked_size(path: Path) -> int:
    """The bytes a checkpoint unpacks to: a zip archive's (torch.save's format) declared
    sizes, summed from its directory without unpacking; otherwise the file's size."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            return sum(info.file_size for info in archive.infolist())
    return path.stat().st_size


def read_state_dict(path: str | Path, max_bytes: int | None = None) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint file (a state_dict, possibly under 'state_dict'/'model').

    The file is checked before it is read: a regular file, at most ``max_bytes`` once
    unpacked (``None``: no limit). Keys must be names; values dense tensors.
    """
    path = Path(path)
    kind = _file_kind(path)
    if kind == "missing":
        raise EffdslError(Diagnostic("E501", f"no such checkpoint file: '{path}'"))
    if kind is not None:
        raise EffdslError(Diagnostic("E501", f"the checkpoint '{path}' is {kind}, not a file",
                                     help="expected a state_dict saved with torch.save, or a .safetensors file"))
    try:
        size = _unpacked_size(path)
    except (OSError, zipfile.BadZipFile, ValueError) as exc:
        raise EffdslError(Diagnostic("E501", f"cannot read checkpoint '{path}': {exc}")) from None
    if max_bytes is not None and size > max_bytes:
        raise EffdslError(Diagnostic(
            "E501", f"the checkpoint '{path}' unpacks to {size:,} bytes, more than the {max_bytes:,} a "
                    f"checkpoint of this network can need", help="is it the checkpoint of another, larger network?"))
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            with warnings.catch_warnings():  # torch warns about checking sparse tensors: E504 reports them
                warnings.simplefilter("ignore")
                state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any unreadable file is the user's to fix, not a crash
        raise EffdslError(Diagnostic(
            "E501", f"cannot read checkpoint '{path}': {_what_is_wrong(path, exc)}",
            help="expected a state_dict saved with torch.save, or a .safetensors file",
        )) from None
    return state_dict_of(state, str(path))


_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


def _what_is_wrong(path: Path, exc: BaseException) -> str:
    """What is wrong with a file that neither torch.load (weights only) nor safetensors
    could read, in words, from its first bytes and the error. torch's own message advises
    weights_only=False, which runs code from the file: effdsl never does that."""
    try:
        with open(path, "rb") as file:
            head = file.read(512)
    except OSError as err:
        return err.strerror or str(err)
    message = str(exc)
    if not head:
        return "the file is empty"
    if path.suffix == ".safetensors":
        detail = message.strip().splitlines()[0].removeprefix("Error while deserializing header: ") if message else ""
        return f"its safetensors header cannot be read ({detail})" if detail else "it is not a safetensors file"
    found = _GLOBAL.search(message)
    if found:
        return (f"it holds Python objects, not only tensors ({found.group(1)}); effdsl loads tensors and never "
                f"runs code from a checkpoint")
    if head.startswith(b"PK\x03\x04"):
        return "it is a zip archive, as torch.save writes, but a truncated or damaged one"
    if head.startswith(b"\x80"):
        return "it is a Python pickle, but not one of tensors that torch.load can read without running code"
    try:
        head.decode("utf-8")
        is_text = b"\x00" not in head
    except UnicodeDecodeError as err:
        is_text = err.start > len(head) - 4  # a character cut at the end of the first bytes
    if is_text:
        return "it is a text file, not a checkpoint"
    return "it is neither a torch.save file (a zip archive) nor a safetensors file"


def state_dict_of(state: object, where: str) -> dict[str, torch.Tensor]:
    """The state_dict inside a loaded checkpoint object, checked: string keys, tensor values."""
    for wrapper in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict):
        raise EffdslError(Diagnostic("E501", f"'{where}' does not hold a state_dict of tensors"))
    for key, value in state.items():
        if not isinstance(key, str):
            raise EffdslError(Diagnostic(
                "E501", f"'{where}' is not a state_dict: key {key!r} ({type(key).__name__}) is not a tensor name"))
        if not isinstance(value, torch.Tensor):
            raise EffdslError(Diagnostic("E501", f"'{where}' does not hold a state_dict of tensors "
                                                 f"('{key}' is {type(value).__name__}, not a tensor)"))
    return state


def origin_of(keys: list[str]) -> str:
    """A name for the checkpoint's layout (reports say where tensors came from); 'other' when
    no known key is there. Only an effdsl checkpoint is read by its names."""
    for key, origin in ORIGINS.items():
        if key in keys:
            return origin
    return "other"


def _layer_span(graph: CompiledGraph, key: str | None) -> Span | None:
    if key is None:
        return None
    node = key.rsplit(".", 1)[0]
    return graph.op(node).span if node in graph else None


def _stage_span(graph: CompiledGraph, key: str) -> Span | None:
    """The line of the stage an effdsl key names (``stages.2.0...``), if any."""
    bits = key.split(".")
    if len(bits) < 2 or bits[0] != "stages" or not bits[1].isdigit():
        return None
    stage = int(bits[1])
    return next((op.span for op in graph.ops() if op.stage == stage), None)


def _pair_by_name(theirs: dict[str, Shape], ours: dict[str, Shape]) -> Pairing:
    """An effdsl checkpoint: its names are the network's."""
    result = Pairing(complete=True)
    for key, shape in theirs.items():
        if key not in ours:
            result.problems.append(Problem("extra", key, None, shape))
        elif shape != ours[key]:
            result.problems.append(Problem("shape", key, key, shape, ours[key]))
        else:
            result.loaded[key] = key
    result.problems.extend(Problem("missing", None, key, None, shape) for key, shape in ours.items()
                           if key not in theirs)
    return result


_DEPTH_HELP = "build the preset the checkpoint was trained as (its depth or block types differ)"
_SHAPE_HELP = ("build the preset the checkpoint was trained as, or load what fits with --partial "
               "(strict=False in Python)")


def _diagnostic(problem: Problem, graph: CompiledGraph) -> Diagnostic:
    """E503 for one disagreement, at the spec line of its layer."""
    if problem.kind == "extra":
        assert problem.theirs is not None
        span = _layer_span(graph, problem.near) if problem.near else _stage_span(graph, problem.theirs)
        return Diagnostic("E503", f"checkpoint tensor '{problem.theirs}' has no layer in this network", span,
                          _DEPTH_HELP)
    assert problem.ours is not None
    if problem.kind == "missing":
        return Diagnostic("E503", f"the checkpoint has no tensor for layer '{problem.ours}' {problem.our_shape}",
                          _layer_span(graph, problem.ours))
    layer = f"but layer '{problem.ours}' expects " if problem.ours != problem.theirs else "but this network expects "
    return Diagnostic("E503", f"checkpoint tensor '{problem.theirs}' has shape {problem.their_shape}, "
                              f"{layer}{problem.our_shape}", _layer_span(graph, problem.ours), _SHAPE_HELP)


def _unpaired(pairing: Pairing, theirs: dict[str, Shape], ours: dict[str, Shape]) -> str:
    """Which tensors paired and which did not, in words, for E502."""
    used = set(pairing.loaded.values())
    spare = [k for k in theirs if k not in used]
    empty = [k for k in ours if k not in pairing.loaded]
    parts = []
    layers = list(dict.fromkeys((key.rpartition(".")[0], mine.rpartition(".")[0])
                                for mine, key in pairing.loaded.items()))
    shown = [f"'{theirs_path}' -> '{our_path}'" for theirs_path, our_path in layers]
    if len(shown) > 3:
        shown = [shown[0], "...", shown[-1]]
    if layers:
        parts.append(f"paired {len(layers):,} layer{'s' if len(layers) != 1 else ''}: " + ", ".join(shown))
    if spare:
        parts.append(f"{len(spare):,} checkpoint tensors unpaired, the first '{spare[0]}' {theirs[spare[0]]}")
    if empty:
        parts.append(f"{len(empty):,} network tensors without one, the first '{empty[0]}' {ours[empty[0]]}")
    return "; ".join(parts)


def _layout_error(pairing: Pairing, theirs: dict[str, Shape], ours: dict[str, Shape], origin: str,
                  min_fraction: float | None) -> EffdslError:
    """E502: too few tensors pair up for the checkpoint to be this network's."""
    loaded, total = len(pairing.loaded), len(ours)
    named = "" if origin == "other" else f" ({origin} names)"
    if min_fraction is None:
        message = (f"the checkpoint{named} does not fit this network's layout: {loaded:,} of its {len(theirs):,} "
                   f"tensors pair with one of the network's {total:,} by kind and shape, in order")
        hint = "is it the checkpoint of another network? "
    else:
        message = (f"a partial load would fill only {loaded:,} of the network's {total:,} tensors "
                   f"({loaded / total:.0%}), less than the {min_fraction:.0%} asked for")
        hint = "load them anyway with min_fraction=0; "
    return EffdslError(Diagnostic("E502", message, None, hint + _unpaired(pairing, theirs, ours),
                                  arguments=("min_fraction",) if min_fraction is not None else ()))


MIN_FRACTION = 0.5  # a partial load that fills less of the network than this is refused unless asked


def _unrecognised(pairing: Pairing, fraction: float) -> bool:
    """Not this network's layout: the layers do not pair one to one by kind (another
    structure, not only other widths), not even the first few agree, and less than half
    of the network finds a tensor. Otherwise the first disagreement is the news (E503)."""
    return not pairing.complete and pairing.leading < RESYNC and fraction < MIN_FRACTION


def load_weights(module: nn.Module, path: str | Path | dict[str, torch.Tensor], graph: CompiledGraph,
                 strict: bool = True, allow_nonfinite: bool = False, min_fraction: float = MIN_FRACTION) -> LoadReport:
    """Copy a checkpoint's tensors into ``module`` (built from ``graph``).

    The checkpoint's tensors are paired with the module's by structure (see
    :mod:`effdsl.backends.torch.pairing`): layer by layer in order, every kind and shape
    verified; an effdsl checkpoint is paired by name. ``strict``: every checkpoint tensor
    must have a layer of its shape and every layer a tensor; otherwise the first
    disagreement is an error (E503) pointing at the spec line of the layer, and nothing is
    loaded; when the layers do not even pair by kind, the first ones disagree and fewer
    than half of the network's tensors pair up, the layout is not recognised (E502).
    With ``strict=False`` the tensors that fit are loaded and the layers left out are
    listed in the report, provided they fill at least ``min_fraction`` of the network's
    tensors (E502 otherwise; 0 accepts any number). A tensor that cannot stand for its
    layer (E504: sparse, meta, a dtype that is not a float for a float parameter, NaN or
    infinite values unless ``allow_nonfinite``) is an error either way. Float tensors of
    16, 32 or 64 bits are cast to the layer's dtype.
    """
    if not 0 <= min_fraction <= 1:
        raise EffdslError(Diagnostic("E402", f"min_fraction must be between 0 and 1, got {min_fraction:g}",
                                     arguments=("min_fraction",)))
    ours = module.state_dict()
    if isinstance(path, dict):
        theirs = state_dict_of(path, "the state_dict")
    else:
        theirs = read_state_dict(path, max_bytes=checkpoint_budget(module))
    theirs, stripped = strip_wrapper_prefix(theirs)  # said in the report
    origin = origin_of(list(theirs))
    by_name = origin == "effdsl"  # effdsl's own names need no pairing
    if by_name:  # a backbone (features_only) leaves the head out: its tensors are not extra layers
        theirs = {k: v for k, v in theirs.items() if k in ours or k.rsplit(".", 1)[0] not in graph}
    their_shapes = {k: tuple(v.shape) for k, v in theirs.items()}
    our_shapes = {k: tuple(v.shape) for k, v in ours.items()}
    pairing = _pair_by_name(their_shapes, our_shapes) if by_name else pair(their_shapes, our_shapes)
    fraction = len(pairing.loaded) / max(len(ours), 1)
    if strict and pairing.problems and _unrecognised(pairing, fraction):
        raise _layout_error(pairing, their_shapes, our_shapes, origin, None)
    if not strict and fraction < min_fraction:
        raise _layout_error(pairing, their_shapes, our_shapes, origin, min_fraction)
    for mine, key in pairing.loaded.items():
        unusable = _unusable(theirs[key], ours[mine], allow_nonfinite)
        if unusable is not None:
            why, hint = unusable
            raise EffdslError(Diagnostic("E504", f"checkpoint tensor '{key}' {why}", _layer_span(graph, mine), hint))
    if strict and pairing.problems:
        raise EffdslError(_diagnostic(pairing.problems[0], graph))
    with torch.no_grad():
        for mine, key in pairing.loaded.items():
            ours[mine].copy_(theirs[key])
    used = set(pairing.loaded.values())
    return LoadReport(origin, len(pairing.loaded), [k for k in ours if k not in pairing.loaded],
                      unused=[k for k in theirs if k not in used], stripped=stripped)


_DTYPE_HELP = "save float parameters as float16, bfloat16, float32 or float64, as dense tensors on the CPU"
_NONFINITE_HELP = ("the checkpoint was saved from a diverged or broken run; "
                   "load it anyway with allow_nonfinite=True in Python")


def _finite(tensor: torch.Tensor) -> bool:
    """No NaN or infinity: the extremes are finite (NaN propagates to both). One pass,
    several times faster than ``torch.isfinite(tensor).all()`` on large tensors."""
    if tensor.numel() == 0:
        return True
    low, high = torch.aminmax(tensor)
    return bool(torch.isfinite(low)) and bool(torch.isfinite(high))


def _unusable(tensor: torch.Tensor, layer: torch.Tensor, allow_nonfinite: bool) -> tuple[str, str] | None:
    """Why ``tensor`` cannot be copied into ``layer`` and what to do, in words, or None."""
    if tensor.layout != torch.strided:
        return f"is {str(tensor.layout).removeprefix('torch.')}, not a dense tensor", _DTYPE_HELP
    if tensor.is_meta:
        return "has no data (a meta tensor)", _DTYPE_HELP
    if layer.is_floating_point():
        if tensor.dtype not in FLOAT_DTYPES:
            return (f"is {str(tensor.dtype).removeprefix('torch.')}, but its layer holds floating-point numbers",
                    _DTYPE_HELP)
        if not allow_nonfinite and not _finite(tensor):
            bad = int((~torch.isfinite(tensor)).sum())
            return f"holds {bad:,} NaN or infinite value{'s' if bad != 1 else ''}", _NONFINITE_HELP
    elif tensor.dtype not in INT_DTYPES:
        return f"is {str(tensor.dtype).removeprefix('torch.')}, but its buffer holds integers", _DTYPE_HELP
    return None
