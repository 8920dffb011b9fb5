"""Cost formulas: parameters and multiply-accumulates of one operator.

MACs follow the convention of the reference table (and ``FlopCounterMode`` / 2): only
convolutions and linear layers count, one MAC per multiply-add, biases excluded.
Parameters are trainable tensors only (batch-norm running statistics are buffers).
"""

from __future__ import annotations


def conv_params(in_ch: int, out_ch: int, kernel: int, groups: int, bias: bool) -> int:
    """Weight ``out x in/groups x k x k`` plus an optional bias of ``out``."""
    return out_ch * (in_ch // groups) * kernel * kernel + (out_ch if bias else 0)


def conv_macs(in_ch: int, out_ch: int, kernel: int, groups: int, out_h: int, out_w: int) -> int:
    """One ``in/groups x k x k`` dot product per output element."""
    return out_h * out_w * out_ch * (in_ch // groups) * kernel * kernel


def bn_params(channels: int) -> int:
    """Scale and shift per channel."""
    return 2 * channels


def linear_params(in_features: int, out_features: int, bias: bool = True) -> int:
    return in_features * out_features + (out_features if bias else 0)


def linear_macs(in_features: int, out_features: int) -> int:
    return in_features * out_features
