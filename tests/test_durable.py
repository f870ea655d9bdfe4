"""Durable runs, end to end in subprocesses on tiny generated MNIST: kill -9 / SIGTERM / SIGINT
and resume bit-identical to an uninterrupted run, and resume's refusals (finished, no checkpoint,
other config, unsafe checkpoint). Sweeps are in test_durable_sweeps.py."""

from __future__ import annotations

import json
import re
import signal
import subprocess
from pathlib import Path

import pytest
import torch
from clirun import ics, lines, start
from runargs import RUN, assert_same_run, merged, record, reference_run, wait_for

pytestmark = pytest.mark.slow  # every test here drives `ics` in subprocesses: kills, signals, resumes


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
