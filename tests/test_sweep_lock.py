"""One process runs or resumes a sweep at a time: it holds the sweep's lock (sweep.lock, a flock the
kernel drops when the process ends), and a second `ics resume` of the same sweep is refused in one
line, with a non-zero exit, before it writes anything."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
from clirun import finish, ics, invoke, lines, plain
from pausing import pausing_ics

from ics.config import Config, to_dict
from ics.record import RunLock, names
from ics.record.plan import Plan, PlannedJob, write_plan

# a job of a few seconds on tiny data
FAST = {
    "trainer": {"steps": 20, "eval_every": 10, "eval_log_points": 0, "threads": 1},
    "probe": {"size": 100},
}


def _planned_sweep(root: Path, jobs: int = 2) -> Path:
    """A sweep folder whose jobs never started, as `ics run -m` leaves it after its plan: plan.json
    and multirun.yaml, no job folder (no training here)."""
    sweep = root / "sweep"
    sweep.mkdir()
    planned = []
    for i in range(jobs):
        cfg = to_dict(Config())
        for section, values in FAST.items():
            cfg[section].update(values)
        cfg["trainer"]["seed"] = i
        planned.append(PlannedJob(i, [f"trainer.seed={i}"], cfg))
    write_plan(sweep, Plan(launcher="basic", sweeper="basic", jobs=planned))
    (sweep / "multirun.yaml").write_text("hydra:\n  overrides:\n    task: [trainer.seed=0,1]\n    hydra: []\n")
    return sweep


def _files(folder: Path) -> dict:
    """Every file below `folder` with its bytes: what a refused command must leave as it was."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_resume_of_a_sweep_another_process_holds_is_one_line_and_writes_nothing(tmp_path):
    sweep = _planned_sweep(tmp_path)
    with RunLock(sweep, names.SWEEP_LOCK, "resuming it"):  # another process's resume, as its lock says
        before = _files(sweep)
        r = invoke(["resume", str(sweep)])
        assert _files(sweep) == before
    assert r.returncode != 0 and r.stdout == "", r.stdout + r.stderr
    (line,) = lines(r.stderr)
    assert f"{sweep} is in use by pid " in line and "resuming it; nothing was changed" in line, line


def test_a_sweep_lock_that_is_a_link_is_refused_and_not_written_through(tmp_path):
    sweep = _planned_sweep(tmp_path)
    victim = tmp_path / "victim"
    victim.write_text("precious")
    (sweep / names.SWEEP_LOCK).symlink_to(victim)
    r = invoke(["resume", str(sweep)])
    assert r.returncode != 0 and victim.read_text() == "precious"
    (line,) = lines(r.stderr)
    assert "sweep.lock cannot be used as a lock (a symbolic link); remove it" in line, line


@pytest.mark.slow
def test_two_resumes_of_one_sweep_the_second_is_refused_the_first_finishes_it(tiny_env, tmp_path):
    """The first resume is stopped inside its first job's first step (tests/pausing.py); the second
    one, started then, must say that the sweep is being resumed, exit non-zero and change no file;
    the first then finishes every job and says nothing of a job done by someone else."""
    sweep, marker = _planned_sweep(tmp_path), tmp_path / "paused"
    first = subprocess.Popen(
        [*pausing_ics("first-step", marker), "resume", str(sweep)],
        env=plain(tiny_env),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        while not marker.exists():  # polled: the marker says the first one holds the sweep, paused
            assert first.poll() is None, finish(first)
            time.sleep(0.02)
        before = _files(sweep)
        second = ics(["resume", str(sweep)], tiny_env, tmp_path)
        assert _files(sweep) == before
    finally:
        marker.unlink(missing_ok=True)  # the first resume goes on
    done = finish(first)
    assert second.returncode != 0 and second.stdout == "", second.stdout + second.stderr
    (line,) = lines(second.stderr)
    assert f"{sweep} is in use by pid {first.pid} on " in line and "resuming it" in line, line
    assert done.returncode == 0, done.stdout + done.stderr
    assert "already completed" not in done.stdout + done.stderr
    jobs = sorted(d for d in sweep.iterdir() if d.is_dir())
    assert [json.loads((d / names.SUMMARY).read_text())["status"] for d in jobs] == ["completed"] * 2


def test_a_slurm_sweep_that_ran_no_job_is_forgotten_with_its_lock(tmp_path, monkeypatch):
    """A SLURM sweep whose submission failed holds only what the launch wrote, its lock included:
    the folder goes, as before there was a lock."""
    from ics_cli.slurm import _forget

    monkeypatch.chdir(tmp_path)
    sweep = _planned_sweep(tmp_path)
    with RunLock(sweep, names.SWEEP_LOCK, "running it"):
        _forget(sweep)
    assert not sweep.exists()
