"""Backends that run a compiled network. ``effdsl.backends.torch`` builds PyTorch modules
and imports checkpoints; it is the only package (with the binary exports) that imports
torch.

May import diagnostics, language, scaling, ir and passes.
"""
