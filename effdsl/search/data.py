"""The data a search trains and scores on: scikit-learn's digits, or a folder of images.

``digits``: the 1,797 8x8 grey images of handwritten digits that ship with scikit-learn
(``sklearn.datasets.load_digits``, 10 classes), upscaled bilinearly to the search
resolution. A folder: torchvision's ``ImageFolder`` layout (one subfolder of images per
class), with ``train/`` and ``val/`` (or ``test/``) subfolders used as they are, or else
a fixed held-out split. Either way the held-out split never depends on the search's
seed (stratified, 20%, ``random_state=0``), so that the accuracies of two searches are
measured on the same images.

Everything is held in memory at the search resolution, normalized with the training
split's mean and standard deviation per channel: this is for small data sets, where
a short proxy training takes seconds. torch, torchvision and scikit-learn are imported
inside the functions.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from effdsl.diagnostics import Diagnostic, EffdslError

if TYPE_CHECKING:
    import torch

DIGITS = "digits"
HELD_OUT = 0.2
SPLIT_SEED = 0
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


@dataclass(frozen=True)
class Shape:
    """What a candidate network must fit: input channels and classes."""

    name: str
    in_ch: int
    classes: int


@dataclass(frozen=True)
class Data:
    """Train and held-out tensors (N x C x R x R float, N int64) at one resolution."""

    shape: Shape
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor


def shape_of(data: str) -> Shape:
    """Channels and classes of ``data``, read without loading the images (E608)."""
    if data == DIGITS:
        return Shape(DIGITS, 1, 10)
    root = Path(data)
    if not root.is_dir():
        raise EffdslError(Diagnostic("E608", f"--data '{data}' is neither 'digits' nor a folder", None,
                                     "give 'digits', or a folder with one subfolder of images per class"))
    classes = _classes(_splits(root)[0])
    return Shape(root.name or str(root), 3, len(classes))


def _splits(root: Path) -> tuple[Path, Path | None]:
    """(training folder, held-out folder or None for a split of the training folder)."""
    held = next((root / name for name in ("val", "test") if (root / name).is_dir()), None)
    if (root / "train").is_dir() and held is not None:
        return root / "train", held
    return root, None


def _classes(folder: Path) -> list[str]:
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    with_images = [c for c in classes if any(f.suffix.lower() in IMAGE_SUFFIXES for f in (folder / c).iterdir())]
    if len(with_images) < 2:
        raise EffdslError(Diagnostic(
            "E608", f"'{folder}' has {len(with_images)} class folder{'s' if len(with_images) != 1 else ''} "
                    "with images; a search needs at least 2", None,
            "lay the images out as FOLDER/CLASS/IMAGE (torchvision's ImageFolder), e.g. data/cat/1.png"))
    if len(with_images) != len(classes):
        empty = sorted(set(classes) - set(with_images))
        raise EffdslError(Diagnostic("E608", f"the class folder '{folder / empty[0]}' has no images", None,
                                     f"images end in {', '.join(IMAGE_SUFFIXES)}"))
    return classes


@functools.lru_cache(maxsize=2)
def load(data: str, resolution: int) -> Data:
    """The train and held-out tensors of ``data`` at ``resolution`` (cached per process)."""
    if data == DIGITS:
        x, y = _digits()
        train_x, test_x, train_y, test_y = _split(x, y)
        train_x, test_x = _resize(train_x, resolution), _resize(test_x, resolution)
        shape = shape_of(data)
    else:
        shape = shape_of(data)
        train_dir, held_dir = _splits(Path(data))
        x, y = _images(train_dir, resolution)
        if held_dir is None:
            train_x, test_x, train_y, test_y = _split(x, y)
        else:
            train_x, train_y = x, y
            test_x, test_y = _images(held_dir, resolution, _classes(train_dir))
    mean = train_x.mean(dim=(0, 2, 3), keepdim=True)
    std = train_x.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)
    return Data(shape, (train_x - mean) / std, train_y, (test_x - mean) / std, test_y)


def _digits() -> tuple[torch.Tensor, torch.Tensor]:
    import torch
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0  # N x 1 x 8 x 8 in [0, 1]
    return x, torch.tensor(digits.target, dtype=torch.int64)


def _split(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A stratified held-out split that depends on nothing but the data."""
    import torch
    from sklearn.model_selection import train_test_split

    train, test = train_test_split(list(range(len(y))), test_size=HELD_OUT, random_state=SPLIT_SEED,
                                   stratify=y.numpy())
    train, test = torch.tensor(train), torch.tensor(test)
    return x[train], x[test], y[train], y[test]


def _resize(x: torch.Tensor, resolution: int) -> torch.Tensor:
    import torch.nn.functional as F

    if x.shape[-1] == resolution:
        return x
    return F.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False)


def _images(folder: Path, resolution: int, classes: list[str] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    import torch

    try:
        from torchvision import datasets, transforms
    except ImportError:  # pragma: no cover - torchvision comes with the search extra
        raise EffdslError(Diagnostic("E606", "--data FOLDER needs torchvision", None,
                                     "pip install 'effdsl[search]'")) from None
    names = classes or _classes(folder)
    transform = transforms.Compose([transforms.Resize((resolution, resolution)), transforms.ToTensor()])
    found = datasets.ImageFolder(str(folder), transform=transform)
    if found.classes != names:
        raise EffdslError(Diagnostic("E608", f"the classes of '{folder}' ({', '.join(found.classes)}) are not "
                                             f"those of the training folder ({', '.join(names)})"))
    images, labels = zip(*(found[i] for i in range(len(found))), strict=True)
    return torch.stack(images), torch.tensor(labels, dtype=torch.int64)
