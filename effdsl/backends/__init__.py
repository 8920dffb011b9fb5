"""Backends turn a compiled IR graph into something runnable or viewable.

Importing this package imports nothing heavy; ``effdsl.backends.torch`` imports torch.
"""
