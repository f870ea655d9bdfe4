"""When a model is evaluated, and its loss and score on held-out data. Below both the training loop
and the instruments (bn_stats evaluates with EMA and precise statistics at the same steps as the
loop), so neither imports the other."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from ics.data import DataBundle


@torch.no_grad()
def evaluate_model(model, data: DataBundle, batch_size: int, x=None, y=None) -> tuple:
    """(mean loss, score) on the test split (or x, y) in eval mode; one host sync. Leaves the model
    in train mode (the loop's mode)."""
    x = data.x_test if x is None else x
    y = data.y_test if y is None else y
    model.eval()
    try:
        if data.task == "regression":
            base = data.y_train.mean(dim=0)
            sse = torch.zeros((), device=x.device)
            sst = torch.zeros((), device=x.device)
            for i in range(0, x.shape[0], batch_size):
                out = model(x[i : i + batch_size])
                sse += ((out - y[i : i + batch_size]) ** 2).sum()
                sst += ((base - y[i : i + batch_size]) ** 2).sum()
            sse, sst = torch.stack([sse, sst]).tolist()
            return sse / y.numel(), 1.0 - sse / max(sst, 1e-30)
        loss_sum = torch.zeros((), device=x.device)
        correct = torch.zeros((), device=x.device)
        for i in range(0, x.shape[0], batch_size):
            logits = model(x[i : i + batch_size])
            loss_sum += F.cross_entropy(logits, y[i : i + batch_size], reduction="sum")
            correct += (logits.argmax(1) == y[i : i + batch_size]).sum()
        loss, acc = (torch.stack([loss_sum, correct]) / x.shape[0]).tolist()
        return loss, acc
    finally:
        model.train()


class EvalSchedule:
    """The steps to evaluate after, answered arithmetically: every `every` steps and the last, plus
    `log_points` log-spaced steps from 10 up to the first `every` (dense early, where learning curves
    move fastest). Memory does not grow with `steps` (a set of every eval step of a 10**12-step run
    would not fit in memory); `step in schedule` is O(1) and iterating yields the steps in order."""

    def __init__(self, steps: int, every: int, log_points: int):
        self.steps, self.every = int(steps), int(every)
        early = set()
        if log_points and every > 10:  # at most min(log_points, every) distinct values
            early = {int(round(v)) for v in np.geomspace(10, every, log_points + 1)[:-1] if round(v) < steps}
        self.early = frozenset(early)

    def __contains__(self, step: int) -> bool:
        return step == self.steps or (0 < step <= self.steps and step % self.every == 0) or step in self.early

    def __iter__(self):
        # the early points are < every (a point that rounds up to `every` is the first multiple)
        yield from sorted(s for s in self.early if s < self.every)
        yield from range(self.every, self.steps + 1, self.every)
        if self.steps % self.every:
            yield self.steps


def eval_schedule(steps: int, every: int, log_points: int) -> EvalSchedule:
    """Steps to evaluate after (see EvalSchedule): `step in eval_schedule(...)`, or iterate in order."""
    return EvalSchedule(steps, every, log_points)
