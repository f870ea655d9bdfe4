"""The architecture's promises: the library imports without Hydra, every option has its builder,
each default is stated once (in the dataclass; configs/ files that restate one must agree), one schema
per kind."""

from __future__ import annotations

import dataclasses
import pkgutil
import subprocess
import sys

import pytest

import ics
from ics.config import GROUPS, KINDS, Config, to_dict
from ics.registry import DATASETS, INSTRUMENTS, MODELS, OPTIMIZERS


@pytest.mark.slow
def test_library_imports_without_hydra():
    """Every module of ics, imported in a fresh interpreter where `import hydra` fails."""
    code = """
import importlib, pkgutil, sys

class NoHydra:
    def find_spec(self, name, path=None, target=None):
        if name == "hydra" or name.startswith("hydra."):
            raise ImportError("hydra is not importable in this test")

sys.meta_path.insert(0, NoHydra())
import ics
mods = [m.name for m in pkgutil.walk_packages(ics.__path__, "ics.")]
for m in mods:
    importlib.import_module(m)
assert not any(k == "hydra" or k.startswith("hydra.") for k in sys.modules), "hydra got imported"
print(len(mods))
"""
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    n = int(p.stdout.strip().splitlines()[-1])
    assert n == len(list(pkgutil.walk_packages(ics.__path__, "ics."))) and n > 20


def test_every_option_has_a_builder_and_every_builder_an_option():
    assert set(KINDS["model"]) == set(MODELS)
    assert set(KINDS["data"]) == set(DATASETS)
    assert set(KINDS["optim"]) == set(OPTIMIZERS)
    fields = {f.name for f in dataclasses.fields(Config)}
    for key in INSTRUMENTS:  # each instrument has its config section with an on/off switch
        assert key in fields, key
        assert "enabled" in {f.name for f in dataclasses.fields(type(getattr(Config(), key)))}, key


def test_one_schema_per_option():
    from ics_cli.preflight import compose

    mlp, cnn = compose([]), compose(["model=cnn"])
    assert not {"channels", "kernel_size", "pool"} & set(mlp.model)  # `ics config` for the MLP
    assert {"channels", "kernel_size", "pool"} <= set(cnn.model)
    assert "betas" not in compose([]).optim and "momentum" not in compose(["optim=adam"]).optim
    assert "image_folder" not in mlp.data and "image_folder" in compose(["data=cifar10"]).data


def test_the_composed_defaults_are_the_dataclass_defaults():
    """configs/config.yaml is Config(): `ics run` and the library's defaults are the same run; each
    kind's option file (model/cnn.yaml, optim/adam.yaml, ...) is exactly its dataclass's defaults, and
    so is the option the primary config picks for every other section (a YAML that restated a default
    differently would fail here)."""
    from ics_cli.preflight import compose
    from omegaconf import OmegaConf

    top = compose([], hydra_cfg=True)
    assert OmegaConf.to_container(compose([])) == to_dict(Config())
    for group in GROUPS:
        if group in KINDS:
            for name, cls in KINDS[group].items():
                composed = OmegaConf.to_container(compose([f"{group}={name}"])[group])
                assert composed == dataclasses.asdict(cls()), (group, name)
        else:
            chosen = top.hydra.runtime.choices[group]
            composed = OmegaConf.to_container(compose([f"{group}={chosen}"])[group])
            assert composed == dataclasses.asdict(getattr(Config(), group)), (group, chosen)


def test_configs_folder_mirrors_the_schema():
    """configs/ has one folder per section of Config and the primary config; every option file
    starts with a comment that says what it is."""
    from ics_cli.configdirs import shipped_dir

    root = __import__("pathlib").Path(ics.__file__).parent.parent
    assert (root / "configs" / "config.yaml").is_file()
    folders = {p.name for p in shipped_dir().iterdir() if p.is_dir() and not p.name.startswith("_")}
    assert folders == set(GROUPS)
    for f in shipped_dir().glob("*/*.yaml"):
        assert f.read_text().startswith("# "), f"{f} does not start with a comment saying what it is"


def test_every_key_has_a_doc():
    from ics.config.fields import field_docs

    for group in KINDS:
        for cls in KINDS[group].values():
            for key, _, doc, _ in field_docs(cls):
                assert doc, f"{group}.{key} has no doc"
    for section in (g for g in GROUPS if g not in KINDS):
        for key, _, doc, _ in field_docs(getattr(Config(), section)):
            assert doc, f"{section}.{key} has no doc"
