"""The typed run record: `summary.json`, written and read only here.

A run writes its record when it starts (status `running`), at every checkpoint, and when it ends.
`Status` lists every state a job can be in; `killed` and `unreadable` are never written, they are
what a reader concludes (ics.record.jobs): a record that says `running` while no process holds the
run lock was killed; a file that does not parse is unreadable.
"""
from __future__ import annotations

import dataclasses
import json
import os
import socket
import time
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Dict, List, Optional

from ics.record import names
from ics.record.files import write_json

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
    recalibrated: Dict[str, Any] = field(default_factory=dict)  # `ics recalibrate`: EMA vs precise-BN accuracy
    error: Optional[str] = None
    traceback: Optional[str] = None
    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)
    updated: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S%z"))

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
        if not isinstance(d, dict) or "status" not in d:
            raise RecordError("not a run record (no status)")
        version = d.get("schema_version", 1)
        if version > SCHEMA_VERSION:
            raise RecordError(f"written by a newer ics (record schema {version}, this ics reads up to "
                              f"{SCHEMA_VERSION})")
        d = dict(d)
        if version == 1:  # v0.1: drift lived at the top level, probe time under its own key
            d["instruments"] = {"probe": d.pop("drift", {}) or {}}
            if d.get("probe_time_sec") is not None:
                d["instrument_time_sec"] = {"probe": d.pop("probe_time_sec")}
        try:
            status = Status(d["status"])
        except ValueError:
            raise RecordError(f"unknown status {d['status']!r}") from None
        known = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in d.items() if k in known}
        kwargs.update(status=status, schema_version=SCHEMA_VERSION)
        return cls(**kwargs)


def write_summary(run_dir: Path, summary: Summary) -> None:
    summary.updated = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    write_json(Path(run_dir) / names.SUMMARY, summary.to_json())


def read_summary(run_dir: Path) -> Summary:
    """The record of a run directory. FileNotFoundError if there is none, RecordError if unreadable."""
    path = Path(run_dir) / names.SUMMARY
    text = path.read_text()
    try:
        return Summary.from_json(json.loads(text))
    except ValueError as e:  # JSONDecodeError is a ValueError
        raise RecordError(f"{path}: {str(e).splitlines()[0]}") from None
