"""Write tiny fake data sets in the real on-disk formats, so tests exercise the real readers.

Every generator makes *learnable* data: each class has its own bright pattern (a bar at a
class-dependent position, or a class colour) under uniform noise, so a small MLP separates the
classes within a few hundred steps. Sizes are meant to be tiny (hundreds of examples).
"""

from __future__ import annotations

import os
import pickle
import struct
from pathlib import Path
from typing import Sequence, Tuple

import numpy as np

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def balanced_labels(n: int, num_classes: int, rng: np.random.Generator) -> np.ndarray:
    """n labels with class counts differing by at most one, in random order."""
    return rng.permutation(np.arange(n) % num_classes).astype(np.int64)


def pattern_images(
    labels: np.ndarray, num_classes: int, hw: Tuple[int, int], channels: int, rng: np.random.Generator
) -> np.ndarray:
    """uint8 (N, H, W, C): noise in [0, 60] plus a bright horizontal bar whose row depends on the class.

    With colour, the class also picks which channels the bar lights up, so colour alone separates
    neighbouring classes too.
    """
    h, w = hw
    x = rng.integers(0, 61, size=(len(labels), h, w, channels))
    bar = max(1, h // (num_classes + 2))  # rows per bar, so all bars fit
    for i, y in enumerate(labels):
        top = (1 + y % num_classes) * h // (num_classes + 2)
        lit = [c for c in range(channels) if (y >> c) & 1] or list(range(channels))
        x[i, top : top + bar, :, lit] += 180
    return np.clip(x, 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------------------------
# MNIST / Fashion-MNIST: uncompressed IDX files in torchvision's raw layout


def _write_idx(path: Path, arr: np.ndarray) -> None:
    # IDX header: magic = 0x00000800 | (number of dims), type 0x08 = unsigned byte; big-endian dims.
    magic = 0x0800 | arr.ndim
    with open(path, "wb") as fh:
        fh.write(struct.pack(">i", magic) + struct.pack(f">{arr.ndim}i", *arr.shape))
        fh.write(arr.astype(np.uint8).tobytes())


def write_idx_mnist(
    root, folder: str = "MNIST", n_train: int = 600, n_test: int = 200, seed: int = 0
) -> Tuple[np.ndarray, np.ndarray]:
    """Write <root>/<folder>/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte; return (y_train, y_test).

    folder="FashionMNIST" makes a file set that torchvision's FashionMNIST reads.
    """
    rng = np.random.default_rng(seed)
    raw = Path(root) / folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    out = []
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        y = balanced_labels(n, 10, rng)
        x = pattern_images(y, 10, (28, 28), 1, rng)[..., 0]
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", x)
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", y)
        out.append(y)
    return out[0], out[1]


# ----------------------------------------------------------------------------------------------
# Image folders: <root>/{train,test}/<class>/<i>.<fmt>


def write_image_folder(
    root,
    classes: Sequence[str],
    n_per_class_train: int,
    n_per_class_test: int,
    size: Tuple[int, int] = (32, 32),
    mode: str = "RGB",
    fmt: str = "png",
    seed: int = 0,
) -> Path:
    """Write a train/test image-folder data set; size is (width, height) as in PIL. Returns root."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    channels = 1 if mode == "L" else 3
    w, h = size
    for split, n in (("train", n_per_class_train), ("test", n_per_class_test)):
        for k, name in enumerate(classes):
            d = Path(root) / split / name
            d.mkdir(parents=True, exist_ok=True)
            x = pattern_images(np.full(n, k), len(classes), (h, w), channels, rng)
            for i in range(n):
                img = Image.fromarray(x[i, ..., 0] if channels == 1 else x[i]).convert(mode)
                img.save(d / f"{i:04d}.{fmt}", **({"quality": 95} if fmt == "jpg" else {}))
    return Path(root)


# ----------------------------------------------------------------------------------------------
# CIFAR-10: the python pickle layout torchvision reads


def write_cifar10_pickles(root, n_train: int = 500, n_test: int = 100, seed: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """Write <root>/cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta}; return (y_train, y_test).

    torchvision checks these files against the MD5 sums of the real release, which generated files
    cannot match: tests must call :func:`accept_generated_cifar` first.
    """
    rng = np.random.default_rng(seed)
    d = Path(root) / "cifar-10-batches-py"
    d.mkdir(parents=True, exist_ok=True)
    ys = []
    for n in (n_train, n_test):
        y = balanced_labels(n, 10, rng)
        # Rows are the channel-major (3, 32, 32) image flattened: 1024 R, then G, then B values.
        x = pattern_images(y, 10, (32, 32), 3, rng).transpose(0, 3, 1, 2).reshape(n, 3072)
        ys.append((x, y))
    (x, y), (xt, yt) = ys
    for b, idx in enumerate(np.array_split(np.arange(n_train), 5), start=1):
        _pickle(
            d / f"data_batch_{b}",
            {
                "batch_label": f"training batch {b} of 5",
                "labels": y[idx].tolist(),
                "data": x[idx],
                "filenames": [f"{i}.png" for i in idx],
            },
        )
    _pickle(
        d / "test_batch",
        {
            "batch_label": "testing batch 1 of 1",
            "labels": yt.tolist(),
            "data": xt,
            "filenames": [f"{i}.png" for i in range(n_test)],
        },
    )
    _pickle(d / "batches.meta", {"label_names": CIFAR10_CLASSES, "num_cases_per_batch": n_train // 5, "num_vis": 3072})
    return y, yt


def _pickle(path: Path, obj) -> None:
    with open(path, "wb") as fh:
        pickle.dump(obj, fh, protocol=2)


def accept_generated_cifar(monkeypatch) -> None:
    """Make torchvision's CIFAR10/100 accept generated pickles (a test-only monkeypatch).

    torchvision's CIFAR classes call ``torchvision.datasets.cifar.check_integrity(path, md5)`` for
    every batch file and for the meta file, comparing against the real release's MD5 sums. The patch
    swaps that one module-level function for a plain existence check; everything else (file names,
    pickle parsing, reshaping) stays the real torchvision code path.
    """
    import torchvision.datasets.cifar as cifar

    monkeypatch.setattr(cifar, "check_integrity", lambda path, md5=None: os.path.isfile(path))


def tiny_bundle(n: int = 120, classes: int = 4):
    """A tiny in-memory classification DataBundle (1×4×4 inputs, class c lit at pixel c): learnable
    in a few steps, no files."""
    import torch

    from ics.data import DataBundle

    gen = torch.Generator().manual_seed(0)

    def split(n):
        y = torch.arange(n) % classes
        x = 0.5 * torch.randn(n, 1, 4, 4, generator=gen)
        x[torch.arange(n), 0, y] += 2.0
        return x, y

    (x, y), (xt, yt) = split(n), split(n // 2)
    return DataBundle("synthetic", x, y, xt, yt, [str(c) for c in range(classes)], (0.0,), (1.0,), "memory")
