"""A plain conv block: kxk conv, batch norm and activation, residual when asked (``skip``).

Its operators are defined in the prelude (``grammars/prelude.eff``, ``block conv``) and
nowhere else; this module holds its torch class and how a table row is read back.
"""

from __future__ import annotations

from collections.abc import Mapping

from effdsl.blocks import user
from effdsl.blocks.base import BlockArgs, BlockKind, Builder, ConvRow
from effdsl.language.prelude import prelude_block


def lower(b: Builder, x: str, args: BlockArgs) -> str:
    """The operators of one block: its prelude definition (``grammars/prelude.eff``) interpreted."""
    return user.lower(prelude_block("conv"), b, x, args)


def _mid(convs: Mapping[str, ConvRow], in_ch: int) -> None:
    return None


PY_CLASS = '''

class ConvBlock(nn.Module):
    """A plain kxk conv, batch norm and activation, with an optional residual."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, act: str | None,
                 bn: tuple[float, float] | None, residual: bool, drop_path: float,
                 padding: str = "symmetric"):
        super().__init__()
        self.conv = ConvBNAct(in_ch, out_ch, kernel, stride, act, bn, padding=padding)
        self.residual = residual
        self.drop_path = StochasticDepth(drop_path) if residual and drop_path > 0 else None
        self.about = describe(kernel, stride, in_ch, out_ch, None, 0, act, residual, drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        if self.residual:
            if self.drop_path is not None:
                out = self.drop_path(out)
            out += x
        return out

    def __repr__(self) -> str:
        return f"ConvBlock({self.about})"
'''

BLOCK = BlockKind(
    name="conv", class_name="ConvBlock", main_part="conv",
    parts=frozenset({"conv", "residual"}), expands=False,
    lower=lower, mid=_mid, py_class=PY_CLASS,
    py_make="ConvBlock(in_ch, out_ch, kernel, stride, act, bn, residual, drop_path, padding)",
)
