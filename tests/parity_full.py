"""Output parity with torchvision and timm; run as a script for every preset at full resolution.

    python tests/parity_full.py     # b0..b7 at full resolution + timm; rewrites docs/parity.md

The reference model is built with a fixed seed (random weights; batch-norm affine
parameters and running statistics randomized too, so that eps and every statistic
matter), its state_dict is saved to a file, effdsl builds the same preset with
``weights=`` that file, and both run in eval mode on the same random input.
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

import effdsl

ROOT = Path(__file__).resolve().parent.parent
RESOLUTION = {f"b{i}": r for i, r in enumerate((224, 240, 260, 300, 380, 456, 528, 600))}


def randomize_batch_norm(model: torch.nn.Module, seed: int = 1) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5, generator=gen)
                m.bias.normal_(0.0, 0.1, generator=gen)
                m.running_mean.normal_(0.0, 0.1, generator=gen)
                m.running_var.uniform_(0.5, 1.5, generator=gen)


def reference_model(source: str, preset: str) -> torch.nn.Module:
    """torchvision / timm / timm-tf EfficientNet with random weights (no download)."""
    torch.manual_seed(0)
    if source == "torchvision":
        import torchvision

        model = getattr(torchvision.models, f"efficientnet_{preset}")()
    else:
        import timm

        name = f"tf_efficientnet_{preset}" if source == "timm-tf" else f"efficientnet_{preset}"
        model = timm.create_model(name, pretrained=False)
    randomize_batch_norm(model)
    return model.eval()


def compare(source: str, preset: str, resolution: int, batch: int = 2) -> tuple[float, float]:
    """(max abs logit difference, max abs logit) between the reference and effdsl."""
    ref = reference_model(source, preset)
    spec = "tf_efficientnet_b0" if source == "timm-tf" else "efficientnet_b0"
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "ref.pt")
        torch.save(ref.state_dict(), path)
        ours = effdsl.build(spec, preset=preset, weights=path).eval()
    x = torch.randn(batch, 3, resolution, resolution, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected, got = ref(x), ours(x)
    return (expected - got).abs().max().item(), expected.abs().max().item()


def main() -> None:
    rows = []
    cases = [("torchvision", p) for p in RESOLUTION] + [("timm", "b0"), ("timm-tf", "b0")]
    for source, preset in cases:
        start = time.perf_counter()
        diff, scale = compare(source, preset, RESOLUTION[preset], batch=1)
        rows.append(f"| {source} | {preset} | {RESOLUTION[preset]} | {diff:.3g} | {scale:.3g} | "
                     f"{time.perf_counter() - start:.1f} s |")
        print(rows[-1], flush=True)
    text = (
        "# Output parity with torchvision and timm\n\n"
        f"Measured by `python tests/parity_full.py` on {platform.machine()}, {os.cpu_count()} cores, "
        f"torch {torch.__version__}, float32, eval mode, batch 1 at each preset's full resolution.\n"
        "Reference models have random weights and randomized batch-norm statistics; effdsl loads "
        "their state_dict with `weights=`.\n\n"
        "| reference | preset | resolution | max abs logit difference | max abs logit | time |\n"
        "|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n"
    )
    if "--no-write" not in sys.argv:
        (ROOT / "docs" / "parity.md").write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
