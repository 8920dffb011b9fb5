"""Compiler and builder speed, measured in one process and written to docs/benchmarks.md.

    python benchmarks/bench_compile.py            # prints and rewrites its section of docs/benchmarks.md
    python benchmarks/bench_compile.py --no-write # prints only

1. parse + check + scale + IR + shapes + cost for B7 (``compile_spec``), warm, after import;
2. the analytic summary for phi = 12, in a fresh interpreter, checking that torch was never
   imported (so no weight can have been allocated);
3. building the B7 module versus ``torchvision.models.efficientnet_b7()``, interleaved,
   as a ratio of medians.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, machine, median_ms, write_section

_median_ms = median_ms


def bench_compile(repeats: int = 30) -> dict:
    import effdsl

    effdsl.compile_spec("efficientnet_b0", preset="b7")  # warm: grammar loaded once per process
    b7 = _median_ms(lambda: effdsl.compile_spec("efficientnet_b0", preset="b7"), repeats)
    b0 = _median_ms(lambda: effdsl.compile_spec("efficientnet_b0", preset="b0"), repeats)
    return {"compile_b7_ms": b7, "compile_b0_ms": b0}


def bench_phi12() -> dict:
    code = (
        "import json, sys, time\n"
        "t = time.perf_counter()\n"
        "import effdsl\n"
        "t1 = time.perf_counter()\n"
        "s = effdsl.compile_spec('efficientnet_b0', phi=12).summary\n"
        "t2 = time.perf_counter()\n"
        "print(json.dumps({'import_ms': (t1 - t) * 1000, 'phi12_ms': (t2 - t1) * 1000, "
        "'params': s.params, 'macs': s.macs, 'resolution': s.resolution, 'blocks': s.num_blocks, "
        "'torch_imported': 'torch' in sys.modules}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(out.stdout)


def bench_build_b7(repeats: int = 5) -> dict:
    import torch
    import torchvision

    import effdsl

    compiled = effdsl.compile_spec("efficientnet_b0", preset="b7")
    ours, theirs = [], []
    for _ in range(repeats):  # interleaved so that both see the same machine state
        for fn, times in ((compiled.build, ours), (torchvision.models.efficientnet_b7, theirs)):
            gc.collect()
            start = time.perf_counter()
            model = fn()
            times.append((time.perf_counter() - start) * 1000)
            del model
    full = _median_ms(lambda: effdsl.build("efficientnet_b0", preset="b7"), repeats)
    return {
        "build_b7_ms": statistics.median(ours),
        "torchvision_b7_ms": statistics.median(theirs),
        "build_b7_ratio": statistics.median(ours) / statistics.median(theirs),
        "compile_and_build_b7_ms": full,
        "torch_threads": torch.get_num_threads(),
    }


def report(results: dict, where: str) -> str:
    r = results
    phi12 = f"{r['phi12_ms']:.1f} ms, torch imported: {r['torch_imported']}"
    return f"""## Compiler and builder

Measured by `python benchmarks/bench_compile.py` on: {where}.
Medians of repeated runs in one process; ratios compare runs interleaved in the same process.

| what | result | target |
|---|---|---|
| parse + check + scale + IR + shapes + cost, B7 (warm, after import) | {r['compile_b7_ms']:.1f} ms | < 50 ms |
| the same for B0 | {r['compile_b0_ms']:.1f} ms | |
| analytic summary for phi = 12 (fresh process, after import) | {phi12} | no weight allocated |
| phi = 12 network | {r['params']:,} params, {r['macs']:,} MACs at {r['resolution']} px, {r['blocks']} blocks | |
| `import effdsl` | {r['import_ms']:.0f} ms | |
| build the B7 module from its IR | {r['build_b7_ms']:.0f} ms | |
| `torchvision.models.efficientnet_b7()` | {r['torchvision_b7_ms']:.0f} ms | |
| ratio effdsl / torchvision (B7 build) | {r['build_b7_ratio']:.2f} | <= 1.0 |
| `effdsl.build(..., preset="b7")` end to end | {r['compile_and_build_b7_ms']:.0f} ms | |

Why building is not slower than torchvision: effdsl creates the modules on the `meta`
device and allocates and initializes every weight once; torchvision allocates with
PyTorch's default initialization and then initializes again.

The speed of architecture search (screening, zero-cost and trained trials) and how far
its proxies can be trusted: [search_benchmarks.md](search_benchmarks.md)
(`python benchmarks/bench_search.py`).
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-write", action="store_true", help="print only; do not rewrite docs/benchmarks.md")
    args = parser.parse_args()
    where = machine()
    results = {**bench_compile(), **bench_phi12(), **bench_build_b7()}
    text = report(results, where)
    print(text)
    if not args.no_write:
        write_section("compiler", text)


if __name__ == "__main__":
    main()
