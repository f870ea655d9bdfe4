"""Durable runs, end to end in subprocesses on tiny generated MNIST: unique directories under
concurrent launches, kill -9 / SIGTERM / SIGINT and resume bit-identical to an uninterrupted run,
sweeps that finish after a kill, and resume's refusals (finished, no checkpoint, other config,
unsafe checkpoint)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from clirun import ics, lines, plain, start
from pausing import pausing_ics
from runargs import assert_same_run, merged, record, reference_run

pytestmark = pytest.mark.slow  # every test here drives `ics` in subprocesses: kills, signals, resumes

# long enough on tiny data (~1-3 s) that a kill after the first checkpoint lands mid-run
RUN = [
    "trainer.steps=3000",
    "trainer.checkpoint_every=200",
    "trainer.threads=1",
    "trainer.eval_every=100",
    "trainer.log_every=50",
    "probe.every=50",
    "probe.size=100",
    "probe.histogram_every=500",
    "model.widths=[64,64]",
]


def wait_for(path: Path, proc: subprocess.Popen, timeout=120) -> None:
    t0 = time.time()
    while not path.exists():
        assert proc.poll() is None, f"ended before {path.name} appeared: {proc.communicate()}"
        assert time.time() - t0 < timeout, f"{path} never appeared"
        time.sleep(0.02)


def assert_clean_events(d: Path) -> None:
    """TensorBoard sees each evaluation once, in order: the killed run's tail was purged."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ea = EventAccumulator(str(d), size_guidance={"scalars": 0})
    ea.Reload()
    for tag in ("acc/test", "loss/train", "drift/h2.pre_act/w1_ref"):
        steps = [e.step for e in ea.Scalars(tag)]
        assert steps == sorted(set(steps)), f"{tag}: duplicate or out-of-order steps {steps}"
    from ics.models.evaluate import eval_schedule

    assert [e.step for e in ea.Scalars("acc/test")] == [0] + sorted(eval_schedule(3000, 100, 8))


@pytest.fixture(scope="module")
def reference(tmp_path_factory, mnist_root):
    """The same run, never interrupted."""
    return reference_run(tmp_path_factory.mktemp("ref"), ics, RUN, mnist_root)


def at_line(proc: subprocess.Popen, step: int) -> None:
    """Return as soon as the run prints its progress line of `step` (synchronised on its output, not on
    time): the run has written every checkpoint before `step` and may be writing the next."""
    for line in proc.stdout:
        m = re.search(r"\bstep ([\d,]+)/", line)
        if m and int(m.group(1).replace(",", "")) >= step:
            return
    proc.wait()
    raise AssertionError(f"the run ended before step {step}: {proc.stderr.read()}")


def kill_after_line(proc: subprocess.Popen, step: int) -> None:
    """kill -9 at the progress line of `step`."""
    at_line(proc, step)
    proc.kill()
    proc.wait()


# step 250: mid-interval after the first checkpoint; step 400: the line printed just before the
# checkpoint of step 400 is written, so the kill lands before, in or after that write
@pytest.mark.parametrize("kill_at", [250, 400])
def test_kill_9_then_resume_is_bit_identical(tiny_env, tmp_path, reference, kill_at):
    from ics.record import read_job
    from ics.train.checkpoint import step_of

    run = tmp_path / "run"
    # progress lines at every logging step (a neutral key: the run computes the same as the reference)
    proc = start(merged("run", *RUN, "trainer.progress_every_sec=1e-9", f"hydra.run.dir={run}"), tiny_env, tmp_path)
    kill_after_line(proc, kill_at)
    job = read_job(run)
    killed = job.summary.steps
    assert str(job.status) == "killed" and 200 <= killed < 3000, "the kill did not land mid-run"
    # the record is never behind the checkpoint: what the report says is where resume continues
    assert step_of(run / "checkpoint.pt") == killed
    p = ics(["report", str(run)], tiny_env, tmp_path)
    assert p.returncode == 0 and f"killed @ step {killed:,}" in p.stdout, p.stdout + p.stderr
    p = ics(["resume", str(run)], tiny_env, tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    done = record(run)
    assert done["status"] == "completed" and done["resumed_at"] == [killed]
    assert not list(run.glob(".*.tmp")), "a temporary file of the killed run was left behind"
    assert_same_run(reference, run)
    assert_clean_events(run)


# where the signal lands is chosen by the progress line it follows, not by a (random) sleep: mid-interval
# after the first checkpoint, and on the line printed just before the checkpoint of step 400 is written
@pytest.mark.parametrize(
    "sig, code, at", [(signal.SIGTERM, 143, 250), (signal.SIGINT, 130, 400), (signal.SIGTERM, 143, 400)]
)
def test_signal_writes_checkpoint_then_resume_is_bit_identical(tiny_env, tmp_path, reference, sig, code, at):
    run = tmp_path / "run"
    # progress lines at every logging step (a neutral key: the run computes the same as the reference)
    proc = start(merged("run", *RUN, "trainer.progress_every_sec=1e-9", f"hydra.run.dir={run}"), tiny_env, tmp_path)
    at_line(proc, at)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == code, out + err
    assert "Traceback" not in out + err
    err_lines = lines(err)
    assert len(err_lines) == 1 and f"ics resume {run}" in err_lines[0] and signal.Signals(sig).name in err_lines[0], err
    stopped = record(run)
    # it stops after the step it was in: at or after the line's step, long before the end
    assert stopped["status"] == "interrupted" and at <= stopped["steps"] < 3000, stopped["steps"]
    ck = torch.load(run / "checkpoint.pt", weights_only=True)
    assert ck["step"] == stopped["steps"]  # the checkpoint is of the step it stopped at: nothing lost
    p = ics(["resume", str(run)], tiny_env, tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    assert_same_run(reference, run)
    assert_clean_events(run)
    assert record(run)["started"] == stopped["started"] is not None  # the run began once: a resume keeps it


def test_second_signal_exits_at_once_leaving_whole_files(tiny_env, tmp_path):
    """A second, different signal right after the first (no repeat window involved: only the same
    signal repeats a request). Python runs pending handlers in signal-number order, so SIGINT (2) is
    the first whether or not both are pending at once: the exit code is 130 whatever the timing. The
    second lands mid-step, mid-write (deferred until the write is whole) or after the stop's own
    writes; each way every file is whole and the record agrees with the checkpoint. The forced-stop
    rule itself is tested without processes in test_signals.py."""
    run = tmp_path / "run"
    proc = start(merged("run", *RUN, "trainer.steps=200000", f"hydra.run.dir={run}"), tiny_env, tmp_path)
    wait_for(run / "checkpoint.pt", proc)
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, out + err
    assert "Traceback" not in out + err
    err_lines = lines(err)
    assert len(err_lines) == 1 and "SIGINT" in err_lines[0], err
    rec = record(run)  # parses: every file is whole (old or new), never half-written
    assert rec["status"] == "interrupted" and rec["checkpointing"] is None
    assert torch.load(run / "checkpoint.pt", weights_only=True)["step"] == rec["steps"]
    assert not list(run.glob(".*.tmp")), "a temporary file was left behind"


def test_a_signal_delivered_twice_at_once_is_one_request(tiny_env, tmp_path):
    """A terminal's Ctrl-C reaches a sweep's workers directly and through the CLI within
    milliseconds: that is one stop request, which still checkpoints, not a forced exit."""
    run = tmp_path / "run"
    proc = start(merged("run", *RUN, "trainer.steps=200000", f"hydra.run.dir={run}"), tiny_env, tmp_path)
    wait_for(run / "checkpoint.pt", proc)
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, out + err
    rec = record(run)
    assert rec["status"] == "interrupted"
    assert torch.load(run / "checkpoint.pt", weights_only=True)["step"] == rec["steps"]


def test_resume_refusals(tiny_env, tmp_path, reference):
    before = {p.name: p.stat().st_mtime_ns for p in reference.iterdir()}
    p = ics(["resume", str(reference)], tiny_env, tmp_path)
    assert p.returncode == 0 and "already completed" in p.stdout, p.stdout + p.stderr
    assert {p.name: p.stat().st_mtime_ns for p in reference.iterdir()} == before  # nothing changed

    # a run stopped before any checkpoint (checkpoints off): nothing to resume from
    run = tmp_path / "nock"
    proc = start(
        merged("run", *RUN, "trainer.checkpoint_every=0", "trainer.progress_every_sec=1e-9", f"hydra.run.dir={run}"),
        tiny_env,
        tmp_path,
    )
    at_line(proc, 100)  # training, not setting up (a signal then would remove the folder)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=120)
    assert record(run)["status"] == "interrupted" and not (run / "checkpoint.pt").exists()
    files = sorted(p.name for p in run.iterdir())
    p = ics(["resume", str(run)], tiny_env, tmp_path)
    assert p.returncode == 2 and p.stderr.strip().startswith("error: cannot resume") and "no checkpoint.pt" in p.stderr
    assert sorted(p.name for p in run.iterdir()) == files

    # another config aimed at a run that has a checkpoint: refused before Hydra writes anything
    run = tmp_path / "other"
    proc = start(merged("run", *RUN, f"hydra.run.dir={run}"), tiny_env, tmp_path)
    wait_for(run / "checkpoint.pt", proc)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=120)
    snapshot = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    p = ics(merged("run", *RUN, "model.norm=none", f"hydra.run.dir={run}"), tiny_env, tmp_path)
    assert p.returncode == 2, p.stdout + p.stderr
    assert "cannot resume" in p.stderr and "model.norm=batch" in p.stderr and "model.norm=none" in p.stderr
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == snapshot

    # a directory that is not a run, and a missing one
    for bad in (tmp_path / "empty", tmp_path / "missing"):
        if bad.name == "empty":
            bad.mkdir()
        p = ics(["resume", str(bad)], tiny_env, tmp_path)
        assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr


def test_a_checkpoint_is_data_never_code(tiny_env, tmp_path, reference):
    """A checkpoint carrying a pickled callable is refused (weights_only), and the callable never runs."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(reference, run)
    marker = tmp_path / "pwned"
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    state["payload"] = Evil(str(marker))
    torch.save(state, run / "checkpoint.pt")
    data = json.loads((run / "summary.json").read_text())
    data["status"] = "interrupted"
    (run / "summary.json").write_text(json.dumps(data))
    p = ics(["resume", str(run)], tiny_env, tmp_path)
    assert p.returncode == 2 and "cannot read checkpoint" in p.stderr, p.stdout + p.stderr
    assert not marker.exists()


class Evil:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


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
