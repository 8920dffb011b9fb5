"""Pairing a checkpoint's tensors with a network's from their structure, not their names.

A state_dict is a list of layers: the tensors that share a module path (``blocks.1.0.conv_dw``
holds ``weight``; ``blocks.1.0.bn1`` holds ``weight``, ``bias``, ``running_mean``,
``running_var`` and ``num_batches_tracked``). Each layer has a kind, told from its
attributes and their dimensions (a conv's weight is 4-D, a linear layer's 2-D, a batch
norm has running statistics), and a signature: its kind and the shape of every
attribute. The attribute names are PyTorch's own (``nn.Conv2d``, ``nn.BatchNorm2d``,
``nn.Linear``), the same in every library; the module paths are not, so they are never
translated, only ordered.

Two networks built alike register their layers in the same order, so the checkpoint's
layers are paired with the network's in order, and every pair must agree in kind and in
every shape. When the keys were re-sorted (a ``.safetensors`` file), the order is
rebuilt from the module paths (:func:`natural_key`: numbers compared as numbers, and the
top-level modules of torchvision's, timm's and effdsl's networks in the order they run).
Sorting can still swap layers inside one block (timm's ``conv_dw`` sorts before
``conv_pw``), so within a block (the path up to its last number) layers are paired by
signature first, keeping their order among equal signatures, then by kind.

When the structures differ (another depth, another block type), layers are paired in
order while their signatures agree and the layouts are brought back in step by skipping
the fewest layers on either side; what was skipped is reported: checkpoint tensors with
no layer, layers with no tensor, and pairs whose shapes differ.
This module knows nothing of torch: it works on names and shapes.
"""

from __future__ import annotations

import re
from collections import defaultdict, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

Shape = tuple[int, ...]

# The top-level modules of the networks effdsl reads checkpoints of, in the order they run:
# effdsl (stem, stages, head, classifier), torchvision (features or layers, classifier) and
# timm (conv_stem, bn1, blocks, conv_head, bn2, classifier). Sorting alone would put the
# classifier first; other names sort after these, in their own order.
TOP_LEVEL_ORDER = ("stem", "conv_stem", "bn1", "features", "layers", "blocks", "stages",
                   "conv_head", "bn2", "head", "classifier")

_BN_STATS = frozenset({"running_mean", "running_var"})


@dataclass(frozen=True)
class Layer:
    """The tensors of one module: its path, and each attribute's key and shape (sorted by attribute)."""

    path: str
    attrs: tuple[tuple[str, Shape], ...]
    keys: tuple[str, ...]

    @property
    def kind(self) -> str:
        """conv, bn, linear, or other (a layer of a kind effdsl's networks do not have)."""
        shapes = dict(self.attrs)
        weight = shapes.get("weight")
        if shapes.keys() >= _BN_STATS and all(len(shapes[a]) == 1 for a in ("weight", "bias", *_BN_STATS)
                                              if a in shapes):
            return "bn"
        if weight is not None and set(shapes) <= {"weight", "bias"} and len(shapes.get("bias", (0,))) == 1:
            if len(weight) == 4:
                return "conv"
            if len(weight) == 2:
                return "linear"
        return "other"

    @property
    def signature(self) -> tuple[str, tuple[tuple[str, Shape], ...]]:
        return self.kind, self.attrs

    def key(self, attr: str) -> str:
        return self.keys[[a for a, _ in self.attrs].index(attr)]


def layers_of(shapes: Mapping[str, Shape]) -> list[Layer]:
    """The layers of a state_dict (key -> shape), in the order their first tensor appears."""
    grouped: dict[str, dict[str, tuple[str, Shape]]] = {}
    for key, shape in shapes.items():
        path, _, attr = key.rpartition(".")
        grouped.setdefault(path, {})[attr] = (key, tuple(shape))
    layers = []
    for path, attrs in grouped.items():
        names = sorted(attrs)
        layers.append(Layer(path, tuple((a, attrs[a][1]) for a in names), tuple(attrs[a][0] for a in names)))
    return layers


def _part_key(part: str) -> tuple[tuple[int, int, str], ...]:
    """A path component's sort key: runs of digits as numbers (bn2 before bn10, 9 before 10)."""
    return tuple((0, int(run), "") if run.isdigit() else (1, 0, run) for run in re.findall(r"\d+|\D+", part))


def natural_key(path: str) -> tuple[object, ...]:
    """The order a module runs in, rebuilt from its path (for checkpoints whose keys were sorted)."""
    parts = path.split(".")
    top = TOP_LEVEL_ORDER.index(parts[0]) if parts[0] in TOP_LEVEL_ORDER else len(TOP_LEVEL_ORDER)
    return (top, *(_part_key(p) for p in parts))


def block_of(path: str) -> str:
    """The path up to its last numeric component: the block (or list entry) a layer belongs to."""
    parts = path.split(".")
    numeric = [i for i, p in enumerate(parts) if p.isdigit()]
    return ".".join(parts[:numeric[-1] + 1]) if numeric else ""


ProblemKind = Literal["extra", "missing", "shape"]


@dataclass(frozen=True)
class Problem:
    """One disagreement: a checkpoint tensor with no layer ('extra'), a layer with no tensor
    ('missing'), or a pair whose shapes differ ('shape'). ``near`` is the network's layer
    next to an extra tensor (for pointing at a spec line)."""

    kind: ProblemKind
    theirs: str | None
    ours: str | None
    their_shape: Shape | None = None
    our_shape: Shape | None = None
    near: str | None = None


@dataclass
class Pairing:
    """The result: ``loaded`` maps each network key to the checkpoint key of the same shape."""

    loaded: dict[str, str] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    complete: bool = False  # every layer paired with one of its kind (shapes may still differ)
    natural: bool = False   # the checkpoint's order was rebuilt from its paths
    leading: int = 0        # layers paired exactly before the first problem

    def pair_layers(self, theirs: Layer, ours: Layer) -> None:
        """Pair two layers of one kind attribute by attribute."""
        if not self.problems and theirs.attrs == ours.attrs:
            self.leading += 1
        mine = dict(ours.attrs)
        # a layer of another shape keeps its scalars too (a batch norm's counter is no evidence)
        differs = any(attr in mine and shape != mine[attr] for attr, shape in theirs.attrs)
        for attr, shape in theirs.attrs:
            if attr not in mine:
                self.problems.append(Problem("extra", theirs.key(attr), None, shape, None, near=ours.keys[0]))
            elif shape == mine[attr]:
                if shape or not differs:
                    self.loaded[ours.key(attr)] = theirs.key(attr)
            else:
                self.problems.append(Problem("shape", theirs.key(attr), ours.key(attr), shape, mine[attr]))
        their_attrs = {a for a, _ in theirs.attrs}
        for attr, shape in ours.attrs:
            if attr not in their_attrs:
                self.problems.append(Problem("missing", None, ours.key(attr), None, shape))

    def extra(self, theirs: Layer, near: Layer | None) -> None:
        near_key = near.keys[-1] if near is not None else None
        self.problems.extend(Problem("extra", k, None, s, None, near=near_key) for k, (_, s) in
                             zip(theirs.keys, theirs.attrs, strict=True))

    def missing(self, ours: Layer) -> None:
        self.problems.extend(Problem("missing", None, k, None, s) for k, (_, s) in zip(ours.keys, ours.attrs,
                                                                                      strict=True))


def _runs(layers: Sequence[Layer]) -> list[list[Layer]]:
    """Consecutive layers of one block."""
    runs: list[list[Layer]] = []
    for layer in layers:
        if runs and block_of(runs[-1][-1].path) == block_of(layer.path):
            runs[-1].append(layer)
        else:
            runs.append([layer])
    return runs


def _pair_in_blocks(theirs: Sequence[Layer], ours: Sequence[Layer]) -> list[tuple[Layer, Layer]] | None:
    """Pair block by block: each block of the checkpoint with the network's next layers, by
    signature then by kind. None when the kinds do not line up (another structure)."""
    pairs: list[tuple[Layer, Layer]] = []
    start = 0
    for run in _runs(theirs):
        window = list(ours[start:start + len(run)])
        if len(window) < len(run):
            return None
        start += len(run)
        queues: dict[object, deque[Layer]] = defaultdict(deque)
        for layer in run:
            queues[layer.signature].append(layer)
        unpaired: list[Layer] = []
        for layer in window:
            queue = queues.get(layer.signature)
            if queue:
                pairs.append((queue.popleft(), layer))
            else:
                unpaired.append(layer)
        left = [layer for queue in queues.values() for layer in queue]
        left.sort(key=run.index)
        for layer in unpaired:
            match = next((t for t in left if t.kind == layer.kind), None)
            if match is None:
                return None
            left.remove(match)
            pairs.append((match, layer))
    return pairs if start == len(ours) else None


RESYNC = 4  # equal signatures in a row that count as the two layouts being in step again
LOOKAHEAD = 512  # the most layers skipped at once (EfficientNetV2-L's deepest stage has 225)


def _walk(theirs: Sequence[Layer], ours: Sequence[Layer], result: Pairing) -> None:
    """Pair in order while signatures agree; where they do not, find the fewest layers to
    skip on either side (or both) after which they agree again for a while, and report
    what was skipped: extra blocks of a deeper checkpoint, missing ones, or pairs of
    another shape."""
    ids: dict[object, int] = {}
    a = [ids.setdefault(t.signature, len(ids)) for t in theirs]
    b = [ids.setdefault(o.signature, len(ids)) for o in ours]
    n, m = len(a), len(b)

    def in_step(i: int, j: int) -> bool:
        if i == n or j == m:
            return i == n and j == m
        run = min(RESYNC, n - i, m - j)
        return a[i] == b[j] and a[i:i + run] == b[j:j + run]

    i = j = 0
    while i < n and j < m:
        if a[i] == b[j]:
            result.pair_layers(theirs[i], ours[j])
            i, j = i + 1, j + 1
            continue
        skip = next(((di, dj) for k in range(1, min(max(n - i, m - j), LOOKAHEAD) + 1)
                     for di, dj in ((k, k), (k, 0), (0, k)) if i + di <= n and j + dj <= m and in_step(i + di, j + dj)),
                    (1, 1))
        for step in range(max(skip)):
            t = theirs[i + step] if step < skip[0] else None
            o = ours[j + step] if step < skip[1] else None
            if t is not None and o is not None and t.kind == o.kind:
                result.pair_layers(t, o)
                continue
            if t is not None:
                result.extra(t, ours[j - 1] if j > 0 else None)
            if o is not None:
                result.missing(o)
        i, j = i + skip[0], j + skip[1]
    for t in theirs[i:]:
        result.extra(t, ours[-1] if ours else None)
    for o in ours[j:]:
        result.missing(o)


def pair(theirs: Mapping[str, Shape], ours: Mapping[str, Shape]) -> Pairing:
    """Pair a checkpoint's tensors (key -> shape, in the file's order) with a network's.

    Both the file's order and the order rebuilt from its paths are tried; the better
    pairing wins: a complete one (every layer paired with one of its kind), then the one
    that loads more tensors.
    """
    our_layers = layers_of(ours)
    given = layers_of(theirs)
    rebuilt = sorted(given, key=lambda layer: natural_key(layer.path))
    best: Pairing | None = None
    for natural, order in ((False, given), (True, rebuilt)):
        if natural and order == given:
            break
        result = Pairing(natural=natural)
        pairs = _pair_in_blocks(order, our_layers)
        if pairs is not None:
            result.complete = True
            position = {id(o): i for i, o in enumerate(our_layers)}
            for t, o in sorted(pairs, key=lambda p: position[id(p[1])]):
                result.pair_layers(t, o)
        else:
            _walk(order, our_layers, result)
        if best is None or _rank(result) > _rank(best):
            best = result
    assert best is not None
    return best


def _rank(result: Pairing) -> tuple[bool, int, int]:
    return not result.problems, len(result.loaded), result.complete
