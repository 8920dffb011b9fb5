"""How ``effdsl check`` scales with the number of presets; writes benchmarks/check_presets.md.

    python benchmarks/bench_check.py             # 200, 750 and 1,500 presets; rewrites the figure
    python benchmarks/bench_check.py --no-write  # prints only

``check`` reads and parses the spec once and compiles the baseline and every preset
(``compile_network``), so its time should be about (presets + 1) x one member's compile
plus one parse. The spec is EfficientNet-B0 with generated presets (widths 1.0-1.49,
depths 1.0-1.72, resolutions 224-476); one member's compile is the median over the
presets of ``compile_network`` in this process, and ``check`` runs as the real command
in a fresh process (import included).
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
COUNTS = (200, 750, 1500)


def spec_with_presets(count: int) -> str:
    """B0's spec with ``count`` generated presets instead of b0..b7."""
    text = (ROOT / "specs" / "efficientnet_b0.eff").read_text(encoding="utf-8")
    kept = [line for line in text.splitlines() if not line.lstrip().startswith("preset ")]
    at = next(i for i, line in enumerate(kept) if line.lstrip().startswith("stem"))
    presets = [f"  preset p{i} {{ width {1 + (i % 50) / 100:.2f}; depth {1 + (i % 37) / 50:.2f}; "
               f"resolution {224 + (i % 64) * 4} }}" for i in range(count)]
    return "\n".join(kept[:at] + presets + [""] + kept[at:]) + "\n"


def time_check(path: Path) -> tuple[float, float]:
    """Wall-clock and CPU seconds of ``python -m effdsl check PATH`` (a fresh process, which
    must succeed); the CPU time does not count the waits of a busy machine."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "effdsl", "check", str(path)], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(ROOT)})
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def time_members(text: str, sample: int = 60) -> tuple[float, float]:
    """Median milliseconds of one preset's compile_network, and of parsing the spec once."""
    import effdsl
    from effdsl import api

    source = api.load_source(text)
    start = time.perf_counter()
    net = api.analyze_source(source)
    parse_ms = (time.perf_counter() - start) * 1000
    step = max(1, len(net.presets) // sample)
    times = []
    for preset in net.presets[::step]:
        start = time.perf_counter()
        effdsl.compile_network(net, effdsl.Member(preset=preset.name), source=source)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), parse_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-write", action="store_true", help="print only; do not rewrite the figure")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for count in COUNTS:
            text = spec_with_presets(count)
            path = Path(tmp) / f"presets{count}.eff"
            path.write_text(text, encoding="utf-8")
            member_ms, parse_ms = time_members(text)
            wall, cpu = time_check(path)
            rows.append((count, len(text.encode("utf-8")), parse_ms, member_ms, wall, cpu))
    lines = [
        "# `effdsl check` and the number of presets",
        "",
        f"Measured by `python benchmarks/bench_check.py` on: {_cpu()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, "
        f"load average {os.getloadavg()[0]:.1f} at the end.",
        "",
        "| presets | spec size | parse once | one member (median) | `effdsl check` (wall) | (CPU) "
        "| CPU / (presets + 1) |",
        "|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for count, size, parse_ms, member_ms, wall, cpu in rows:
        lines.append(f"| {count:,} | {size / 1000:.0f} KB | {parse_ms:.0f} ms | {member_ms:.1f} ms | "
                     f"{wall:.1f} s | {cpu:.1f} s | {cpu * 1000 / (count + 1):.1f} ms |")
    lines += ["", "`check` parses the spec once and compiles each member from the parsed network, so the "
              "last column stays near one member's compile as the presets grow (the import, about "
              "0.3 s, is spread over the members).", ""]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        (ROOT / "benchmarks" / "check_presets.md").write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
