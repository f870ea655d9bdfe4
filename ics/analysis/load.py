"""Loading a run or sweep directory for analysis: one typed `Job` per job directory.

Everything comes through the run record (ics.record): a job's config and overrides are its own
(its summary.json, else its .hydra/ snapshot), never borrowed from a sibling; a job without a
final result (running, killed, interrupted, unreadable) is listed in its state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ics.analysis.configs import flatten, format_value, parse_override, varying_keys
from ics.analysis.tolerance import RunResult
from ics.config import ConfigError
from ics.instruments.base import load_instrument_arrays
from ics.record import JobRecord, Status, Summary, names, read_jobs


@dataclass
class Metrics:
    """metrics.npz: the evaluation curve and the logged training windows."""

    eval_step: np.ndarray
    test_loss: np.ndarray
    test_acc: np.ndarray
    train_step: np.ndarray
    train_loss: np.ndarray
    train_acc: np.ndarray
    val_loss: np.ndarray
    val_acc: np.ndarray
    train_eval_loss: np.ndarray  # empty without trainer.train_eval_size
    train_eval_acc: np.ndarray


@dataclass
class Series:
    """An instrument's npz: measurement steps, one array per tag, and its meta."""

    steps: np.ndarray
    tags: Dict[str, np.ndarray]
    meta: Dict[str, Any]

    def get(self, tag: str) -> Optional[np.ndarray]:
        return self.tags.get(tag)


@dataclass
class Job:
    record: JobRecord
    num: int  # the job number (a single run: its position)
    config: Dict[str, Any]  # flat: "model.norm" -> "batch"; {} when unknown
    label: str  # the overrides that differ between the jobs loaded together
    metrics: Optional[Metrics]
    probes: Optional[Series]
    problems: List[str] = field(default_factory=list)  # files the job should have but that could not be read
    source: str = ""  # the sweep it came from when several are reported together ("" for one)

    @property
    def dir(self) -> Path:
        return self.record.dir

    @property
    def status(self) -> Status:
        return self.record.status

    @property
    def summary(self) -> Optional[Summary]:
        return self.record.summary

    @property
    def norm(self) -> str:
        return str(self.config.get("model.norm", "?"))

    @property
    def status_text(self) -> str:
        s, st = self.summary, self.status
        if st == Status.DIVERGED and s is not None and s.diverged_at_step is not None:
            return f"diverged @ {s.diverged_at_step}"
        if st == Status.FAILED and s is not None and s.error:
            return f"failed: {s.error[:60]}…" if len(s.error) > 60 else f"failed: {s.error}"
        if st in (Status.INTERRUPTED, Status.KILLED) and s is not None:
            from ics.record.jobs import stopped_text

            return stopped_text(self.record)  # as `ics status` says it
        if st == Status.RUNNING and s is not None:
            return f"{st} @ step {s.steps}"
        if st == Status.UNREADABLE and self.record.problem:
            return f"unreadable ({self.reason})"
        return str(st)

    @property
    def reason(self) -> str:
        """Why the record is unreadable, short: the file relative to the job, then what is wrong."""
        text = str(self.record.problem or "")
        for prefix in (f"{self.dir}/", f"{self.dir}"):
            if text.startswith(prefix):
                text = text[len(prefix) :]
                break
        return text if len(text) <= 80 else text[:79] + "…"

    @property
    def seed(self):
        return self.config.get("trainer.seed")

    def final(self, field: str = "final_test_acc") -> Optional[float]:
        """A summary number, with a diverged or failed run's score taken as chance (what it learnt
        before blowing up is not kept); None when the run has no result."""
        s = self.summary
        if s is None:
            return None
        if self.status.counts_as_chance and field in ("final_test_acc", "best_test_acc", "final_val_acc"):
            return s.chance_acc
        return getattr(s, field)

    def score(self, k: int) -> Tuple[Optional[float], bool]:
        """(mean of the last k evaluations, on validation?) from metrics.npz, else the summary."""
        m = self.metrics
        if m is not None and len(m.val_acc):
            return float(np.mean(m.val_acc[-k:])), True
        if m is not None and len(m.test_acc):
            return float(np.mean(m.test_acc[-k:])), False
        s = self.summary
        return (s.final_test_acc if s else None), False

    def result(self, k: int = 3) -> Optional[RunResult]:
        """The input to LR tolerance: finished or failed runs whose config is known."""
        if not self.config or not (self.status.finished or self.status == Status.FAILED):
            return None
        s = self.summary
        score, on_val = self.score(k)
        eff = [
            v.get("eff_lr_median")
            for v in ((s.instruments.get("weights") or {}) if s else {}).values()
            if v.get("eff_lr_median") is not None
        ]
        return RunResult(
            self.config,
            self.status,
            score,
            s.final_test_acc if s else None,
            s.chance_acc if s else None,
            float(np.mean(eff)) if eff else None,
            on_val,
        )


def _numeric(a: np.ndarray) -> bool:
    return isinstance(a, np.ndarray) and a.dtype.kind in "biuf"


def load_metrics(d: Path) -> Optional[Metrics]:
    """metrics.npz as float arrays; None when missing, damaged or not shaped like a run's curves
    (1-D numbers; each evaluation array as long as eval_step, each training one as train_step)."""
    try:
        # val_* are absent in records written before 0.2, train_eval_* in records before train_eval_size
        with np.load(d / names.METRICS, allow_pickle=False) as z:
            arrays = {k: z[k] if k in z.files else np.zeros(0) for k in names.METRIC_ARRAYS}
    except Exception:  # missing (failed job), truncated (BadZipFile, EOFError), object arrays or foreign
        return None
    if not all(_numeric(a) and a.ndim == 1 for a in arrays.values()):
        return None
    arrays = {k: a.astype(float) for k, a in arrays.items()}
    n_eval, n_train = len(arrays[names.EVAL_STEP]), len(arrays[names.TRAIN_STEP])
    if (
        any(len(arrays[k]) != n_eval for k in (names.TEST_LOSS, names.TEST_ACC))
        or any(
            len(arrays[k]) not in (0, n_eval)
            for k in (names.VAL_LOSS, names.VAL_ACC, names.TRAIN_EVAL_LOSS, names.TRAIN_EVAL_ACC)
        )
        or any(len(arrays[k]) not in (0, n_train) for k in (names.TRAIN_LOSS, names.TRAIN_ACC))
    ):
        return None
    return Metrics(**arrays)


def _plain_tree(v: Any, depth: int = 0) -> bool:
    """JSON-like data: mappings with string keys, lists, strings, numbers, None."""
    if depth > 20:
        return False
    if isinstance(v, dict):
        return all(isinstance(k, str) and _plain_tree(x, depth + 1) for k, x in v.items())
    if isinstance(v, list):
        return all(_plain_tree(x, depth + 1) for x in v)
    return v is None or isinstance(v, (str, int, float))


def load_series(d: Path, key: str) -> Optional[Series]:
    """An instrument's npz; None when missing, damaged, or not numbers with a 1-D `steps` and a
    JSON mapping as meta."""
    arrays = load_instrument_arrays(Path(d) / names.instrument_file(key))
    if arrays is None or "steps" not in arrays:
        return None
    meta = arrays.pop("meta")
    steps = arrays.pop("steps")
    if (
        not isinstance(meta, dict)
        or not _plain_tree(meta)
        or not _numeric(steps)
        or steps.ndim != 1
        or not all(_numeric(a) and a.ndim >= 1 for a in arrays.values())
    ):
        return None
    return Series(steps, arrays, meta)


def short_labels(override_lists: Sequence[List[str]]) -> List[str]:
    """Per job, the overrides whose values differ between jobs (e.g. "model.norm=batch optim.lr=1");
    constant ones (data.root=..., trainer.steps=...) would only make legends long."""
    parsed = [dict(kv for kv in map(parse_override, ovs) if kv) for ovs in override_lists]
    vary = varying_keys(parsed)
    out = []
    for ovs, p in zip(override_lists, parsed):
        text = " ".join(f"{k}={format_value(p[k])}" for k in vary if k in p)
        out.append(text or " ".join(ovs) or "(defaults)")
    return out


def common_overrides(jobs: Sequence[Job]) -> List[str]:
    """Overrides every job shares (shown once, not on every row)."""
    lists = [j.record.overrides for j in jobs]
    shared = set(lists[0]).intersection(*map(set, lists[1:])) if len(lists) > 1 else set()
    return [o for o in lists[0] if o in shared]


def load_jobs(*paths: Path) -> List[Job]:
    """Every job under each path (a sweep dir, or one run dir), ordered by path, then job number.
    When the jobs come from more than one sweep folder, each job's `source` names its folder."""
    records: List[Tuple[Path, JobRecord]] = []
    for path in map(Path, paths):
        if not path.is_dir():
            raise ConfigError(f"{path} is not a directory; give a run or sweep directory")
        found = read_jobs(path)
        if not found:
            raise ConfigError(
                f"{path}: no job directory under it (none holds summary.json or .hydra/); give a run or sweep directory"
            )
        records += [(path, r) for r in found]
    sources = [_source(path, r.dir, len(paths) > 1) for path, r in records]
    if len(set(sources)) == 1:
        sources = [""] * len(records)
    labels = short_labels([r.overrides for _, r in records])
    jobs = []
    for i, ((_, r), lab, src) in enumerate(zip(records, labels, sources)):
        job = Job(
            r,
            r.num if r.num is not None else i,
            flatten(r.config) if r.config else {},
            lab,
            load_metrics(r.dir),
            load_series(r.dir, "probe"),
            source=src,
        )
        job.problems = unreadable_files(job)
        jobs.append(job)
    return jobs


def _source(path: Path, job_dir: Path, several: bool) -> str:
    """The sweep folder a job belongs to: the folder holding it, relative to the path given (the
    path itself, as typed, when several were given)."""
    holder = job_dir.parent if job_dir != path else path
    try:
        rel = holder.relative_to(path)
    except ValueError:
        rel = Path(".")
    if several:
        return str(path / rel) if str(rel) != "." else str(path)
    return "." if str(rel) == "." else str(rel)


def unreadable_files(job: Job) -> List[str]:
    """The files of a job that do not read (its .hydra/ snapshot), and those
    its record says it wrote but that are missing or do not read."""
    out = list(job.record.file_problems)
    s = job.summary
    if s is None or s.steps == 0:
        return out
    if job.metrics is None:
        out.append(names.METRICS)
    for key in s.instruments:
        if key == "probe" and job.probes is None or key != "probe" and load_series(job.dir, key) is None:
            out.append(names.instrument_file(key))
    return out


def planned_jobs(path: Path) -> Optional[List[List[str]]]:
    """The override list of every job a sweep was launched with (written by the CLI), if known;
    None when absent or not a list of lists of strings (see planned_jobs_problem)."""
    jobs, _ = _read_planned(path)
    return jobs


def planned_jobs_problem(path: Path) -> Optional[str]:
    """One line when the sweep's jobs.json is there but cannot be read."""
    return _read_planned(path)[1]


def _read_planned(path: Path) -> Tuple[Optional[List[List[str]]], Optional[str]]:
    from ics.record.files import one_line, read_json

    where = Path(path) / names.PLANNED_JOBS
    try:
        jobs = read_json(where)
    except FileNotFoundError:
        return None, None
    except (OSError, ValueError) as e:
        return None, f"{names.PLANNED_JOBS}: {one_line(e)}"
    if not isinstance(jobs, list) or not all(isinstance(j, list) and all(isinstance(o, str) for o in j) for j in jobs):
        return None, f"{names.PLANNED_JOBS}: not a list of override lists"
    return jobs, None


def series(job: Job, key: str) -> Optional[Series]:
    """An instrument's series of a job (loaded on demand, cached on the job)."""
    cache = job.__dict__.setdefault("_series", {})
    if key not in cache:
        cache[key] = job.probes if key == "probe" else load_series(job.dir, key)
    return cache[key]
