"""The instruments (ics.instruments) in the loop. Watch: the reference snapshot at step 0, before any
update, and the training batches of the instruments that look at them (before the update). Measure:
each instrument's measurements when it is due, after the step's evaluation. Their time goes to the
record's instrument_time_sec."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from ics.instruments import Batch
from ics.instruments.base import Instrument
from ics.train.hooks.base import Hook

if TYPE_CHECKING:
    import torch

    from ics.train.loop import Trainer


class Watch(Hook):
    def before_train(self, trainer: "Trainer") -> None:
        # only instruments that look at training batches are asked every step
        self.watchers = [i for i in trainer.instruments if type(i).wants_batch is not Instrument.wants_batch]
        if trainer.fresh:
            measure(trainer, 0)  # the reference snapshot, before any update

    def before_step(self, trainer: "Trainer", x: "torch.Tensor", y: "torch.Tensor") -> None:
        for inst in self.watchers:
            if inst.wants_batch(trainer.step):
                timed(trainer, inst.key, inst.observe_batch, Batch(trainer.step, x, y))


class Measure(Hook):
    def after_step(self, trainer: "Trainer") -> None:
        measure(trainer, trainer.step, trainer.last)


def measure(trainer: "Trainer", step: int, final: bool = False) -> None:
    for inst in trainer.instruments:
        if inst.due(step, final):
            timed(trainer, inst.key, inst.measure, step)


def timed(trainer: "Trainer", key: str, fn, *args) -> None:
    t0 = time.perf_counter()
    fn(*args)
    trainer.timers[f"instrument.{key}"] += time.perf_counter() - t0
