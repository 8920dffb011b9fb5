"""Speed of effdsl's modules against torchvision's, measured in one process, written to
the modules section of docs/benchmarks.md.

    python benchmarks/bench_modules.py            # prints and rewrites the section
    python benchmarks/bench_modules.py --no-write # prints only
    python benchmarks/bench_modules.py --quick    # fewer repetitions (a smoke run)

Every comparison runs the contenders in turn, in one process, one thread, float32,
rotating which goes first, and reports the median of the per-round ratios
(torchvision's time / effdsl's: above 1 is faster than torchvision) with their spread.
effdsl's modules load torchvision's weights, so both compute the same function.

1. eval forward, ``torch.no_grad``: B0 batch 1 and batch 8 at 224 px, B3 batch 4 at
   300 px, for the default module and the inference module (``inference=True``);
2. building B0: ``effdsl.build`` (compile and build) and ``Compiled.build`` versus
   ``torchvision.models.efficientnet_b0()``;
3. a training step (forward, cross-entropy, backward, SGD) of B0, batch 8, 128 px;
4. per-block cost of compiling deep members: compile time of phi = 12 minus phi = 0,
   over the difference in blocks.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import load, machine, median_ms, write_section


def paired(fns: dict, rounds: int) -> tuple[dict[str, float], dict[str, list[float]]]:
    """Median ms of each function and every round's times, running them in turn (rotating)."""
    names = list(fns)
    times: dict[str, list[float]] = {name: [] for name in names}
    for i in range(rounds):
        shift = i % len(names)
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            fns[name]()
            times[name].append((time.perf_counter() - start) * 1000)
    return {name: statistics.median(t) for name, t in times.items()}, times


def ratio(times: dict[str, list[float]], reference: str, other: str) -> tuple[float, float, float]:
    """Median, lowest and highest of the per-round ratios reference / other."""
    per_round = sorted(r / o for r, o in zip(times[reference], times[other], strict=True))
    return statistics.median(per_round), per_round[0], per_round[-1]


CASES = [("B0", "b0", 1, 224, 30), ("B0", "b0", 8, 224, 12), ("B3", "b3", 4, 300, 10)]


def bench_forward(quick: bool) -> list[dict]:
    import torch
    import torchvision

    import effdsl

    rows = []
    for label, preset, batch, res, rounds in CASES:
        reference = getattr(torchvision.models, f"efficientnet_{preset}")().eval()
        weights = reference.state_dict()
        ours = effdsl.build("efficientnet_b0", preset=preset, weights=weights).eval()
        fast = effdsl.build("efficientnet_b0", preset=preset, weights=weights, inference=True)
        x = torch.randn(batch, 3, res, res)
        with torch.no_grad():
            expected = reference(x)
            assert (ours(x) - expected).abs().max().item() == 0  # the same function, exactly
            assert (fast(x) - expected).abs().max().item() <= 1e-4 * expected.abs().max().item()
            fns = {name: (lambda model=model, x=x: model(x)) for name, model in
                   (("torchvision", reference), ("effdsl", ours), ("inference", fast))}
            for fn in fns.values():  # warm up: allocator, weight layouts
                fn()
                fn()
            medians, times = paired(fns, 4 if quick else rounds)
        rows.append({
            "case": f"{label} batch {batch} at {res} px", "rounds": len(times["effdsl"]),
            "torchvision_ms": medians["torchvision"], "effdsl_ms": medians["effdsl"],
            "inference_ms": medians["inference"],
            "effdsl": ratio(times, "torchvision", "effdsl"), "inference": ratio(times, "torchvision", "inference"),
        })
        print(rows[-1], flush=True)
    return rows


def bench_build(quick: bool) -> dict:
    import torchvision

    import effdsl

    compiled = effdsl.compile_spec("efficientnet_b0", preset="b0")
    effdsl.build("efficientnet_b0", preset="b0")  # warm: grammar, library, torch kernels
    torchvision.models.efficientnet_b0()
    fns = {"torchvision": torchvision.models.efficientnet_b0,
           "effdsl.build": lambda: effdsl.build("efficientnet_b0", preset="b0"),
           "Compiled.build": compiled.build}
    medians, times = paired(fns, 5 if quick else 20)
    return {"medians": medians, "end_to_end": ratio(times, "torchvision", "effdsl.build"),
            "build_only": ratio(times, "torchvision", "Compiled.build"), "rounds": len(times["torchvision"])}


def bench_training(quick: bool) -> dict:
    import torch
    import torch.nn.functional as F
    import torchvision

    import effdsl

    torch.manual_seed(0)
    reference = torchvision.models.efficientnet_b0().train()
    ours = effdsl.build("efficientnet_b0", preset="b0", weights=reference.state_dict()).train()
    x = torch.randn(8, 3, 128, 128)
    y = torch.randint(0, 1000, (8,))

    def step(model, optimizer):
        def run():
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            optimizer.step()
        return run

    fns = {"torchvision": step(reference, torch.optim.SGD(reference.parameters(), lr=0.01, momentum=0.9)),
           "effdsl": step(ours, torch.optim.SGD(ours.parameters(), lr=0.01, momentum=0.9))}
    for fn in fns.values():
        fn()
    medians, times = paired(fns, 4 if quick else 12)
    return {"medians": medians, "ratio": ratio(times, "torchvision", "effdsl"), "rounds": len(times["effdsl"])}


def bench_expand(quick: bool) -> dict:
    import effdsl
    from effdsl.api import parse_spec
    from effdsl.passes.lower import expand, plan_from_spec
    from effdsl.passes.scale import scale_plan
    from effdsl.scaling.members import resolve_scale

    repeats = 5 if quick else 20
    net = parse_spec("efficientnet_b0")
    found = {}
    for phi in (0, 12):
        plan = scale_plan(plan_from_spec(net), resolve_scale(net, phi=phi))
        effdsl.compile_spec("efficientnet_b0", phi=phi)
        found[phi] = {
            "blocks": plan.num_blocks,
            "compile_ms": median_ms(lambda phi=phi: effdsl.compile_spec("efficientnet_b0", phi=phi), repeats),
            "expand_ms": median_ms(lambda plan=plan: expand(plan), repeats),
        }
    blocks = found[12]["blocks"] - found[0]["blocks"]
    return {
        "phi": found,
        "compile_per_block_ms": (found[12]["compile_ms"] - found[0]["compile_ms"]) / blocks,
        "expand_per_block_ms": (found[12]["expand_ms"] - found[0]["expand_ms"]) / blocks,
    }


def _r(value: tuple[float, float, float]) -> str:
    median, low, high = value
    return f"{median:.2f}x ({low:.2f}-{high:.2f})"


def report(forward: list[dict], build: dict, training: dict, expand: dict, start: str, end_load: float) -> str:
    geo = {key: math.exp(statistics.mean(math.log(row[key][0]) for row in forward))
           for key in ("effdsl", "inference")}
    lines = [
        "## Modules against torchvision",
        "",
        f"Measured by `python benchmarks/bench_modules.py` on: {start}; load average {end_load:.1f} at the end.",
        "One process, one thread, float32. Contenders run in turn, rotating which goes first; a ratio is",
        "torchvision's time over effdsl's (above 1: effdsl is faster), the median of the per-round ratios",
        "with the lowest and highest in brackets. effdsl's modules carry torchvision's weights: the default",
        "module's logits equal torchvision's exactly, the inference module's within 1e-4 x max |logit|.",
        "",
        "| eval forward (`torch.no_grad`) | rounds | torchvision | effdsl default | speedup "
        "| effdsl inference | speedup |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in forward:
        lines.append(f"| {row['case']} | {row['rounds']} | {row['torchvision_ms']:.1f} ms | "
                     f"{row['effdsl_ms']:.1f} ms | {_r(row['effdsl'])} | "
                     f"{row['inference_ms']:.1f} ms | {_r(row['inference'])} |")
    lines += [
        f"| geometric mean of the speedups | | | | **{geo['effdsl']:.2f}x** (target >= 1.0) | | "
        f"**{geo['inference']:.2f}x** (target >= 1.5) |",
        "",
        "| other | rounds | torchvision | effdsl | speedup |",
        "|---|---|---|---|---|",
        f"| build B0: `effdsl.build(...)` (compile and build) | {build['rounds']} | "
        f"{build['medians']['torchvision']:.1f} ms | {build['medians']['effdsl.build']:.1f} ms | "
        f"{_r(build['end_to_end'])} |",
        f"| build B0: `Compiled.build()` (from the compiled IR) | {build['rounds']} | "
        f"{build['medians']['torchvision']:.1f} ms | {build['medians']['Compiled.build']:.1f} ms | "
        f"{_r(build['build_only'])} |",
        f"| training step B0, batch 8, 128 px (forward, backward, SGD) | {training['rounds']} | "
        f"{training['medians']['torchvision']:.1f} ms | {training['medians']['effdsl']:.1f} ms | "
        f"{_r(training['ratio'])} |",
        "",
        "| compiling deep members | phi 0 | phi 12 | per block |",
        "|---|---|---|---|",
        f"| blocks | {expand['phi'][0]['blocks']} | {expand['phi'][12]['blocks']} | |",
        f"| `compile_spec` (parse to costs, verified after each pass) | {expand['phi'][0]['compile_ms']:.1f} ms | "
        f"{expand['phi'][12]['compile_ms']:.1f} ms | {expand['compile_per_block_ms']:.3f} ms (target 0.3 ms) |",
        f"| the `expand` pass alone | {expand['phi'][0]['expand_ms']:.1f} ms | "
        f"{expand['phi'][12]['expand_ms']:.1f} ms | "
        f"{expand['expand_per_block_ms']:.3f} ms |",
        "",
        "Where the speed comes from: activations run in place (as torchvision's), the residual add",
        "is in place, a block without stochastic depth has no module for it, and the inference",
        "module (made by the IR passes of `effdsl.passes.inference`) has batch norm folded into the",
        "convolutions, no dropout or stochastic depth, and channels-last weights.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-write", action="store_true", help="print only; do not rewrite docs/benchmarks.md")
    parser.add_argument("--quick", action="store_true", help="few repetitions (a smoke run)")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    start = machine()
    forward = bench_forward(args.quick)
    build = bench_build(args.quick)
    training = bench_training(args.quick)
    expand = bench_expand(args.quick)
    text = report(forward, build, training, expand, start, load())
    print(text)
    if not args.no_write:
        write_section("modules", text)


if __name__ == "__main__":
    main()
