"""Training: the loop (loop.py) and its parts, and the entry points (run.py).

loop.py        Trainer: the loop (batch, before_step hooks, update, after_step hooks) and a run's state
hooks/         what happens periodically: evaluation, checkpoints, TensorBoard, progress, the record,
               the instruments (one module each; hooks/__init__.py lists them in call order)
build.py       build_trainer(cfg, ...): the data, model, optimiser, sampler, instruments and hooks
summary.py     the run record's fields, the series, the records of a failure or a forced stop
run.py         check_runnable, train_and_evaluate(cfg, workdir), resume(workdir)
stopping.py    how a run stops and fails: signals, stop reasons, a full disk, the named phases
checkpoint.py  what a checkpoint holds; safe loading; config matching on resume
meter.py       train loss/acc window     optim.py    optimisers (registry)
threads.py     CPU thread policy         device.py   devices
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

# loaded on first use: `ics run` (and the stop handling it installs first) must not wait for torch
_EXPORTS = {
    "Trainer": "loop",
    "build_trainer": "build",
    "hparam_values": "hooks.tensorboard",
    "AlreadyFinished": "run",
    "check_resumable": "run",
    "check_runnable": "run",
    "resume": "run",
    "run_config": "run",
    "train_and_evaluate": "run",
    "RunDiskFull": "stopping",
    "RunInterrupted": "stopping",
}

if TYPE_CHECKING:
    from ics.train.build import build_trainer
    from ics.train.hooks.tensorboard import hparam_values
    from ics.train.loop import Trainer
    from ics.train.run import AlreadyFinished, check_resumable, check_runnable, resume, run_config, train_and_evaluate
    from ics.train.stopping import RunDiskFull, RunInterrupted


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'ics.train' has no attribute {name!r}")
    return getattr(importlib.import_module(f"ics.train.{_EXPORTS[name]}"), name)


def train(cfg, out_dir=None, data=None, **kw):
    """Library shortcut: build, fit, return the Summary (no run-directory semantics, no Hydra)."""
    from ics.train.build import build_trainer

    return build_trainer(cfg, out_dir, data=data, **kw).fit()


__all__ = [
    "Trainer",
    "build_trainer",
    "hparam_values",
    "RunDiskFull",
    "AlreadyFinished",
    "check_resumable",
    "check_runnable",
    "resume",
    "run_config",
    "train_and_evaluate",
    "RunInterrupted",
    "train",
]
