"""A run or sweep folder is data (issue 15): `ics resume` re-applies only the task overrides and the
launcher choice a sweep stored, nothing is unpickled, and a launch aimed at a folder that is live, not
an ics run, or a different run is refused before anything is written there."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from clirun import ics, invoke
from pausing import pausing_ics

ROOT = Path(__file__).resolve().parent.parent
FAST = ["trainer.threads=1", "trainer.steps=20", "trainer.eval_every=10", "trainer.eval_log_points=0", "probe.size=100"]


def ics_in(args, env, cwd):
    """`ics ARGS` in this process (tests/clirun.py: invoke) with `env` as its environment, where the
    process boundary is not the point: each subprocess costs seconds of torch and Hydra imports."""
    import os

    extra = {k: v for k, v in env.items() if os.environ.get(k) != v}
    extra.update({k: None for k in os.environ if k not in env})  # None: unset for the call
    return invoke(args, cwd, extra)


def one_line_error(p: subprocess.CompletedProcess, needle: str) -> str:
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert p.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), p.stdout + p.stderr
    assert needle in lines[0], lines[0]
    return lines[0]


def test_nothing_in_ics_unpickles_a_file():
    """Guard: no pickle.load, no submitit job.results() (it unpickles the result file), and every
    torch.load is weights_only=True — in the library and the CLI."""
    offenders = []
    for f in list((ROOT / "ics").rglob("*.py")) + list((ROOT / "cli").rglob("*.py")):
        for n, line in enumerate(f.read_text().splitlines(), 1):
            code = line.split("#")[0]
            if re.search(r"\bpickle\.loads?\(|\.results\(\)|\.result\(\)", code):
                offenders.append(f"{f.name}:{n}: {line.strip()}")
            if "torch.load(" in code and "weights_only=True" not in code:
                offenders.append(f"{f.name}:{n}: {line.strip()}")
    assert offenders == []


@pytest.mark.slow
def test_resume_drops_stored_hydra_settings_and_runs_nothing_from_them(tiny_env, tmp_path):
    cwd = tmp_path / "work"
    cwd.mkdir()
    sweep = tmp_path / "sweep"
    p = ics_in(["run", "-m", "model.norm=none,batch", *FAST, f"hydra.sweep.dir={sweep}"], tiny_env, cwd)
    assert p.returncode == 0, p.stdout + p.stderr
    job = next(sweep.glob("1_*"))
    import shutil

    shutil.rmtree(job)  # one job to resume
    marker = tmp_path / "PWNED"
    record = yaml.safe_load((sweep / "multirun.yaml").read_text())
    record["hydra"]["overrides"]["hydra"] += [
        "hydra/launcher=evil",
        f"hydra.launcher.setup=['touch {marker}']",
        f"hydra.job.env_set.ICS_CACHE_DIR={tmp_path / 'redirected'}",
        "hydra.callbacks.x._target_=os.system",
    ]
    (sweep / "multirun.yaml").write_text(yaml.safe_dump(record))
    p = ics_in(["resume", str(sweep)], tiny_env, cwd)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out
    assert "start    1_" in out  # what it runs, shown first: the job from its recorded config
    assert "evil" not in out  # a stored launcher setting is never read back
    assert not marker.exists() and not (tmp_path / "redirected").exists()
    rec = json.loads((next(sweep.glob("1_*")) / "summary.json").read_text())
    assert rec["status"] in ("completed", "not_learning")


@pytest.mark.slow
def test_a_launch_into_a_live_run_is_refused_before_anything_is_written(tiny_env, tmp_path):
    from ics.record.lock import RunLock

    cwd = tmp_path / "work"
    cwd.mkdir()
    run = tmp_path / "run"
    p = ics(["run", *FAST, "trainer.checkpoint_every=0", f"hydra.run.dir={run}"], tiny_env, cwd)
    assert p.returncode == 0, p.stdout + p.stderr
    (run / "summary.json").write_text(
        json.dumps({**json.loads((run / "summary.json").read_text()), "status": "running"})
    )
    with RunLock(run):  # a live run holds its lock: the launch is refused without touching it
        before = {f: f.read_bytes() for f in run.rglob("*") if f.is_file()}
        one_line_error(
            ics(["run", *FAST, "model.norm=none", "trainer.seed=7", f"hydra.run.dir={run}"], tiny_env, cwd),
            "is being trained by pid",
        )
        assert {f: f.read_bytes() for f in run.rglob("*") if f.is_file()} == before
    before = {f: f.read_bytes() for f in run.rglob("*") if f.is_file()}
    # not live any more, but started with another config: refused too, nothing written
    line = one_line_error(
        ics(["run", *FAST, "trainer.checkpoint_every=0", "trainer.seed=7", f"hydra.run.dir={run}"], tiny_env, cwd),
        "holds a run started with trainer.seed=0",
    )
    assert "ics resume" in line
    assert {f: f.read_bytes() for f in run.rglob("*") if f.is_file()} == before


@pytest.mark.slow
def test_a_launch_into_a_folder_that_is_not_a_run_is_refused(tiny_env, tmp_path):
    cwd = tmp_path / "work"
    cwd.mkdir()
    mine = tmp_path / "thesis"
    mine.mkdir()
    (mine / "chapter1.tex").write_text("precious")
    one_line_error(
        ics_in(["run", *FAST, f"hydra.run.dir={mine}"], tiny_env, cwd), "is a non-empty folder that is not an ics run"
    )
    one_line_error(
        ics_in(["run", "-m", "trainer.seed=0,1", *FAST, f"hydra.sweep.dir={mine}"], tiny_env, cwd),
        "is a non-empty folder that is not an ics sweep",
    )
    assert [p.name for p in mine.iterdir()] == ["chapter1.tex"] and list(cwd.iterdir()) == []


@pytest.mark.slow
def test_a_symlinked_job_folder_is_listed_as_unreadable_and_not_written_through(tiny_env, tmp_path):
    cwd = tmp_path / "work"
    cwd.mkdir()
    sweep = tmp_path / "sweep"
    p = ics_in(["run", "-m", "trainer.seed=0,1", *FAST, f"hydra.sweep.dir={sweep}"], tiny_env, cwd)
    assert p.returncode == 0, p.stdout + p.stderr
    job = next(sweep.glob("1_*"))
    elsewhere = tmp_path / "elsewhere"
    job.rename(elsewhere)
    job.symlink_to(elsewhere, target_is_directory=True)
    before = sorted(str(f) for f in elsewhere.rglob("*"))
    p = ics_in(["report", str(sweep)], tiny_env, cwd)
    assert p.returncode == 0 and "Traceback" not in p.stdout + p.stderr, p.stdout + p.stderr
    assert "the job folder is a symbolic link (not followed)" in (sweep / "report" / "report.md").read_text()
    p = ics_in(["resume", str(sweep)], tiny_env, cwd)
    assert p.returncode == 1 and "Traceback" not in p.stdout + p.stderr, p.stdout + p.stderr
    assert f"cannot resume {job}: the job folder is a symbolic link (not followed)" in p.stdout + p.stderr
    assert sorted(str(f) for f in elsewhere.rglob("*")) == before


@pytest.mark.slow
def test_a_busy_tensorboard_port_is_one_line(tmp_path):
    import os
    import socket

    (tmp_path / "events.out.tfevents.1.host.0.0").write_bytes(b"")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        p = ics(["tensorboard", str(tmp_path), "--port", str(port)], dict(os.environ), tmp_path, timeout=60)
    one_line_error(p, f"--port {port} is in use")
    assert "http://" not in p.stdout


def test_a_planted_run_lock_link_or_fifo_is_refused_not_followed_nor_waited_on(tmp_path):
    import os

    from ics.record.lock import RunBusy, RunLock, holder

    victim = tmp_path / "victim"
    victim.write_text("precious")
    for name, plant in (("link", lambda p: p.symlink_to(victim)), ("fifo", lambda p: os.mkfifo(p))):
        run = tmp_path / name
        run.mkdir()
        plant(run / "run.lock")
        assert holder(run) is None  # a reader neither follows nor blocks
        with pytest.raises(RunBusy, match="run.lock cannot be used as a lock"):
            RunLock(run).acquire()
    assert victim.read_text() == "precious"


@pytest.mark.slow
@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_a_signal_before_the_task_starts_is_one_true_line_and_leaves_nothing(tiny_env, tmp_path, signame):
    """Between the pre-run check and Hydra handing over (the run folder claimed, nothing trained),
    a stop signal ends `ics run` with one line, 128 + signal, and no folder left behind."""
    import os
    import signal

    cwd = tmp_path / "work"
    cwd.mkdir()
    run, marker = tmp_path / "run", tmp_path / "paused"
    env = {**tiny_env, "NO_COLOR": "1"}
    proc = subprocess.Popen(
        [*pausing_ics("launch", marker), "run", *FAST, f"hydra.run.dir={run}"],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    import time

    deadline = time.monotonic() + 120
    while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)  # polling for the marker file, not a timing assumption
    assert marker.exists(), proc.communicate()
    assert run.is_dir()  # claimed
    os.kill(proc.pid, getattr(signal, signame))
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + getattr(signal, signame), out + err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert lines == [f"run interrupted by {signame} before training started; nothing was kept"], err
    assert not run.exists() and list(cwd.iterdir()) == []
