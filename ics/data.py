"""The data layer: read a data set once, cache the decoded pixels, hand back normalised tensors.

Every data set ends up as one float32 (N, C, H, W) tensor per split that lives on the training
device; batches are index lookups into it. Reading goes in three steps:

1. a registered loader (``DATASETS[name](cfg, root)``) checks that the files are there and returns
   a :class:`Source`: the files that identify the data and a function that decodes them;
2. the decoded uint8 pixels are cached under :func:`cache_dir`, keyed on the files' paths, sizes
   and mtimes, so only the first run pays for decoding (the data root itself is never written);
3. per-channel mean/std of the train split normalise both splits.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from ics.config import ConfigError, DataConfig
from ics.registry import DATASETS

log = logging.getLogger(__name__)

# Bump when the cached payload's layout changes, so old cache files are ignored.
_CACHE_VERSION = 1
_IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}
_FIX_HINT = "set data.download=true, or point data.root= (or $ICS_DATA_ROOT) at the folder that holds it"
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


@dataclass
class DataBundle:
    name: str
    x_train: torch.Tensor  # float32 (N, C, H, W), normalised, on the device
    y_train: torch.Tensor  # int64 (N,)
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: List[str]
    mean: Tuple[float, ...]  # per channel, of the train pixels scaled to [0, 1]
    std: Tuple[float, ...]
    source: str  # where the data was read from

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def in_shape(self) -> Tuple[int, ...]:
        return tuple(self.x_train.shape[1:])


@dataclass
class RawData:
    """Decoded data set as stored in the cache: uint8 (N, C, H, W) pixels, int64 labels."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: List[str]


@dataclass
class Source:
    """What a registered loader returns: where the data is, its files (the cache key) and a decoder."""

    where: str
    files: List[Union[str, Path]]
    decode: Callable[[], RawData]


# ----------------------------------------------------------------------------------------------
# Locations


def _user_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ics"


def resolve_root(cfg: DataConfig) -> Path:
    """Data root: cfg.root, else $ICS_DATA_ROOT, else <user cache>/ics/data."""
    root = cfg.root or os.environ.get("ICS_DATA_ROOT") or _user_cache() / "data"
    return Path(root).expanduser().absolute()


def cache_dir(cfg: DataConfig) -> Path:
    """Decoded-tensor cache: cfg.cache_dir, else $ICS_CACHE_DIR, else <user cache>/ics/tensors."""
    d = cfg.cache_dir or os.environ.get("ICS_CACHE_DIR") or _user_cache() / "tensors"
    return Path(d).expanduser().absolute()


# ----------------------------------------------------------------------------------------------
# Public entry points


def load_data(cfg: DataConfig, device: Union[torch.device, str] = "cpu") -> DataBundle:
    """Read (or fetch from the cache) the data set named by cfg and normalise it onto `device`."""
    loader = DATASETS.get_or_raise(cfg.name)
    src: Source = loader(cfg, resolve_root(cfg))
    raw = _cached_decode(cfg, src)
    mean, std = channel_stats(raw.x_train)
    return DataBundle(
        name=cfg.name,
        x_train=_normalise(raw.x_train, mean, std, device),
        y_train=raw.y_train.to(device),
        x_test=_normalise(raw.x_test, mean, std, device),
        y_test=raw.y_test.to(device),
        classes=list(raw.classes),
        mean=mean,
        std=std,
        source=src.where,
    )


def check_data(cfg: DataConfig) -> str:
    """Raise ConfigError (one line) if the data cannot be found; decodes nothing, downloads nothing.
    Returns where the data will be read from. With data.download=true the files may legitimately
    be absent until the run fetches them."""
    root = resolve_root(cfg)
    if cfg.download:
        return str(root)
    return DATASETS.get_or_raise(cfg.name)(cfg, root).where


def stratified_indices(labels: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """n indices drawn without replacement, each class getting its share of n; sorted.

    Shares are n * class_fraction rounded by largest remainder (ties go to the lower class id),
    so the total is exactly n. The draw uses its own generator: the same seed gives the same set.
    """
    labels = labels.detach().cpu().reshape(-1)
    if n >= len(labels):
        return torch.arange(len(labels))
    classes, counts = torch.unique(labels, return_counts=True)
    quotas = _largest_remainder(counts, max(n, 0))
    gen = torch.Generator().manual_seed(seed)
    picks = []
    for c, q in zip(classes.tolist(), quotas.tolist()):
        members = torch.nonzero(labels == c).reshape(-1)
        picks.append(members[torch.randperm(len(members), generator=gen)[:q]])
    return torch.sort(torch.cat(picks)).values


def _largest_remainder(counts: torch.Tensor, n: int) -> torch.Tensor:
    exact = counts.double() * n / counts.sum()
    quotas = exact.floor().long()
    left = n - int(quotas.sum())
    # Stable sort on the negated remainders: biggest first, ties by class order.
    order = torch.sort(-(exact - quotas), stable=True).indices
    quotas[order[:left]] += 1
    return quotas


# ----------------------------------------------------------------------------------------------
# Normalisation


def channel_stats(x: torch.Tensor) -> Tuple[Tuple[float, ...], Tuple[float, ...]]:
    """Exact per-channel mean/std (population) of uint8 (N, C, H, W) pixels scaled to [0, 1].

    A 256-bin histogram per channel gives the moments in float64 without a float copy of the data.
    """
    levels = torch.arange(256, dtype=torch.float64) / 255
    means, stds = [], []
    for c in range(x.shape[1]):
        hist = torch.bincount(x[:, c].reshape(-1).cpu(), minlength=256).double()
        m = float((hist * levels).sum() / hist.sum())
        var = float((hist * (levels - m) ** 2).sum() / hist.sum())
        means.append(m)
        stds.append(var ** 0.5 if var > 0 else 1.0)  # constant channel: leave the scale alone
    return tuple(means), tuple(stds)


def _normalise(x: torch.Tensor, mean: Sequence[float], std: Sequence[float], device) -> torch.Tensor:
    # Move uint8 first, convert on the device: 4x less host-to-device traffic.
    out = x.to(device).float()
    m = torch.tensor(mean, dtype=torch.float32, device=out.device).view(1, -1, 1, 1) * 255
    s = torch.tensor(std, dtype=torch.float32, device=out.device).view(1, -1, 1, 1) * 255
    return out.sub_(m).div_(s).contiguous()


# ----------------------------------------------------------------------------------------------
# Cache


def _cache_key(name: str, files: Sequence[Union[str, Path]]) -> str:
    stats = []
    for f in files:
        st = os.stat(f)
        stats.append([str(f), st.st_size, st.st_mtime_ns])
    blob = json.dumps([_CACHE_VERSION, name, stats]).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _cached_decode(cfg: DataConfig, src: Source) -> RawData:
    path = cache_dir(cfg) / f"{cfg.name}-{_cache_key(cfg.name, src.files)}.pt"
    raw = _read_cache(path)
    if raw is None:
        raw = src.decode()
        _write_cache(path, raw)
    return raw


def _read_cache(path: Path) -> Optional[RawData]:
    if not path.is_file():
        return None
    try:
        blob = torch.load(path, weights_only=True)
        return RawData(**{k: blob[k] for k in ("x_train", "y_train", "x_test", "y_test", "classes")})
    except Exception as err:  # a corrupt or foreign file only costs a re-decode
        log.warning("ignoring unreadable data cache %s (%s)", path, err)
        return None


def _write_cache(path: Path, raw: RawData) -> None:
    blob = dict(vars(raw), version=_CACHE_VERSION)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                torch.save(blob, fh)
            os.chmod(tmp, 0o644)  # mkstemp makes 0600; a cache is as readable as the data it holds
            os.replace(tmp, path)  # atomic: readers see the old state or the whole new file
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except OSError as err:  # no cache is slower, not wrong
        log.warning("could not write data cache %s (%s); the next run decodes again", path, err)


# ----------------------------------------------------------------------------------------------
# torchvision data sets (MNIST family: raw IDX files; CIFAR: python pickles)


def _missing(what: str, expected: Path, extra: str = "") -> ConfigError:
    return ConfigError(f"{what} data not found: expected {expected}; put the files there, {_FIX_HINT}{extra}")


def _torchvision_source(cfg: DataConfig, root: Path, cls, folder: Path, names: List[str], extra: str) -> Source:
    files = [folder / n for n in names]
    missing = [f for f in files if not f.is_file()]
    if missing and not cfg.download:
        raise _missing(cfg.name, missing[0], extra)
    if missing:
        _construct(cls, root, train=True, download=True)
    return Source(str(folder), files, lambda: _decode_torchvision(cls, root))


def _construct(cls, root: Path, train: bool, download: bool = False):
    try:
        return cls(str(root), train=train, download=download)
    except (RuntimeError, OSError) as err:  # "Dataset not found or corrupted", failed download
        msg = " ".join(str(err).split())
        raise ConfigError(f"torchvision {cls.__name__} could not read {root}: {msg}") from None


def _decode_torchvision(cls, root: Path) -> RawData:
    parts = []
    for train in (True, False):
        ds = _construct(cls, root, train)
        x = torch.as_tensor(np.asarray(ds.data))
        # MNIST: (N, H, W) grey; CIFAR: (N, H, W, C).
        x = x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2)
        parts += [x.contiguous(), torch.as_tensor(ds.targets, dtype=torch.int64)]
    return RawData(*parts, classes=list(ds.classes))


def _idx_source(cfg: DataConfig, root: Path, cls) -> Source:
    # torchvision's raw file names are the download URLs' names without .gz.
    names = [os.path.splitext(os.path.basename(url))[0] for url, _ in cls.resources]
    return _torchvision_source(cfg, root, cls, root / cls.__name__ / "raw", names, "")


def _pickle_source(cfg: DataConfig, root: Path, cls) -> Source:
    names = [n for n, _ in cls.train_list + cls.test_list] + [cls.meta["filename"]]
    hint = " (a folder of train/<class>/ images works too: data.image_folder=)"
    return _torchvision_source(cfg, root, cls, root / cls.base_folder, names, hint)


@DATASETS.register("mnist")
def _mnist(cfg: DataConfig, root: Path) -> Source:
    from torchvision import datasets

    return _idx_source(cfg, root, datasets.MNIST)


@DATASETS.register("fashion_mnist")
def _fashion_mnist(cfg: DataConfig, root: Path) -> Source:
    from torchvision import datasets

    return _idx_source(cfg, root, datasets.FashionMNIST)


@DATASETS.register("cifar10")
def _cifar10(cfg: DataConfig, root: Path) -> Source:
    from torchvision import datasets

    if cfg.image_folder:
        return _image_folder_source(cfg, expect_classes=CIFAR10_CLASSES, expect_shape=(3, 32, 32))
    return _pickle_source(cfg, root, datasets.CIFAR10)


@DATASETS.register("cifar100")
def _cifar100(cfg: DataConfig, root: Path) -> Source:
    from torchvision import datasets

    if cfg.image_folder:
        return _image_folder_source(cfg, expect_count=100, expect_shape=(3, 32, 32))
    return _pickle_source(cfg, root, datasets.CIFAR100)


# ----------------------------------------------------------------------------------------------
# Image folders: <folder>/{train,test}/<class>/<image>


@DATASETS.register("image_folder")
def _image_folder(cfg: DataConfig, root: Path) -> Source:
    if not cfg.image_folder:
        raise ConfigError("data.image_folder must be set for data=image_folder "
                          "(a folder with train/<class>/ and test/<class>/ images)")
    return _image_folder_source(cfg)


def _image_folder_source(cfg: DataConfig, expect_classes: Optional[List[str]] = None,
                         expect_count: Optional[int] = None,
                         expect_shape: Optional[Tuple[int, int, int]] = None) -> Source:
    folder = Path(cfg.image_folder).expanduser().absolute()
    train, test = _list_split(folder, "train"), _list_split(folder, "test")
    classes = sorted(train)
    if sorted(test) != classes:
        raise ConfigError(f"data.image_folder={folder}: test/ has classes {sorted(test)} but train/ has {classes}")
    if expect_classes is not None and classes != sorted(expect_classes):
        raise ConfigError(f"data.image_folder={folder}: class folders {classes} must be {cfg.name}'s classes "
                          f"{sorted(expect_classes)}")
    if expect_count is not None and len(classes) != expect_count:
        raise ConfigError(f"data.image_folder={folder}: found {len(classes)} class folders, "
                          f"{cfg.name} has {expect_count}")
    files = [f for split in (train, test) for c in classes for f in split[c]]
    decode = lambda: _decode_folder(folder, classes, train, test, expect_shape)  # noqa: E731
    return Source(str(folder), files, decode)


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


def _decode_folder(folder: Path, classes: List[str], train: dict, test: dict,
                   expect_shape: Optional[Tuple[int, int, int]]) -> RawData:
    parts = []
    files = [f for split in (train, test) for c in classes for f in split[c]]
    x = _decode_images(files)
    if expect_shape is not None and tuple(x.shape[1:]) != expect_shape:
        raise ConfigError(f"data.image_folder={folder}: images are {tuple(x.shape[1:])} (C, H, W), "
                          f"this data set needs {expect_shape}")
    start = 0
    for split in (train, test):
        labels = [i for i, c in enumerate(classes) for _ in split[c]]
        parts += [x[start:start + len(labels)], torch.tensor(labels, dtype=torch.int64)]
        start += len(labels)
    return RawData(*parts, classes=list(classes))


def _decode_images(files: List[str]) -> torch.Tensor:
    """Decode every file into one uint8 (N, C, H, W) tensor; C is 1 if all are grey, else 3."""
    chunks = [files[i:i + 256] for i in range(0, len(files), 256)]
    # The decoders release the GIL, so threads overlap file reads and decoding.
    with ThreadPoolExecutor(max_workers=min(8, 2 * (os.cpu_count() or 1))) as pool:
        imgs = [im for chunk in pool.map(_decode_chunk, chunks) for im in chunk]
    size = imgs[0].shape[1:]
    for f, im in zip(files, imgs):
        if im.shape[1:] != size:
            raise ConfigError(f"image {f} is {tuple(im.shape[1:])} (H, W) but {files[0]} is {tuple(size)}; "
                              "all images must share one size")
    if any(im.shape[0] == 3 for im in imgs):
        imgs = [im.expand(3, -1, -1) for im in imgs]  # grey among colour images: repeat the channel
    return torch.stack(imgs)


def _decode_chunk(files: List[str]) -> List[torch.Tensor]:
    return [_decode_one(f) for f in files]


def _decode_one(path: str) -> torch.Tensor:
    """One image file -> uint8 (C, H, W) with C = 1 (grey) or 3 (anything else, alpha dropped)."""
    from torchvision.io import ImageReadMode, decode_jpeg, read_file

    raw = read_file(str(path))
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
