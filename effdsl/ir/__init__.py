"""The intermediate representation: the stage plan and the operator graph, and the cost
formulas of single operators.

Data only, no passes. May import :mod:`effdsl.diagnostics`, :mod:`effdsl.language` and
:mod:`effdsl.scaling`.
"""
