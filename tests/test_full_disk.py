"""A full disk (issue 15, case 5), on a small tmpfs the test mounts (root only; skipped elsewhere).

The run pauses in the middle of its first checkpoint (started through tests/pausing.py), the test
fills the disk, then lets it go on by removing the pause file. Then: one line naming the file, the
step and `ics resume <dir>`; the record says failed (no space left) or, when even the record could
not be written, stays whole; the previous checkpoint survives; `ics resume` on the still-full disk is
one line; after freeing space, `ics resume` finishes bit-identically to a run never interrupted."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
from clirun import ics
from pausing import pausing_ics
from runargs import assert_same_run, merged, record, reference_run

pytestmark = pytest.mark.slow
RUN = [
    "trainer.steps=300",
    "trainer.checkpoint_every=100",
    "trainer.threads=1",
    "trainer.eval_every=100",
    "trainer.log_every=50",
    "probe.every=50",
    "probe.size=100",
    "probe.histogram_every=500",
    "model.widths=[32,32]",
]


def _env(env: dict) -> dict:
    return {**env, "COLUMNS": "200", "NO_COLOR": "1"}


def lines(text: str) -> list:
    return [ln for ln in text.splitlines() if ln.strip()]


@pytest.fixture
def disk(tmp_path):
    """A 4 MB tmpfs, unmounted afterwards."""
    where = tmp_path / "disk"
    where.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(where)], capture_output=True, text=True)
    if p.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {p.stderr.strip() or p.returncode}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def fill(folder: Path, leave: int = 0) -> Path:
    """Fill the file system of `folder` (unbuffered writes, smaller and smaller), then give back
    `leave` bytes."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        for size in (1 << 16, 1 << 12, 1 << 8, 1):
            while True:
                try:
                    os.write(fd, b"\0" * size)
                except OSError:
                    break
    finally:
        os.close(fd)
    if leave:
        os.truncate(filler, max(0, filler.stat().st_size - leave))
    return filler


@pytest.fixture(scope="module")
def reference(tmp_path_factory, mnist_root):
    """The same run, never interrupted."""
    return reference_run(tmp_path_factory.mktemp("ref"), ics, RUN, mnist_root)


def run_until_full(run: Path, env: dict, cwd: Path, leave_fraction: float):
    """Start the run, pause it mid-way through its first checkpoint (step 100), fill the disk leaving
    `leave_fraction` of a checkpoint's size free, let it go on; returns (rc, out, err, filler)."""
    marker = cwd / "paused"
    proc = subprocess.Popen(
        [*pausing_ics("mid-checkpoint", marker), *merged("run", *RUN, f"hydra.run.dir={run}")],
        env=_env(env),
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    t0 = time.time()
    while not marker.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.time() - t0 < 120, "never paused"
        time.sleep(0.005)
    size = sum(p.stat().st_size for p in run.glob(".checkpoint.pt.*.tmp"))
    assert size > 100_000, "the checkpoint being written is not where the test expects it"
    filler = fill(run.parent, int(size * leave_fraction))
    marker.unlink()  # go on
    out, err = proc.communicate(timeout=120)
    return proc.returncode, out, err, filler


def check_resumes(run: Path, filler: Path, reference: Path, env: dict, cwd: Path, kept: int) -> None:
    from ics.train.checkpoint import step_of

    # still full: one line, nothing changed that matters
    fill(run.parent)
    p = ics(["resume", str(run)], env, cwd)
    assert p.returncode != 0 and "Traceback" not in p.stdout + p.stderr, p.stdout + p.stderr
    err = lines(p.stderr)
    assert len(err) == 1 and "no space left on device" in err[0] and f"ics resume {run}" in err[0], p.stderr
    assert step_of(run / "checkpoint.pt") == kept
    record(run)  # whole
    assert not list(run.glob(".*.tmp"))
    # space freed: the run finishes as if never stopped
    filler.unlink()
    for extra in run.parent.glob("filler*"):
        extra.unlink()
    p = ics(["resume", str(run)], env, cwd)
    assert p.returncode == 0 and "Traceback" not in p.stdout + p.stderr, p.stdout + p.stderr
    done = record(run)
    assert done["status"] == "completed" and done["resumed_at"] == [kept]
    assert not list(run.glob(".*.tmp"))
    assert_same_run(reference, run)


def test_full_disk_at_a_checkpoint(tiny_env, tmp_path, disk, reference):
    """Room for the small files, not for the next checkpoint (step 200)."""
    from ics.record import read_job
    from ics.train.checkpoint import step_of

    run = disk / "run"
    rc, out, err, filler = run_until_full(run, tiny_env, tmp_path, 0.75)
    assert rc == 1, out + err
    assert "Traceback" not in out + err, err
    assert lines(err) == [
        f"error: no space left on device writing {run / 'checkpoint.pt'} at step 200: its "
        f"checkpoint (step 100) is kept; free some space, then: ics resume {run}"
    ], err
    rec = record(run)
    assert rec["status"] == "failed" and rec["steps"] == 100, rec
    assert rec["error"].startswith("no space left on device") and "checkpoint.pt" in rec["error"]
    assert step_of(run / "checkpoint.pt") == 100
    assert not list(run.glob(".*.tmp"))
    job = read_job(run)
    assert str(job.status) == "failed" and job.summary.steps == 100
    check_resumes(run, filler, reference, tiny_env, tmp_path, kept=100)


def test_full_disk_even_for_the_record(tiny_env, tmp_path, disk, reference):
    """No room at all once the checkpoint is in place: the record cannot be rewritten, and stays
    whole (it says `checkpointing@100`: a reader takes the step from the checkpoint)."""
    from ics.record import read_job
    from ics.train.checkpoint import step_of

    run = disk / "run"
    rc, out, err, filler = run_until_full(run, tiny_env, tmp_path, 0.0)
    assert rc == 1, out + err
    assert "Traceback" not in out + err, err
    err_lines = lines(err)
    assert (
        len(err_lines) == 1
        and err_lines[0].startswith("error: no space left on device writing ")
        and "at step 100" in err_lines[0]
        and f"ics resume {run}" in err_lines[0]
    ), err
    assert step_of(run / "checkpoint.pt") == 100
    assert not list(run.glob(".*.tmp"))
    job = read_job(run)  # the record parses; whatever it says, its step is the checkpoint's
    assert job.summary is not None and job.summary.steps == 100 and str(job.status) in ("failed", "killed")
    check_resumes(run, filler, reference, tiny_env, tmp_path, kept=100)
