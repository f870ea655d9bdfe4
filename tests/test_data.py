"""Tests for ics.data, run against generated files in the real on-disk formats (see datagen.py)."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import datagen
import numpy as np
import pytest
import torch
from PIL import Image

import ics.data as data
import ics.data.loaders as loaders
from ics.config import KINDS, ConfigError, DataConfig, MNISTConfig


def cfg_for(tmp_path: Path, name: str, **kw) -> DataConfig:
    """The data option's config (an unknown name: the base DataConfig), with its cache in tmp_path
    (tests must never write to ~/.cache)."""
    kw.setdefault("cache_dir", str(tmp_path / "cache"))
    cls = KINDS["data"].get(name)
    return cls(**kw) if cls is not None else DataConfig(name=name, **kw)


def tree(root: Path) -> set:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def unnormalise(bundle: data.DataBundle, x: torch.Tensor) -> torch.Tensor:
    """Back to uint8 pixels, to compare against what was written."""
    m = torch.tensor(bundle.mean).view(-1, 1, 1)
    s = torch.tensor(bundle.std).view(-1, 1, 1)
    return ((x * s + m) * 255).round().to(torch.uint8)


# ----------------------------------------------------------------------------------------------
# torchvision formats


@pytest.mark.parametrize("name,folder", [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")])
def test_idx_datasets(tmp_path, name, folder):
    y_train, y_test = datagen.write_idx_mnist(tmp_path / "root", folder=folder, n_train=300, n_test=100)
    b = data.load_data(cfg_for(tmp_path, name=name, root=str(tmp_path / "root")))
    assert b.name == name
    assert b.x_train.shape == (300, 1, 28, 28) and b.x_test.shape == (100, 1, 28, 28)
    assert b.x_train.dtype == torch.float32 and b.y_train.dtype == torch.int64
    assert b.x_train.is_contiguous()
    assert torch.equal(b.y_train, torch.from_numpy(y_train)) and torch.equal(b.y_test, torch.from_numpy(y_test))
    assert b.num_classes == 10 and b.in_shape == (1, 28, 28)
    assert abs(b.x_train.mean().item()) < 1e-4 and abs(b.x_train.std().item() - 1) < 1e-3
    assert b.source == str(tmp_path / "root" / folder / "raw")


def test_mean_std_match_numpy(tmp_path):
    datagen.write_idx_mnist(tmp_path / "root", n_train=200, n_test=50)
    b = data.load_data(cfg_for(tmp_path, name="mnist", root=str(tmp_path / "root")))
    raw = np.frombuffer((tmp_path / "root/MNIST/raw/train-images-idx3-ubyte").read_bytes()[16:], np.uint8) / 255
    assert b.mean[0] == pytest.approx(raw.mean(), abs=1e-12)
    assert b.std[0] == pytest.approx(raw.std(), abs=1e-12)


def test_cifar10_pickles(tmp_path, monkeypatch):
    datagen.accept_generated_cifar(monkeypatch)
    y_train, y_test = datagen.write_cifar10_pickles(tmp_path / "root", n_train=100, n_test=40)
    b = data.load_data(cfg_for(tmp_path, name="cifar10", root=str(tmp_path / "root")))
    assert b.x_train.shape == (100, 3, 32, 32) and b.x_test.shape == (40, 3, 32, 32)
    assert b.classes == datagen.CIFAR10_CLASSES
    assert torch.equal(b.y_train, torch.from_numpy(y_train)) and torch.equal(b.y_test, torch.from_numpy(y_test))
    # Channel order survives the HWC -> CHW move: compare the first image with the pickle row.
    with open(tmp_path / "root/cifar-10-batches-py/data_batch_1", "rb") as fh:
        row = pickle.load(fh, encoding="latin1")["data"][0]
    assert torch.equal(unnormalise(b, b.x_train[0]), torch.from_numpy(row.reshape(3, 32, 32)))
    assert b.x_train.mean(dim=(0, 2, 3)).abs().max() < 1e-4


# ----------------------------------------------------------------------------------------------
# Image folders


def test_cifar10_from_image_folder(tmp_path):
    folder = datagen.write_image_folder(tmp_path / "jpeg", datagen.CIFAR10_CLASSES, 6, 2)
    b = data.load_data(cfg_for(tmp_path, name="cifar10", image_folder=str(folder)))
    assert b.name == "cifar10" and b.classes == datagen.CIFAR10_CLASSES
    assert b.x_train.shape == (60, 3, 32, 32) and b.x_test.shape == (20, 3, 32, 32)
    assert b.y_train.tolist() == [k for k in range(10) for _ in range(6)]
    png = np.array(Image.open(folder / "train" / "bird" / "0003.png"))
    assert torch.equal(unnormalise(b, b.x_train[2 * 6 + 3]), torch.from_numpy(png).permute(2, 0, 1))


def test_cifar10_image_folder_wrong_classes(tmp_path):
    folder = datagen.write_image_folder(tmp_path / "f", ["cat", "dog"], 2, 1)
    with pytest.raises(ConfigError, match="airplane"):
        data.load_data(cfg_for(tmp_path, name="cifar10", image_folder=str(folder)))


def test_cifar10_image_folder_wrong_shape(tmp_path):
    folder = datagen.write_image_folder(tmp_path / "f", datagen.CIFAR10_CLASSES, 1, 1, size=(28, 28))
    with pytest.raises(ConfigError, match=r"\(3, 32, 32\)"):
        data.load_data(cfg_for(tmp_path, name="cifar10", image_folder=str(folder)))


@pytest.mark.parametrize("mode,fmt,channels", [("L", "png", 1), ("RGB", "png", 3), ("RGB", "jpg", 3)])
def test_generic_image_folder(tmp_path, mode, fmt, channels):
    folder = datagen.write_image_folder(
        tmp_path / "f", ["zeta", "alpha", "mid"], 4, 2, size=(20, 12), mode=mode, fmt=fmt
    )
    b = data.load_data(cfg_for(tmp_path, name="image_folder", image_folder=str(folder)))
    assert b.name == "image_folder" and b.classes == ["alpha", "mid", "zeta"]
    assert b.in_shape == (channels, 12, 20) and b.x_test.shape == (6, channels, 12, 20)
    assert len(b.mean) == channels and b.source == str(folder)
    assert torch.bincount(b.y_train).tolist() == [4, 4, 4]


def test_image_folder_mixed_sizes_names_file(tmp_path):
    folder = datagen.write_image_folder(tmp_path / "f", ["a", "b"], 3, 1)
    Image.new("RGB", (16, 16)).save(folder / "train" / "b" / "0001.png")
    with pytest.raises(ConfigError, match=r"b/0001\.png"):
        data.load_data(cfg_for(tmp_path, name="image_folder", image_folder=str(folder)))


def test_image_folder_palette_and_grey_files_become_rgb(tmp_path):
    # A palette PNG holds colour-table indices: it must decode to its colours, not to one channel.
    folder = datagen.write_image_folder(tmp_path / "f", ["a", "b"], 2, 1)
    colour = np.array(Image.open(folder / "train" / "a" / "0000.png"))
    Image.fromarray(colour).convert("P").save(folder / "train" / "a" / "0000.png")
    Image.fromarray(colour).convert("L").save(folder / "train" / "a" / "0001.png")
    b = data.load_data(cfg_for(tmp_path, name="image_folder", image_folder=str(folder)))
    assert b.in_shape == (3, 32, 32)
    want = np.array(Image.open(folder / "train" / "a" / "0000.png").convert("RGB"))
    assert torch.equal(unnormalise(b, b.x_train[0]), torch.from_numpy(want).permute(2, 0, 1))
    grey = unnormalise(b, b.x_train[1])
    assert torch.equal(grey[0], grey[1]) and torch.equal(grey[1], grey[2])


def test_image_folder_broken_file_names_it(tmp_path):
    folder = datagen.write_image_folder(tmp_path / "f", ["a", "b"], 2, 1)
    (folder / "train" / "b" / "0001.png").write_bytes(b"not an image")
    with pytest.raises(ConfigError, match=r"cannot decode image .*b/0001\.png"):
        data.load_data(cfg_for(tmp_path, name="image_folder", image_folder=str(folder)))


def test_image_folder_test_classes_must_match(tmp_path):
    folder = datagen.write_image_folder(tmp_path / "f", ["a", "b"], 2, 1)
    (folder / "test" / "c").mkdir()
    Image.new("RGB", (32, 32)).save(folder / "test" / "c" / "x.png")
    with pytest.raises(ConfigError, match="test/ has classes"):
        data.load_data(cfg_for(tmp_path, name="image_folder", image_folder=str(folder)))


def test_image_folder_must_be_set(tmp_path):
    with pytest.raises(ConfigError, match="data.image_folder must be set for data=image_folder"):
        data.load_data(cfg_for(tmp_path, name="image_folder"))


def test_image_folder_without_train_split(tmp_path):
    (tmp_path / "f").mkdir()
    with pytest.raises(ConfigError, match=str(tmp_path / "f" / "train")):
        data.load_data(cfg_for(tmp_path, name="image_folder", image_folder=str(tmp_path / "f")))


# ----------------------------------------------------------------------------------------------
# User errors


@pytest.mark.parametrize(
    "name,expected",
    [
        ("mnist", "MNIST/raw/train-images-idx3-ubyte"),
        ("fashion_mnist", "FashionMNIST/raw/train-images-idx3-ubyte"),
        ("cifar10", "cifar-10-batches-py/data_batch_1"),
    ],
)
def test_missing_data_names_expected_path(tmp_path, name, expected):
    with pytest.raises(ConfigError) as err:
        data.load_data(cfg_for(tmp_path, name=name, root=str(tmp_path / "empty")))
    msg = str(err.value)
    assert str(tmp_path / "empty" / expected) in msg
    assert "data.download=true" in msg and "ICS_DATA_ROOT" in msg and "data.root=" in msg
    assert "\n" not in msg


def test_unknown_dataset(tmp_path):
    with pytest.raises(ConfigError, match="unknown dataset 'svhn'"):
        data.load_data(cfg_for(tmp_path, name="svhn"))


def test_corrupt_cifar_pickles_become_config_error(tmp_path):
    # Without the MD5 patch torchvision rejects generated files: that must be a one-line ConfigError.
    datagen.write_cifar10_pickles(tmp_path / "root", n_train=20, n_test=10)
    with pytest.raises(ConfigError, match="CIFAR10 could not read"):
        data.load_data(cfg_for(tmp_path, name="cifar10", root=str(tmp_path / "root")))


# ----------------------------------------------------------------------------------------------
# Cache


def _forbid(monkeypatch, attr):
    def fail(*a, **k):
        raise AssertionError(f"{attr} called: the cache was not used")

    monkeypatch.setattr(loaders, attr, fail)


def test_second_load_hits_cache(tmp_path, monkeypatch):
    datagen.write_idx_mnist(tmp_path / "root", n_train=100, n_test=20)
    cfg = cfg_for(tmp_path, name="mnist", root=str(tmp_path / "root"))
    first = data.load_data(cfg)
    _forbid(monkeypatch, "read_idx")  # decodes the IDX pixels/labels (headers are read on every load)
    second = data.load_data(cfg)
    assert torch.equal(first.x_train, second.x_train) and torch.equal(first.y_test, second.y_test)
    assert first.mean == second.mean and first.classes == second.classes


def test_image_folder_cache_hit_and_invalidation(tmp_path, monkeypatch):
    folder = datagen.write_image_folder(tmp_path / "f", ["a", "b"], 3, 1)
    cfg = cfg_for(tmp_path, name="image_folder", image_folder=str(folder))
    # every image of the data set goes through _decode_images when decoded (the reader also
    # decodes the first file on every load, for the shape in its DataSpec: not the data set)
    calls = []
    real = loaders._decode_images
    monkeypatch.setattr(loaders, "_decode_images", lambda files: calls.extend(files) or real(files))
    data.load_data(cfg)
    assert len(calls) == 8
    data.load_data(cfg)
    assert len(calls) == 8  # cached: nothing decoded
    # A changed file (new mtime) is a new key: decode again.
    f = folder / "train" / "a" / "0000.png"
    os.utime(f, ns=(f.stat().st_atime_ns, f.stat().st_mtime_ns + 10**9))
    data.load_data(cfg)
    assert len(calls) == 16


def test_cache_goes_to_cache_dir_not_root(tmp_path):
    root = tmp_path / "root"
    datagen.write_idx_mnist(root, n_train=50, n_test=10)
    os.chmod(root / "MNIST" / "raw", 0o555)  # root ignores this, hence the tree comparison below
    before = tree(root)
    data.load_data(cfg_for(tmp_path, name="mnist", root=str(root)))
    assert tree(root) == before
    cached = list((tmp_path / "cache").iterdir())
    assert len(cached) == 1 and cached[0].name.startswith("mnist-") and cached[0].suffix == ".pt"


def test_corrupt_cache_file_is_redecoded(tmp_path):
    datagen.write_idx_mnist(tmp_path / "root", n_train=50, n_test=10)
    cfg = cfg_for(tmp_path, name="mnist", root=str(tmp_path / "root"))
    good = data.load_data(cfg)
    (cache_file,) = (tmp_path / "cache").iterdir()
    cache_file.write_bytes(b"half a file")
    again = data.load_data(cfg)
    assert torch.equal(good.x_train, again.x_train)
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [cache_file.name]  # no temp files left


def test_locations_from_config_env_and_default(tmp_path, monkeypatch):
    monkeypatch.delenv("ICS_DATA_ROOT", raising=False)
    monkeypatch.delenv("ICS_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    plain = MNISTConfig()
    assert data.resolve_root(plain) == tmp_path / "xdg" / "ics" / "data"
    assert data.cache_dir(plain.cache_dir) == tmp_path / "xdg" / "ics" / "tensors"
    monkeypatch.setenv("ICS_DATA_ROOT", str(tmp_path / "env-root"))
    monkeypatch.setenv("ICS_CACHE_DIR", str(tmp_path / "env-cache"))
    assert data.resolve_root(plain) == tmp_path / "env-root"
    assert data.cache_dir(plain.cache_dir) == tmp_path / "env-cache"
    explicit = MNISTConfig(root=str(tmp_path / "r"), cache_dir=str(tmp_path / "c"))
    assert data.resolve_root(explicit) == tmp_path / "r" and data.cache_dir(explicit.cache_dir) == tmp_path / "c"


# ----------------------------------------------------------------------------------------------
# stratified_indices


def uneven_labels() -> torch.Tensor:
    # 500 / 300 / 150 / 50 examples, interleaved the way a shuffled data set is.
    counts = [500, 300, 150, 50]
    labels = torch.cat([torch.full((c,), k) for k, c in enumerate(counts)])
    return labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(1))]


@pytest.mark.parametrize("n", [2, 7, 100, 333, 999])
def test_stratified_total_and_proportions(n):
    labels = uneven_labels()
    idx = data.stratified_indices(labels, n, seed=0)
    assert len(idx) == n and len(set(idx.tolist())) == n
    assert torch.equal(idx, torch.sort(idx).values)
    per_class = torch.bincount(labels[idx], minlength=4).double()
    assert (per_class - n * torch.tensor([0.5, 0.3, 0.15, 0.05])).abs().max() < 1  # within rounding


def test_stratified_all_classes_present_and_deterministic():
    labels = uneven_labels()
    a = data.stratified_indices(labels, 100, seed=3)
    assert set(labels[a].tolist()) == {0, 1, 2, 3}
    assert torch.equal(a, data.stratified_indices(labels, 100, seed=3))
    assert not torch.equal(a, data.stratified_indices(labels, 100, seed=4))


def test_stratified_ignores_global_rng():
    labels = uneven_labels()
    torch.manual_seed(0)
    a = data.stratified_indices(labels, 50, seed=0)
    torch.manual_seed(123)
    assert torch.equal(a, data.stratified_indices(labels, 50, seed=0))


def test_stratified_n_at_least_len_returns_all():
    labels = torch.tensor([2, 0, 1, 1])
    assert data.stratified_indices(labels, 4, seed=0).tolist() == [0, 1, 2, 3]
    assert data.stratified_indices(labels, 10, seed=0).tolist() == [0, 1, 2, 3]
