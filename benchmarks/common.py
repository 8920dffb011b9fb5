"""What the benchmark scripts share: the machine's description, timing, and writing their
section of docs/benchmarks.md (each script owns one section and leaves the others)."""

from __future__ import annotations

import gc
import os
import platform
import re
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"
TITLE = "# Benchmarks\n"


def cpu_name() -> str:
    """The processor's model name (from /proc/cpuinfo where there is one)."""
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return cpu


def machine() -> str:
    """CPU, cores, OS, Python and torch versions, threads, and the load average now."""
    import torch

    return (f"{cpu_name()}, {os.cpu_count()} cores, {platform.system()} {platform.machine()}, "
            f"Python {platform.python_version()}, torch {torch.__version__} "
            f"({torch.get_num_threads()} threads), load average {load():.1f} at the start")


def load() -> float:
    """The one-minute load average (other processes compete for the cores)."""
    return os.getloadavg()[0]


def median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def interleaved_ms(fns: dict, repeats: int) -> dict[str, float]:
    """Median milliseconds of each function, run in turn ``repeats`` times so that all see
    the same machine state (load from other processes, caches, clock)."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - start) * 1000)
    return {name: statistics.median(values) for name, values in times.items()}


def write_section(name: str, text: str) -> None:
    """Replace (or add) the section ``name`` of docs/benchmarks.md, keeping the others."""
    begin, end = f"<!-- {name}: begin -->\n", f"<!-- {name}: end -->\n"
    block = begin + text.rstrip("\n") + "\n" + end
    current = DOC.read_text(encoding="utf-8") if DOC.exists() else TITLE
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.DOTALL)
    if pattern.search(current):
        updated = pattern.sub(lambda _: block, current)
    else:
        updated = current.rstrip("\n") + "\n\n" + block
    DOC.write_text(updated, encoding="utf-8")
