"""The wheel ships the configs (ics.conf), the experiments (ics.experiments), the CLI (ics_cli) and
the `ics` console script: a non-editable install must find everything through the package."""
from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# build from a copy: building in place would write build/ and *.egg-info into the working tree
SKIP = shutil.ignore_patterns(".venv", ".git", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache",
                              "runs", "multiruns", "outputs", "tests", "*.tmp")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    src = tmp_path_factory.mktemp("src") / "ics"
    shutil.copytree(REPO, src, ignore=SKIP)
    out = tmp_path_factory.mktemp("wheelhouse")
    p = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                        ".", "-w", str(out)], cwd=src, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    wheels = list(out.glob("ics-*.whl"))
    assert len(wheels) == 1, list(out.iterdir())
    with zipfile.ZipFile(wheels[0]) as zf:
        yield zf


def _names(zf: zipfile.ZipFile) -> set:
    return set(zf.namelist())


def test_wheel_has_the_config_tree(wheel):
    names = _names(wheel)
    expected = ["ics/conf/config.yaml", "ics/conf/model/mlp.yaml", "ics/conf/model/cnn.yaml",
                "ics/conf/trainer/default.yaml", "ics/conf/__init__.py"]
    for group in ("data", "optim", "probe"):
        files = sorted(p.name for p in (REPO / "configs" / group).glob("*.yaml"))
        assert files, group
        expected += [f"ics/conf/{group}/{f}" for f in files]
    for f in ("mnist", "fashion_mnist", "cifar10", "cifar100", "image_folder"):
        expected.append(f"ics/conf/data/{f}.yaml")
    for f in ("sgd", "momentum", "adam"):
        expected.append(f"ics/conf/optim/{f}.yaml")
    for f in ("default", "all", "off"):
        expected.append(f"ics/conf/probe/{f}.yaml")
    missing = sorted(set(expected) - names)
    assert not missing, f"missing from the wheel: {missing}"


def test_every_source_yaml_is_shipped(wheel):
    names = _names(wheel)
    for f in (REPO / "configs").rglob("*.yaml"):
        assert f"ics/conf/{f.relative_to(REPO / 'configs').as_posix()}" in names, f
    for f in (REPO / "experiments").glob("*.yaml"):
        assert f"ics/experiments/{f.name}" in names, f


def test_wheel_has_experiments_and_library(wheel):
    names = _names(wheel)
    for path in ("ics/experiments/fig1.yaml", "ics/experiments/__init__.py", "ics/__init__.py", "ics/config.py",
                 "ics/models.py", "ics/train.py", "ics/app.py"):
        assert path in names, path
    assert not any(n.startswith(("tests/", "configs/", "experiments/", "cli/")) for n in names), \
        "source-tree folders must ship under their package names only"


def test_wheel_has_the_cli(wheel):
    names = _names(wheel)
    for path in ("ics_cli/__init__.py", "ics_cli/main.py", "ics_cli/preflight.py", "ics_cli/hydra_entry.py"):
        assert path in names, path
    # the shipped hydra entry point reads its configs from the package, not from a source path
    entry = wheel.read("ics_cli/hydra_entry.py").decode()
    assert "pkg://ics.conf" in entry


def test_console_script_entry_point(wheel):
    ep = next(n for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt"))
    text = wheel.read(ep).decode()
    assert "[console_scripts]" in text
    lines = [ln.replace(" ", "") for ln in text.splitlines()]
    assert "ics=ics_cli.main:app" in lines, text


def test_shipped_yaml_matches_the_source(wheel):
    assert wheel.read("ics/conf/config.yaml").decode() == (REPO / "configs" / "config.yaml").read_text()
    assert wheel.read("ics/experiments/fig1.yaml").decode() == (REPO / "experiments" / "fig1.yaml").read_text()
