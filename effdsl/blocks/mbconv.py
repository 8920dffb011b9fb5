"""MBConv, the inverted residual of MobileNetV2 with squeeze-excite (EfficientNet's block).

1x1 expansion to ``mid = e x in`` (skipped when ``e = 1``), depthwise kxk, squeeze-excite
on the expanded features, 1x1 projection without activation, residual when the shapes
allow it (Sandler et al. 2018; Tan and Le 2019).

Its operators are defined in the prelude (``grammars/prelude.eff``, ``block mbconv``) and
nowhere else; this module holds its torch class (parameter names = operator names) and how
a table row is read back (:mod:`effdsl.blocks.table` checks each block against the prelude).
"""

from __future__ import annotations

from collections.abc import Mapping

from effdsl.blocks import user
from effdsl.blocks.base import BlockArgs, BlockKind, Builder, ConvRow
from effdsl.language.prelude import prelude_block


def lower(b: Builder, x: str, args: BlockArgs) -> str:
    """The operators of one block: its prelude definition (``grammars/prelude.eff``) interpreted."""
    return user.lower(prelude_block("mbconv"), b, x, args)


def _mid(convs: Mapping[str, ConvRow], in_ch: int) -> int:
    return convs["dw"].in_ch


PY_CLASS = '''

class MBConv(nn.Module):
    """Inverted residual: 1x1 expand to `mid` (unless mid == in_ch), depthwise kxk,
    squeeze-excite (when squeeze > 0), 1x1 project without activation; the residual goes
    through stochastic depth."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, mid: int, squeeze: int | tuple,
                 act: str | None, bn: tuple[float, float] | None, residual: bool, drop_path: float,
                 padding: str = "symmetric"):
        super().__init__()
        self.expand = ConvBNAct(in_ch, mid, 1, 1, act, bn) if mid != in_ch else None
        self.dw = ConvBNAct(mid, mid, kernel, stride, act, bn, groups=mid, padding=padding)
        self.se = squeeze_excite(mid, squeeze, act) if squeeze else None
        self.project = ConvBNAct(mid, out_ch, 1, 1, None, bn)
        self.residual = residual
        self.drop_path = StochasticDepth(drop_path) if residual and drop_path > 0 else None
        self.about = describe(kernel, stride, in_ch, out_ch, mid, squeeze, act, residual, drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x if self.expand is None else self.expand(x)
        out = self.dw(out)
        if self.se is not None:
            out = self.se(out)
        out = self.project(out)
        if self.residual:
            if self.drop_path is not None:
                out = self.drop_path(out)
            out += x
        return out

    def __repr__(self) -> str:
        return f"MBConv({self.about})"
'''

BLOCK = BlockKind(
    name="mbconv", class_name="MBConv", main_part="dw",
    parts=frozenset({"expand", "dw", "se", "project", "residual"}), expands=True,
    lower=lower, mid=_mid, py_class=PY_CLASS,
    py_make="MBConv(in_ch, out_ch, kernel, stride, mid, squeeze, act, bn, residual, drop_path, padding)",
)
