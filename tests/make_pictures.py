"""Regenerate the pictures of docs/viz.md: ``python tests/make_pictures.py``.

Each picture is what ``effdsl viz efficientnet_b0 --phi F -o docs/img/NAME.svg`` writes;
tests/test_viz.py checks that the committed files are current.
"""

from __future__ import annotations

import sys
from pathlib import Path

from effdsl import viz
from effdsl.api import compile_spec

IMG = Path(__file__).resolve().parent.parent / "docs" / "img"

# file name -> (spec, phi, level)
PICTURES = {
    "efficientnet_b0_phi0.svg": ("efficientnet_b0", 0.0, "block"),
    "efficientnet_b0_phi3.svg": ("efficientnet_b0", 3.0, "block"),
}


def picture(name: str) -> str:
    spec, phi, level = PICTURES[name]
    compiled = compile_spec(spec, phi=phi)
    return viz.render(compiled.graph, viz.format_of(name), level, compiled.source.text)


def main() -> int:
    IMG.mkdir(parents=True, exist_ok=True)
    for name in PICTURES:
        path = IMG / name
        text = picture(name)
        old = path.read_text(encoding="utf-8") if path.exists() else None
        if text != old:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}")
        else:
            print(f"unchanged {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
