"""Load checkpoints saved from torchvision, timm or effdsl into a built module.

A checkpoint is a ``state_dict`` saved with ``torch.save`` (read with
``weights_only=True``) or a ``.safetensors`` file. Its origin is recognized from its
keys, and its tensor names are translated to effdsl's from that origin's naming scheme
(torchvision ``features.2.0.block.1.0.weight``, timm ``blocks.1.0.conv_dw.weight``).
Every layer must get a tensor of its shape; the first that does not is reported with
the spec line of the layer; nothing is loaded then, unless a partial load is asked for.
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

from effdsl.blocks import kind_of_parts
from effdsl.diagnostics import Diagnostic, EffdslError, Span
from effdsl.ir.graph import PARAMETRIC, CompiledGraph

# A key that only a checkpoint of that origin has.
ORIGINS: dict[str, str] = {
    "features.0.0.weight": "torchvision",
    "conv_stem.weight": "timm",
    "stem.conv.weight": "effdsl",
}


@dataclass
class LoadReport:
    origin: str
    loaded: int
    skipped: list[str] = field(default_factory=list)
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
    for key, origin in ORIGINS.items():
        if key in keys:
            return origin
    shown = ", ".join(keys[:3]) or "no tensors"
    raise EffdslError(Diagnostic(
        "E502", f"cannot tell where this checkpoint comes from (first keys: {shown})",
        help="supported: torchvision efficientnet_b*, timm efficientnet_b* / tf_efficientnet_b*, effdsl",
    ))


def _layer_span(graph: CompiledGraph, key: str) -> Span | None:
    node = key.rsplit(".", 1)[0]
    return graph.op(node).span if node in graph else None


_CONV_BN = {"0": "conv", "1": "bn"}
_TV_SE = {"fc1": "reduce", "fc2": "expand"}
_TIMM_TOP = {"conv_stem": "stem.conv", "bn1": "stem.bn", "conv_head": "head.conv", "bn2": "head.bn",
             "classifier": "classifier"}


def _block_parts(graph: CompiledGraph) -> dict[tuple[str, str], list[str]]:
    """Each block's parts with weights, in order, by (stage, block-in-stage) as in module
    paths: ('0', '1') -> ['expand', 'dw', 'se', 'project']."""
    found: dict[tuple[str, str], list[str]] = {}
    for op in graph.ops():
        if op.name.startswith("stages.") and op.kind in PARAMETRIC:
            _, stage, block, *_ = op.name.split(".")
            parts = found.setdefault((stage, block), [])
            if op.part not in parts:
                parts.append(op.part)
    return found


def _torchvision_name(key: str, parts: dict[tuple[str, str], list[str]], num_stages: int) -> str:
    bits = key.split(".")
    if bits[0] == "classifier":
        return "classifier." + bits[-1]
    index = int(bits[1])
    if index == 0:
        return f"stem.{_CONV_BN[bits[2]]}.{bits[-1]}"
    if index == num_stages + 1:
        return f"head.{_CONV_BN[bits[2]]}.{bits[-1]}"
    stage, block = str(index - 1), bits[2]
    part = parts[(stage, block)][int(bits[4])]
    sub = _TV_SE[bits[5]] if part == "se" else _CONV_BN[bits[5]]
    return f"stages.{stage}.{block}.{part}.{sub}.{bits[-1]}"


def _timm_name(key: str, block_parts: dict[tuple[str, str], list[str]]) -> str:
    """timm's names, from the table of the block kind (see :mod:`effdsl.blocks`) at that place."""
    bits = key.split(".")
    if bits[0] != "blocks":
        return f"{_TIMM_TOP[bits[0]]}.{bits[-1]}"
    stage, block = bits[1], bits[2]
    parts = frozenset(block_parts[(stage, block)])
    kind = kind_of_parts(parts)
    if kind is None:
        raise KeyError(key)
    module = ".".join(bits[3:-1])
    return f"stages.{stage}.{block}.{kind.timm_names(parts)[module]}.{bits[-1]}"


class _Namer:
    """Translates checkpoint keys of one origin to effdsl's names (order-free, so checkpoints
    whose keys were re-sorted, as safetensors does, load too)."""

    def __init__(self, origin: str, graph: CompiledGraph):
        self.origin = origin
        self.parts = _block_parts(graph)
        self.num_stages = len(graph.plan.stages)

    def name(self, key: str) -> str | None:
        if self.origin == "effdsl":
            return key
        try:
            if self.origin == "torchvision":
                return _torchvision_name(key, self.parts, self.num_stages)
            return _timm_name(key, self.parts)
        except (KeyError, IndexError, ValueError):
            return None

    def stage(self, key: str) -> int | None:
        """The stage a checkpoint key belongs to, when its name says so."""
        bits = key.split(".")
        try:
            if self.origin == "torchvision" and bits[0] == "features":
                return int(bits[1]) - 1
            if bits[0] in ("blocks", "stages"):
                return int(bits[1])
        except (IndexError, ValueError):
            return None
        return None


def _stage_span(graph: CompiledGraph, stage: int | None) -> Span | None:
    if stage is None:
        return None
    return next((op.span for op in graph.ops() if op.stage == stage), None)


def load_weights(module: nn.Module, path: str | Path | dict[str, torch.Tensor], graph: CompiledGraph,
                 strict: bool = True, allow_nonfinite: bool = False) -> LoadReport:
    """Copy a checkpoint's tensors into ``module`` (built from ``graph``).

    ``strict``: every checkpoint tensor must have a layer of its shape and every layer a
    tensor; otherwise the first disagreement is an error (E503) pointing at the spec line
    of the layer, and nothing is loaded. With ``strict=False`` the tensors that fit are
    loaded and the layers left out are listed in the report. A tensor that cannot stand for
    its layer (E504: sparse, meta, a dtype that is not a float for a float parameter, NaN or
    infinite values unless ``allow_nonfinite``) is an error either way. Float tensors of
    16, 32 or 64 bits are cast to the layer's dtype.
    """
    ours = module.state_dict()
    if isinstance(path, dict):
        theirs = state_dict_of(path, "the state_dict")
    else:
        theirs = read_state_dict(path, max_bytes=checkpoint_budget(module))
    theirs, stripped = strip_wrapper_prefix(theirs)  # said in the report
    origin = origin_of(list(theirs))
    namer = _Namer(origin, graph)
    accepted: dict[str, torch.Tensor | None] = {}
    problems: list[Diagnostic] = []
    for key, tensor in theirs.items():
        mine = namer.name(key)
        if mine is not None and mine not in ours and mine.rsplit(".", 1)[0] in graph:
            continue  # a layer of the network that this module leaves out (a backbone has no head)
        if mine is None or mine not in ours:
            problems.append(Diagnostic(
                "E503", f"checkpoint tensor '{key}' has no layer in this network",
                _stage_span(graph, namer.stage(key)),
                "build the preset the checkpoint was trained as (its depth or block types differ)"))
        elif tuple(tensor.shape) != tuple(ours[mine].shape):
            problems.append(Diagnostic(
                "E503", f"checkpoint tensor '{key}' has shape {tuple(tensor.shape)}, "
                        + (f"but layer '{mine}' expects " if mine != key else "but this network expects ")
                        + f"{tuple(ours[mine].shape)}",
                _layer_span(graph, mine),
                "build the preset the checkpoint was trained as, or load what fits with --partial "
                "(strict=False in Python)"))
            accepted[mine] = None  # reported; not also missing
        else:
            unusable = _unusable(tensor, ours[mine], allow_nonfinite)
            if unusable is not None:
                why, hint = unusable
                raise EffdslError(Diagnostic("E504", f"checkpoint tensor '{key}' {why}", _layer_span(graph, mine),
                                             hint))
            accepted[mine] = tensor
    for mine in ours:
        if mine not in accepted:
            problems.append(Diagnostic("E503", f"the checkpoint has no tensor for layer '{mine}' "
                                               f"{tuple(ours[mine].shape)}", _layer_span(graph, mine)))
    if strict and problems:
        raise EffdslError(problems[0])
    loadable = {k: v for k, v in accepted.items() if v is not None}
    with torch.no_grad():
        for key, value in loadable.items():
            ours[key].copy_(value)
    return LoadReport(origin, len(loadable), [k for k in ours if k not in loadable], stripped)


_DTYPE_HELP = "save float parameters as float16, bfloat16, float32 or float64, as dense tensors on the CPU"
_NONFINITE_HELP = ("the checkpoint was saved from a diverged or broken run; "
                   "load it anyway with allow_nonfinite=True in Python")


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
        if not allow_nonfinite and not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            return f"holds {bad:,} NaN or infinite value{'s' if bad != 1 else ''}", _NONFINITE_HELP
    elif tensor.dtype not in INT_DTYPES:
        return f"is {str(tensor.dtype).removeprefix('torch.')}, but its buffer holds integers", _DTYPE_HELP
    return None
