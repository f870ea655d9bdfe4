"""Shared fixtures: tiny data sets written in the real on-disk formats, and a private tensor cache;
the test tiers (a test that starts a process must be marked slow)."""

from __future__ import annotations

import os
import subprocess
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


@pytest.fixture
def dead_pid() -> int:
    """A pid no process has or can have (above the kernel's pid_max): a writer that has ended, for
    temporary-file clean-up, without starting and reaping a process to get one."""
    try:
        return int(Path("/proc/sys/kernel/pid_max").read_text()) + 1
    except (OSError, ValueError):  # not Linux: 2**22 + 1 is above every pid_max Linux allows
        return 4_194_305


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
    real = (
        REAL_ROOT
        and (Path(REAL_ROOT) / "MNIST" / "raw" / "train-images-idx3-ubyte").exists()
        and os.path.getsize(Path(REAL_ROOT) / "MNIST" / "raw" / "train-images-idx3-ubyte") > 40_000_000
    )
    skip = pytest.mark.skip(reason="needs ICS_DATA_ROOT with the real MNIST (e.g. ../shared/data)")
    for item in items:
        if "real_data" in item.keywords and not real:
            item.add_marker(skip)


# ------------------------------------------------------------------------------------------------
# tiers: `pytest -m "not slow"` is the fast loop. Starting a Python process (`ics`, `python -c`) costs
# seconds of torch and Hydra imports, so a test (or a fixture it uses) that starts one must be marked
# slow. This guard keeps that true as tests are added: outside the slow tier, starting an interpreter
# is an error naming the fix. Other programs pass (libraries run some: ctypes runs ldconfig when torch
# looks for CUDA); the tests that start a browser, zsh or the scheduler are marked slow by hand.

_real_popen_init = subprocess.Popen.__init__


def _is_python(args) -> bool:
    argv = [args] if isinstance(args, (str, bytes, os.PathLike)) else list(args)
    first = os.fsdecode(argv[0]).split()[0] if argv else ""
    name = os.path.basename(first)
    return first == sys.executable or name.startswith("python") or name == "ics"


def _refusing_popen_init(self, args, *a, **kw):
    if _is_python(args):
        raise AssertionError(
            f"this test starts a Python process ({args!r}) but is not marked slow: mark it "
            "@pytest.mark.slow, or drive the CLI in-process (tests/clirun.py: invoke)"
        )
    _real_popen_init(self, args, *a, **kw)


class _guard:
    def __init__(self, item):
        self.on = item.get_closest_marker("slow") is None

    def __enter__(self):
        if self.on:
            subprocess.Popen.__init__ = _refusing_popen_init  # type: ignore[method-assign]

    def __exit__(self, *exc):
        subprocess.Popen.__init__ = _real_popen_init  # type: ignore[method-assign]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item):
    with _guard(item):
        yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    with _guard(item):
        yield
