"""A torchvision built for another torch (e.g. a CPU torch beside a CUDA torchvision) fails at its import
with "operator torchvision::nms does not exist". ics says so in one line naming both versions and the
repair, with no traceback. Simulated in-process: the import of torchvision raises that error."""

from __future__ import annotations

import sys

import pytest
import torch
from clirun import invoke

from ics.data import vision

NMS = "operator torchvision::nms does not exist"


class BrokenTorchvision:
    """An import hook that fails every torchvision import as a mismatched build does."""

    def find_spec(self, name, path=None, target=None):
        if name == "torchvision" or name.startswith("torchvision."):
            raise RuntimeError(NMS)
        return None


@pytest.fixture
def broken(monkeypatch):
    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        monkeypatch.delitem(sys.modules, name)  # put back after the test
    monkeypatch.setattr(sys, "meta_path", [BrokenTorchvision(), *sys.meta_path])
    monkeypatch.setattr(vision, "installed_version", lambda name: "0.28.0+cu128")


def test_a_mismatched_torchvision_is_one_line_naming_both_versions(broken):
    with pytest.raises(vision.TorchvisionMismatch) as e:
        vision.load("torchvision.datasets")
    line = str(e.value)
    assert "\n" not in line
    assert f"torchvision 0.28.0+cu128 does not work with torch {torch.__version__} ({NMS})" in line
    assert "pip uninstall -y torch torchvision" in line
    assert f"torchvision=={vision.pair_for(torch.__version__)}.*" in line


def test_ics_run_says_it_in_one_line_before_anything_is_written(broken, tmp_path, monkeypatch):
    monkeypatch.setenv("ICS_DATA_ROOT", str(tmp_path / "data"))
    r = invoke(["run", "trainer.steps=1"], cwd=tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    errors = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(errors) == 1 and errors[0].startswith("error: torchvision 0.28.0+cu128 does not work with torch"), (
        r.stderr
    )
    assert "Traceback" not in r.stdout + r.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    "torch_version, pair",
    [("2.14.1", "0.29"), ("2.13.0+cpu", "0.28"), ("2.2.2+cu121", "0.17"), ("1.13.1", "?"), ("nightly", "?")],
)
def test_the_torchvision_release_made_for_a_torch(torch_version, pair):
    assert vision.pair_for(torch_version) == pair


def test_the_pair_installed_here_is_one_made_for_each_other():
    """The rule the message relies on, checked against this environment's own (working) pair."""
    import torchvision

    assert torchvision.__version__.startswith(vision.pair_for(torch.__version__) + ".")
