"""Diagnostics: source spans, error codes and their rendering.

Every stage reports user mistakes through this package; it imports nothing else of
effdsl's.
"""

from effdsl.diagnostics.errors import (
    Collector,
    Diagnostic,
    EffdslError,
    InternalError,
    Severity,
    Span,
    did_you_mean,
    render,
)

__all__ = ["Collector", "Diagnostic", "EffdslError", "InternalError", "Severity", "Span", "did_you_mean", "render"]
