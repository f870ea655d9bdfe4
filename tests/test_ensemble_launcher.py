"""hydra/launcher=ensemble through the real CLI: the seeds of a config train as one vectorised model
and leave job folders that read like any sweep's, each within float rounding of the basic launcher's
job (tests/test_ensemble.py and tests/test_group.py state the rounding); other jobs run one by one,
and a stopped group resumes bit-identically."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from ics.record import Status, read_summary
from tests.clirun import finish, ics, invoke, plain
from tests.pausing import pausing_ics

TINY = [
    "trainer.threads=1",
    "trainer.steps=30",
    "trainer.eval_every=10",
    "trainer.eval_log_points=0",
    "trainer.checkpoint_every=10",
    "probe.size=100",
    "probe.every=10",
]
WEIGHT_TOL = 1e-5  # 30 steps of the default MLP at lr 1 (measured: below 2e-6)


def jobs(sweep: Path) -> list:
    return sorted(
        (p for p in sweep.iterdir() if p.is_dir() and p.name[0].isdigit()), key=lambda p: int(p.name.split("_")[0])
    )


def weights(job: Path) -> dict:
    return torch.load(job / "checkpoint.pt", map_location="cpu", weights_only=False)["model"]


def max_diff(a: dict, b: dict) -> float:
    return max((a[k] - b[k]).abs().max().item() for k in a if torch.is_tensor(a[k]) and a[k].is_floating_point())


@pytest.mark.slow  # trains 6 jobs
def test_seeds_train_as_one_group_and_match_the_basic_launcher(tiny_env, tmp_path):
    seeds = "trainer.seed=0,1,2"
    ens = invoke(
        ["run", "-m", seeds, "hydra/launcher=ensemble", *TINY, f"hydra.sweep.dir={tmp_path / 'ens'}"], tmp_path
    )
    assert ens.returncode == 0, ens.stdout + ens.stderr
    assert "ensemble: 3 of 3 jobs train as 1 group of 3 seeds (at most 16 each)" in ens.stderr
    basic = invoke(["run", "-m", seeds, *TINY, f"hydra.sweep.dir={tmp_path / 'basic'}"], tmp_path)
    assert basic.returncode == 0, basic.stdout + basic.stderr
    a, b = jobs(tmp_path / "ens"), jobs(tmp_path / "basic")
    assert [p.name for p in a] == [p.name for p in b] and len(a) == 3
    for mine, theirs in zip(a, b):
        s, t = read_summary(mine), read_summary(theirs)
        assert s.status == t.status == Status.COMPLETED and s.config == t.config and s.overrides == t.overrides
        assert abs(s.final_test_acc - t.final_test_acc) <= 0.01
        assert max_diff(weights(mine), weights(theirs)) <= WEIGHT_TOL
        assert (mine / ".hydra" / "overrides.yaml").read_text() == (theirs / ".hydra" / "overrides.yaml").read_text()
    report = invoke(["report", str(tmp_path / "ens"), "--out", str(tmp_path / "r")], tmp_path)
    assert report.returncode == 0, report.stdout + report.stderr
    runs = (tmp_path / "r" / "runs.csv").read_text().splitlines()
    assert len(runs) == 1 + 3


@pytest.mark.slow  # trains 8 jobs
def test_jobs_that_cannot_join_a_group_run_one_by_one_and_the_note_says_why(tiny_env, tmp_path):
    sweep = tmp_path / "s"
    r = invoke(
        [
            "run",
            "-m",
            "trainer.seed=0,1,2",
            "model.norm=none,batch",
            "hydra/launcher=ensemble",
            "hydra.launcher.members_max=2",
            *TINY,
            f"hydra.sweep.dir={sweep}",
        ],
        tmp_path,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    # 2 configs x 3 seeds, at most 2 to a group: per config a group of 2 and a seed alone
    assert (
        "ensemble: 4 of 6 jobs train as 2 groups of 2 seeds (at most 2 each); 2 one by one: left over by "
        "hydra.launcher.members_max=2 or a repeated seed" in r.stderr
    )
    assert [read_summary(j).status for j in jobs(sweep)] == [Status.COMPLETED] * 6
    noisy = invoke(
        [
            "run",
            "-m",
            "trainer.seed=0,1",
            "bn_noise=on",
            "hydra/launcher=ensemble",
            *TINY,
            f"hydra.sweep.dir={tmp_path / 'n'}",
        ],
        tmp_path,
    )
    assert noisy.returncode == 0, noisy.stdout + noisy.stderr
    assert "2 one by one: bn_noise is on (it watches each run's own forward pass)" in noisy.stderr


def test_a_bad_members_max_is_one_line(tiny_env, tmp_path):
    r = invoke(
        ["run", "-m", "trainer.seed=0,1", "hydra/launcher=ensemble", "hydra.launcher.members_max=0", *TINY], tmp_path
    )
    assert r.returncode != 0
    assert (
        r.stderr.strip().splitlines()[-1] == "error: hydra.launcher.members_max=0 is invalid: allowed: an integer >= 1"
    )
    assert not (tmp_path / "multiruns").exists()


@pytest.mark.slow
def test_a_group_stopped_by_a_signal_resumes_bit_identically(tiny_env, tmp_path):
    args = ["run", "-m", "trainer.seed=0,1,2", "hydra/launcher=ensemble", *TINY]
    straight = ics([*args, f"hydra.sweep.dir={tmp_path / 'straight'}"], tiny_env, tmp_path)
    assert straight.returncode == 0, straight.stderr
    marker = tmp_path / "paused"
    cut = tmp_path / "cut"
    proc = subprocess.Popen(
        [*pausing_ics("first-step", marker), *args, f"hydra.sweep.dir={cut}"],
        env=plain(tiny_env),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 300
    while not marker.exists():  # synchronised on the file the paused process writes after the first step
        assert proc.poll() is None, finish(proc).stderr
        assert time.monotonic() < deadline, "never paused at first-step"
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    stopped = finish(proc)
    assert stopped.returncode == 130, stopped.stderr
    assert (
        "jobs 0-2 interrupted by SIGINT at step 1: checkpoints and records written. Resume with: ics resume"
        in stopped.stderr
    )
    assert [read_summary(j).status for j in jobs(cut)] == [Status.INTERRUPTED] * 3
    resumed = ics(["resume", str(cut)], tiny_env, tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    for mine, theirs in zip(jobs(cut), jobs(tmp_path / "straight")):
        assert read_summary(mine).status == Status.COMPLETED
        assert max_diff(weights(mine), weights(theirs)) == 0.0
        assert json.loads((mine / "summary.json").read_text())["final_test_acc"] == read_summary(theirs).final_test_acc


def test_groups_keep_job_order_and_split_at_members_max():
    from ics_cli.ensemble import Member, groups_of

    members = [Member(0, None, "a"), Member(1, None, "b"), Member(2, None, "a"), Member(3, None, None, "why")]
    members += [Member(4, None, "a"), Member(5, None, "b")]
    assert groups_of(members, 16) == [[0, 2, 4], [1, 5], [3]]
    assert groups_of(members, 2) == [[0, 2], [1, 5], [3], [4]]
    # a repeated seed (an optimising sweeper may draw one twice) starts another group
    seeded = [Member(0, None, "a", seed=1), Member(1, None, "a", seed=1), Member(2, None, "a", seed=0)]
    assert groups_of(seeded, 16) == [[0, 2], [1]]


def test_the_note_counts_groups_and_says_why_jobs_train_alone():
    from ics_cli.ensemble import note

    from ics.config import to_dict
    from tests.test_group import config, with_instruments

    def job(seed, lr=0.2, noise=False):
        c = to_dict(with_instruments(config(), "bn_noise") if noise else config())
        c["trainer"]["seed"], c["optim"]["lr"] = seed, lr
        return c

    configs = [job(0), job(1), job(0, lr=0.5), job(1, lr=0.5), job(2, lr=0.5), job(0, lr=0.9), job(0, noise=True)]
    assert note(configs, 2).endswith(
        "left over by hydra.launcher.members_max=2 or a repeated seed; no other job differs from it only in trainer.seed"
    )
    assert note(configs, 16) == (
        "ensemble: 5 of 7 jobs train as 1 group of 3 seeds, 1 group of 2 seeds (at most 16 each); 2 one by one: "
        "bn_noise is on (it watches each run's own forward pass); no other job differs from it only in trainer.seed"
    )


@pytest.mark.slow
def test_bench_times_both_launchers_on_the_same_sweep(tiny_env, mnist_root, tmp_path):
    args = ["bench", "--launchers", "2", "--steps", "100", "--repeats", "1", "--data-root", str(mnist_root)]
    r = ics([*args, "probe.size=100"], tiny_env, tmp_path)
    assert r.returncode == 0, r.stderr
    rows = {line.split("│")[1].strip(): line for line in r.stdout.splitlines() if line.startswith("│")}
    assert set(rows) == {"basic", "ensemble"}
    assert "1.00x" in rows["basic"] and "x" in rows["ensemble"].split("│")[3]


def test_a_checkpoint_copied_from_another_job_is_not_resumed_as_this_one(tmp_path):
    """A job's checkpoint must be of the config the sweep's plan gives that job: one copied in from
    another seed would file that seed's result under this job."""
    from ics_cli.resume import job_source

    from ics.config import ConfigError, to_dict
    from ics.record.plan import PlannedJob
    from ics.train.ensemble import member_config
    from ics.train.run import train_and_evaluate
    from tests.test_ensemble import learnable
    from tests.test_group import config

    cfg = config(steps=10)
    train_and_evaluate(member_config(cfg, 0), tmp_path / "0_seed=0", data=learnable())
    job = tmp_path / "1_seed=1"
    job.mkdir()
    (job / "checkpoint.pt").write_bytes((tmp_path / "0_seed=0" / "checkpoint.pt").read_bytes())
    planned = PlannedJob(1, ["trainer.seed=1"], to_dict(member_config(cfg, 1)))
    with pytest.raises(ConfigError, match="trainer.seed=0, but the sweep's plan.json gives this job trainer.seed=1"):
        job_source(job, planned)
    assert job_source(tmp_path / "0_seed=0", PlannedJob(0, [], to_dict(member_config(cfg, 0))))[2] == "continue"


def test_a_job_never_started_shows_its_own_overrides_not_the_sweeps_hydra_settings():
    from ics_cli.console import status_rows

    planned = [
        ["trainer.seed=0", "hydra/launcher=ensemble", "hydra.launcher.members_max=2", "hydra.sweep.dir=/tmp/s"],
        ["trainer.seed=1", "hydra/launcher=ensemble", "hydra.launcher.members_max=2", "hydra.sweep.dir=/tmp/s"],
    ]
    rows, caption = status_rows([], planned)
    assert [r[1] for r in rows] == ["trainer.seed=0", "trainer.seed=1"] and caption is None
    assert [r[2] for r in rows] == ["not started", "not started"]
