"""The PyTorch backend: the module builder, effdsl's own layers and checkpoint import.

Imports torch. May import diagnostics, language, scaling, ir and passes.
"""
