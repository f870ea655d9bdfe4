"""The loop and its hooks (ics/train/hooks/): a new periodic action is one Hook added to the list, and
it sees the run at the documented points without changing what the run trains; the named phases of
ics.train.stopping are all reached by a run (tests/pausing.py stops runs there)."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest
import torch
from test_train import make_cfg

from ics.record import Status, names
from ics.train import RunInterrupted, build_trainer, resume, stopping
from ics.train.hooks import DEFAULT_HOOKS, Hook, default_hooks


class Spy(Hook):
    """Records (method, step) at every point the loop calls a hook."""

    def __init__(self):
        self.calls: list = []

    def before_train(self, trainer):
        self.calls.append(("before_train", trainer.step))

    def before_step(self, trainer, x, y):
        self.calls.append(("before_step", trainer.step))
        assert x.shape[0] == y.shape[0] == trainer.cfg.trainer.batch_size

    def after_step(self, trainer):
        self.calls.append(("after_step", trainer.step))

    def after_train(self, trainer):
        self.calls.append(("after_train", trainer.step))

    def before_save(self, trainer):
        self.calls.append(("before_save", trainer.step))

    def close(self, trainer, summary):
        self.calls.append(("close", summary.status if summary is not None else None))


def _params(trainer) -> dict:
    return {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}


def test_an_added_hook_is_called_at_each_point_and_changes_nothing(mnist_root, tmp_path):
    cfg = make_cfg(mnist_root, trainer={"steps": 20, "eval_every": 10, "log_every": 5, "checkpoint_every": 10})
    plain = build_trainer(cfg, tmp_path / "plain")
    plain.fit()
    spy = Spy()
    spied = build_trainer(cfg, tmp_path / "spied", hooks=[*default_hooks(), spy])
    summary = spied.fit()
    a, b = _params(plain), _params(spied)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert plain.history == spied.history
    steps = 20
    expected = [("before_train", 0)]
    for i in range(steps):
        expected.append(("before_step", i))
        if i + 1 == 10:  # the periodic checkpoint, by the Checkpoint hook (before the spy in the list)
            expected.append(("before_save", 10))
        expected.append(("after_step", i + 1))
    # the last step's checkpoint is part of the final write
    expected += [("after_train", steps), ("before_save", steps), ("close", Status.COMPLETED)]
    assert spy.calls == expected
    assert summary.status == Status.COMPLETED


def test_the_default_hooks_are_one_of_each_and_in_their_documented_order():
    names = [cls.__name__ for cls in DEFAULT_HOOKS]
    assert names == [
        "TensorBoard",
        "Record",
        "TrainLog",
        "ProgressDisplay",
        "Watch",
        "Evaluation",
        "Layout",
        "Measure",
        "Checkpoint",
    ]
    assert [type(h) for h in default_hooks()] == list(DEFAULT_HOOKS)


def test_a_run_reaches_every_named_phase_of_training(mnist_root, tmp_path, monkeypatch):
    """tests/pausing.py stops a run at these names: each must still be reached (launch is the CLI's)."""
    seen: list = []
    monkeypatch.setattr(stopping, "reached", seen.append)
    cfg = make_cfg(mnist_root, trainer={"steps": 20, "eval_every": 10, "checkpoint_every": 10})
    build_trainer(cfg, tmp_path / "run").fit()
    assert set(stopping.PHASES) - {"launch"} <= set(seen), seen
    assert (
        seen.index("loading-data")
        < seen.index("first-step")
        < seen.index("mid-checkpoint")
        < seen.index("final-evaluation")
        < seen.index("finish")
    )


class StopAtOnce(Hook):
    """SIGTERM to this process once the step-0 work is done: the run stops before its first update
    and writes a checkpoint of step 0."""

    def before_train(self, trainer):
        os.kill(os.getpid(), signal.SIGTERM)


def test_a_resume_from_a_step_0_checkpoint_does_not_repeat_the_step_0_work(mnist_root, tmp_path):
    cfg = make_cfg(mnist_root, trainer={"steps": 20, "eval_every": 10, "checkpoint_every": 10})
    whole = build_trainer(cfg, tmp_path / "whole")
    whole.fit()
    stopped = build_trainer(cfg, tmp_path / "stopped", hooks=[*default_hooks(), StopAtOnce()])
    with pytest.raises(RunInterrupted):
        stopped.fit()
    assert torch.load(tmp_path / "stopped" / "checkpoint.pt", weights_only=True)["step"] == 0
    resume(tmp_path / "stopped")
    a = np.load(tmp_path / "whole" / names.METRICS)
    b = np.load(tmp_path / "stopped" / names.METRICS)
    assert list(b[names.EVAL_STEP]) == list(a[names.EVAL_STEP]) == [0, 10, 20]  # step 0 once
    assert all(np.array_equal(a[k], b[k]) for k in a.files if k in b.files and "time" not in k)
