"""Which executor runs the trials: the one place ``--executor`` and ``--address`` are read.

Both ``effdsl search`` and ``effdsl grid`` take their executor from :func:`make_executor`,
so that an executor added here serves both commands.
"""

from __future__ import annotations

from effdsl.diagnostics import Diagnostic, EffdslError
from effdsl.search.executor import LocalExecutor

EXECUTORS = ("local", "ray")   # what --executor accepts
AVAILABLE = ("local",)         # what this installation can run


def check_executor(kind: str, workers: int, address: str | None) -> None:
    """E607 before any work when ``kind`` cannot run here or its options do not fit it."""
    if kind not in AVAILABLE:
        raise EffdslError(Diagnostic("E607", f"--executor '{kind}' is not available; 'local' is"))
    if workers < 1:
        raise EffdslError(Diagnostic("E607", f"--workers must be at least 1, got {workers}"))
    if address is not None and kind == "local":
        raise EffdslError(Diagnostic("E607", "--address names a cluster; the local executor has none", None,
                                     "leave --address out, or use --executor ray"))


def make_executor(kind: str, workers: int, address: str | None = None) -> LocalExecutor:
    """The executor ``--executor kind`` names, with ``workers`` trials at a time (use it in a ``with``)."""
    check_executor(kind, workers, address)
    return LocalExecutor(workers)
