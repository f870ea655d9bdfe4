"""What a person watching sees: the bar or lines (trainer.progress) and progress.json, which the
sweep's live view reads (ics/train/progress.py draws both). Updated at each train-log window and
once more at the end, with the final evaluation."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from ics.record import names
from ics.train.hooks.base import Hook
from ics.train.hooks.train_log import latest

if TYPE_CHECKING:
    from ics.train.loop import Trainer
    from ics.train.progress import Progress


class ProgressDisplay(Hook):
    def __init__(self):
        self.bar: Optional["Progress"] = None

    def before_train(self, trainer: "Trainer") -> None:
        from ics.train.progress import Progress, display_mode

        t = trainer.cfg.trainer
        display = Progress(
            t.steps,
            start=trainer.step,
            mode=display_mode(t.progress),
            out_dir=trainer.out_dir,
            label=trainer.label,
            every_sec=t.progress_every_sec,
            console=trainer.console,
            metric="r2" if trainer.regression else "accuracy",
            t0=trainer.t_start,  # steps/s: the average since training (or its resume) began
        )
        self.bar = trainer.loop_scope.enter_context(display)  # closed with the loop, also by an error

    def after_step(self, trainer: "Trainer") -> None:
        assert self.bar is not None
        if trainer.step % trainer.cfg.trainer.log_every == 0 or trainer.step == trainer.cfg.trainer.steps:
            self.bar.update(trainer.step, latest(trainer, names.TRAIN_LOSS), latest(trainer, names.TEST_ACC))

    def after_train(self, trainer: "Trainer") -> None:
        assert self.bar is not None  # the display's last word is the final evaluation
        self.bar.update(trainer.step, latest(trainer, names.TRAIN_LOSS), latest(trainer, names.TEST_ACC), force=True)
