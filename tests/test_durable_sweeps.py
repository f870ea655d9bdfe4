"""Durable sweeps, end to end in subprocesses on tiny generated MNIST: unique directories under
concurrent launches, a sweep killed (kill -9) or stopped by a signal (SIGTERM to the basic and the
joblib launcher, SIGINT while a job finishes) and then finished by `ics resume`. The single runs'
kills, signals and resume's refusals are in test_durable.py (a file each, so that two test workers
share them)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
from clirun import ics, plain, start
from pausing import pausing_ics
from runargs import RUN, merged, record, wait_for

pytestmark = pytest.mark.slow  # every test here drives `ics` in subprocesses: kills, signals, resumes


def test_concurrent_launches_get_their_own_directories(tiny_env, tmp_path):
    n = 4
    procs = [
        start(["run", "trainer.steps=20", "trainer.threads=1", "probe=off", f"trainer.seed={i}"], tiny_env, tmp_path)
        for i in range(n)
    ]
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, out + err
    dirs = [d for d in (tmp_path / "runs").glob("*/*") if d.is_dir()]
    assert len(dirs) == n
    seeds = set()
    for d in dirs:
        import yaml

        rec = record(d)
        assert rec["status"] == "completed"
        assert rec["overrides"] == yaml.safe_load((d / ".hydra" / "overrides.yaml").read_text())
        seeds.add(rec["config"]["trainer"]["seed"])
    assert seeds == set(range(n))


def test_sweep_killed_then_resumed_finishes_every_job(tiny_env, tmp_path):
    sweep = tmp_path / "sweep"
    args = merged("-m", "optim.lr=0.1,0.5,1", *RUN, "trainer.steps=1500", f"hydra.sweep.dir={sweep}")
    proc = start(["run", *args], tiny_env, tmp_path)
    t0 = time.time()
    while not list(sweep.glob("1_*/checkpoint.pt")):  # job 0 done, job 1 past its first checkpoint
        assert proc.poll() is None and time.time() - t0 < 300
        time.sleep(0.02)
    proc.kill()
    proc.wait()
    job0 = next(sweep.glob("0_*"))
    done0 = (job0 / "summary.json").read_bytes()
    assert record(job0)["status"] == "completed"
    assert not list(sweep.glob("2_*")), "job 2 should not have started"
    p = ics(["resume", str(sweep)], tiny_env, tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    jobs = sorted(d for d in sweep.iterdir() if d.is_dir())
    assert [record(d)["status"] for d in jobs] == ["completed"] * 3
    assert (job0 / "summary.json").read_bytes() == done0  # a finished job is left alone
    assert record(jobs[1])["resumed_at"] and not record(jobs[2])["resumed_at"]
    assert "1 finished (left as they are), 1 to continue from their checkpoints" in p.stdout
    assert "never started" in p.stdout and "start    2_" in p.stdout


def test_sigterm_to_a_parallel_sweep_reaches_its_workers(tiny_env, tmp_path):
    """`kill <ics pid>` (SLURM, timeout, a job manager) stops a joblib sweep cleanly: the workers get
    the signal too, each running job checkpoints and ends interrupted, no queued job starts, no
    worker is left behind, and `ics resume` finishes the sweep."""
    sweep = tmp_path / "sweep"
    args = [
        "run",
        "-m",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "optim.lr=0.1,0.2,0.3,0.4",
        *RUN,
        "trainer.steps=4000",
        f"hydra.sweep.dir={sweep}",
    ]
    args = merged(*args)
    proc = start(args, tiny_env, tmp_path)
    t0 = time.time()
    while len(list(sweep.glob("*/checkpoint.pt"))) < 2:
        assert proc.poll() is None and time.time() - t0 < 300, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 143, out + err
    assert f"ics resume {sweep}" in err and "Traceback" not in out + err
    jobs = sorted(d for d in sweep.iterdir() if d.is_dir())
    assert [record(d)["status"] for d in jobs] == ["interrupted", "interrupted"]  # jobs 2 and 3 never started
    # the workers end on their own after the CLI: wait for that (a bound for failing, not a window)
    deadline = time.monotonic() + 60
    while (
        left := [p for p in Path("/proc").glob("[0-9]*") if _cwd(p) == str(tmp_path)]
    ) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not left, "worker processes were left running"
    p = ics(["resume", str(sweep)], tiny_env, tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    assert [record(d)["status"] for d in sorted(d for d in sweep.iterdir() if d.is_dir())] == ["completed"] * 4


def _cwd(proc_dir: Path) -> str:
    try:
        return os.readlink(proc_dir / "cwd")
    except OSError:
        return ""


def test_sigterm_to_a_sequential_sweep_stops_it_with_its_table(tiny_env, tmp_path):
    """The basic launcher runs the jobs in the CLI's own process: a SIGTERM during job 1 ends it
    `interrupted` with its checkpoint, job 2 does not start, and the sweep ends like a parallel one:
    its table, how to resume, exit 143, no stop marker left behind."""
    sweep = tmp_path / "sweep"
    args = merged("-m", "optim.lr=0.1,0.2,0.3", *RUN, "trainer.steps=2000", f"hydra.sweep.dir={sweep}")
    proc = start(["run", *args], tiny_env, tmp_path)
    t0 = time.time()
    while not list(sweep.glob("1_*/checkpoint.pt")):
        assert proc.poll() is None and time.time() - t0 < 300, proc.communicate()
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 143, out + err
    assert "sweep stopped by SIGTERM" in err and f"ics resume {sweep}" in err and "Traceback" not in out + err
    assert re.search(r"│ 1 +│[^\n]*│ interrupted @ step [\d,]+", out), out
    assert "sweep: 3 jobs" in out and re.search(r"│ 2 +│[^\n]*│ not started", out), out  # every job counted
    jobs = sorted(d for d in sweep.iterdir() if d.is_dir())
    assert [record(d)["status"] for d in jobs] == ["completed", "interrupted"]  # job 2 never started
    assert not (sweep / ".stopped").exists()
    p = ics(["resume", str(sweep)], tiny_env, tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    assert [record(d)["status"] for d in sorted(d for d in sweep.iterdir() if d.is_dir())] == ["completed"] * 3


def test_a_signal_while_a_sweep_job_finishes_stops_the_sweep_after_it(tiny_env, tmp_path):
    """SIGINT while job 0 is finishing (its files complete, so it completes): job 1 must not start,
    and the sweep ends as stopped (130), resumable. Synchronised on a pause at the "finish" phase (tests/pausing.py)."""
    sweep, marker = tmp_path / "sweep", tmp_path / "paused"
    args = merged("-m", "optim.lr=0.1,0.2", *RUN, "trainer.steps=300", f"hydra.sweep.dir={sweep}")
    proc = subprocess.Popen(
        [*pausing_ics("finish", marker), "run", *args],
        env=plain(tiny_env),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for(marker, proc)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, out + err
    assert "job 0: SIGINT while it was finishing: it completed; the sweep stops after it" in err
    assert "sweep stopped by SIGINT" in err and "Traceback" not in out + err
    jobs = sorted(d for d in sweep.iterdir() if d.is_dir())
    assert [record(d)["status"] for d in jobs] == ["completed"]  # job 1 never started
    p = ics(["resume", str(sweep)], tiny_env, tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    assert [record(d)["status"] for d in sorted(d for d in sweep.iterdir() if d.is_dir())] == ["completed"] * 2
