"""`ics status`: runs and sweeps under a folder, newest first, state, progress and ETA; every file
read is untrusted (a corrupt one is a note on its line, never a crash)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from clirun import invoke

from ics.record import RunLock, Status, Summary, names, write_summary


def job(d: Path, status: Status, steps: int, total: int, acc=None) -> Path:
    write_summary(
        d,
        Summary(
            status=status, steps=steps, steps_requested=total, final_test_acc=acc, config={"trainer": {"steps": total}}
        ),
    )
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
    (sweep / "multirun.yaml").write_text(
        "hydra:\n  launcher:\n    _target_: hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher\n"
    )
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
    p = invoke(["status", str(tmp_path)])
    assert p.returncode == 0 and "Traceback" not in p.stdout + p.stderr and p.stdout.strip(), p.stdout + p.stderr
    p = invoke(["status", str(tmp_path / "nothing")])
    assert p.returncode == 2 and p.stderr.strip().count("\n") == 0 and "is not a directory" in p.stderr


def test_the_start_comes_from_the_record_so_a_copied_folder_keeps_it(tmp_path):
    """cp -r gives every file the copy's time: the run's summary ("started") and the sweep's sweep.json
    keep when it began. A start that is not a time (untrusted) falls back to the files' times."""
    import shutil
    import time

    from ics_cli.status import find, lines

    run = tmp_path / "orig" / "run"
    write_summary(
        run,
        Summary(
            status=Status.COMPLETED,
            steps=10,
            steps_requested=10,
            started="2026-03-04T05:06:07+0000",
            config={"trainer": {"steps": 10}},
        ),
    )
    sweep = tmp_path / "orig" / "sweep"
    sweep.mkdir()
    (sweep / names.PLANNED_JOBS).write_text(json.dumps([["x=1"]]))
    (sweep / "sweep.json").write_text(json.dumps({"study": None, "started": "2026-05-06T07:08:09+0000"}))
    shutil.copytree(tmp_path / "orig", tmp_path / "copy", copy_function=shutil.copy)  # new file times, like cp -r
    times = {e.path.name: e.started for e in find(tmp_path / "copy")}
    assert times == {"run": 1772600767.0, "sweep": 1778051289.0}
    assert [ln.split()[0] for ln in lines(tmp_path / "copy")] == ["sweep", "run"]  # newest first, by the record
    for bad in ("yesterday", 12, ["x"], "9999-99-99T00:00:00+0000"):
        (tmp_path / "copy" / "sweep" / "sweep.json").write_text(json.dumps({"started": bad}))
        started = {e.path.name: e.started for e in find(tmp_path / "copy")}["sweep"]
        assert abs(started - time.time()) < 3600  # the copy's file times


def test_a_killed_job_without_a_checkpoint_reads_alike_in_status_and_report_at_80_columns(tmp_path):
    """The record was written at the start (step 0), progress.json says 200: both commands say 200 and
    that a resume starts over; at 80 columns no number is split over two lines."""
    from ics.record.jobs import NO_CHECKPOINT

    sweep = tmp_path / "multiruns" / "2026-12-07" / "10-00-00_a_sweep_with_a_long_name_to_push_numbers_to_the_edge"
    sweep.mkdir(parents=True)
    (sweep / names.PLANNED_JOBS).write_text(json.dumps([["x=1"], ["x=2"]]))
    job(sweep / "0_x=1", Status.COMPLETED, 18_000, 18_000, acc=0.9)
    killed = job(sweep / "1_x=2", Status.KILLED, 0, 18_000)
    progress(killed, 200, 18_000, 100.0)
    status = invoke(["status", str(tmp_path)], extra_env={"COLUMNS": "80"})
    assert status.returncode == 0, status.stdout
    lines = status.stdout.splitlines()
    assert all(len(line) <= 80 or " " not in line.strip() for line in lines), status.stdout  # a path stays whole
    assert any("18,200/36,000 steps" in line for line in lines), status.stdout  # whole, on one line
    assert f"1 stopped with {NO_CHECKPOINT}" in " ".join(line.strip() for line in lines)
    report = invoke(["report", str(sweep)], extra_env={"COLUMNS": "80"})
    assert report.returncode == 0, report.stdout + report.stderr
    flat = " ".join(line.strip(" │") for line in report.stdout.splitlines())
    assert f"killed @ step 200 ({NO_CHECKPOINT})" in flat.replace("  ", " "), report.stdout
