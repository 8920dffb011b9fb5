"""The compiler's passes: lower the spec to a plan, scale it, expand it into operators,
infer shapes, count costs, verify, summarize.

May import everything before it: diagnostics, language, scaling, ir.
"""
