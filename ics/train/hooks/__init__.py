"""The periodic actions of a run, as hooks (base.py says when each is called).

The order below is the order of their calls at every point; what a run records depends on it:

    tensorboard.py   the writer: opened first (config text), flushed before every save, closed
                     last (status text, HParams); Layout: the Custom Scalars layout at step 0
    record.py        the `running` record when the loop starts
    train_log.py     the train loss/accuracy window every trainer.log_every steps; divergence
    progress.py      the display and progress.json
    evaluation.py    the test (and validation) evaluations of trainer.eval_every / eval_log_points
    instruments.py   the instruments: the reference snapshot at step 0 and the training batches they
                     watch (Watch), their measurements after the evaluation (Measure)
    checkpoint.py    checkpoint.pt with its record every trainer.checkpoint_every steps

A new periodic action is a module here with a Hook subclass, and its class in DEFAULT_HOOKS.
"""

from __future__ import annotations

from typing import List

from ics.train.hooks.base import Hook
from ics.train.hooks.checkpoint import Checkpoint
from ics.train.hooks.evaluation import Evaluation
from ics.train.hooks.instruments import Measure, Watch
from ics.train.hooks.progress import ProgressDisplay
from ics.train.hooks.record import Record
from ics.train.hooks.tensorboard import Layout, TensorBoard
from ics.train.hooks.train_log import TrainLog

# the instruments' step-0 snapshot comes before the first evaluation, their per-step measurements after
# each; the Custom Scalars layout after both (the charts may depend on the first measurement)
DEFAULT_HOOKS = (TensorBoard, Record, TrainLog, ProgressDisplay, Watch, Evaluation, Layout, Measure, Checkpoint)


def default_hooks() -> List[Hook]:
    return [cls() for cls in DEFAULT_HOOKS]


__all__ = [
    "Hook",
    "DEFAULT_HOOKS",
    "default_hooks",
    "Checkpoint",
    "Evaluation",
    "Layout",
    "Measure",
    "ProgressDisplay",
    "Record",
    "TensorBoard",
    "TrainLog",
    "Watch",
]
