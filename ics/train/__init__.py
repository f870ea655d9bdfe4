"""Training: the loop (loop.py) and its parts, and the entry points (run.py).

loop.py        Trainer: the loop that fits on a screen, evaluation, records, checkpoints
run.py         check_runnable, train_and_evaluate(cfg, workdir), resume(workdir)
checkpoint.py  what a checkpoint holds; safe loading; config matching on resume
meter.py       train loss/acc window     signals.py  SIGINT/SIGTERM -> checkpoint and stop
optim.py       optimisers (registry)     threads.py  CPU thread policy    device.py  devices
"""
from ics.train.loop import Trainer, hparam_values
from ics.train.run import AlreadyFinished, check_resumable, check_runnable, resume, run_config, train_and_evaluate
from ics.train.signals import RunInterrupted


def train(cfg, out_dir=None, data=None, **kw):
    """Library shortcut: build, fit, return the Summary (no run-directory semantics, no Hydra)."""
    return Trainer(cfg, out_dir, data=data, **kw).fit()


__all__ = ["Trainer", "hparam_values", "AlreadyFinished", "check_resumable", "check_runnable", "resume", "run_config",
           "train_and_evaluate", "RunInterrupted", "train"]
