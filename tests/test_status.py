"""`ics status`: runs and sweeps under a folder, newest first, state, progress and ETA; every file
read is untrusted (a corrupt one is a note on its line, never a crash)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from ics.record import RunLock, Status, Summary, names, write_summary


def job(d: Path, status: Status, steps: int, total: int, acc=None) -> Path:
    write_summary(d, Summary(status=status, steps=steps, steps_requested=total, final_test_acc=acc,
                             config={"trainer": {"steps": total}}))
    return d


def progress(d: Path, step: int, total: int, sps: float) -> None:
    (d / "progress.json").write_text(json.dumps({"step": step, "steps": total, "steps_per_sec": sps}))


def touch_at(path: Path, t: float) -> None:
    os.utime(path, (t, t))


def test_status_lists_runs_and_sweeps_newest_first_with_progress_and_eta(tmp_path):
    from ics_cli.status import lines

    old = job(tmp_path / "runs" / "a", Status.COMPLETED, 100, 100, acc=0.91)
    touch_at(old / names.SUMMARY, 1_000_000)
    sweep = tmp_path / "multiruns" / "s"
    sweep.mkdir(parents=True)
    (sweep / names.PLANNED_JOBS).write_text(json.dumps([["x=1"], ["x=2"], ["x=3"]]))
    job(sweep / "0_x=1", Status.COMPLETED, 1000, 1000, acc=0.9)
    live = job(sweep / "1_x=2", Status.RUNNING, 200, 1000)
    progress(live, 400, 1000, 100.0)
    lock = RunLock(live).acquire()  # this process trains it, as far as anyone can tell
    try:
        out = lines(tmp_path)
    finally:
        lock.release()
    assert out[0].startswith("multiruns/s  sweep  running  1/3 jobs done · 1 running · 1,400/3,000 steps · ETA 0:16")
    assert out[1].startswith("runs/a  run  completed  step 100/100 · final test acc 0.9100")
    # the lock released: the job died without a word
    assert "1 stopped" in lines(tmp_path)[0]
    # the launcher by its option name, not its class
    (sweep / "multirun.yaml").write_text("hydra:\n  launcher:\n    _target_: "
                                         "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher\n")
    assert "· launcher joblib  (started" in lines(tmp_path)[0] and "JoblibLauncher" not in "\n".join(lines(tmp_path))


def test_corrupt_files_are_one_line_notes_and_names_are_printed_safely(tmp_path):
    from ics_cli.status import lines

    bad = tmp_path / "runs" / "bad\x1b[2Jname"
    bad.mkdir(parents=True)
    (bad / names.SUMMARY).write_bytes(b"\xff{not json")
    (bad / "progress.json").write_text("[1, 2")
    sweep = tmp_path / "multiruns" / "s"
    sweep.mkdir(parents=True)
    (sweep / names.PLANNED_JOBS).write_text("{{{")
    (sweep / "0_x=1").mkdir()
    (sweep / "0_x=1" / names.SUMMARY).write_text(json.dumps({"status": "completed", "steps": "many"}))
    (sweep / "1").symlink_to("/", target_is_directory=True)
    (sweep / "multirun.yaml").write_text("hydra: [*a, &a x]\n")  # not YAML Hydra writes
    out = lines(tmp_path)
    text = "\n".join(out)
    assert "\x1b" not in text and "bad?[2Jname  run  unreadable" in text, text
    assert "note: jobs.json does not read" in text
    p = subprocess.run([sys.executable, "-m", "ics_cli.main", "status", str(tmp_path)], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0 and "Traceback" not in p.stdout + p.stderr and p.stdout.strip(), p.stdout + p.stderr
    p = subprocess.run([sys.executable, "-m", "ics_cli.main", "status", str(tmp_path / "nothing")], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 2 and p.stderr.strip().count("\n") == 0 and "is not a directory" in p.stderr
