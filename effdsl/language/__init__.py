"""The .eff language: source loading, the Lark grammar and parser, the spec AST,
semantic analysis (search-space choices included) and the formatter.

Stage 1 and 2 of the compiler: text in, a checked :class:`~effdsl.language.spec.Network`
out. May import :mod:`effdsl.diagnostics` only; it is the only package that imports lark.
"""
