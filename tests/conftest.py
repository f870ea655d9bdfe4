"""Shared fixtures: tiny data sets written in the real on-disk formats, and a private tensor cache."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # `import datagen` whatever pytest's import mode

import datagen  # noqa: E402

REAL_ROOT = os.environ.get("ICS_DATA_ROOT")


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Never write the decoded-tensor cache to ~/.cache from tests."""
    monkeypatch.setenv("ICS_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "tensor-cache"))


@pytest.fixture(scope="session")
def mnist_root(tmp_path_factory) -> Path:
    """A data root holding tiny, learnable MNIST and Fashion-MNIST in torchvision's raw IDX layout."""
    root = tmp_path_factory.mktemp("data")
    datagen.write_idx_mnist(root, "MNIST", n_train=600, n_test=200)
    datagen.write_idx_mnist(root, "FashionMNIST", n_train=300, n_test=100, seed=1)
    return root


@pytest.fixture(scope="session")
def cifar_folder(tmp_path_factory) -> Path:
    """A tiny CIFAR-10-shaped image folder (train/ and test/ class folders of 32x32 JPEGs)."""
    root = tmp_path_factory.mktemp("cifar10-jpeg")
    datagen.write_image_folder(root, datagen.CIFAR10_CLASSES, 12, 4, size=(32, 32), mode="RGB", fmt="jpg")
    return root


@pytest.fixture
def tiny_env(mnist_root, monkeypatch) -> dict:
    """Environment for `ics` subprocesses: tiny MNIST as ICS_DATA_ROOT."""
    monkeypatch.setenv("ICS_DATA_ROOT", str(mnist_root))
    env = dict(os.environ)
    env["ICS_DATA_ROOT"] = str(mnist_root)
    env.pop("HYDRA_FULL_ERROR", None)
    return env


def pytest_collection_modifyitems(config, items):
    # real-data tests run only when ICS_DATA_ROOT points at real copies (e.g. ../shared/data)
    real = REAL_ROOT and (Path(REAL_ROOT) / "MNIST" / "raw" / "train-images-idx3-ubyte").exists() \
        and os.path.getsize(Path(REAL_ROOT) / "MNIST" / "raw" / "train-images-idx3-ubyte") > 40_000_000
    skip = pytest.mark.skip(reason="needs ICS_DATA_ROOT with the real MNIST (e.g. ../shared/data)")
    for item in items:
        if "real_data" in item.keywords and not real:
            item.add_marker(skip)
