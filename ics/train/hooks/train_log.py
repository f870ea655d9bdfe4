"""The train loss and accuracy over each window of trainer.log_every steps (the meter), their
TensorBoard scalars with the learning rate and steps/s, and divergence: a window whose largest loss
is not finite or exceeds trainer.divergence_loss ends the run as `diverged` (a result, not a crash)."""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Optional, Tuple

from ics.record import names
from ics.train.hooks.base import Hook

if TYPE_CHECKING:
    from ics.train.loop import Trainer


class TrainLog(Hook):
    def __init__(self):
        self.last: Tuple[int, float] = (0, 0.0)  # (step, time) of the window's start

    def before_train(self, trainer: "Trainer") -> None:
        self.last = (trainer.step, trainer.t_start)

    def after_step(self, trainer: "Trainer") -> None:
        if trainer.step % trainer.cfg.trainer.log_every == 0 or trainer.step == trainer.cfg.trainer.steps:
            self.log(trainer)

    def log(self, trainer: "Trainer") -> None:
        last_step, last_t = self.last
        m = trainer.meter.read()
        now = time.perf_counter()
        self.last = (trainer.step, now)
        sps = (trainer.step - last_step) / max(now - last_t, 1e-9)
        h = trainer.history
        h[names.TRAIN_STEP].append(trainer.step)
        h[names.TRAIN_LOSS].append(m["loss"])
        h[names.TRAIN_ACC].append(m["acc"])
        trainer.steps_per_sec = sps
        trainer.log_scalars(
            {
                names.TAG_TRAIN_LOSS: m["loss"],
                names.TAG_TRAIN_ACC: m["acc"],
                names.TAG_LR: trainer.opt.param_groups[0]["lr"],
                names.TAG_STEPS_PER_SEC: sps,
            }
        )
        if not math.isfinite(m["loss_max"]) or m["loss_max"] > trainer.cfg.trainer.divergence_loss:
            trainer.diverged()


def latest(trainer: "Trainer", key: str) -> Optional[float]:
    """The last value of a history series (None before the first)."""
    series = trainer.history[key]
    return series[-1] if series else None
