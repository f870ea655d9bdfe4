"""Registered data-set readers. Each one checks that its files are there and returns a `Source`:
what the data is (a `DataSpec`: input shape, classes, split sizes, read from file headers without
decoding), the files that identify it (the cache key) and a function that decodes them.

Formats: the MNIST family as raw IDX files in torchvision's layout (`<root>/MNIST/raw/`), CIFAR
as torchvision's python pickles, and image folders (`<dir>/{train,test}/<class>/<image>`).
"""

from __future__ import annotations

import os
import struct
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional, Tuple, Union

import numpy as np
import torch

from ics.config import ConfigError, DataConfig
from ics.data import vision
from ics.data.cache import RawData
from ics.registry import DATASETS

_IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}
_FIX_HINT = "set data.download=true, or point data.root= (or $ICS_DATA_ROOT) at the folder that holds it"
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


@dataclass
class DataSpec:
    """What a data set is, known before decoding: enough to build a model and check a config."""

    name: str
    in_shape: Tuple[int, ...]  # (C, H, W)
    classes: List[str]
    train_size: Optional[int]  # None: known only once decoded (CIFAR pickles)
    test_size: Optional[int]
    where: str  # the folder it is read from
    task: str = "classification"  # or "regression" (targets are vectors, squared loss)
    out_dim: Optional[int] = None  # regression: target dimension

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def out_features(self) -> int:
        """Outputs of the model's last layer: classes, or the target dimension."""
        return self.out_dim if self.task == "regression" else self.num_classes


@dataclass
class Source:
    spec: DataSpec
    files: List[Union[str, Path]]
    decode: Callable[[], RawData]
    generated: bool = False  # made from a seed, not read: no cache, no pixel normalisation


def _missing(what: str, expected: Path, extra: str = "") -> ConfigError:
    return ConfigError(f"{what} data not found: expected {expected}; put the files there, {_FIX_HINT}{extra}")


# ----------------------------------------------------------------------------------------------
# MNIST family: raw IDX files (magic 0x00000803 images, 0x00000801 labels, big-endian dims)

_IDX_MAGIC = {"images": 0x0803, "labels": 0x0801}


def idx_header(path: Path, kind: str) -> Tuple[int, ...]:
    """Dims from an IDX file's header; a wrong magic number or a truncated file is a ConfigError."""
    ndim = 3 if kind == "images" else 1
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(4 + 4 * ndim)
    if len(head) < 4 + 4 * ndim:
        raise ConfigError(f"{path} is truncated: {size} bytes, too short for an IDX header")
    magic = struct.unpack(">i", head[:4])[0]
    if magic != _IDX_MAGIC[kind]:
        raise ConfigError(
            f"{path} is not an IDX {kind} file: magic number 0x{magic & 0xFFFFFFFF:08x}, "
            f"expected 0x{_IDX_MAGIC[kind]:08x}"
        )
    dims = struct.unpack(f">{ndim}i", head[4:])
    expected = 4 + 4 * ndim + int(np.prod(dims))
    if size != expected:
        raise ConfigError(
            f"{path} is {'truncated' if size < expected else 'too long'}: {size} bytes, its header says {expected}"
        )
    return dims


def read_idx(path: Path, kind: str) -> np.ndarray:
    dims = idx_header(path, kind)
    offset = 4 + 4 * len(dims)
    return np.fromfile(path, dtype=np.uint8, offset=offset).reshape(dims)


def _idx_source(cfg: DataConfig, root: Path, cls) -> Source:
    folder = root / cls.__name__ / "raw"
    # torchvision's raw file names are the download URLs' names without .gz
    names = [os.path.splitext(os.path.basename(url))[0] for url, _ in cls.resources]
    files = {n: folder / n for n in names}
    missing = [f for f in files.values() if not f.is_file()]
    if missing and cfg.download:
        _download(cls, root)
    elif missing:
        raise _missing(cfg.name, missing[0])
    parts = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        img = files[f"{prefix}-images-idx3-ubyte"]
        lab = files[f"{prefix}-labels-idx1-ubyte"]
        n, h, w = idx_header(img, "images")
        (m,) = idx_header(lab, "labels")
        if n != m:
            raise ConfigError(f"{img} holds {n} images but {lab} holds {m} labels")
        parts[split] = (img, lab, n, h, w)
    h, w = parts["train"][3:]
    spec = DataSpec(cfg.name, (1, h, w), list(cls.classes), parts["train"][2], parts["test"][2], str(folder))

    def decode() -> RawData:
        out = []
        for split in ("train", "test"):
            img, lab = parts[split][:2]
            out += [
                torch.from_numpy(read_idx(img, "images").copy()).unsqueeze(1),
                torch.from_numpy(read_idx(lab, "labels").astype(np.int64)),
            ]
        return RawData(*out, classes=list(cls.classes))

    return Source(spec, list(files.values()), decode)


def _download(cls, root: Path) -> None:
    try:
        cls(str(root), train=True, download=True)
    except (RuntimeError, OSError) as err:  # a failed download
        raise ConfigError(
            f"torchvision {cls.__name__} could not download into {root}: {' '.join(str(err).split())}"
        ) from None


@DATASETS.register("mnist")
def _mnist(cfg: DataConfig, root: Path) -> Source:
    datasets = vision.load("torchvision.datasets")

    return _idx_source(cfg, root, datasets.MNIST)


@DATASETS.register("fashion_mnist")
def _fashion_mnist(cfg: DataConfig, root: Path) -> Source:
    datasets = vision.load("torchvision.datasets")

    return _idx_source(cfg, root, datasets.FashionMNIST)


# ----------------------------------------------------------------------------------------------
# CIFAR: torchvision's python pickles (or an image folder with data.image_folder=)


def _pickle_source(cfg: DataConfig, root: Path, cls, n_classes: int) -> Source:
    folder = root / cls.base_folder
    names = [n for n, _ in cls.train_list + cls.test_list] + [cls.meta["filename"]]
    files = [folder / n for n in names]
    missing = [f for f in files if not f.is_file()]
    if missing and cfg.download:
        _download(cls, root)
    elif missing:
        raise _missing(cfg.name, missing[0], " (a folder of train/<class>/ images works too: data.image_folder=)")

    def decode() -> RawData:
        parts = []
        for train in (True, False):
            try:
                ds = cls(str(root), train=train, download=False)
            except (RuntimeError, OSError, ValueError) as err:  # "Dataset not found or corrupted"
                raise ConfigError(
                    f"torchvision {cls.__name__} could not read {folder}: {' '.join(str(err).split())}"
                ) from None
            parts += [
                torch.as_tensor(np.asarray(ds.data)).permute(0, 3, 1, 2).contiguous(),
                torch.as_tensor(ds.targets, dtype=torch.int64),
            ]
        return RawData(*parts, classes=list(ds.classes))

    # RGB 32x32; split sizes are read from the pickles only when decoded
    classes = CIFAR10_CLASSES if n_classes == 10 else [str(i) for i in range(n_classes)]
    spec = DataSpec(cfg.name, (3, 32, 32), classes, None, None, str(folder))
    return Source(spec, files, decode)


@DATASETS.register("cifar10")
def _cifar10(cfg: DataConfig, root: Path) -> Source:
    datasets = vision.load("torchvision.datasets")

    if getattr(cfg, "image_folder", None):
        return _image_folder_source(cfg, expect_classes=CIFAR10_CLASSES, expect_shape=(3, 32, 32))
    return _pickle_source(cfg, root, datasets.CIFAR10, 10)


@DATASETS.register("cifar100")
def _cifar100(cfg: DataConfig, root: Path) -> Source:
    datasets = vision.load("torchvision.datasets")

    if getattr(cfg, "image_folder", None):
        return _image_folder_source(cfg, expect_count=100, expect_shape=(3, 32, 32))
    return _pickle_source(cfg, root, datasets.CIFAR100, 100)


# ----------------------------------------------------------------------------------------------
# Generated: Gaussian regression (the deep linear network's task)


@DATASETS.register("gaussian_regression")
def _gaussian_regression(cfg, root: Path) -> Source:
    """x ~ N(0, I), y = A x + noise, A ~ N(0, 1) fixed by data.seed; float tensors, nothing cached."""
    spec = DataSpec(
        cfg.name,
        (cfg.dim,),
        [],
        cfg.train_size,
        cfg.test_size,
        f"generated (data.seed={cfg.seed})",
        task="regression",
        out_dim=cfg.out_dim,
    )

    def generate() -> RawData:
        gen = torch.Generator().manual_seed(cfg.seed)
        a = torch.randn(cfg.out_dim, cfg.dim, generator=gen)
        parts = []
        for n in (cfg.train_size, cfg.test_size):
            x = torch.randn(n, cfg.dim, generator=gen)
            y = x @ a.T + cfg.noise_std * torch.randn(n, cfg.out_dim, generator=gen)
            parts += [x, y]
        return RawData(*parts, classes=[])

    return Source(spec, [], generate, generated=True)


# ----------------------------------------------------------------------------------------------
# Image folders: <folder>/{train,test}/<class>/<image>


@DATASETS.register("image_folder")
def _image_folder(cfg: DataConfig, root: Path) -> Source:
    return _image_folder_source(cfg)


def _image_folder_source(
    cfg,
    expect_classes: Optional[List[str]] = None,
    expect_count: Optional[int] = None,
    expect_shape: Optional[Tuple[int, int, int]] = None,
) -> Source:
    if cfg.image_folder in (None, "", "???"):
        raise ConfigError(
            f"data.image_folder must be set for data={cfg.name} (a folder with train/<class>/ and test/<class>/ images)"
        )
    folder = Path(cfg.image_folder).expanduser().absolute()
    if not folder.is_dir():
        raise ConfigError(
            f"data.image_folder={folder} is not a directory; it must hold train/<class>/ and "
            "test/<class>/ image folders"
        )
    train, test = _list_split(folder, "train"), _list_split(folder, "test")
    classes = sorted(train)
    if sorted(test) != classes:
        raise ConfigError(f"data.image_folder={folder}: test/ has classes {sorted(test)} but train/ has {classes}")
    if expect_classes is not None and classes != sorted(expect_classes):
        raise ConfigError(
            f"data.image_folder={folder}: class folders {classes} must be {cfg.name}'s classes {sorted(expect_classes)}"
        )
    if expect_count is not None and len(classes) != expect_count:
        raise ConfigError(
            f"data.image_folder={folder}: found {len(classes)} class folders, {cfg.name} has {expect_count}"
        )
    files = [f for split in (train, test) for c in classes for f in split[c]]
    first = _decode_one(files[0])  # one image tells the shape; the rest are checked when decoded
    shape = expect_shape or (3 if first.shape[0] == 3 else 1, *first.shape[1:])
    spec = DataSpec(
        cfg.name, tuple(shape), classes, sum(map(len, train.values())), sum(map(len, test.values())), str(folder)
    )
    return Source(spec, files, lambda: _decode_folder(folder, classes, train, test, expect_shape))


def _list_split(folder: Path, split: str) -> dict:
    """class name -> sorted paths (str) of the image files under <folder>/<split>/<class>/."""
    d = folder / split
    if not d.is_dir():
        raise ConfigError(f"data.image_folder={folder}: expected class folders under {d} (like {d}/<class>/0001.png)")
    out = {}
    for c in sorted(e.name for e in os.scandir(d) if e.is_dir() and not e.name.startswith(".")):
        base = str(d / c)  # plain strings: 60k Path objects alone cost ~1 s
        out[c] = [os.path.join(base, n) for n in sorted(_image_names(base))]
        if not out[c]:
            raise ConfigError(f"data.image_folder={folder}: {d / c} holds no image files")
    if not out:
        raise ConfigError(f"data.image_folder={folder}: no class folders under {d}")
    return out


def _image_names(d: str) -> List[str]:
    # os.scandir knows the entry types without a stat per file: 60k files list in ~0.1 s.
    return [e.name for e in os.scandir(d) if os.path.splitext(e.name)[1].lower() in _IMAGE_EXTS and e.is_file()]


def _decode_folder(
    folder: Path, classes: List[str], train: dict, test: dict, expect_shape: Optional[Tuple[int, int, int]]
) -> RawData:
    parts = []
    files = [f for split in (train, test) for c in classes for f in split[c]]
    x = _decode_images(files)
    if expect_shape is not None and tuple(x.shape[1:]) != expect_shape:
        raise ConfigError(
            f"data.image_folder={folder}: images are {tuple(x.shape[1:])} (C, H, W), this data set needs {expect_shape}"
        )
    start = 0
    for split in (train, test):
        labels = [i for i, c in enumerate(classes) for _ in split[c]]
        parts += [x[start : start + len(labels)], torch.tensor(labels, dtype=torch.int64)]
        start += len(labels)
    return RawData(*parts, classes=list(classes))


def _decode_images(files: List[str]) -> torch.Tensor:
    """Decode every file into one uint8 (N, C, H, W) tensor; C is 1 if all are grey, else 3."""
    chunks = [files[i : i + 256] for i in range(0, len(files), 256)]
    # The decoders release the GIL, so threads overlap file reads and decoding.
    with ThreadPoolExecutor(max_workers=min(8, 2 * (os.cpu_count() or 1))) as pool:
        imgs = [im for chunk in pool.map(_decode_chunk, chunks) for im in chunk]
    size = imgs[0].shape[1:]
    for f, im in zip(files, imgs):
        if im.shape[1:] != size:
            raise ConfigError(
                f"image {f} is {tuple(im.shape[1:])} (H, W) but {files[0]} is {tuple(size)}; "
                "all images must share one size"
            )
    if any(im.shape[0] == 3 for im in imgs):
        imgs = [im.expand(3, -1, -1) for im in imgs]  # grey among colour images: repeat the channel
    return torch.stack(imgs)


def _decode_chunk(files: List[str]) -> List[torch.Tensor]:
    return [_decode_one(f) for f in files]


def _decode_one(path: str) -> torch.Tensor:
    """One image file -> uint8 (C, H, W) with C = 1 (grey) or 3 (anything else, alpha dropped)."""
    tvio = vision.load("torchvision.io")
    ImageReadMode, decode_jpeg = tvio.ImageReadMode, tvio.decode_jpeg

    raw = tvio.read_file(str(path))
    # torchvision.io decodes JPEG ~1.5x faster than PIL; everything else (palettes, alpha, CMYK,
    # BMP, ...) goes through PIL, whose mode conversions are the reference behaviour.
    if raw[:2].tolist() == [0xFF, 0xD8]:
        try:
            img = decode_jpeg(raw, mode=ImageReadMode.UNCHANGED)
            if img.shape[0] in (1, 3):
                return img
        except RuntimeError:
            pass
    return _decode_pil(path)


_GREY_MODES = {"1", "L", "LA"}


def _decode_pil(path: str) -> torch.Tensor:
    from PIL import Image

    try:
        with Image.open(path) as im:
            arr = np.array(im.convert("L" if im.mode in _GREY_MODES else "RGB"))
    except OSError as err:
        raise ConfigError(f"cannot decode image {path}: {err}") from None
    return torch.from_numpy(arr).reshape(arr.shape[0], arr.shape[1], -1).permute(2, 0, 1).contiguous()
