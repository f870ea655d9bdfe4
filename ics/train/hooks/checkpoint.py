"""checkpoint.pt every trainer.checkpoint_every steps (not at the last step: the final write has its
own), with the series and the record as they stand: a kill loses at most one interval."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from ics.record import Status, write_summary
from ics.record.files import whole
from ics.train import checkpoint as ckpt
from ics.train import stopping
from ics.train.hooks.base import Hook
from ics.train.summary import summary, write_series

if TYPE_CHECKING:
    from ics.train.loop import Trainer


class Checkpoint(Hook):
    def after_step(self, trainer: "Trainer") -> None:
        every = trainer.cfg.trainer.checkpoint_every
        if every and trainer.step % every == 0 and not trainer.last:
            self.save(trainer)

    def save(self, trainer: "Trainer") -> None:
        save(trainer)


def save(trainer: "Trainer") -> None:
    """The series, checkpoint.pt and the record as they stand."""
    if trainer.out_dir is None:
        return
    with whole():  # a second signal waits for the checkpoint and its record (tens of ms)
        t0 = time.perf_counter()
        trainer.call("before_save")
        write_series(trainer)
        write_checkpoint(trainer)
        record = summary(trainer)
        write_summary(trainer.out_dir, record)
        trainer.kept = record
        trainer.timers["checkpoint"] += time.perf_counter() - t0


def write_checkpoint(trainer: "Trainer") -> None:
    """checkpoint.pt of this step, announced first by a `running` record saying `checkpointing`
    at this step: whenever the process dies, the record is never behind the checkpoint (a reader
    of a dead run whose record says checkpointing takes the step from the checkpoint itself)."""
    assert trainer.out_dir is not None
    pending = summary(trainer)
    pending.status, pending.checkpointing = Status.RUNNING, trainer.step
    write_summary(trainer.out_dir, pending)
    ckpt.save(
        ckpt.path_of(trainer.out_dir), trainer.state_dict(), before_rename=lambda: stopping.reached("mid-checkpoint")
    )
