"""`ics status [DIR]`: the runs and sweeps under a folder, newest first, with their state, progress
and ETA, read from each job's progress.json and summary.json (from another terminal while they run).

Everything read is data: a folder or file that does not read is one note on its line, never a crash,
and links are not followed.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Tuple

from ics.record import JobRecord, Status, names, read_job, read_planned
from ics.record.jobs import NO_CHECKPOINT, find_job_dirs, is_job_dir, read_progress
from ics.words import of

MAX_DEPTH = 6  # runs/<date>/<time> and multiruns/<date>/<time> are 3 deep; leave room for user layouts
SWEEP_MARKERS = ("multirun.yaml", names.PLANNED_JOBS, names.JOB_PLAN)  # a search (Optuna) writes no multirun.yaml


@dataclass
class Entry:
    path: Path
    kind: str  # "run" | "sweep"
    started: float  # seconds since the epoch (the folder's start file), for the order
    state: str = "?"
    progress: str = ""
    eta: Optional[float] = None
    note: str = ""


def find(root: Path) -> List[Entry]:
    """Runs and sweeps at or under root (a sweep's jobs belong to it; report folders are skipped)."""
    found: List[Entry] = []
    todo = [(Path(root), 0)]
    while todo:
        d, depth = todo.pop()
        try:
            if any((d / m).is_file() for m in SWEEP_MARKERS):
                found.append(Entry(d, "sweep", _recorded(d / "sweep.json") or _started(d, SWEEP_MARKERS)))
                continue
            if is_job_dir(d):
                found.append(
                    Entry(
                        d,
                        "run",
                        _recorded(d / names.SUMMARY) or _started(d, (f"{names.HYDRA_DIR}/config.yaml", names.SUMMARY)),
                    )
                )
                continue
            if depth >= MAX_DEPTH:
                continue
            with os.scandir(d) as it:
                subdirs = [
                    Path(e.path)
                    for e in it
                    if e.is_dir(follow_symlinks=False) and not e.name.startswith(".") and e.name != names.REPORT_DIR
                ]
        except OSError:
            continue
        todo += [(s, depth + 1) for s in subdirs]
    return sorted(found, key=lambda e: e.started, reverse=True)


def _recorded(path: Path) -> Optional[float]:
    """The start time a sweep record or run summary holds ("started", ISO 8601), which a copied folder
    keeps (its files' times are the copy's); None where absent or not a time (untrusted file)."""
    from datetime import datetime

    from ics.record.files import read_json

    try:
        text = read_json(path, 16 << 20).get("started")
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S%z").timestamp() if isinstance(text, str) else None
    except (OSError, ValueError, AttributeError, OverflowError):
        return None


def _started(d: Path, files) -> float:
    """The earliest modification time of a folder's start files (a folder from before "started")."""
    times = []
    for f in files:
        try:
            times.append((d / f).lstat().st_mtime)
        except OSError:
            pass
    try:
        return min(times) if times else d.lstat().st_mtime
    except OSError:
        return 0.0


def _job_steps(job: JobRecord, progress: dict):
    """(step reached, steps planned, steps per second) of one job, from progress.json, else its record."""
    s = job.summary
    total = progress.get("steps") or (
        s.config.get("trainer", {}).get("steps")
        if s and isinstance(s.config, dict) and isinstance(s.config.get("trainer"), dict)
        else None
    )
    total = total if isinstance(total, int) and not isinstance(total, bool) and total > 0 else None
    step = progress.get("step", s.steps if s else 0) or 0
    if job.status in (Status.INTERRUPTED, Status.KILLED) and job.has_checkpoint and s is not None:
        step = s.steps  # where resume continues (progress.json may have run past the checkpoint)
    if job.status.finished and total:
        step = total  # a diverged run ends early: its job is done
    return step, total, progress.get("steps_per_sec")


def describe(entry: Entry) -> Entry:
    if entry.kind == "run":
        job = read_job(entry.path)
        step, total, sps = _job_steps(job, read_progress(entry.path))
        entry.state = str(job.status)
        entry.progress = f"step {step:,}/{total:,}" if total else f"step {step:,}"
        if job.status == Status.RUNNING and total and sps:
            entry.eta = max(total - step, 0) / sps
        if job.summary is not None and job.summary.final_test_acc is not None and job.status.finished:
            score = "R²" if job.summary.metric == "r2" else "acc"
            entry.progress += f" · final test {score} {job.summary.final_test_acc:.4f}"
        if job.problem and job.status == Status.UNREADABLE:
            entry.note = job.problem
        if job.status in (Status.INTERRUPTED, Status.KILLED) and not job.has_checkpoint:
            entry.note = NO_CHECKPOINT
        return entry
    jobs = [read_job(d, entry.path) for d in find_job_dirs(entry.path)]
    planned = read_planned(entry.path)
    n = max(len(planned) if planned is not None else 0, len(jobs))
    counts = {}
    for j in jobs:
        counts[j.status] = counts.get(j.status, 0) + 1
    finished = sum(c for s, c in counts.items() if s.finished)
    running = counts.get(Status.RUNNING, 0)
    stopped = sum(counts.get(s, 0) for s in (Status.INTERRUPTED, Status.KILLED))
    failed, unreadable = counts.get(Status.FAILED, 0), counts.get(Status.UNREADABLE, 0)
    ended = finished + failed + unreadable
    entry.state = (
        "running"
        if running
        else "finished"
        if ended == n and ended == finished
        else "finished with failures"
        if ended == n
        else "stopped"
        if jobs
        else "not started"
    )
    done = total = rate = 0.0
    known = []
    for j in jobs:
        step, steps, sps = _job_steps(j, read_progress(j.dir))
        if steps:
            known.append(steps)
            done, total = done + min(step, steps), total + steps
        if j.status == Status.RUNNING and sps:
            rate += sps
    total += (n - len(known)) * (sum(known) / len(known) if known else 0)
    parts = [f"{of(finished, n, 'job')} done"] + [
        f"{c} {w}"
        for c, w in ((running, "running"), (stopped, "stopped"), (failed, "failed"), (unreadable, "unreadable"))
        if c
    ]
    if total:
        parts.append(of(int(done), int(total), "step"))
    launcher, problem = _launcher(entry.path)
    entry.progress = " · ".join(parts) + (f" · launcher {launcher}" if launcher else "")
    if running and rate:
        entry.eta = max(total - done, 0) / rate  # the running jobs' speed; queued jobs run at it too
    notes = []
    fresh = sum(1 for j in jobs if j.status in (Status.INTERRUPTED, Status.KILLED) and not j.has_checkpoint)
    if fresh:
        notes.append(f"{fresh} stopped with {NO_CHECKPOINT}")
    if planned is None and (entry.path / names.PLANNED_JOBS).exists():
        notes.append(f"{names.PLANNED_JOBS} does not read: jobs never started are not counted")
    notes += [problem] if problem else []
    notes += _record_problem(entry.path / "sweep.json")
    entry.note = "; ".join(notes)
    return entry


def _record_problem(path: Path) -> List[str]:
    """A sweep record that is there but does not read, as a note naming it (its start time is then
    the files' own)."""
    from ics.record.files import one_line, read_json

    try:
        read_json(path, 16 << 20)
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as e:
        return [f"{path.name} does not read ({one_line(e)})"]
    return []


def launcher_option(sweep: Path) -> Optional[str]:
    """The sweep's launcher by its option name (joblib, not its class), from multirun.yaml; None when
    that does not read or names no launcher ics knows."""
    return _launcher(sweep)[0]


def _launcher(sweep: Path) -> Tuple[Optional[str], Optional[str]]:
    """(launcher_option, a note naming multirun.yaml when it is there but does not read)."""
    from ics_cli.launchers import LAUNCHERS

    from ics.record.files import one_line, read_yaml

    try:
        node = read_yaml(sweep / "multirun.yaml")
    except FileNotFoundError:
        return None, None
    except (OSError, ValueError) as e:
        return None, f"multirun.yaml does not read ({one_line(e)})"
    try:
        target = node["hydra"]["launcher"]["_target_"]
    except (KeyError, TypeError):
        return None, None
    return next((launcher.option for launcher in LAUNCHERS if launcher.target == target), None), None


def hms(sec: Optional[float]) -> str:
    if sec is None:
        return "-"
    sec = int(sec)
    return f"{sec // 3600}:{sec % 3600 // 60:02d}:{sec % 60:02d}" if sec >= 3600 else f"{sec // 60}:{sec % 60:02d}"


def lines(root: Path, width: Optional[int] = None, terminal: bool = False) -> List[str]:
    """One line per run or sweep, newest first (a second line for a note), wrapped at `width` (with
    terminal: the terminal's, or COLUMNS; none when neither is known) between words only, so that a
    number (18,000/18,000) or a path is never split."""
    import shutil
    import textwrap

    from ics.record.files import one_line

    width = width or (shutil.get_terminal_size((1 << 20, 24)).columns if terminal else 1 << 20)

    def wrap(text: str, indent: str) -> list:
        return textwrap.wrap(text, width, subsequent_indent=indent, break_long_words=False, break_on_hyphens=False) or [
            ""
        ]

    out = []
    for entry in find(root):
        try:
            describe(entry)
        except Exception as e:  # noqa: BLE001 - one folder that does not read never hides the others
            entry.state, entry.note = "unreadable", one_line(e)
        try:
            where = entry.path.relative_to(root)
        except ValueError:
            where = entry.path
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(entry.started)) if entry.started else "?"
        eta = f" · ETA {hms(entry.eta)}" if entry.eta is not None else ""
        out += wrap(printable(f"{where}  {entry.kind}  {entry.state}  {entry.progress}{eta}  (started {when})"), "    ")
        if entry.note:
            out += wrap(printable(f"    note: {entry.note}"), "      ")
    return out


def printable(text: str) -> str:
    """Folder names and notes are data: a control character (a newline, an escape) shows as '?'."""
    return "".join(c if c.isprintable() else "?" for c in text)
