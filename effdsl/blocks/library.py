"""The torch classes of every network, as source text: one library, run by the torch backend
and written out by the ``.py`` export.

:func:`class_source` assembles the classes a network needs: the activation table and
helpers, ``ConvBNAct`` and ``SqueezeExcite`` (:mod:`effdsl.blocks.base`), one class per
block kind (each kind's module), the ``Head``, timm's ``FeatureInfo``, and ``Network``:
stem, indexable stages of blocks, head and classifier, built from a table of blocks
(:mod:`effdsl.blocks.table`) and carrying timm's model interface. The torch backend
executes the full library once per process (:mod:`effdsl.backends.torch.modules`); the
``.py`` export writes the part a network uses. Both build from the same table, so a built
module and its export have the same modules, names and code.

This module holds text only and needs no torch.
"""

from __future__ import annotations

from collections.abc import Sequence

from effdsl.blocks import REGISTRY
from effdsl.blocks.base import CONV_BN_ACT_CLASS, SQUEEZE_EXCITE_CLASS
from effdsl.blocks.user import layers_name
from effdsl.language.spec import ACTIVATIONS

# Activations torch can compute in place. effdsl applies an activation only to a fresh conv or
# batch-norm output that nothing else reads, so in place is always safe, in training too.
INPLACE = ("relu", "relu6", "silu", "hardswish")

ACTIVATION_FUNCTION = f'''

INPLACE = {INPLACE!r}


def activation(name: str | None) -> nn.Module | None:
    """The module of an activation named in a spec (None: no activation), in place where torch can:
    it only ever sees a fresh conv or batch-norm output that nothing else reads."""
    if name is None:
        return None
    return ACTIVATIONS[name](inplace=True) if name in INPLACE else ACTIVATIONS[name]()
'''

CONV2D_ANY_PADDING = '''

def conv2d(in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1,
           bias: bool = False, padding: str = "symmetric") -> nn.Conv2d:
    """A conv padded by (k - 1) // 2 on every side, or TensorFlow's 'same' padding when strided."""
    if padding == "same" and stride > 1:
        return Conv2dSame(in_ch, out_ch, kernel, stride, groups=groups, bias=bias)
    return nn.Conv2d(in_ch, out_ch, kernel, stride, padding=(kernel - 1) // 2, groups=groups,
                     bias=bias)
'''

CONV2D_SYMMETRIC = '''

def conv2d(in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1,
           bias: bool = False, padding: str = "symmetric") -> nn.Conv2d:
    """A conv padded by (k - 1) // 2 on every side (the only padding this network uses)."""
    return nn.Conv2d(in_ch, out_ch, kernel, stride, padding=(kernel - 1) // 2, groups=groups,
                     bias=bias)
'''

DESCRIBE_FUNCTION = '''

def describe(kernel: int, stride: int, in_ch: int, out_ch: int, mid: int | None, squeeze: int | tuple,
             act: str | None, residual: bool, drop_path: float) -> str:
    """A block's key numbers, for its repr: 'k5 s2 e6 40->80, se 0.25, silu'."""
    expand = f" e{mid / in_ch:.3g}" if mid is not None else ""
    words = [f"k{kernel} s{stride}{expand} {in_ch}->{out_ch}"]
    if isinstance(squeeze, tuple):
        words.append(f"se {squeeze[0]} ({squeeze[1] or 'no act'}, {squeeze[2]})")
    elif squeeze:
        words.append(f"se {squeeze / in_ch:.3g}")
    words.append(act or "no act")
    if residual:
        words.append(f"residual, drop_path {drop_path:.3g}" if drop_path > 0 else "residual")
    return ", ".join(words)
'''

LAYER_NORM_CLASS = '''

class LayerNorm2d(nn.LayerNorm):
    """Layer norm over the channels of each position of an (N, C, H, W) tensor, as ConvNeXt's:
    moved channels-last, normalized, moved back."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.nn.functional.layer_norm(x.permute(0, 2, 3, 1), self.normalized_shape, self.weight, self.bias,
                                           self.eps)
        return x.permute(0, 3, 1, 2)
'''

USER_BLOCK_CLASS = '''

class UserBlock(nn.Module):
    """A block defined in a spec: its layers in order, from a table of (name, kind, settings).

    Widths and sizes in the settings are numbers or words: "in" (the block input), "mid" (its
    expanded width), "out" (its output), "k" (the stage's kernel), "s" (the block's stride).
    Kinds: conv, dwconv, bn, ln (layer norm over channels), act, se (squeeze-excite, when squeeze
    > 0), residual (the block input added, through stochastic depth), or a plug-in op's class.
    A layer named group.op belongs to a group (a submodule of that name); settings["when"], a
    group's condition (width, "==" or "!=", width), leaves it out when it does not hold.
    With bn None the batch norms are folded into the convs before them (which then have a bias).
    """

    def __init__(self, layers: tuple, in_ch: int, out_ch: int, kernel: int, stride: int, mid: int,
                 squeeze: int, act: str | None, bn: tuple[float, float] | None, residual: bool,
                 drop_path: float, padding: str = "symmetric"):
        super().__init__()
        sizes = {"in": in_ch, "mid": mid, "out": out_ch, "k": kernel, "s": stride}
        width = in_ch
        self.order: list[str] = []
        for index, (name, kind, settings) in enumerate(layers):
            when = settings.get("when")  # a group's condition: (width, "==" or "!=", width)
            if when is not None and (sizes[when[0]] == sizes[when[2]]) != (when[1] == "=="):
                continue
            size = {key: sizes.get(value, value) for key, value in settings.items() if isinstance(value, (str, int))}
            folded = bn is None and index + 1 < len(layers) and layers[index + 1][1] == "bn"
            if kind in ("conv", "dwconv"):
                out = width if kind == "dwconv" else size.get("to", width)
                module = conv2d(width, out, size.get("kernel", 1), size.get("stride", 1),
                                width if kind == "dwconv" else 1, settings.get("bias", False) or folded, padding)
                width = out
            elif kind == "bn":
                module = None if bn is None else nn.BatchNorm2d(width, eps=bn[0], momentum=bn[1])
            elif kind == "ln":
                module = LayerNorm2d(width, eps=settings["eps"])
            elif kind == "act":
                module = ACTIVATIONS[settings.get("act", act) or "none"]()
                if "." in name and (settings.get("act", act) or "none") == "none":
                    module = None  # in a group, no activation is no layer
            elif kind == "se":
                module = SqueezeExcite(width, squeeze, act) if squeeze else None
            elif kind == "residual":
                module = None
            else:  # a plug-in op: its class, made with the widths and its options
                options = {key: sizes.get(value, value) for key, value in settings["options"].items()}
                out = options.pop("to", width)
                module = globals()[kind](width, out, **options)
                width = out
            if module is not None:
                parent = self
                if "." in name:  # an op of a group: group.op
                    group, name = name.split(".")
                    if group not in self._modules:
                        self.add_module(group, nn.Module())
                    parent = self._modules[group]
                parent.add_module(name, module)
                self.order.append(name if parent is self else f"{group}.{name}")
        self.residual = residual
        self.drop_path = StochasticDepth(drop_path) if residual and drop_path > 0 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for name in self.order:
            out = self.get_submodule(name)(out)
        if self.residual:
            if self.drop_path is not None:
                out = self.drop_path(out)
            out = out + x
        return out
'''

HEAD_CLASS = '''

class Head(nn.Module):
    """The last conv, batch norm and activation (none when conv is None), global pooling, a hidden
    linear layer and its activation (hidden = (width, act); None: none), dropout."""

    def __init__(self, in_ch: int, conv: tuple | None, pool: str, dropout: float,
                 padding: str = "symmetric", hidden: tuple | None = None):
        super().__init__()
        if conv is None:
            self.conv = self.bn = self.act = None
            self.num_features = in_ch
        else:
            out_ch, kernel, stride, act, bn = conv
            self.conv = conv2d(in_ch, out_ch, kernel, stride, bias=bn is None, padding=padding)
            self.bn = None if bn is None else nn.BatchNorm2d(out_ch, eps=bn[0], momentum=bn[1])
            self.act = activation(act)
            self.num_features = out_ch
        self.pool = nn.AdaptiveAvgPool2d(1) if pool == "avg" else nn.AdaptiveMaxPool2d(1)
        self.hidden = self.hidden_act = None
        if hidden is not None:  # a hidden linear layer (width, act) after the pooling
            self.hidden = nn.Linear(self.num_features, hidden[0])
            self.hidden_act = activation(hidden[1])
            self.num_features = hidden[0]
        self.dropout = nn.Dropout(dropout) if dropout > 0 else None

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The conv, batch norm and activation: the network's last feature map."""
        if self.conv is not None:
            x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        if self.act is not None:
            x = self.act(x)
        return x

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        """Global pooling, flattened, the hidden layer if any, and dropout: what the classifier sees."""
        x = torch.flatten(self.pool(x), 1)
        if self.hidden is not None:
            x = self.hidden(x)
            if self.hidden_act is not None:
                x = self.hidden_act(x)
        return x if self.dropout is None else self.dropout(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pooled(self.features(x))
'''

FEATURE_INFO_CLASS = '''

class FeatureInfo:
    """Where a network's feature maps come from, with timm's FeatureInfo interface: channels(),
    reduction() and module_name() of the maps out_indices selects; indexing and iterating give
    dicts of num_chs, reduction and module."""

    def __init__(self, info: list[dict], out_indices: tuple[int, ...]):
        self.info = info
        self.out_indices = out_indices

    def get(self, key: str, idx=None):
        if idx is None:
            return [self.info[i][key] for i in self.out_indices]
        if isinstance(idx, (tuple, list)):
            return [self.info[i][key] for i in idx]
        return self.info[idx][key]

    def get_dicts(self, keys=None, idx=None):
        picked = [self.info[i] for i in self.out_indices] if idx is None else (
            [self.info[i] for i in idx] if isinstance(idx, (tuple, list)) else [self.info[idx]])
        dicts = [d if keys is None else {k: d[k] for k in keys} for d in picked]
        return dicts[0] if isinstance(idx, int) else dicts

    def channels(self, idx=None):
        return self.get("num_chs", idx)

    def reduction(self, idx=None):
        return self.get("reduction", idx)

    def module_name(self, idx=None):
        return self.get("module", idx)

    def __getitem__(self, idx: int) -> dict:
        return self.info[idx]

    def __len__(self) -> int:
        return len(self.info)

    def __iter__(self):
        return iter(self.info)

    def __repr__(self) -> str:
        return f"FeatureInfo({self.info}, out_indices={self.out_indices})"
'''

NETWORK_CLASS = r'''

class Network(nn.Module):
    """A stem, stages of blocks, a head and a linear classifier, built from a table of blocks, with
    timm's model interface.

    blocks: one row per run of identical blocks (see BLOCKS); stem and head: (out_ch, kernel, stride,
    act, bn), head None when the head only pools; hidden: (width, act) of a linear layer between
    the pooling and the classifier, or None. stages[i][j] is block j of stage i. feature_info
    lists one feature map per distinct reduction (the last stage at that reduction); out_indices
    selects among them for feature_maps(). features_only leaves out the head, the classifier and the
    stages after the last selected map.
    """

    __jit_unused_properties__ = ["default_cfg"]

    def __init__(self, blocks: list[tuple], stem: tuple, head: tuple | None, pool: str = "avg",
                 num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.0,
                 drop_path_rate: float = 0.0, padding: str = "symmetric",
                 pretrained_cfg: dict | None = None, features_only: bool = False,
                 out_indices: tuple[int, ...] | None = None, hidden: tuple | None = None):
        super().__init__()
        self.num_classes = num_classes
        self.drop_rate = drop_rate
        self.grad_checkpointing = False
        self.stem = ConvBNAct(in_chans, *stem, padding=padding)
        maps = [{"num_chs": stem[0], "reduction": stem[2], "module": "stem"}]
        stages: list[list[nn.Module]] = []
        num_blocks = sum(row[2] for row in blocks)
        index = 0
        for stage, kind, repeats, kernel, stride, in_ch, out_ch, mid, squeeze, act, bn, residual in blocks:
            if stage == len(stages):
                stages.append([])
                maps.append({"num_chs": out_ch, "reduction": maps[-1]["reduction"],
                             "module": f"stages.{stage}"})
            maps[-1]["num_chs"] = out_ch
            maps[-1]["reduction"] *= stride ** repeats
            for _ in range(repeats):
                drop_path = drop_path_rate * index / num_blocks  # stochastic depth grows linearly
                stages[-1].append(make_block(kind, in_ch, out_ch, kernel, stride, mid, squeeze, act, bn,
                                             residual, drop_path, padding))
                index += 1
        # one map per distinct reduction: the last stage (or the stem) at each
        info = [m for m, after in zip(maps, maps[1:] + [None])
                if after is None or after["reduction"] != m["reduction"]]
        if out_indices is None:
            out_indices = range(len(info))
        for i in out_indices:
            if not -len(info) <= i < len(info):
                raise IndexError(f"out_indices: there is no feature map {i}; there are {len(info)}")
        self.feature_info = FeatureInfo(info, tuple(i % len(info) for i in out_indices))
        self.taps = [-1 if m["module"] == "stem" else int(m["module"].split(".")[1])
                     for m in self.feature_info.get_dicts()]
        if features_only:
            stages = stages[: max(self.taps) + 1]
        self.stages = nn.ModuleList(nn.Sequential(*blocks) for blocks in stages)
        self.num_features = self.head_hidden_size = head[0] if head is not None else blocks[-1][6]
        if hidden is not None:
            self.num_features = self.head_hidden_size = hidden[0]
        if features_only:
            self.head = self.classifier = None
        else:
            self.head = Head(blocks[-1][6], head, pool, drop_rate, padding, hidden)
            self.classifier = nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()
        cfg = dict(pretrained_cfg or {}, num_classes=num_classes)
        for key in ("input_size", "test_input_size"):
            if key in cfg:
                cfg[key] = (in_chans, *cfg[key][1:])
        self.pretrained_cfg = cfg
        if self.stem.conv.weight.device.type != "meta":  # on meta there are no numbers to set
            self.reset_parameters()

    def reset_parameters(self) -> None:
        """torchvision's EfficientNet initialization."""
        init_weights(self)

    @property
    def default_cfg(self) -> dict:
        """timm's older name for pretrained_cfg."""
        return self.pretrained_cfg

    def get_classifier(self) -> nn.Module:
        return self.classifier

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """A new classifier for num_classes outputs (0: none; the forward then gives the pooled
        features); global_pool 'avg' or 'max' also replaces the pooling."""
        like = self.stem.conv.weight
        if global_pool is not None:
            pool = nn.AdaptiveAvgPool2d if global_pool == "avg" else nn.AdaptiveMaxPool2d
            self.head.pool = pool(1)
        self.num_classes = self.pretrained_cfg["num_classes"] = num_classes
        if num_classes > 0:
            self.classifier = nn.Linear(self.num_features, num_classes, device=like.device,
                                        dtype=like.dtype)
            init_weights(self.classifier)
        else:
            self.classifier = nn.Identity()

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each stage's activations during the backward pass instead of keeping them."""
        self.grad_checkpointing = enable

    def group_matcher(self, coarse: bool = False) -> dict:
        """Parameter groups by name, as timm's layer-wise learning-rate decay reads them."""
        blocks = r"^stages\.(\d+)" if coarse else r"^stages\.(\d+)\.(\d+)"
        return {"stem": r"^stem\.", "blocks": [(blocks, None), (r"^head\.", (99999,))]}

    def forward_stages(self, x: torch.Tensor) -> torch.Tensor:
        """The stages, one after the other (checkpointed when set_grad_checkpointing is on)."""
        for stage in self.stages:
            if self.grad_checkpointing and not torch.jit.is_scripting():
                x = torch.utils.checkpoint.checkpoint(stage, x, use_reentrant=False)
            else:
                x = stage(x)
        return x

    def feature_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The feature maps feature_info describes (those out_indices selects)."""
        features: list[torch.Tensor] = []
        x = self.stem(x)
        if -1 in self.taps:
            features.append(x)
        for index, stage in enumerate(self.stages):
            if self.grad_checkpointing and not torch.jit.is_scripting():
                x = torch.utils.checkpoint.checkpoint(stage, x, use_reentrant=False)
            else:
                x = stage(x)
            if index in self.taps:
                features.append(x)
        return features

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last feature map: stem, stages and the head's conv, before pooling."""
        return self.head.features(self.forward_stages(self.stem(x)))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Pooling, dropout and (unless pre_logits) the classifier, on forward_features' output."""
        x = self.head.pooled(x)
        return x if pre_logits else self.classifier(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.head(self.forward_stages(self.stem(x))))
'''

FEATURES_CLASS = '''

class Features(Network):
    """The backbone alone, for detection and segmentation: the forward returns the feature maps,
    by default one per distinct reduction (out_indices selects among them); out_channels are
    their channels."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, features_only=True, **kwargs)
        self.out_channels = self.feature_info.channels()

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.feature_maps(x)
'''


def activations_source(names: Sequence[str]) -> str:
    """``ACTIVATIONS = {...}``: each activation named in the spec with its torch class."""
    items = [f'"{name}": nn.{ACTIVATIONS[name]}' for name in ACTIVATIONS if name in names]
    one_line = "ACTIVATIONS = {" + ", ".join(items) + "}"
    if len(one_line) <= 100:
        return one_line + "\n"
    return "ACTIVATIONS = {\n" + "".join(f"    {item},\n" for item in items) + "}\n"


def make_block_source(kinds: Sequence[str], user_blocks: Sequence[str] = (), any_user_block: bool = False) -> str:
    """``make_block``: the class of each block kind used, called with a row's numbers.

    ``user_blocks``: the user's block kinds, each a ``UserBlock`` of its table of layers
    (``CONVNEXT_LAYERS``); ``any_user_block``: a kind may also be a (name, layers) pair (the
    torch backend's library, which serves every spec)."""
    lines = [
        "",
        "",
        "def make_block(kind: str, in_ch: int, out_ch: int, kernel: int, stride: int, mid: int | None,",
        "               squeeze: int | tuple, act: str | None, bn: tuple[float, float] | None, residual: bool,",
        "               drop_path: float, padding: str) -> nn.Module:",
        '    """The block of one row of the table."""',
    ]
    for name in kinds:
        lines.append(f'    if kind == "{name}":')
        make = REGISTRY[name].py_make
        if len(make) > 90:  # wrap after the stride: the row's numbers
            cut = make.index("stride, ") + len("stride,")
            make = make[:cut] + "\n" + " " * (16 + make.index("(")) + make[cut + 1:]
        lines.append(f"        return {make}")
    for name in user_blocks:
        lines.append(f'    if kind == "{name}":')
        lines.append(f"        return UserBlock({layers_name(name)}, in_ch, out_ch, kernel, stride, mid, squeeze, act,")
        lines.append("                         bn, residual, drop_path, padding)")
    if any_user_block:
        lines.append("    if isinstance(kind, tuple):  # a user's block: (name, layers)")
        lines.append("        return UserBlock(kind[1], in_ch, out_ch, kernel, stride, mid, squeeze, act, bn,")
        lines.append("                         residual, drop_path, padding)")
    lines.append('    raise ValueError(f"unknown block kind {kind!r}")')
    return "\n".join(lines) + "\n"


def class_source(kinds: Sequence[str], *, same_padding: bool, squeeze_excite: bool, features: bool,
                 user_blocks: Sequence[str] = (), layer_norm: bool = False, any_user_block: bool = False) -> str:
    """The classes and helpers of a network of these block kinds, in dependency order.

    Expects ``torch``, ``nn``, ``ACTIVATIONS``, ``init_weights`` and (with
    residual blocks) ``StochasticDepth``, (with ``same_padding``) ``Conv2dSame`` defined before it;
    with ``user_blocks``, their tables of layers (and the classes of the plug-in ops they use).
    """
    parts = [ACTIVATION_FUNCTION, CONV2D_ANY_PADDING if same_padding else CONV2D_SYMMETRIC, DESCRIBE_FUNCTION,
             CONV_BN_ACT_CLASS]
    if squeeze_excite:
        parts.append(SQUEEZE_EXCITE_CLASS)
    parts += [REGISTRY[name].py_class for name in kinds]
    if layer_norm:
        parts.append(LAYER_NORM_CLASS)
    if user_blocks or any_user_block:
        parts.append(USER_BLOCK_CLASS)
    parts += [make_block_source(kinds, user_blocks, any_user_block), HEAD_CLASS, FEATURE_INFO_CLASS, NETWORK_CLASS]
    if features:
        parts.append(FEATURES_CLASS)
    return "".join(parts)
