"""Reading job directories back, whatever state they are in.

A job directory is one that holds a run record, Hydra's `.hydra/` snapshot or a run lock. Each is
read on its own: its overrides and config come from its own record, else from its own `.hydra/`
files, never from a sibling, so a job whose summary.json is missing or broken is still listed
with what it was, in a state that says why its results are absent.
"""
from __future__ import annotations

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


def _hydra_files(d: Path):
    """(overrides, config) from Hydra's snapshot in .hydra/, each None when absent or unreadable."""
    import yaml

    overrides = config = None
    try:
        overrides = [str(o) for o in yaml.safe_load((d / names.HYDRA_DIR / "overrides.yaml").read_text()) or []]
    except (OSError, yaml.YAMLError, TypeError):
        pass
    try:
        loaded = yaml.safe_load((d / names.HYDRA_DIR / "config.yaml").read_text())
        config = loaded if isinstance(loaded, dict) else None
    except (OSError, yaml.YAMLError):
        pass
    return overrides, config


def read_job(d: Path, root: Optional[Path] = None) -> JobRecord:
    d = Path(d)
    num = job_number(d, Path(root)) if root is not None else None
    owner = holder(d)
    h_overrides, h_config = _hydra_files(d)
    try:
        s = read_summary(d)
    except FileNotFoundError:
        status = Status.RUNNING if owner else Status.KILLED
        problem = None if owner else "no summary.json: the job died before writing its record"
        return JobRecord(d, num, status, None, h_overrides or [], h_config, problem, owner)
    except (RecordError, OSError) as e:
        return JobRecord(d, num, Status.UNREADABLE, None, h_overrides or [], h_config, str(e), owner)
    status = s.status
    if status == Status.RUNNING and not owner:
        status = Status.KILLED
    overrides = s.overrides if s.overrides or h_overrides is None else h_overrides
    return JobRecord(d, num, status, s, list(overrides), s.config or h_config, None, owner)


def read_jobs(root: Path) -> List[JobRecord]:
    root = Path(root)
    return [read_job(d, root) for d in find_job_dirs(root)]
