"""The typed run record: `summary.json`, written and read only here.

A run writes its record when it starts (status `running`), at every checkpoint, and when it ends.
`Status` lists every state a job can be in; `killed` and `unreadable` are never written, they are
what a reader concludes (ics.record.jobs): a record that says `running` while no process holds the
run lock was killed; a file that does not parse is unreadable.
"""

from __future__ import annotations

import dataclasses
import os
import re
import socket
import time
import typing
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Dict, List, Optional

from ics.record import names
from ics.record.files import one_line, read_json, write_json

SCHEMA_VERSION = 2


class Status(str, Enum):
    RUNNING = "running"  # training (or killed: see ics.record.jobs)
    COMPLETED = "completed"
    DIVERGED = "diverged"  # train loss non-finite or above trainer.divergence_loss: a result
    NOT_LEARNING = "not_learning"  # ended within report.not_learning_margin of chance: a result
    INTERRUPTED = "interrupted"  # stopped by SIGINT/SIGTERM after writing a checkpoint: resumable
    FAILED = "failed"  # an error; the record holds it
    KILLED = "killed"  # derived: died without a word (kill -9, node failure); resumable if it has a checkpoint
    UNREADABLE = "unreadable"  # derived: summary.json does not parse

    def __str__(self) -> str:
        return self.value

    @property
    def finished(self) -> bool:
        """A result: resuming or re-running the sweep leaves it alone."""
        return self in (Status.COMPLETED, Status.DIVERGED, Status.NOT_LEARNING)

    @property
    def counts_as_chance(self) -> bool:
        """Runs whose accuracy is taken as chance in LR tolerance (what they learnt is not kept)."""
        return self in (Status.DIVERGED, Status.FAILED)


class RecordError(ValueError):
    """A summary.json that cannot be read as a run record."""


@dataclass
class Summary:
    status: Status
    schema_version: int = SCHEMA_VERSION
    steps: int = 0  # optimiser steps done
    steps_requested: int = 0
    diverged_at_step: Optional[int] = None
    last_eval_step: Optional[int] = None
    metric: str = "accuracy"  # what the *_acc fields hold: accuracy, or for regression tasks "r2" (R²)
    final_test_acc: Optional[float] = None  # at last_eval_step
    final_test_loss: Optional[float] = None
    best_test_acc: Optional[float] = None
    best_test_acc_step: Optional[int] = None
    final_train_loss: Optional[float] = None
    final_train_acc: Optional[float] = None
    final_val_acc: Optional[float] = None  # with data.val_size: the held-out part of the training split
    final_val_loss: Optional[float] = None
    # with trainer.train_eval_size: a fixed subset of the training split scored in eval mode, like the test split
    final_train_eval_acc: Optional[float] = None
    final_train_eval_loss: Optional[float] = None
    best_val_acc: Optional[float] = None
    best_val_acc_step: Optional[int] = None
    steps_to_target: Dict[str, Optional[int]] = field(default_factory=dict)  # first evaluation at/above target
    steps_to_target_prev: Dict[str, Optional[int]] = field(default_factory=dict)  # the evaluation before it:
    # the target was reached somewhere in (prev, steps] -- the resolution of the evaluation schedule
    chance_acc: Optional[float] = None  # majority-class rate of the test split
    steps_per_sec: Optional[float] = None
    train_steps_per_sec: Optional[float] = None  # excluding evaluation and instruments
    wall_time_sec: Optional[float] = None  # of this process (a resumed run: since the resume)
    wall_time_total_sec: Optional[float] = None  # over every segment of a resumed run
    eval_time_sec: Optional[float] = None
    instrument_time_sec: Dict[str, float] = field(default_factory=dict)
    checkpoint_time_sec: Optional[float] = None
    device: Optional[str] = None
    threads: Optional[int] = None
    dataset: Dict[str, Any] = field(default_factory=dict)
    instruments: Dict[str, Any] = field(default_factory=dict)  # each instrument's final values
    overrides: List[str] = field(default_factory=list)
    config: Dict[str, Any] = field(default_factory=dict)
    resumed_at: List[int] = field(default_factory=list)  # steps this run was resumed from
    checkpointing: Optional[int] = None  # written just before checkpoint.pt of this step is put in place: the
    # checkpoint on disk is of this step or the one before; a reader of a dead run takes it from the checkpoint
    recalibrated: Dict[str, Any] = field(default_factory=dict)  # `ics recalibrate`: EMA vs precise-BN accuracy
    error: Optional[str] = None
    traceback: Optional[str] = None
    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)
    updated: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    started: Optional[str] = None  # when the run began (kept over resumes; a copied folder keeps it too)
    environment: Dict[str, Any] = field(
        default_factory=dict
    )  # versions, CPU kernels, threads, device (ics.train.device)

    @property
    def drift(self) -> Dict[str, Dict[str, float]]:
        """Final drift per probe point (the probe instrument's summary)."""
        return self.instruments.get("probe") or {}

    def to_json(self) -> Dict[str, Any]:
        d = dataclasses.asdict(self)
        d["status"] = self.status.value
        return d

    @classmethod
    def from_json(cls, d: Dict[str, Any]) -> "Summary":
        """A record from parsed JSON. Every field is checked against its declared type (a record is
        data from a folder anyone may have written): a wrong type is a RecordError, never a crash
        later in a reader."""
        if not isinstance(d, dict) or "status" not in d:
            raise RecordError("not a run record (no status)")
        version = d.get("schema_version", 1)
        if not _is_int(version):
            raise RecordError(f"schema_version {_show(version)} is not a whole number")
        if version > SCHEMA_VERSION:
            raise RecordError(
                f"written by a newer ics (record schema {version}, this ics reads up to {SCHEMA_VERSION})"
            )
        d = dict(d)
        if version == 1:  # v0.1: drift lived at the top level, probe time under its own key
            d["instruments"] = {"probe": d.pop("drift", {}) or {}}
            if d.get("probe_time_sec") is not None:
                d["instrument_time_sec"] = {"probe": d.pop("probe_time_sec")}
        if not isinstance(d["status"], str):
            raise RecordError(f"status {_show(d['status'])} is not a string")
        try:
            status = Status(d["status"])
        except ValueError:
            raise RecordError(f"unknown status {d['status']!r}") from None
        hints = _field_types()
        kwargs = {}
        for k, v in d.items():
            if k not in hints or k in ("status", "schema_version"):
                continue
            problem = _type_problem(v, hints[k])
            if problem is None and k == "instruments":
                problem = _instruments_problem(v)
            if problem is None and k in ("config", "dataset", "recalibrated", "environment"):
                problem = _tree_problem(v)
            if problem is not None:
                raise RecordError(f"{k} is {_show(v)}: {problem}")
            kwargs[k] = v
        kwargs.update(status=status, schema_version=SCHEMA_VERSION)
        return cls(**kwargs)


# --- checking a record's field types ----------------------------------------------------------------
_HINTS: Optional[Dict[str, Any]] = None
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,99}$")  # an instrument's key names its npz file


def _field_types() -> Dict[str, Any]:
    global _HINTS
    if _HINTS is None:
        _HINTS = typing.get_type_hints(Summary)
    return _HINTS


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _show(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 40 else text[:37] + "..."


def _type_problem(v: Any, hint: Any) -> Optional[str]:
    """Why v does not fit the type hint (None when it does)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return None
    if origin is typing.Union:  # Optional[X]
        if v is None and type(None) in args:
            return None
        return _type_problem(v, next(a for a in args if a is not type(None)))
    if hint is int:
        return None if _is_int(v) else "not a whole number"
    if hint is float:
        return None if _is_num(v) else "not a number"
    if hint is str:
        return None if isinstance(v, str) else "not a string"
    if origin in (list, List):
        if not isinstance(v, list):
            return "not a list"
        return next((f"an item {p}" for x in v if (p := _type_problem(x, args[0])) is not None), None)
    if origin in (dict, Dict):
        if not isinstance(v, dict):
            return "not a mapping"
        return next((f"{k!r}: {p}" for k, x in v.items() if (p := _type_problem(x, args[1])) is not None), None)
    return None


def _tree_problem(v: Any, depth: int = 0) -> Optional[str]:
    """A config-like tree: mappings of names to scalars, lists of scalars, or mappings."""
    if depth > 20:
        return "nested too deeply"
    for k, x in v.items():
        if isinstance(x, dict):
            p = _tree_problem(x, depth + 1)
            if p is not None:
                return p
        elif isinstance(x, list):
            if not all(x_ is None or isinstance(x_, (str, int, float)) for x_ in x):
                return f"{k}: a list of something other than plain values"
        elif not (x is None or isinstance(x, (str, int, float))):
            return f"{k}: not a plain value"
    return None


def _instruments_problem(v: Dict[str, Any]) -> Optional[str]:
    """{instrument key: {name: {metric: number}} or {name: number}}; the probe's drift is {point: {metric: number}}."""
    for key, val in v.items():
        if not _KEY.match(key):
            return f"{key!r} is not an instrument name"
        if not isinstance(val, dict):
            return f"{key}: not a mapping"
        for name, inner in val.items():
            if isinstance(inner, dict):
                bad = [m for m, x in inner.items() if x is not None and not _is_num(x)]
                if bad:
                    return f"{key}.{name}.{bad[0]}: not a number"
            elif key == "probe" or inner is not None and not _is_num(inner):
                return f"{key}.{name}: not a number or a mapping of numbers"
    return None


def write_summary(run_dir: Path, summary: Summary, before_rename=None) -> None:
    """Write the record atomically (a FullDiskError naming the file when the disk is full: the old record
    then stays whole). before_rename: see files.atomic_write."""
    summary.updated = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    write_json(Path(run_dir) / names.SUMMARY, summary.to_json(), before_rename=before_rename)


MAX_RECORD_BYTES = 16 << 20  # a record is a few kB; anything far larger is not one


def read_summary(run_dir: Path) -> Summary:
    """The record of a run directory. FileNotFoundError if there is none, RecordError (one line,
    naming the file and what is wrong) if it cannot be read as a record."""
    path = Path(run_dir) / names.SUMMARY
    try:
        return Summary.from_json(read_json(path, MAX_RECORD_BYTES))
    except FileNotFoundError:
        raise
    except (ValueError, RecursionError) as e:  # JSONDecodeError, RecordError and UnicodeDecodeError are ValueErrors
        raise RecordError(f"{path}: {one_line(e)}") from None
    except OSError as e:  # a folder where the file should be, no permission, an I/O error
        raise RecordError(f"{path}: cannot be read ({e.strerror or type(e).__name__})") from None


# sweep.objective -> the summary field that holds it
OBJECTIVE_FIELDS = {
    "val_acc": "final_val_acc",
    "best_val_acc": "best_val_acc",
    "val_loss": "final_val_loss",
    "test_acc": "final_test_acc",
    "train_loss": "final_train_loss",
}


def objective_value(summary: Optional["Summary"], objective: str, worst_loss: float) -> Optional[float]:
    """A job's sweep.objective from its record. A run that diverged or never evaluated scores what it
    learnt: chance for an accuracy, `worst_loss` (trainer.divergence_loss) for a loss, so that a search
    through a diverging learning rate goes on rather than failing the trial. None without a record."""
    import math

    if summary is None or objective not in OBJECTIVE_FIELDS:
        return None
    value = getattr(summary, OBJECTIVE_FIELDS[objective], None)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    if objective.endswith("loss"):
        return float(worst_loss)
    return float(summary.chance_acc) if summary.chance_acc is not None else 0.0
