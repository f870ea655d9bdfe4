"""The run's record as the trainer stands (`summary`: every field of ics.record.Summary), its series
(metrics.npz and one npz per instrument), and the records of a run that failed or was forced to stop."""

from __future__ import annotations

import copy
import math
import time
import traceback
from typing import TYPE_CHECKING, Optional

import numpy as np
import torch

from ics.config import to_dict
from ics.record import Status, Summary, names, write_npz, write_summary
from ics.record.files import full_disk_cause, whole
from ics.train.device import device_name, environment
from ics.train.stopping import full_disk_reason

if TYPE_CHECKING:
    from ics.train.loop import Trainer


def summary(trainer: "Trainer") -> Summary:
    h, cfg = trainer.history, trainer.cfg
    accs, vaccs = h[names.TEST_ACC], h[names.VAL_ACC]
    finite = [a for a in accs if not math.isnan(a)]
    best_i = int(np.nanargmax(accs)) if finite else None
    best_v = int(np.nanargmax(vaccs)) if [a for a in vaccs if not math.isnan(a)] else None
    to_target, to_target_prev = steps_to_targets(trainer)
    wall = time.perf_counter() - getattr(trainer, "t_start", time.perf_counter())
    steps_here = trainer.step - (trainer.resumed_at[-1] if trainer.resumed_at else 0)
    timers = trainer.timers
    spent = timers["eval"] + timers["checkpoint"] + sum(v for k, v in timers.items() if k.startswith("instrument."))
    data = trainer.data
    return Summary(
        status=trainer.status,
        steps=trainer.step,
        steps_requested=cfg.trainer.steps,
        diverged_at_step=trainer.diverged_at,
        last_eval_step=int(h[names.EVAL_STEP][-1]) if accs else None,
        final_test_acc=accs[-1] if accs else None,
        final_test_loss=h[names.TEST_LOSS][-1] if accs else None,
        best_test_acc=accs[best_i] if best_i is not None else None,
        best_test_acc_step=int(h[names.EVAL_STEP][best_i]) if best_i is not None else None,
        final_train_loss=h[names.TRAIN_LOSS][-1] if h[names.TRAIN_LOSS] else None,
        final_train_acc=h[names.TRAIN_ACC][-1] if h[names.TRAIN_ACC] else None,
        final_val_acc=vaccs[-1] if vaccs else None,
        final_val_loss=h[names.VAL_LOSS][-1] if vaccs else None,
        final_train_eval_acc=h[names.TRAIN_EVAL_ACC][-1] if h[names.TRAIN_EVAL_ACC] else None,
        final_train_eval_loss=h[names.TRAIN_EVAL_LOSS][-1] if h[names.TRAIN_EVAL_LOSS] else None,
        best_val_acc=vaccs[best_v] if best_v is not None else None,
        best_val_acc_step=int(h[names.EVAL_STEP][best_v]) if best_v is not None else None,
        steps_to_target=to_target,
        steps_to_target_prev=to_target_prev,
        chance_acc=chance_acc(trainer),
        steps_per_sec=steps_here / max(wall, 1e-9) if wall > 0 else None,
        train_steps_per_sec=steps_here / max(wall - spent, 1e-9) if wall > 0 else None,
        wall_time_sec=wall,
        wall_time_total_sec=trainer.wall_before + wall,
        eval_time_sec=timers["eval"],
        instrument_time_sec={k.split(".", 1)[1]: v for k, v in timers.items() if k.startswith("instrument.")},
        checkpoint_time_sec=timers["checkpoint"],
        device=device_name(trainer.device),
        threads=trainer.threads,
        dataset={
            "name": data.name,
            "train": int(data.x_train.shape[0]),
            "test": int(data.x_test.shape[0]),
            "source": data.source,
            "task": data.task,
        },
        metric="r2" if trainer.regression else "accuracy",
        instruments={inst.key: inst.summary() for inst in trainer.instruments},
        overrides=trainer.overrides,
        config=to_dict(cfg),
        resumed_at=list(trainer.resumed_at),
        started=trainer.started,
        environment=environment(trainer.device, trainer.threads),
    )


def chance_acc(trainer: "Trainer") -> float:
    """The score of a model that learnt nothing: the majority-class rate; for regression R² = 0."""
    if trainer.regression:
        return 0.0
    counts = torch.bincount(trainer.data.y_test.cpu(), minlength=trainer.data.num_classes)
    return float(counts.max()) / float(counts.sum())


def steps_to_targets(trainer: "Trainer") -> tuple:
    """{target: first evaluated step with test score >= target}, {target: the evaluation before it}."""
    first, prev = {}, {}
    steps, accs = trainer.history[names.EVAL_STEP], trainer.history[names.TEST_ACC]
    for target in trainer.cfg.report.targets:
        hit = next((i for i, a in enumerate(accs) if a >= target), None)
        first[f"{target:g}"] = steps[hit] if hit is not None else None
        prev[f"{target:g}"] = steps[hit - 1] if hit else None
    return first, prev


def write_series(trainer: "Trainer") -> None:
    assert trainer.out_dir is not None
    write_npz(trainer.out_dir / names.METRICS, {k: np.asarray(v, dtype=float) for k, v in trainer.history.items()})
    for inst in trainer.instruments:
        write_npz(trainer.out_dir / names.instrument_file(inst.key), inst.arrays())


def failure_record(trainer: "Trainer", error: BaseException, events_file: str) -> Optional[Summary]:
    """The record of a crash mid-run (None: the record on disk stays). A full disk (ENOSPC,
    EDQUOT, EROFS) is recorded as `failed` at the step of the checkpoint on disk, whose record it
    copies; without a checkpoint yet, the run as it stands; a resumed run that wrote nothing yet
    keeps the record of its checkpoint. Any other error: the run as it stands, with the traceback."""
    full = full_disk_cause(error)
    if full is None:
        record = summary(trainer)
        text = str(error).strip()
        record.error = f"{type(error).__name__}: {text.splitlines()[0] if text else ''}".rstrip(": ")
        record.traceback = "".join(traceback.format_exception(error))
        return record
    if trainer.kept is not None:
        record = copy.copy(trainer.kept)  # the record of the checkpoint on disk
    elif not trainer.resumed_at:
        record = summary(trainer)  # no checkpoint yet: the run as it stands
    else:
        return None
    record.status, record.checkpointing = Status.FAILED, None
    record.error = f"{full_disk_reason(full)}: {full.filename or events_file} at step {trainer.step}"
    record.traceback = None
    return record


def write_forced_stop_record(trainer: "Trainer") -> Optional[Summary]:
    """A second signal stopped the run between two writes, mid-step: the checkpoint on disk is
    the last periodic one, and the record says `interrupted` at its step (without a checkpoint:
    at the step reached, with nothing to resume from). Returns the record (None: none written)."""
    with whole():
        record = copy.copy(trainer.kept) if trainer.kept is not None else None
        if record is None:
            try:
                record = summary(trainer)
            except Exception:  # noqa: BLE001 - stopped mid-update: the record on disk stays
                record = None
        if record is not None and trainer.out_dir is not None:
            record.status, record.checkpointing = Status.INTERRUPTED, None
            try:
                write_summary(trainer.out_dir, record)
            except OSError:
                pass  # best effort: the record on disk stays whole
    return record
