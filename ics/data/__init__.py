"""The data layer: read a data set once, cache the decoded pixels, hand back normalised tensors.

Every data set ends up as one float32 (N, C, H, W) tensor per split that lives on the training
device; batches are index lookups into it (ics.data.sampler). Reading goes in three steps:

1. a registered reader (``DATASETS[name](cfg, root)``, ics.data.loaders) checks the files and
   returns a Source: a DataSpec read from headers, the files, and a decoder;
2. the decoded uint8 pixels are cached (ics.data.cache);
3. per-channel mean/std of the train split normalise both splits.

To add a data set: a reader in loaders.py registered with @DATASETS.register("<name>"), and its
kind dataclass in ics/config/schema.py with @kind("data", "<name>"), and configs/data/<name>.yaml.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

import torch

from ics.config import DataConfig
from ics.data.cache import RawData, cache_dir, cache_key, read_cache, user_cache, write_cache
from ics.data.loaders import DataSpec, Source
from ics.data.splits import stratified_indices
from ics.registry import DATASETS

__all__ = ["DataBundle", "DataSpec", "load_data", "data_spec", "resolve_root", "stratified_indices", "channel_stats"]


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
    task: str = "classification"  # or "regression": y is float (N, out_dim)
    x_val: Optional[torch.Tensor] = None  # data.val_size examples held out of the training split
    y_val: Optional[torch.Tensor] = None

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def out_features(self) -> int:
        return self.y_train.shape[1] if self.task == "regression" else self.num_classes

    # the DataSpec view of a loaded data set (instrument checks take either)
    @property
    def train_size(self) -> int:
        return int(self.x_train.shape[0])

    @property
    def test_size(self) -> int:
        return int(self.x_test.shape[0])

    @property
    def where(self) -> str:
        return self.source

    @property
    def in_shape(self) -> Tuple[int, ...]:
        return tuple(self.x_train.shape[1:])


def resolve_root(cfg: DataConfig) -> Path:
    """Data root: cfg.root, else $ICS_DATA_ROOT, else <user cache>/ics/data."""
    root = cfg.root or os.environ.get("ICS_DATA_ROOT") or user_cache() / "data"
    return Path(root).expanduser().absolute()


def _source(cfg: DataConfig) -> Source:
    return DATASETS.get_or_raise(cfg.name)(cfg, resolve_root(cfg))


def data_spec(cfg: DataConfig) -> DataSpec:
    """Shape, classes and split sizes from the files' headers; decodes nothing. Missing or malformed
    files raise a one-line ConfigError (with data.download=true, missing files are fetched)."""
    return _source(cfg).spec


def load_data(cfg: DataConfig, device: Union[torch.device, str] = "cpu") -> DataBundle:
    """Read (or fetch from the cache) the data set named by cfg and normalise it onto `device`."""
    src = _source(cfg)
    if src.generated:
        raw = src.decode()
    else:
        path = cache_dir(cfg.cache_dir) / f"{cfg.name}-{cache_key(cfg.name, src.files)}.pt"
        raw = read_cache(path)
        if raw is None:
            raw = src.decode()
            write_cache(path, raw)
    x_train, y_train, x_val, y_val = _split(raw, cfg.val_size, cfg.split_seed, src.spec.task)
    source = src.spec.where
    if src.generated:  # already standard normal: nothing to scale
        mean, std = (0.0,), (1.0,)
        prep = lambda x: x.to(device)  # noqa: E731
    elif getattr(cfg, "binarize", False):  # the paper's binary input: 0/1, fed as it is
        mean, std = (0.0,), (1.0 / 255,)
        prep = lambda x: (x >= 128).to(device=device, dtype=torch.float32)  # noqa: E731  (p/255 >= 0.5)
        source += " (binarised at 0.5)"
    else:
        mean, std = channel_stats(x_train)  # of the training part only
        prep = lambda x: _normalise(x, mean, std, device)  # noqa: E731
    return DataBundle(
        name=cfg.name,
        x_train=prep(x_train),
        y_train=y_train.to(device),
        x_test=prep(raw.x_test),
        y_test=raw.y_test.to(device),
        classes=list(raw.classes),
        mean=mean,
        std=std,
        source=source,
        task=src.spec.task,
        x_val=None if x_val is None else prep(x_val),
        y_val=None if y_val is None else y_val.to(device),
    )


def _split(raw: RawData, val_size: int, seed: int, task: str):
    """(x_train, y_train, x_val, y_val): val_size examples held out (stratified by class)."""
    if not val_size:
        return raw.x_train, raw.y_train, None, None
    n = raw.x_train.shape[0]
    if val_size >= n:
        from ics.config import ConfigError

        raise ConfigError(f"data.val_size={val_size} is invalid: must be < the training split size ({n})")
    if task == "regression":
        val = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:val_size].sort().values
    else:
        val = stratified_indices(raw.y_train, val_size, seed)
    keep = torch.ones(n, dtype=torch.bool)
    keep[val] = False
    return raw.x_train[keep], raw.y_train[keep], raw.x_train[val], raw.y_train[val]


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
        stds.append(var**0.5 if var > 0 else 1.0)  # constant channel: leave the scale alone
    return tuple(means), tuple(stds)


def _normalise(x: torch.Tensor, mean: Sequence[float], std: Sequence[float], device) -> torch.Tensor:
    # Move uint8 first, convert on the device: 4x less host-to-device traffic.
    out = x.to(device).float()
    m = torch.tensor(mean, dtype=torch.float32, device=out.device).view(1, -1, 1, 1) * 255
    s = torch.tensor(std, dtype=torch.float32, device=out.device).view(1, -1, 1, 1) * 255
    return out.sub_(m).div_(s).contiguous()
