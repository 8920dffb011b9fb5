"""Fused-MBConv, EfficientNetV2's block: one full kxk conv does the expansion.

A kxk conv to ``mid = e x in`` (or, when ``e = 1``, straight to the output width: then
it is the whole block), squeeze-excite, 1x1 projection when expanded, residual as in
MBConv (Tan and Le 2021).

Its operators are defined in the prelude (``grammars/prelude.eff``, ``block fused_mbconv``)
and nowhere else; this module holds its torch class and how a table row is read back.
"""

from __future__ import annotations

from collections.abc import Mapping

from effdsl.blocks import user
from effdsl.blocks.base import BlockArgs, BlockKind, Builder, ConvRow
from effdsl.language.prelude import prelude_block


def lower(b: Builder, x: str, args: BlockArgs) -> str:
    """The operators of one block: its prelude definition (``grammars/prelude.eff``) interpreted."""
    return user.lower(prelude_block("fused_mbconv"), b, x, args)


def _mid(convs: Mapping[str, ConvRow], in_ch: int) -> int:
    return convs["project"].in_ch if "project" in convs else in_ch


PY_CLASS = '''

class FusedMBConv(nn.Module):
    """EfficientNetV2's block: one kxk conv expands to `mid` (or, when mid == in_ch, goes
    straight to out_ch and is the whole block), squeeze-excite, 1x1 project; residual as in MBConv."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, mid: int, squeeze: int | tuple,
                 act: str | None, bn: tuple[float, float] | None, residual: bool, drop_path: float,
                 padding: str = "symmetric"):
        super().__init__()
        width = mid if mid != in_ch else out_ch
        self.fused = ConvBNAct(in_ch, width, kernel, stride, act, bn, padding=padding)
        self.se = squeeze_excite(width, squeeze, act) if squeeze else None
        self.project = ConvBNAct(mid, out_ch, 1, 1, None, bn) if mid != in_ch else None
        self.residual = residual
        self.drop_path = StochasticDepth(drop_path) if residual and drop_path > 0 else None
        self.about = describe(kernel, stride, in_ch, out_ch, mid, squeeze, act, residual, drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.fused(x)
        if self.se is not None:
            out = self.se(out)
        if self.project is not None:
            out = self.project(out)
        if self.residual:
            if self.drop_path is not None:
                out = self.drop_path(out)
            out += x
        return out

    def __repr__(self) -> str:
        return f"FusedMBConv({self.about})"
'''

BLOCK = BlockKind(
    name="fused_mbconv", class_name="FusedMBConv", main_part="fused",
    parts=frozenset({"fused", "se", "project", "residual"}), expands=True,
    lower=lower, mid=_mid, py_class=PY_CLASS,
    py_make="FusedMBConv(in_ch, out_ch, kernel, stride, mid, squeeze, act, bn, residual, drop_path, padding)",
)
