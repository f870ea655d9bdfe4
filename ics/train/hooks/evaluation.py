"""Evaluations of the test split (and the validation split, when one is held out) at step 0, at the
steps of trainer.eval_every / eval_log_points (ics.models.evaluate.eval_schedule), and at a divergence."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Dict

import torch

from ics.models.evaluate import eval_schedule, evaluate_model
from ics.record import Status, names
from ics.train import stopping
from ics.train.hooks.base import Hook

if TYPE_CHECKING:
    from ics.train.loop import Trainer


class Evaluation(Hook):
    def before_train(self, trainer: "Trainer") -> None:
        t = trainer.cfg.trainer
        self.at = eval_schedule(t.steps, t.eval_every, t.eval_log_points)
        if trainer.fresh:
            self.evaluate(trainer)

    def after_step(self, trainer: "Trainer") -> None:
        if trainer.status == Status.DIVERGED or trainer.step in self.at:
            self.evaluate(trainer)

    @torch.no_grad()
    def evaluate(self, trainer: "Trainer") -> Dict[str, float]:
        """Full test set, model in eval mode (BN uses its running statistics). The score is the
        accuracy, or for regression R² = 1 − SSE / SSE of predicting the training targets' mean."""
        if trainer.step == trainer.cfg.trainer.steps:
            stopping.reached("final-evaluation")
        t0 = time.perf_counter()
        data, h, batch = trainer.data, trainer.history, trainer.cfg.trainer.eval_batch_size
        loss, acc = evaluate_model(trainer.model, data, batch)
        h[names.EVAL_STEP].append(trainer.step)
        h[names.TEST_LOSS].append(loss)
        h[names.TEST_ACC].append(acc)
        trainer.log_scalars({names.TAG_TEST_LOSS: loss, names.TAG_TEST_ACC: acc})
        if data.x_val is not None:
            vloss, vacc = evaluate_model(trainer.model, data, batch, data.x_val, data.y_val)
            h[names.VAL_LOSS].append(vloss)
            h[names.VAL_ACC].append(vacc)
            trainer.log_scalars({names.TAG_VAL_LOSS: vloss, names.TAG_VAL_ACC: vacc})
        trainer.timers["eval"] += time.perf_counter() - t0
        return {"loss": loss, "acc": acc}
