"""How long effdsl takes to refuse pathological inputs (tests/test_fuzz.py's PATHOLOGICAL cases).

    python benchmarks/bench_pathological.py            # every case, 3 runs each
    python benchmarks/bench_pathological.py --runs 1

The test suite checks what each case gives (its error codes, at most 51 diagnostics, a
bounded rendering); this script reports the time: compiling until the error is raised,
and rendering the error, median of ``--runs`` runs in one process. A case over
``--budget`` seconds (default 20) is flagged, and the exit status is 1, so that a
regression to quadratic or worse behaviour shows without putting a clock in the tests.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

# Imported after the path setup, so that the script runs from any directory.
from test_fuzz import PATHOLOGICAL  # noqa: E402

import effdsl  # noqa: E402
from effdsl.diagnostics import EffdslError  # noqa: E402


def time_case(text: str, options: dict) -> tuple[float, float, list[str]]:
    """Seconds to raise the error, seconds to render it, and the codes it carries."""
    start = time.perf_counter()
    try:
        effdsl.compile_spec(text, **options)
    except EffdslError as err:
        raised = time.perf_counter()
        err.render()
        return raised - start, time.perf_counter() - raised, sorted({d.code for d in err.diagnostics})
    raise SystemExit("the input compiled; the test suite says it must not")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per case; the median is reported")
    parser.add_argument("--budget", type=float, default=20.0, help="seconds a case may take to be refused")
    args = parser.parse_args()
    effdsl.compile_spec("efficientnet_b0")  # warm: grammar loaded once per process
    over = []
    print("| case | input | refuse (s) | render (s) | codes |\n|---|---|---|---|---|")
    for case in sorted(PATHOLOGICAL):
        text, options, _ = PATHOLOGICAL[case]
        runs = [time_case(text, options) for _ in range(args.runs)]
        refuse = statistics.median(r[0] for r in runs)
        render = statistics.median(r[1] for r in runs)
        flag = " (over budget)" if refuse + render > args.budget else ""
        if flag:
            over.append(case)
        print(f"| {case} | {len(text):,} chars | {refuse:.3f}{flag} | {render:.3f} | {', '.join(runs[0][2])} |")
    if over:
        print(f"over the {args.budget:g} s budget: {', '.join(over)}", file=sys.stderr)
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
