"""Export a compiled network: PyTorch source, torch.export, ONNX and safetensors.

- :func:`python_source` (in :mod:`effdsl.export.pysource`): a standalone ``.py`` file.
- :func:`save_pt2`: a ``torch.export`` program (``.pt2``), loaded back with
  ``torch.export.load(path).module()``.
- :func:`save_onnx`: an ONNX model (opset 18, dynamic batch) from torch's dynamo-based
  exporter (it needs the ``onnx`` and ``onnxscript`` packages; no network access),
  checked with ``onnx.checker``.
- :func:`save_weights`: the ``state_dict`` as a ``.safetensors`` file, which
  ``effdsl.build(..., weights=path)`` and ``--weights`` read back.

The ``save_*`` functions import torch (and onnx) when called.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from effdsl.blocks import class_name
from effdsl.diagnostics import InternalError
from effdsl.export.pysource import python_source

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["ONNX_OPSET", "class_name", "python_source", "save_onnx", "save_pt2", "save_weights"]

ONNX_OPSET = 18


def _eval_mode(module: nn.Module) -> Callable[[], None]:
    """Put ``module`` in eval mode; returns a function that restores its modes."""
    modes = [(m, m.training) for m in module.modules()]
    module.eval()

    def restore() -> None:
        for m, training in modes:
            m.training = training

    return restore


def save_pt2(module: nn.Module, example_input: torch.Tensor, path: str | Path | BinaryIO) -> None:
    """Export ``module`` in eval mode with ``torch.export`` and save the program to ``path``
    (a file name, or a binary file such as ``io.BytesIO``).

    Load it back with ``torch.export.load(path).module()``. The program has the example's
    shape (batch size included).
    """
    import torch

    restore = _eval_mode(module)
    try:
        with torch.no_grad():
            program = torch.export.export(module, (example_input,))
    finally:
        restore()
    torch.export.save(program, path if not isinstance(path, (str, Path)) else str(path))


def save_onnx(module: nn.Module, example_input: torch.Tensor, path: str | Path) -> None:
    """Export ``module`` in eval mode to an ONNX file (opset 18, input ``image``, output ``logits``).

    Uses torch's dynamo-based exporter (``torch.onnx.export(..., dynamo=True)``, which
    needs ``onnx`` and ``onnxscript``), with a dynamic batch dimension; the weights are
    stored inside the file (external data only above ONNX's 2 GB limit). The written
    model is verified with ``onnx.checker.check_model``.
    """
    import onnx
    import torch

    path = Path(path)
    size = sum(t.numel() * t.element_size() for t in module.state_dict().values())
    restore = _eval_mode(module)
    try:
        with torch.no_grad():
            program = torch.onnx.export(
                module, (example_input,), dynamo=True, opset_version=ONNX_OPSET,
                input_names=["image"], output_names=["logits"],
                dynamic_shapes=({0: torch.export.Dim.DYNAMIC},), verbose=False,
            )
    finally:
        restore()
    if program is None:  # torch returns None only from the older, non-dynamo exporter
        raise InternalError("export", "torch.onnx.export(dynamo=True) returned no program", what="module")
    program.save(str(path), external_data=size >= 2**31 - 2**24)
    onnx.checker.check_model(str(path), full_check=True)


def save_weights(module: nn.Module, path: str | Path | BinaryIO) -> None:
    """Save ``module``'s ``state_dict`` (parameters and buffers) as a safetensors file
    (to a file name, or to a binary file such as ``io.BytesIO``)."""
    from safetensors.torch import save, save_file

    tensors = {name: tensor.detach().contiguous() for name, tensor in module.state_dict().items()}
    if isinstance(path, (str, Path)):
        save_file(tensors, str(path), metadata={"format": "pt"})
    else:
        path.write(save(tensors, metadata={"format": "pt"}))
