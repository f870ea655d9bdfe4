"""pyproject.toml names every package the wheel ships, and this fast test keeps that list equal to the
source tree: each folder that holds Python files, under the package name its package-dir mapping gives
it (cli/ installs as ics_cli, cli/plugins/ as hydra_plugins.ics, configs/ as ics.configs, experiments/
as ics.experiments). setuptools' automatic discovery (packages.find) names a package by its folder, so
it cannot find these renamed ones; the list stays explicit and a folder added without it fails here,
in the fast tier, before a wheel is built without it (tests/test_packaging.py checks the built wheel)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Dict, Set

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parent.parent


def setuptools_table() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]


def expected_packages(package_dir: Dict[str, str]) -> Set[str]:
    """Every folder under a mapped folder that holds a .py file, named through the mapping (a folder
    that is itself mapped to another name counts under that name only)."""
    mapped = {(ROOT / folder).resolve(): name for name, folder in package_dir.items()}
    found = set()
    for folder, name in mapped.items():
        for py in folder.rglob("*.py"):
            d = py.parent
            if "__pycache__" in d.parts:
                continue
            owner = next(p for p in [d, *d.parents] if p in mapped)  # the nearest mapped folder above
            if owner == folder:
                rel = d.relative_to(folder).parts
                found.add(".".join([name, *rel]))
    return found


def test_every_folder_with_python_files_is_a_listed_package():
    table = setuptools_table()
    listed = set(table["packages"])
    expected = expected_packages(table["package-dir"])
    assert sorted(expected - listed) == [], "add these to [tool.setuptools] packages in pyproject.toml"
    assert sorted(listed - expected) == [], "listed in pyproject.toml, but no folder with Python files"


def test_every_listed_package_has_an_init_file():
    """A folder without __init__.py would install as a namespace package, which the wheel test and
    Hydra's pkg:// config path do not expect."""
    table = setuptools_table()
    folders = {name: ROOT / folder for name, folder in table["package-dir"].items()}
    for package in table["packages"]:
        base = max((n for n in folders if package == n or package.startswith(n + ".")), key=len)
        folder = (
            folders[base].joinpath(*package[len(base) :].lstrip(".").split(".")) if package != base else folders[base]
        )
        assert (folder / "__init__.py").is_file(), f"{package}: no {folder.relative_to(ROOT)}/__init__.py"


def test_the_check_finds_a_folder_missing_from_the_list(tmp_path, monkeypatch):
    """The comparison itself: a new subpackage (as ics.models.norms once was) is named."""
    (tmp_path / "lib" / "sub").mkdir(parents=True)
    (tmp_path / "lib" / "__init__.py").write_text("")
    (tmp_path / "lib" / "sub" / "x.py").write_text("")
    (tmp_path / "cli" / "plugins").mkdir(parents=True)
    (tmp_path / "cli" / "main.py").write_text("")
    (tmp_path / "cli" / "plugins" / "p.py").write_text("")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    found = expected_packages({"lib": "lib", "lib_cli": "cli", "plugins.lib": "cli/plugins"})
    assert found == {"lib", "lib.sub", "lib_cli", "plugins.lib"}
