"""Compound scaling: the rounding rules (small pure functions) and the choice of a member
of a family (phi, a preset, or explicit multipliers), and of a member of a search space
(one option of each choice).

May import :mod:`effdsl.diagnostics` and :mod:`effdsl.language`.
"""
