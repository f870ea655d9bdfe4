"""What a hook is: code the training loop calls at fixed points of a run.

    before_train(trainer)      the loop is about to start (at step 0, or at a resumed step)
    before_step(trainer, x, y) a batch is drawn; the update has not happened (trainer.step: its index)
    after_step(trainer)        the update is done and trainer.step counts it; trainer.last says
                               whether this is the run's last step (the final one, or a divergence)
    after_train(trainer)       the loop ended (last step, divergence or a stop request); nothing
                               that follows is cut by a signal
    before_save(trainer)       a checkpoint or the final record is about to be written: what a
                               hook buffers must be on disk first
    close(trainer, summary)    the run's files are written (summary: the final record; None after
                               a failure): the last words of a view, then release what the hook holds

A hook keeps its own state and reads the run from the trainer; it changes the run only through the
trainer's history, status and files, never the model or the random streams (measurements never
change training). The loop calls only the methods a hook overrides.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    import torch

    from ics.record import Summary
    from ics.train.loop import Trainer


class Hook:
    def before_train(self, trainer: "Trainer") -> None:
        pass

    def before_step(self, trainer: "Trainer", x: "torch.Tensor", y: "torch.Tensor") -> None:
        pass

    def after_step(self, trainer: "Trainer") -> None:
        pass

    def after_train(self, trainer: "Trainer") -> None:
        pass

    def before_save(self, trainer: "Trainer") -> None:
        pass

    def close(self, trainer: "Trainer", summary: Optional["Summary"]) -> None:
        pass


def overrides(hook: Hook, method: str) -> bool:
    """Whether the hook does something at `method` (the loop skips the others: no call per step)."""
    return getattr(type(hook), method) is not getattr(Hook, method)
