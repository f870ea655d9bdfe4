"""The run record when the loop starts: `running` (what `ics status` reads while the run trains).
The record's fields are ics/train/summary.py's; the checkpoint's record is written with it
(checkpoint.py), the final one by Trainer.finish."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ics.record import write_summary
from ics.train.hooks.base import Hook
from ics.train.summary import summary

if TYPE_CHECKING:
    from ics.train.loop import Trainer


class Record(Hook):
    def before_train(self, trainer: "Trainer") -> None:
        if trainer.out_dir is None:
            return
        record = summary(trainer)
        write_summary(trainer.out_dir, record)
        if not trainer.fresh:
            trainer.kept = record  # a resumed run: this is the record of the checkpoint it resumed from
