"""Load checkpoints saved from torchvision, timm or effdsl into a built module.

A checkpoint is a ``state_dict`` saved with ``torch.save`` (read with
``weights_only=True``) or a ``.safetensors`` file. Its origin is recognized from its
keys, and its tensor names are translated to effdsl's from that origin's naming scheme
(torchvision ``features.2.0.block.1.0.weight``, timm ``blocks.1.0.conv_dw.weight``).
Every layer must get a tensor of its shape; the first that does not is reported with
the spec line of the layer; nothing is loaded then, unless a partial load is asked for.
"""

from __future__ import annotations

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


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint file (a state_dict, possibly under 'state_dict'/'model')."""
    path = Path(path)
    if not path.is_file():
        raise EffdslError(Diagnostic("E501", f"no such checkpoint file: '{path}'"))
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any unreadable file is the user's to fix, not a crash
        # torch's own message suggests weights_only=False, which runs code from the file:
        # effdsl never does that, so only the kind of failure is shown.
        raise EffdslError(Diagnostic(
            "E501", f"cannot read checkpoint '{path}': not a tensor file that torch.load (weights only) or "
                    f"safetensors can open ({type(exc).__name__})",
            help="expected a state_dict saved with torch.save, or a .safetensors file",
        )) from None
    for wrapper in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise EffdslError(Diagnostic("E501", f"'{path}' does not hold a state_dict of tensors"))
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


def _torchvision_name(key: str, parts: dict, num_stages: int) -> str:
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
                 strict: bool = True) -> LoadReport:
    """Copy a checkpoint's tensors into ``module`` (built from ``graph``).

    ``strict``: every checkpoint tensor must have a layer of its shape and every layer a
    tensor; otherwise the first disagreement is an error (E503) pointing at the spec line
    of the layer, and nothing is loaded. With ``strict=False`` the tensors that fit are
    loaded and the layers left out are listed in the report.
    """
    theirs = path if isinstance(path, dict) else read_state_dict(path)
    theirs, stripped = strip_wrapper_prefix(theirs)  # said in the report
    origin = origin_of(list(theirs))
    ours = module.state_dict()
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
