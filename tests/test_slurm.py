"""ics on a real SLURM scheduler through hydra/launcher=slurm, on tiny generated MNIST.

CI starts a one-node cluster first (cluster/toy-slurm.sh); elsewhere these tests skip unless a
scheduler answers `sinfo`. Every job trains with one thread, so a job's result can be compared bit
for bit with the same run made locally: a sweep through the preset, a run longer than its 1-minute
time limit (signalled, checkpointed, requeued, resumed), a pre-empted job (same path), a job
cancelled with scancel (reported, then finished by `ics resume`), a job that fails on the node, and
a partition SLURM refuses. Set ICS_SLURM_PARTITION to run them on another partition.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from datetime import datetime
from pathlib import Path
from typing import Dict, List, Optional

import pytest
from clirun import finish, ics, start
from runargs import assert_same_run, merged, record

from ics.record import names

RUN = [
    "trainer.threads=1",
    "trainer.checkpoint_every=200",
    "trainer.eval_every=100",
    "trainer.log_every=50",
    "probe.every=50",
    "probe.size=100",
    "probe.histogram_every=500",
    "model.widths=[64,64]",
]


PARTITION = os.environ.get("ICS_SLURM_PARTITION")
SLURM = ["hydra/launcher=slurm"] + ([f"hydra.launcher.partition={PARTITION}"] if PARTITION else [])


def _no_scheduler() -> Optional[str]:
    """Why the SLURM tests cannot run here, or None."""
    try:
        import hydra_plugins.hydra_submitit_launcher  # noqa: F401
    except ImportError:
        return "hydra-submitit-launcher is not installed (pip install -e '.[all]')"
    for cmd in ("sinfo", "sbatch", "squeue", "scancel", "scontrol"):
        if shutil.which(cmd) is None:
            return f"no SLURM scheduler: `{cmd}` is not on PATH (start one with: sudo cluster/toy-slurm.sh)"
    try:
        p = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, timeout=15)
    except (OSError, subprocess.SubprocessError) as e:
        return f"no SLURM scheduler answers: sinfo: {e}"
    states = p.stdout.split()
    if p.returncode != 0 or not any(s.rstrip("~#!%$@^-") in ("idle", "mix", "alloc") for s in states):
        why = (p.stderr.strip().splitlines() or [f"node states {states}"])[0]
        return (
            f"no SLURM scheduler answers with a usable node (sinfo: {why}); start one with: sudo cluster/toy-slurm.sh"
        )
    return None


NO_SCHEDULER = _no_scheduler()
pytestmark = [pytest.mark.slow, pytest.mark.skipif(NO_SCHEDULER is not None, reason=NO_SCHEDULER or "")]


# ----------------------------------------------------------------------------------------------
# helpers


def _env(root: Path) -> Dict[str, str]:
    env = {**os.environ, "ICS_DATA_ROOT": str(root), "COLUMNS": "200", "NO_COLOR": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    return env


def jobs_numbered(sweep: Path, num: int) -> List[Path]:
    """Job folders of number num: `<num>_<swept values>`, or `<num>` when nothing is swept."""
    if not sweep.is_dir():
        return []
    return [d for d in sweep.iterdir() if d.is_dir() and (d.name == str(num) or d.name.startswith(f"{num}_"))]


def job_dir(sweep: Path, num: int) -> Path:
    found = jobs_numbered(sweep, num)
    assert len(found) == 1, f"job {num} in {sweep}: {found}"
    return found[0]


def slurm_ids(sweep: Path) -> List[str]:
    """SLURM ids of the sweep's jobs (submitit keeps one folder per job: <id> or <array>_<index>).
    When a job requeues, submitit replaces <id>_submitted.pkl by removing it and renaming
    <id>_submitted.pkl.save_tmp, so either name marks a submitted job."""
    base = sweep / ".submitit"
    return (
        sorted(
            d.name for d in base.iterdir() if re.fullmatch(r"\d+(_\d+)?", d.name) and list(d.glob("*_submitted.pkl*"))
        )
        if base.is_dir()
        else []
    )


def wait_until(cond, proc: subprocess.Popen, what: str, timeout=300.0, poll=0.1):
    t0 = time.time()
    while True:
        value = cond()
        if value:
            return value
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the sweep ended before {what}:\n{out}\n{err}")
        assert time.time() - t0 < timeout, f"{what}: not within {timeout} s"
        time.sleep(poll)


def assert_same_events(a: Path, b: Path) -> None:
    """TensorBoard shows the same curves for both runs, each step once (what a stopped attempt
    logged past its checkpoint was purged)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    def scalars(d: Path, tag: str) -> list:
        ea = EventAccumulator(str(d), size_guidance={"scalars": 0})
        ea.Reload()
        return [(e.step, e.value) for e in ea.Scalars(tag)]

    for tag in (names.TAG_TEST_ACC, names.TAG_TRAIN_LOSS):
        sa = scalars(a, tag)
        assert [s for s, _ in sa] == sorted({s for s, _ in sa}), f"{tag}: duplicate or out-of-order steps"
        assert sa == scalars(b, tag), f"{tag} differs"


def log_times(sweep: Path, slurm_id: str) -> Dict[str, List[datetime]]:
    """When each attempt of a job started, was signalled and ended, from submitit's log lines."""
    text = "".join(p.read_text() for p in (sweep / ".submitit" / slurm_id).glob("*_log.out"))
    marks = {"start": "Starting with JobEnvironment", "signal": "Caught signal", "done": "Job completed"}
    found: Dict[str, List[datetime]] = {k: [] for k in marks}
    for line in text.splitlines():
        m = re.match(r"submitit \w+ \((\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+)\) - (.*)", line)
        if m:
            for k, mark in marks.items():
                if m.group(2).startswith(mark):
                    found[k].append(datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f"))
    return found


def steps_for(rate: float, seconds: float, every: int = 1000) -> int:
    return int(max(every, round(rate * seconds / every) * every))


# ----------------------------------------------------------------------------------------------
# fixtures: the speed of this machine, and local uninterrupted runs to compare with


@pytest.fixture(scope="module")
def env(mnist_root) -> Dict[str, str]:
    return _env(mnist_root)


@pytest.fixture(scope="module")
def rate(env, tmp_path_factory) -> float:
    """Training steps per second of the test runs here (one thread), so that runs last long enough
    on fast and slow machines alike."""
    d = tmp_path_factory.mktemp("rate")
    p = ics(merged("run", *RUN, "trainer.steps=2000", f"hydra.run.dir={d / 'run'}"), env, d)
    assert p.returncode == 0, p.stdout + p.stderr
    return float(record(d / "run")["steps_per_sec"])


@pytest.fixture(scope="module")
def mid_run(rate) -> List[str]:
    """A run of ~10 s: long enough to be stopped mid-way after its first checkpoint."""
    return merged(*RUN, f"trainer.steps={steps_for(rate, 10)}")


@pytest.fixture(scope="module")
def mid_reference(env, tmp_path_factory, mid_run) -> Path:
    """model.norm=batch of mid_run, uninterrupted, locally."""
    d = tmp_path_factory.mktemp("mid-ref")
    p = ics(["run", *mid_run, "model.norm=batch", f"hydra.run.dir={d / 'run'}"], env, d)
    assert p.returncode == 0, p.stdout + p.stderr
    assert record(d / "run")["status"] == "completed"
    return d / "run"


# ----------------------------------------------------------------------------------------------
# the tests


def test_two_job_sweep_through_the_preset_lands_where_the_basic_launcher_puts_it(env, tmp_path):
    run = merged(*RUN, "trainer.steps=1500", "-m", "model.norm=none,batch")
    slurm = start(["run", *run, *SLURM, f"hydra.sweep.dir={tmp_path / 'slurm'}"], env, tmp_path)
    local = ics(["run", *run, f"hydra.sweep.dir={tmp_path / 'local'}"], env, tmp_path)
    p = finish(slurm)
    assert p.returncode == 0, p.stdout + p.stderr
    assert local.returncode == 0, local.stdout + local.stderr
    out = p.stdout + p.stderr
    assert "Traceback" not in out and "sacct" not in out, out
    assert "submitted 2 job(s) to SLURM" in out and out.count("completed") >= 2, out

    def layout(sweep: Path) -> set:
        files = {
            str(f.relative_to(sweep))
            for f in sweep.rglob("*")
            if f.is_file()
            and ".submitit" not in f.parts
            and not f.name.startswith("events.out.tfevents.")
            and f.name != "ics.log"
        }
        events = {str(f.parent.relative_to(sweep)) + "/events.out.tfevents.*" for f in sweep.rglob("events.out.*")}
        return files | events

    assert layout(tmp_path / "slurm") == layout(tmp_path / "local")
    for num in (0, 1):
        a, b = job_dir(tmp_path / "slurm", num), job_dir(tmp_path / "local", num)
        assert record(a)["status"] == "completed"
        assert_same_run(a, b)  # one thread each: the cluster computes what the laptop computes


def test_run_longer_than_its_time_limit_is_signalled_requeued_and_bit_identical(env, tmp_path, rate):
    """A run of 60-150 s with a 1-minute limit. SLURM sends SIGUSR2 10 s (+ up to 30 s of SLURM's
    resolution) before the limit, so at 20-50 s; the run checkpoints, the job requeues itself and
    continues from the checkpoint. The requeued job's limit is then raised so that it is not
    signalled again (each requeue costs ~15 s on the toy cluster; the path it would take is the same)."""
    # sized for 150 s at the rate measured when the module started: the rate is measured under
    # whatever load the machine had then, and a run sized for exactly 60 s ended before the signal when
    # the load fell (2.5x faster); the signal comes 20-50 s in either way
    steps = steps_for(rate, 150)
    run = merged(*RUN, f"trainer.steps={steps}")
    sweep = tmp_path / "sweep"
    t0 = time.time()
    proc = start(
        [
            "run",
            "-m",
            *run,
            *SLURM,
            "hydra.launcher.timeout_min=1",
            "hydra.launcher.signal_delay_s=10",
            f"hydra.sweep.dir={sweep}",
        ],
        env,
        tmp_path,
    )
    reference = start(["run", *run, f"hydra.run.dir={tmp_path / 'reference'}"], env, tmp_path)  # meanwhile
    job = wait_until(
        lambda: next(iter(d for d in jobs_numbered(sweep, 0) if (d / "summary.json").is_file()), None),
        proc,
        "the job started",
        timeout=120,
    )
    wait_until(lambda: record(job)["status"] == "interrupted", proc, "the time-limit signal", timeout=180)
    stopped = record(job)["steps"]
    (sid,) = slurm_ids(sweep)
    subprocess.run(["scontrol", "update", f"JobId={sid}", "TimeLimit=10"], check=True, capture_output=True)
    p = finish(proc)
    ref = finish(reference)
    total = time.time() - t0
    assert ref.returncode == 0, ref.stdout + ref.stderr
    assert p.returncode == 0, p.stdout + p.stderr
    assert "Traceback" not in p.stdout + p.stderr
    done = record(job)
    assert done["status"] == "completed" and done["steps"] == steps
    assert done["resumed_at"] == [stopped] and 0 < stopped < steps, (done["resumed_at"], stopped)
    assert "was requeued (restart 1)" in p.stdout + p.stderr
    err = "".join(f.read_text() for f in (sweep / ".submitit" / sid).glob("*_log.err"))
    assert f"interrupted by SIGUSR2 at step {stopped}" in err and "requeue" in err, err
    assert_same_run(tmp_path / "reference", job)
    assert_same_events(tmp_path / "reference", job)
    t = log_times(sweep, sid)
    assert len(t["start"]) == 2 and len(t["signal"]) == 1 and len(t["done"]) == 1, t
    print(
        f"\nrequeue: {steps} steps at ~{rate:.0f} steps/s; attempt 1 ran {(t['signal'][0] - t['start'][0]).total_seconds():.1f} s "
        f"before SIGUSR2 (checkpoint at step {stopped}), the requeued job started "
        f"{(t['start'][1] - t['signal'][0]).total_seconds():.1f} s after the signal and ran "
        f"{(t['done'][0] - t['start'][1]).total_seconds():.1f} s to step {steps}; sweep wall time {total:.0f} s"
    )


def test_preempted_job_checkpoints_is_requeued_and_bit_identical(env, tmp_path, mid_run, mid_reference):
    """A job of partition `urgent` (toy cluster: higher priority tier, needs the whole node) pre-empts
    ours; SLURM sends our job its SIGUSR2 at once (preempt_send_user_signal) and requeues it."""
    if (
        PARTITION
        or subprocess.run(["sinfo", "-h", "-p", "urgent", "-o", "%P"], capture_output=True, text=True).stdout.strip()
        == ""
    ):
        pytest.skip("needs the toy cluster's pre-empting partition `urgent` (cluster/toy-slurm.sh)")
    sweep = tmp_path / "sweep"
    proc = start(["run", "-m", *mid_run, "model.norm=batch", *SLURM, f"hydra.sweep.dir={sweep}"], env, tmp_path)
    job = wait_until(
        lambda: next(
            iter(d / "checkpoint.pt" for d in jobs_numbered(sweep, 0) if (d / "checkpoint.pt").is_file()), None
        ),
        proc,
        "the first checkpoint",
    ).parent
    urgent = subprocess.run(
        [
            "sbatch",
            "-p",
            "urgent",
            "--exclusive",
            "--mem=100M",
            "-o",
            str(tmp_path / "urgent.out"),
            "--wrap",
            "sleep 2",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    p = finish(proc)
    assert p.returncode == 0, p.stdout + p.stderr + urgent.stdout
    done = record(job)
    assert done["status"] == "completed" and len(done["resumed_at"]) == 1, done["resumed_at"]
    (sid,) = slurm_ids(sweep)
    err = "".join(f.read_text() for f in (sweep / ".submitit" / sid).glob("*_log.err"))
    assert "interrupted by SIGUSR2" in err and "preempted" in err, err
    assert_same_run(mid_reference, job)


def test_scancel_of_one_job_the_other_completes_and_resume_finishes_it(env, tmp_path, mid_run, mid_reference):
    sweep = tmp_path / "sweep"
    proc = start(["run", "-m", *mid_run, "model.norm=none,batch", *SLURM, f"hydra.sweep.dir={sweep}"], env, tmp_path)
    wait_until(
        lambda: [d for d in jobs_numbered(sweep, 1) if (d / "checkpoint.pt").is_file()],
        proc,
        "job 1's first checkpoint",
    )
    (sid,) = [s for s in slurm_ids(sweep) if s.endswith("_1")]
    subprocess.run(["scancel", sid], check=True)
    p = finish(proc)
    out = p.stdout + p.stderr
    # a sweep with an unfinished job ends non-zero and names it, as a local sweep does
    assert p.returncode == 1 and "Traceback" not in out, out
    assert f"error: 1 job(s) did not finish: 1; finish them with ics resume {sweep}" in out, out
    assert record(job_dir(sweep, 0))["status"] == "completed"
    cancelled = record(job_dir(sweep, 1))
    assert cancelled["status"] == "interrupted" and 0 < cancelled["steps"], cancelled["status"]
    assert (job_dir(sweep, 1) / "checkpoint.pt").is_file()
    assert re.search(rf"│ 1 +│[^\n]*│ interrupted @ step {cancelled['steps']:,} \(resumable\)", out), out
    assert "ended CANCELLED without a result" in out and f"ics resume {sweep}" in out, out
    err = "".join(f.read_text() for f in (sweep / ".submitit" / sid).glob("*_log.err"))
    assert f"interrupted by SIGTERM at step {cancelled['steps']}" in err, err

    done0 = (job_dir(sweep, 0) / "summary.json").read_bytes()
    p = ics(["resume", str(sweep)], env, tmp_path)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out
    # the finished job is left out of the resume's plan; only the cancelled one goes to SLURM again
    assert "1 finished (left as they are), 1 to continue" in out and "submitted 1 job(s) to SLURM" in out, out
    assert (job_dir(sweep, 0) / "summary.json").read_bytes() == done0  # left alone
    resumed = record(job_dir(sweep, 1))
    assert resumed["status"] == "completed" and resumed["resumed_at"] == [cancelled["steps"]]
    assert_same_run(mid_reference, job_dir(sweep, 1))


def test_a_job_failing_on_the_node_shows_its_error_in_the_status_table(env, tmp_path):
    # the data root is fine where ics checks the sweep, and missing on the node
    p = ics(
        merged(
            "run",
            "-m",
            *RUN,
            "trainer.steps=50",
            *SLURM,
            'hydra.launcher.setup=["export ICS_DATA_ROOT=/no/data/here"]',
            f"hydra.sweep.dir={tmp_path / 'sweep'}",
        ),
        env,
        tmp_path,
    )
    out = p.stdout + p.stderr
    assert p.returncode == 1 and "Traceback" not in out, out
    rec = record(job_dir(tmp_path / "sweep", 0))
    assert rec["status"] == "failed" and "/no/data/here" in rec["error"] and "\n" not in rec["error"]
    row = next(ln for ln in p.stdout.splitlines() if ln.lstrip("│ ").startswith("0 "))
    assert "│ failed: " in row, p.stdout
    assert p.stderr.strip().splitlines()[-1] == "error: 1 job(s) failed: 0 (see their summary.json)"


def test_a_partition_slurm_refuses_is_one_line(env, tmp_path):
    sweep = tmp_path / "sweep"
    p = ics(
        merged(
            "run",
            "-m",
            *RUN,
            "trainer.steps=50",
            "hydra/launcher=slurm",
            "hydra.launcher.partition=no_such_partition",
            f"hydra.sweep.dir={sweep}",
        ),
        env,
        tmp_path,
    )
    assert p.returncode == 2, p.stdout + p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: SLURM did not take the jobs: ") and "partition" in lines[0]
    assert not sweep.exists()
