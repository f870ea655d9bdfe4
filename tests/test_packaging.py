"""The wheel ships the library with its config schema (ics.config), the experiments (ics.experiments),
the CLI (ics_cli) and the `ics` console script: a non-editable install must find everything through
the package."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # builds a wheel with pip (a subprocess, ~10 s)

REPO = Path(__file__).resolve().parent.parent
# build from a copy: building in place would write build/ and *.egg-info into the working tree
SKIP = shutil.ignore_patterns(
    ".venv",
    ".git",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    ".pytest_cache",
    "runs",
    "multiruns",
    "outputs",
    "tests",
    "*.tmp",
)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    src = tmp_path_factory.mktemp("src") / "ics"
    shutil.copytree(REPO, src, ignore=SKIP)
    out = tmp_path_factory.mktemp("wheelhouse")
    p = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", ".", "-w", str(out)],
        cwd=src,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 0, p.stdout + p.stderr
    wheels = list(out.glob("ics-*.whl"))
    assert len(wheels) == 1, list(out.iterdir())
    with zipfile.ZipFile(wheels[0]) as zf:
        yield zf


def _names(zf: zipfile.ZipFile) -> set:
    return set(zf.namelist())


def test_wheel_has_the_config_schema(wheel):
    # the config groups' schema: the dataclasses (registered in Hydra's ConfigStore by ics_cli) beside the
    # YAML options of configs/ (shipped as ics.configs, checked below); ics.conf is an old name
    names = _names(wheel)
    expected = [
        "ics/config/__init__.py",
        "ics/config/schema.py",
        "ics/config/fields.py",
        "ics/config/convert.py",
        "ics_cli/hydra_app.py",
    ]
    missing = sorted(set(expected) - names)
    assert not missing, f"missing from the wheel: {missing}"
    assert not any(n.startswith("ics/conf/") for n in names), "ics.conf no longer exists"


def test_every_source_module_and_yaml_is_shipped(wheel):
    # packages are listed one by one in pyproject.toml (tests/test_packages.py keeps the list complete):
    # a subpackage left out would be missing here
    names = _names(wheel)
    for f in (REPO / "ics").rglob("*.py"):
        assert f"ics/{f.relative_to(REPO / 'ics').as_posix()}" in names, f
    for f in (REPO / "cli").rglob("*.py"):
        rel = f.relative_to(REPO / "cli").as_posix()
        assert (
            f"hydra_plugins/ics/{rel[len('plugins/') :]}" if rel.startswith("plugins/") else f"ics_cli/{rel}"
        ) in names, f
    for f in (REPO / "experiments").glob("*.yaml"):
        assert f"ics/experiments/{f.name}" in names, f


def test_wheel_has_experiments_and_library(wheel):
    names = _names(wheel)
    for path in (
        "ics/experiments/fig1.yaml",
        "ics/experiments/__init__.py",
        "ics/__init__.py",
        "ics/config/__init__.py",
        "ics/models/__init__.py",
        "ics/train/__init__.py",
        "ics_cli/hydra_app.py",
    ):
        assert path in names, path
    assert not any(n.startswith(("tests/", "configs/", "experiments/", "cli/")) for n in names), (
        "source-tree folders must ship under their package names only"
    )


def test_wheel_has_the_cli(wheel):
    names = _names(wheel)
    for path in ("ics_cli/__init__.py", "ics_cli/main.py", "ics_cli/preflight.py", "ics_cli/hydra_entry.py"):
        assert path in names, path
    # the shipped hydra entry point reads its config folder from the installed package, not a source path
    entry = wheel.read("ics_cli/hydra_entry.py").decode()
    assert "config_path=CONFIG_PATH" in entry
    assert 'CONFIG_PATH = "pkg://ics.configs"' in wheel.read("ics_cli/hydra_app.py").decode()


def test_wheel_has_the_config_folder(wheel):
    names = _names(wheel)
    shipped = {f"ics/configs/{f.relative_to(REPO / 'configs')}" for f in (REPO / "configs").rglob("*.yaml")}
    assert "ics/configs/config.yaml" in shipped and "ics/configs/model/mlp_sigmoid_bn.yaml" in shipped
    assert shipped <= set(names), shipped - set(names)
    for name in shipped:
        assert wheel.read(name).decode() == (REPO / "configs" / name[len("ics/configs/") :]).read_text(), name


def test_console_script_entry_point(wheel):
    ep = next(n for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt"))
    text = wheel.read(ep).decode()
    assert "[console_scripts]" in text
    lines = [ln.replace(" ", "") for ln in text.splitlines()]
    assert "ics=ics_cli.main:app" in lines, text


def test_shipped_yaml_matches_the_source(wheel):
    for f in (REPO / "experiments").glob("*.yaml"):
        assert wheel.read(f"ics/experiments/{f.name}").decode() == f.read_text(), f
    assert wheel.read("ics/experiments/fig1.yaml").decode() == (REPO / "experiments" / "fig1.yaml").read_text()


def test_the_wheel_ships_a_hydra_plugin_package_that_hydras_scan_finds(wheel, tmp_path):
    """ics's launcher lives in Hydra's documented plugin namespace (hydra_plugins.ics): installed from
    the wheel, Hydra's own plugin scan registers it, with no help from ics_cli."""
    names = _names(wheel)
    assert "hydra_plugins/ics/slurm_launcher.py" in names and "hydra_plugins/ics/__init__.py" in names
    assert "hydra_plugins/__init__.py" not in names  # a namespace shared with every other plugin
    target = tmp_path / "site"
    wheel.extractall(target)
    code = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "from hydra.core.plugins import Plugins\n"
        "print(sorted(k for k in Plugins.instance().class_name_to_class if k.startswith('hydra_plugins.ics.')))"
    )
    p = subprocess.run([sys.executable, "-c", code, str(target)], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "hydra_plugins.ics.slurm_launcher.SlurmLauncher" in p.stdout, p.stdout + p.stderr
