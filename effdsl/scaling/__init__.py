"""Compound scaling: the rounding rules (small pure functions) and the choice of a member
of a family (phi, a preset, or explicit multipliers).

May import :mod:`effdsl.diagnostics` and :mod:`effdsl.language`.
"""
