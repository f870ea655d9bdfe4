"""Hydra multiruns through the real CLI: launchers, divergence that does not kill the sweep, hparams."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from clirun import ics, invoke


def run_here(args, env, cwd):
    """`ics ARGS` in this process: Hydra's basic launcher runs the jobs in the calling process anyway,
    so a subprocess (seconds of imports) is only needed for the launchers that start their own."""
    return invoke(args, cwd)


# probe.size: the probe set is drawn from the tiny test split (200 examples)
TINY = [
    "trainer.steps=40",
    "trainer.eval_every=20",
    "trainer.log_every=10",
    "probe.every=20",
    "probe.size=100",
    "trainer.threads=1",
    "trainer.checkpoint_every=0",
]


def summaries(sweep: Path) -> dict:
    return {p.parent.name: json.loads(p.read_text()) for p in sweep.glob("*/summary.json")}


@pytest.mark.slow
def test_divergence_does_not_kill_the_sweep(tiny_env, tmp_path):
    sweep = tmp_path / "sweep"
    r = run_here(
        ["run", "-m", "model.norm=none", "optim.lr=0.1,1e7", *TINY, f"hydra.sweep.dir={sweep}"], tiny_env, tmp_path
    )
    assert r.returncode == 0, r.stderr
    runs = summaries(sweep)
    assert len(runs) == 2
    by_lr = {s["config"]["optim"]["lr"]: s for s in runs.values()}
    assert by_lr[0.1]["status"] == "completed"
    assert by_lr[1e7]["status"] == "diverged"
    # strict JSON (no NaN tokens) even though the diverged run's losses are not finite
    strict = lambda c: (_ for _ in ()).throw(ValueError(f"non-finite {c} in summary.json"))  # noqa: E731
    for p in sweep.glob("*/summary.json"):
        json.loads(p.read_text(), parse_constant=strict)
    assert 0 < by_lr[1e7]["diverged_at_step"] <= 40
    # the closing status table names each job's status
    assert "diverged @" in r.stdout and "completed" in r.stdout
    # job dirs are named from their swept overrides: readable run names in TensorBoard (keys that
    # every job shares, like model.norm=none here, would only make the names long)
    names = {n.split("_", 1)[1]: s for n, s in runs.items()}
    for name, s in names.items():
        key, value = name.split("=", 1)
        assert key == "optim.lr" and float(value) == s["config"]["optim"]["lr"], name
    assert all("hydra.sweep.dir" not in n and "model.norm" not in n for n in names)


@pytest.mark.slow
def test_joblib_launcher_runs_jobs_in_parallel_with_a_fair_thread_share(tiny_env, tmp_path):
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    sweep = tmp_path / "sweep"
    r = ics(
        [
            "run",
            "-m",
            "hydra/launcher=joblib",
            "hydra.launcher.n_jobs=2",
            "model.norm=none,batch",
            *[a for a in TINY if not a.startswith("trainer.threads")],
            "trainer.threads=auto",
            f"hydra.sweep.dir={sweep}",
        ],
        tiny_env,
        tmp_path,
    )
    assert r.returncode == 0, r.stderr
    runs = summaries(sweep)
    assert sorted(s["config"]["model"]["norm"] for s in runs.values()) == ["batch", "none"]
    import os

    share = max(1, len(os.sched_getaffinity(0)) // 2)
    assert all(s["status"] == "completed" and 1 <= s["threads"] <= share for s in runs.values())


@pytest.mark.slow
def test_submitit_local_launcher(tiny_env, tmp_path):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    sweep = tmp_path / "sweep"
    r = ics(
        [
            "run",
            "-m",
            "hydra/launcher=submitit_local",
            "hydra.launcher.timeout_min=5",
            "optim.lr=0.1,0.2",
            *TINY,
            f"hydra.sweep.dir={sweep}",
        ],
        tiny_env,
        tmp_path,
    )
    assert r.returncode == 0, r.stderr
    runs = summaries(sweep)
    assert sorted(s["config"]["optim"]["lr"] for s in runs.values()) == [0.1, 0.2]
    assert all(s["status"] == "completed" for s in runs.values())
    assert list(sweep.glob(".submitit/*")), "jobs did not go through submitit"


@pytest.mark.slow
def test_hparams_land_in_the_jobs_own_run_dir(tiny_env, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    def read(d: Path):
        acc = EventAccumulator(str(d), size_guidance={"scalars": 0, "tensors": 0})  # d's own event files only
        acc.Reload()
        return acc, acc.PluginTagToContent("hparams")

    sweep = tmp_path / "sweep"
    r = run_here(["run", "-m", "optim.lr=0.1,0.3", *TINY, f"hydra.sweep.dir={sweep}"], tiny_env, tmp_path)
    assert r.returncode == 0, r.stderr
    # no event file at the sweep's root: TensorBoard lists no `.` run
    assert not list(sweep.glob("events.out.tfevents*"))
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir() and not p.name.startswith("."))
    assert len(jobs) == 2
    for job in jobs:
        # no sub-folder run (what SummaryWriter.add_hparams would create)
        assert [p for p in job.rglob("events.out.tfevents*")] == list(job.glob("events.out.tfevents*"))
        acc, plugins = read(job)
        # each job carries the sweep's experiment: the swept keys with all their values
        exp = plugin_data_pb2.HParamsPluginData.FromString(plugins["_hparams_/experiment"]).experiment
        assert [h.name for h in exp.hparam_infos] == ["optim.lr"]
        assert sorted(v.number_value for v in exp.hparam_infos[0].domain_discrete.values) == pytest.approx([0.1, 0.3])
        assert "_hparams_/session_start_info" in plugins and "_hparams_/session_end_info" in plugins
        start = plugin_data_pb2.HParamsPluginData.FromString(plugins["_hparams_/session_start_info"]).session_start_info
        lr = json.loads((job / "summary.json").read_text())["config"]["optim"]["lr"]
        assert start.hparams["optim.lr"].number_value == pytest.approx(lr)
        # a job's session holds the keys its sweep varies (the experiment's), nothing it shares
        assert set(start.hparams) == {"optim.lr"}
        assert "hparams/final_test_acc" in acc.Tags()["scalars"]


@pytest.mark.slow
def test_named_study_runs_as_a_sweep(tiny_env, tmp_path):
    sweep = tmp_path / "sweep"
    # fig1 also sweeps the seed: one seed keeps this at one job per norm (a command-line value
    # replaces the study's sweep of that key)
    r = run_here(["sweep", "fig1", *TINY, "trainer.seed=0", f"hydra.sweep.dir={sweep}"], tiny_env, tmp_path)
    assert r.returncode == 0, r.stderr
    runs = summaries(sweep)
    assert sorted(s["config"]["model"]["norm"] for s in runs.values()) == ["batch", "none"]
    assert all(s["config"]["trainer"]["seed"] == 0 for s in runs.values())
    assert all(s["config"]["name"] == "fig1" for s in runs.values())


def test_names_keep_values_as_typed_and_say_what_was_swept():
    from ics_cli.sweeps import run_name, short, sweep_keys, sweep_name

    assert short("grad_ics=on optim.lr=1e-3") == "grad_ics=on,lr=1e-3"  # not True, not 0.001
    # a long name keeps whole key=value pairs and counts the rest (a value cut to "tru" would mislead)
    assert (
        short("model=mlp model.norm=batch_renorm landscape=on landscape.scale_invariant=true trainer.steps=30")
        == "model=mlp,norm=batch_renorm,landscape=on,+2"
    )
    assert short("model.widths=[" + ",".join(["100"] * 16) + "] trainer.steps=30") == "widths,+1"
    assert run_name(["grad_ics=on", "trainer.threads=1"]) == "grad_ics=on"
    varying, _ = sweep_keys(
        [
            ["model.norm=none", "optim.lr=0.1", "trainer.steps=9"],
            ["model.norm=batch", "optim.lr=0.5", "trainer.steps=9"],
        ]
    )
    assert sweep_name(varying) == "norm,lr"
    assert sweep_name({}) == "sweep" and sweep_name({"hydra.launcher.n_jobs": [1, 2]}) == "sweep"


@pytest.mark.slow
def test_an_ad_hoc_sweep_is_named_by_its_keys_and_an_unswept_job_by_its_number(tiny_env, tmp_path):
    r = run_here(["run", "-m", "trainer.seed=0", "grad_ics=on", *TINY], tiny_env, tmp_path)
    assert r.returncode == 0, r.stderr
    sweep = next((tmp_path / "multiruns").glob("*/*"))
    assert sweep.name.endswith("_sweep") and [p.name for p in sweep.iterdir() if p.is_dir()] == ["0"]
    r = run_here(["run", "-m", "model.norm=none,batch", *TINY], tiny_env, tmp_path)
    assert r.returncode == 0, r.stderr
    named = [p for p in (tmp_path / "multiruns").glob("*/*") if p != sweep]
    assert [p.name.split("_", 1)[1] for p in named] == ["norm"], named
    assert "final test acc" in r.stdout and "final acc" not in r.stdout.replace("final test acc", "")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "{",
        "[]",
        '{"keys": "optim.lr"}',
        '{"keys": [1]}',
        '{"keys": ["a"], "domains": 3}',
        '{"domains": {}}',
        "\x00\xff",
    ],
)
def test_a_broken_hparams_file_is_ignored(tmp_path, text):
    """hparams.json is read from a sweep folder (untrusted): anything but what write_hparams writes means
    no sweep keys (the job falls back to its main knobs), never a crash."""
    from ics_cli.sweeps import HPARAMS_FILE, hparam_keys_of, write_hparams

    (tmp_path / HPARAMS_FILE).write_text(text, errors="surrogateescape")
    assert hparam_keys_of(tmp_path) is None
    write_hparams(tmp_path, {"optim.lr": [0.1, 0.3], "trainer.seed": [0, 1], "optim.momentum": [0.9, 1]})
    keys, domains = hparam_keys_of(tmp_path)
    assert keys == ["optim.lr", "trainer.seed", "optim.momentum"]
    assert domains == {"optim.lr": [0.1, 0.3], "trainer.seed": ["0", "1"]}  # 0.9 and "1": no domain


def test_sweep_keys_of_a_big_sweep_are_linear_and_keep_equal_values_once():
    from ics_cli.sweeps import sweep_keys

    jobs = [[f"trainer.seed={i}", "model.norm=batch", f"optim.lr={1 if i % 2 else 1.0}"] for i in range(50_000)]
    varying, constant = sweep_keys(jobs)  # a list lookup per job took minutes here
    assert varying == {"trainer.seed": list(range(50_000))} and constant == ["model.norm", "optim.lr"]
    assert sweep_keys([["m.w=[1,2]"], ["m.w=[1,2]"], ["m.w=[3]"]])[0] == {"m.w": [(1, 2), (3,)]}


def test_hparams_of_a_sweep_of_many_values_stay_readable(tmp_path):
    """A float domain of 100,000 values is ~2 MB, past what hparam_keys_of reads: the file keeps every
    key and leaves that domain out, rather than being ignored whole."""
    from ics_cli.sweeps import HPARAMS_FILE, MAX_HPARAMS, hparam_keys_of, write_hparams

    write_hparams(tmp_path, {"optim.lr": [i / 7 for i in range(100_000)], "model.norm": ["none", "batch"]})
    assert (tmp_path / HPARAMS_FILE).stat().st_size <= MAX_HPARAMS
    assert hparam_keys_of(tmp_path) == (["optim.lr", "model.norm"], {"model.norm": ["none", "batch"]})
