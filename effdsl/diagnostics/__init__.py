"""Diagnostics: source spans, the registry of error codes, and their rendering.

Every stage reports user mistakes through this package; it imports nothing else of
effdsl's.
"""

from effdsl.diagnostics.codes import CODES, Code, Severity
from effdsl.diagnostics.errors import Collector, Diagnostic, EffdslError, InternalError, Span, did_you_mean, render

__all__ = ["CODES", "Code", "Collector", "Diagnostic", "EffdslError", "InternalError", "Severity", "Span",
           "did_you_mean", "render"]
