"""Pins what cli/hydra_compat.py takes from Hydra's internals and message text. If a Hydra upgrade
changes any of it, these fail here, in one obvious place, not as a vague preflight bug."""

from __future__ import annotations

import json

import hydra
import pytest
from clirun import invoke
from ics_cli import hydra_compat as compat
from ics_cli.hydra_compat import UserError
from ics_cli.preflight import compose


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
    args = [
        "optim.lr=0.1,1",
        "model.norm=none,batch",
        "trainer.steps=2",
        "trainer.threads=1",
        "probe=off",
        "trainer.eval_every=2",
    ]
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


@pytest.mark.parametrize(
    "overrides, expected",
    [
        (["model=foo"], "model=foo is not an option; allowed: cnn, cnn_group, cnn_relu_bn, cnn_relu_nobn"),
        (["trainer.stepz=5"], "trainer.stepz is not a config key; keys in trainer: steps, batch_size"),
        (["optim.lr=abc"], "optim.lr=abc is invalid"),
        (["model.channels=[1]"], "model.channels is not a config key; keys in model:"),
        (["hydra/launcher=nope"], "hydra/launcher=nope is not an option; allowed: basic"),
        (["a=b=c=("], "cannot parse overrides"),
    ],
)
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
    """The slurm preset's launcher is found through Hydra's plugin registry under its hydra_plugins name
    (an editable install hides hydra_plugins.ics from Hydra's scan: register_launcher names it)."""
    from hydra.core.plugins import Plugins
    from ics_cli.hydra_app import register
    from ics_cli.slurm import HYDRA_TARGET

    register()
    assert HYDRA_TARGET.startswith("hydra_plugins.")
    assert Plugins.instance().class_name_to_class[HYDRA_TARGET].__module__ == "hydra_plugins.ics.slurm_launcher"


def test_search_space_reads_each_sweep_type_at_its_edges():
    """What the pre-run check of an optimising sweeper checks: each choice, the ends of a range and of
    an interval; the command line after hydra.sweeper.params, a plain value removing a searched key."""
    space = compat.search_space(
        [
            "optim.lr=tag(log,interval(0.01,3))",
            "trainer.seed=range(0,5)",
            "model.norm=choice(none,batch)",
            "trainer.steps=100",
        ],
        {"trainer.steps": "interval(10,20)", "optim.momentum": "choice(0.5,0.9)"},
    )
    assert space == {
        "optim.momentum": ["0.5", "0.9"],
        "optim.lr": ["0.01", "3.0"],
        "trainer.seed": ["0", "4"],
        "model.norm": ["none", "batch"],
    }


def test_an_interval_without_an_optimising_sweeper_says_which_to_add():
    with pytest.raises(UserError, match=r"INTERVAL_SWEEP; interval\(\) is searched by an optimising sweeper"):
        compat.expand_sweep(["optim.lr=interval(0.01,3)"])


# ----------------------------------------------------------------------------------------------
# job counts without expanding (issue 22): sweep_sizes reads Hydra's parsed sweep objects


@pytest.mark.parametrize(
    "overrides, params",
    [
        (["a=1,2", "b=x"], {"c": "3,4", "a": "9"}),  # a command-line key replaces the study's
        (["x=range(0,10)", "y=range(10,0,-3)", "z=range(5,5)"], None),  # empty and descending ranges
        (["x=range(0,1,0.1)", "y=range(1.5,0,-0.5)", "w=range(0.1,0.35,0.05)"], None),  # Hydra's Decimal float ranges
        (["x=choice(a,b,c)", "y=[1,2]", "z=shuffle(range(0,4))", "u=1,2", "u=3"], None),
        ([], {"trainer.seed": "range(0,7)", "model.norm": "none,batch"}),
    ],
)
def test_job_count_is_computed_without_expanding_and_matches_the_expansion(overrides, params):
    parsed = compat.parse_overrides([f"{k}={v}" for k, v in (params or {}).items()] + overrides)
    assert compat.check_job_count(parsed) == len(compat.expand_sweep(overrides, params))


def test_a_sweep_over_the_job_cap_is_refused_before_it_is_expanded():
    """`ics run -m trainer.seed='range(0,100000000)'` expanded 10**8 jobs (7.8 GB) before any check."""
    import tracemalloc

    tracemalloc.start()
    try:
        with pytest.raises(UserError) as e:
            compat.expand_sweep(["model.norm=none,batch", "trainer.seed=range(0,100000000)"])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 5_000_000, peak
    msg = str(e.value)
    assert "\n" not in msg and "200,000,000 jobs" in msg and f"at most {compat.MAX_JOBS:,}" in msg
    # how to split it: parts that keep both norms and fit the cap
    assert "trainer.seed=range(0,50000) then trainer.seed=range(50000,100000)" in msg, msg
    assert len(compat.expand_sweep(["model.norm=none,batch", "trainer.seed=range(0,50000)"])) == compat.MAX_JOBS
    with pytest.raises(UserError, match=r"sweep fewer values of the other keys"):
        compat.check_job_count(compat.parse_overrides(["a=range(0,1000)", "b=range(0,1000)"]), limit=999)
    with pytest.raises(UserError, match=r"at most 2 of x's 3 values"):
        compat.check_job_count(compat.parse_overrides(["x=a,b,c"]), limit=2)


def test_override_dirname_is_the_one_hydra_builds():
    """keys_left_out_of_names measures job folder names with compat.override_dirname; Hydra names the
    folders with its own get_overrides_dirname (kv_sep "=", item_sep ",": cli/hydra_app.py)."""
    from hydra._internal.config_loader_impl import get_overrides_dirname

    jobs = compat.expand_sweep(
        ["model.norm=none,batch", "optim.lr=0.1,1", "model.widths=[10,10]", "data.root=/x", "name=a,'b c'"]
    )
    for exclude in ([], ["data.root"], ["data.root", "model.widths", "name"]):
        for job in jobs:
            assert compat.override_dirname(job, exclude) == get_overrides_dirname(
                compat.parse_overrides(job), exclude, item_sep=",", kv_sep="="
            )
