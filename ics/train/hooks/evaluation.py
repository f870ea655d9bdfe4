"""Evaluations of the test split (and the validation split, when one is held out, and a fixed subset
of the training split with trainer.train_eval_size) at step 0, at the steps of trainer.eval_every /
eval_log_points (ics.models.evaluate.eval_schedule), and at a divergence."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Dict

import torch

from ics.data import stratified_indices
from ics.models.evaluate import eval_schedule, evaluate_model
from ics.record import Status, names
from ics.train import stopping
from ics.train.hooks.base import Hook

if TYPE_CHECKING:
    from ics.train.loop import Trainer

# seed of the training subset's draw: one subset for every run (every seed scores the same examples),
# drawn by its own generator, so the global RNG and the training batches never see it
TRAIN_EVAL_SEED = 0


def train_eval_indices(y_train: torch.Tensor, size: int, task: str) -> torch.Tensor:
    """The training examples trainer.train_eval_size scores: a stratified draw (classes in their
    training proportions; for regression a plain draw), sorted; all of them when size >= the split."""
    n = int(y_train.shape[0])
    if size >= n:
        return torch.arange(n)
    if task == "regression":
        gen = torch.Generator().manual_seed(TRAIN_EVAL_SEED)
        return torch.randperm(n, generator=gen)[:size].sort().values
    return stratified_indices(y_train, size, TRAIN_EVAL_SEED)


class Evaluation(Hook):
    def before_train(self, trainer: "Trainer") -> None:
        t = trainer.cfg.trainer
        self.at = eval_schedule(t.steps, t.eval_every, t.eval_log_points)
        self.x_sub = self.y_sub = None
        size = getattr(t, "train_eval_size", 0)
        if size:
            data = trainer.data
            idx = train_eval_indices(data.y_train, size, data.task).to(data.y_train.device)
            self.x_sub, self.y_sub = data.x_train[idx], data.y_train[idx]
            if self.x_sub.dim() == 4 and data.x_train.is_contiguous(memory_format=torch.channels_last):
                self.x_sub = self.x_sub.contiguous(memory_format=torch.channels_last)  # as the loop's data
        if trainer.fresh:
            self.evaluate(trainer)

    def after_step(self, trainer: "Trainer") -> None:
        if trainer.status == Status.DIVERGED or trainer.step in self.at:
            self.evaluate(trainer)

    @torch.no_grad()
    def evaluate(self, trainer: "Trainer") -> Dict[str, float]:
        """Full test set, model in eval mode (BN uses its running statistics, dropout is off). The
        score is the accuracy, or for regression R² = 1 − SSE / SSE of predicting the training
        targets' mean. The validation split and the training subset are scored the same way."""
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
        if self.x_sub is not None:
            tloss, tacc = evaluate_model(trainer.model, data, batch, self.x_sub, self.y_sub)
            h[names.TRAIN_EVAL_LOSS].append(tloss)
            h[names.TRAIN_EVAL_ACC].append(tacc)
            trainer.log_scalars({names.TAG_TRAIN_EVAL_LOSS: tloss, names.TAG_TRAIN_EVAL_ACC: tacc})
        trainer.timers["eval"] += time.perf_counter() - t0
        return {"loss": loss, "acc": acc}
