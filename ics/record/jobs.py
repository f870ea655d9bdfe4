"""Reading job directories back, whatever state they are in.

A job directory is one that holds a run record, Hydra's `.hydra/` snapshot or a run lock. Each is
read on its own: its overrides and config come from its own record, else from its own `.hydra/`
files, never from a sibling, so a job whose summary.json is missing or broken is still listed
with what it was, in a state that says why its results are absent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from ics.record import names
from ics.record.lock import holder
from ics.record.summary import RecordError, Status, Summary, read_summary


@dataclass
class JobRecord:
    dir: Path
    num: Optional[int]  # Hydra's job number (sweep dirs are named <num>_<overrides>), None for a run
    status: Status
    summary: Optional[Summary]
    overrides: List[str] = field(default_factory=list)
    config: Optional[Dict[str, Any]] = None  # nested; None when neither the record nor .hydra/ has it
    problem: Optional[str] = None  # why the record is missing or unreadable
    owner: Optional[str] = None  # "pid N on host" of a live run
    file_problems: List[str] = field(default_factory=list)  # other files of the job that do not read: one line each

    @property
    def has_checkpoint(self) -> bool:
        return (self.dir / names.CHECKPOINT).is_file()

    @property
    def label(self) -> str:
        return " ".join(self.overrides) or "(defaults)"


def is_job_dir(d: Path) -> bool:
    return any((d / n).exists() for n in (names.SUMMARY, names.HYDRA_DIR, names.LOCK))


def find_job_dirs(root: Path) -> List[Path]:
    """Job directories at or under root, ordered by job number, then path. A report folder is skipped."""
    root = Path(root)
    if is_job_dir(root):
        return [root]
    found = set()
    for marker in (names.SUMMARY, names.HYDRA_DIR, names.LOCK):
        for p in root.rglob(marker):
            d = p.parent
            if names.REPORT_DIR not in d.relative_to(root).parts:
                found.add(d)
    # a job folder that is a symbolic link is listed (as unreadable: a sweep folder is data, and a
    # link may lead anywhere), not followed and not mistaken for a job that never started
    try:
        found |= {c for c in root.iterdir() if c.is_symlink() and job_number(c, root) is not None}
    except OSError:
        pass
    # a job dir inside another job dir is not a job of the sweep (e.g. a copy): keep the outer one
    outer = {d for d in found if not any(o != d and o in d.parents for o in found)}
    return sorted(outer, key=lambda d: _order(d, root))


def job_number(job: Path, root: Path) -> Optional[int]:
    """Hydra names sweep jobs "<num>_<overrides>"; None for any other directory name."""
    if job == root:
        return None
    num = job.relative_to(root).parts[-1].split("_", 1)[0]
    return int(num) if num.isdigit() else None


def _order(job: Path, root: Path):
    num = job_number(job, root)
    return (str(job.parent), num if num is not None else 1 << 30, str(job))


def read_yaml(path: Path) -> Any:
    """A YAML file from a run or sweep folder as plain data (never objects): ValueError with one
    line (empty, not UTF-8, too large, not YAML, aliases, nested too deeply) when it cannot be read.
    (ics.record.files.read_yaml: the one capped reader.)"""
    from ics.record.files import read_yaml as capped

    return capped(path)


def _hydra_files(d: Path):
    """(overrides, config, problems) from Hydra's snapshot in .hydra/: overrides and config are None
    when absent or unreadable; problems names each file that is there but does not read."""
    from ics.record.files import one_line

    overrides = config = None
    problems: List[str] = []
    where = d / names.HYDRA_DIR
    path = where / "overrides.yaml"
    try:
        loaded = read_yaml(path)
        if not isinstance(loaded, list) or not all(
            isinstance(o, (str, int, float)) and not isinstance(o, bool) for o in loaded
        ):
            raise ValueError("not a list of overrides")
        overrides = [str(o) for o in loaded]
    except FileNotFoundError:
        pass
    except (OSError, ValueError) as e:
        problems.append(f"{names.HYDRA_DIR}/{path.name}: {one_line(e)}")
    path = where / "config.yaml"
    try:
        loaded = read_yaml(path)
        problem = "not a mapping" if not isinstance(loaded, dict) else _config_problem(loaded)
        if problem:
            raise ValueError(problem)
        config = loaded
    except FileNotFoundError:
        pass
    except (OSError, ValueError) as e:
        problems.append(f"{names.HYDRA_DIR}/{path.name}: {one_line(e)}")
    return overrides, config, problems


def _config_problem(config: Dict[str, Any]) -> Optional[str]:
    from ics.record.summary import _tree_problem

    if not all(isinstance(k, str) for k in config):
        return "a key is not a name"
    return _tree_problem(config)


def _checkpoint_step(d: Path) -> Optional[int]:
    """The step of the job's checkpoint, read as data (weights_only); None if it does not read."""
    from ics.record.checkpoint import step_of  # imports torch: only when a job's step is asked for

    try:
        return step_of(d / names.CHECKPOINT)
    except Exception:  # noqa: BLE001 - missing or corrupt: the caller keeps the record's own step
        return None


checkpoint_step = _checkpoint_step  # public: the step a job's checkpoint holds, None if it does not read


def read_job(d: Path, root: Optional[Path] = None) -> JobRecord:
    d = Path(d)
    num = job_number(d, Path(root)) if root is not None else None
    if root is not None and d != Path(root) and d.is_symlink():
        return JobRecord(
            d, num, Status.UNREADABLE, None, [], None, "the job folder is a symbolic link (not followed)", None, []
        )
    owner = holder(d)
    h_overrides, h_config, problems = _hydra_files(d)
    try:
        s = read_summary(d)
    except FileNotFoundError:
        status = Status.RUNNING if owner else Status.KILLED
        problem = None if owner else "no summary.json: the job died before writing its record"
        return JobRecord(d, num, status, None, h_overrides or [], h_config, problem, owner, problems)
    except (RecordError, OSError) as e:
        return JobRecord(d, num, Status.UNREADABLE, None, h_overrides or [], h_config, str(e), owner, problems)
    status = s.status
    if status == Status.RUNNING and not owner:
        status = Status.KILLED
    if s.checkpointing is not None and not owner:
        # killed while putting a checkpoint in place: the one on disk says which step it holds
        step = _checkpoint_step(d)
        if step is not None:
            s.steps = step
    overrides = s.overrides if s.overrides or h_overrides is None else h_overrides
    return JobRecord(d, num, status, s, list(overrides), s.config or h_config, None, owner, problems)


def read_progress(d: Path) -> Dict[str, Any]:
    """A running job's progress.json as data: {} when absent or unreadable; numbers that are not
    numbers and strings that are not strings are dropped."""
    from ics.record.files import read_json

    try:
        data = read_json(Path(d) / "progress.json", 1 << 20)
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    out: Dict[str, Any] = {}
    for k in ("step", "steps", "pid"):
        if isinstance(data.get(k), int) and not isinstance(data.get(k), bool):
            out[k] = data[k]
    for k in ("loss", "acc", "steps_per_sec", "updated"):
        v = data.get(k)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            out[k] = float(v)
    for k in ("phase", "label"):
        if isinstance(data.get(k), str):
            out[k] = data[k][:200]
    return out


def read_jobs(root: Path) -> List[JobRecord]:
    root = Path(root)
    return [read_job(d, root) for d in find_job_dirs(root)]


NO_CHECKPOINT = "no checkpoint yet: resume restarts at step 0"


def stopped_text(job: JobRecord) -> str:
    """An interrupted or killed job as `ics status` and `ics report` both say it: with a checkpoint,
    the recorded step (where resume continues); without one, the last step it reached (progress.json
    is newer than a record written at the start) and that a resume starts over."""
    step = (job.summary.steps if job.summary is not None else 0) or 0
    if job.has_checkpoint:
        return f"{job.status} @ step {step:,}"
    step = max(step, read_progress(job.dir).get("step") or 0)
    return f"{job.status} @ step {step:,} ({NO_CHECKPOINT})"


NO_EVAL_YET = "- (no eval after step 0)"


def score_text(
    value: Optional[float], steps: Optional[int], last_eval: Optional[int], spec: str = ".4f", best: bool = False
) -> str:
    """A run's final (or, best=True, best) score as `ics status`, the closing table and `ics report`
    say it. The record's final score is the one at its last evaluation (`last_eval`): a run stopped
    (killed) before any evaluation after step 0 has only the untrained model's, which is no final or
    best result; one stopped after an evaluation, but before its last step, names that evaluation's step."""
    if value is None:
        return "-"
    if last_eval == 0 and (steps or 0) > 0:
        return "-" if best else NO_EVAL_YET
    text = format(value, spec) if math.isfinite(value) else str(value)
    if not best and last_eval is not None and steps is not None and last_eval < steps:
        text += f" (step {last_eval:,})"
    return text


def read_planned(root: Path) -> Optional[List[List[str]]]:
    """A sweep's jobs.json (every job's overrides, in launch order) as data: None when absent or not
    a list of override lists."""
    from ics.record.files import read_json

    try:
        jobs = read_json(Path(root) / names.PLANNED_JOBS)
    except (OSError, ValueError):
        return None
    if not isinstance(jobs, list) or not all(isinstance(j, list) and all(isinstance(o, str) for o in j) for j in jobs):
        return None
    return jobs
