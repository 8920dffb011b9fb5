"""Layers of effdsl's modules that PyTorch lacks (stochastic depth, TensorFlow 'same'
padding) and the weight initialization.

:mod:`effdsl.backends.torch.builder` builds modules with these classes, and
:mod:`effdsl.export.pysource` copies their source text (read, not imported) into the
standalone ``.py`` export, so both share one definition.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class StochasticDepth(nn.Module):
    """Drops the whole residual branch of a sample with probability ``p`` (training only).

    Huang et al. 2016; the survivors are scaled by ``1 / (1 - p)`` ("row" mode of
    torchvision's ``StochasticDepth``).
    """

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        survival = 1.0 - self.p
        noise = torch.empty([x.shape[0]] + [1] * (x.ndim - 1), dtype=x.dtype, device=x.device)
        noise.bernoulli_(survival)
        return x * noise.div_(survival)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Conv2dSame(nn.Conv2d):
    """Conv2d with TensorFlow's 'same' padding, for weights trained in TensorFlow.

    The total padding along a side of size ``x`` is ``max((ceil(x/s) - 1)*s + k - x, 0)``,
    with the smaller half on top/left. For stride 1 and odd kernels this equals the
    symmetric ``(k-1)//2``, so only strided convs need this class.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 groups: int = 1, bias: bool = True, device: torch.device | str | None = None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding=0, groups=groups, bias=bias,
                         device=device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        sides = zip(reversed(x.shape[-2:]), reversed(self.kernel_size), reversed(self.stride),
                    strict=True)
        for size, k, s in sides:
            total = max((-(-size // s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return super().forward(nn.functional.pad(x, pads))


@torch.no_grad()
def init_weights(model: nn.Module) -> None:
    """torchvision's EfficientNet initialization: conv Kaiming normal (fan-out), batch norm
    and layer norm ones and zeros, linear uniform in +-1/sqrt(out_features), biases zero;
    another module with parameters of its own (a plug-in op's) by its reset_parameters."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
            m.reset_running_stats()
        elif isinstance(m, nn.Linear):
            bound = 1.0 / math.sqrt(m.out_features)
            nn.init.uniform_(m.weight, -bound, bound)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif m._parameters and callable(reset := getattr(m, "reset_parameters", None)):
            reset()  # a plug-in op's module with parameters of its own: its own rule
