"""Exports of a compiled network: standalone PyTorch source (no torch needed), and
torch.export, ONNX and safetensors files (torch imported when called).

May import diagnostics, language, scaling, ir, passes and, inside functions,
backends.torch.
"""

from effdsl.blocks import class_name
from effdsl.export.formats import ONNX_OPSET, save_onnx, save_pt2, save_weights
from effdsl.export.pysource import python_source

__all__ = ["ONNX_OPSET", "class_name", "python_source", "save_onnx", "save_pt2", "save_weights"]
