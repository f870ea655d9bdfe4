"""Pins what cli/hydra_compat.py takes from Hydra's internals and message text. If a Hydra upgrade
changes any of it, these fail here, in one obvious place, not as a vague preflight bug."""
from __future__ import annotations

import json

import hydra
import pytest

from ics_cli import hydra_compat as compat
from ics_cli.hydra_compat import UserError
from ics_cli.preflight import compose

from clirun import invoke


def test_hydra_is_the_version_this_module_was_written_for():
    assert hydra.__version__.startswith("1.3."), f"hydra {hydra.__version__}: re-check cli/hydra_compat.py"


def test_sweep_expansion_order_and_precedence():
    # the sweeper puts hydra.sweeper.params first; a command-line value of the same key replaces it
    # in place; the product runs over keys in first-seen order, the last key fastest
    jobs = compat.expand_sweep(["a=1,2", "b=x"], {"c": "3,4", "a": "9"})
    assert jobs == [["c=3", "a=1", "b=x"], ["c=3", "a=2", "b=x"], ["c=4", "a=1", "b=x"], ["c=4", "a=2", "b=x"]]
    assert compat.expand_sweep(["a=1"]) == [["a=1"]]
    assert compat.expand_sweep([]) == [[]]
    assert compat.expand_sweep(["x=range(0,3)"]) == [["x=0"], ["x=1"], ["x=2"]]
    with pytest.raises(UserError):
        compat.expand_sweep(["x=interval(0,1)"])  # the basic sweeper cannot run it: one line, not a crash


@pytest.mark.slow
def test_expansion_matches_the_jobs_hydra_launches(tiny_env, tmp_path):
    """The job list preflight checks is the job list Hydra runs (numbers, order, overrides)."""
    sweep = tmp_path / "sweep"
    args = ["optim.lr=0.1,1", "model.norm=none,batch", "trainer.steps=2", "trainer.threads=1", "probe=off",
            "trainer.eval_every=2"]
    p = invoke(["run", "-m", *args, f"hydra.sweep.dir={sweep}"], tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    ran = {}
    for d in sweep.iterdir():
        if d.is_dir():
            ran[int(d.name.split("_")[0])] = json.loads((d / "summary.json").read_text())["overrides"]
    assert [ran[i] for i in sorted(ran)] == compat.expand_sweep(args)


def test_argument_parser_errors_are_one_line():
    assert compat.parse_args(["--cfg", "job", "a=1"]).cfg == "job"
    ns = compat.parse_args(["-m", "a=1,2"])
    assert ns.multirun and ns.overrides == ["a=1,2"]
    with pytest.raises(UserError) as e:
        compat.parse_args(["--frobnicate"])
    assert "\n" not in str(e.value) and "--frobnicate" in str(e.value) and "Hydra flags" in str(e.value)


@pytest.mark.parametrize("overrides, expected", [
    (["model=foo"], "model=foo is not an option; allowed: cnn, cnn_group, cnn_relu_bn, cnn_relu_nobn"),
    (["trainer.stepz=5"], "trainer.stepz is not a config key; keys in trainer: steps, batch_size"),
    (["optim.lr=abc"], "optim.lr=abc is invalid"),
    (["model.channels=[1]"], "model.channels is not a config key; keys in model:"),
    (["hydra/launcher=nope"], "hydra/launcher=nope is not an option; allowed: basic"),
    (["a=b=c=("], "cannot parse overrides"),
])
def test_composition_errors_become_one_line(overrides, expected):
    with pytest.raises(UserError) as e:
        compose(overrides)
    msg = str(e.value)
    assert "\n" not in msg and expected in msg, msg


def test_keys_added_with_plus_are_rejected_by_the_schema():
    """Hydra lets `+key=value` add a key to a typed node; the library's strict conversion does not."""
    from ics_cli.preflight import check_jobs

    with pytest.raises(UserError, match="trainer.foo is not a config key; keys in trainer: steps"):
        check_jobs([["+trainer.foo=1"]], data=False)


def test_a_launcher_is_registered_by_name():
    """The slurm preset's launcher is found through Hydra's plugin registry under its hydra_plugins name."""
    from hydra.core.plugins import Plugins

    from ics_cli.hydra_app import register
    from ics_cli.slurm import HYDRA_TARGET

    register()
    assert HYDRA_TARGET.startswith("hydra_plugins.")
    assert Plugins.instance().class_name_to_class[HYDRA_TARGET].__module__ == "ics_cli.slurm"
