"""The training loop. Per step: draw a batch, the hooks' before_step, the update, the hooks'
after_step. Everything periodic (evaluation, checkpoints, TensorBoard, the display, the record, the
instruments) is a hook (ics/train/hooks/); build.py makes a Trainer from a Config.

A run directory holds: TensorBoard event files (directly in it), summary.json (the run record),
metrics.npz (eval/train curves), one npz per instrument, and checkpoint.pt. Names: ics.record.names.

Per step the loop does a forward/backward/step and three list appends (the meter); it syncs with
the device only at logging, evaluation, measurement and checkpoint steps.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import torch

from ics.config import Config, to_dict
from ics.data import DataBundle
from ics.data.sampler import IndexSampler
from ics.instruments import RunContext
from ics.instruments.base import Instrument
from ics.record import Status, Summary, names, write_summary
from ics.record.files import full_disk_cause, whole
from ics.train import stopping
from ics.train.hooks import Hook
from ics.train.hooks.base import overrides as does
from ics.train.hooks.checkpoint import write_checkpoint
from ics.train.hooks.tensorboard import events_file
from ics.train.meter import Meter
from ics.train.stopping import ForcedStop, GracefulStop, RunInterrupted
from ics.train.summary import chance_acc, failure_record, summary, write_forced_stop_record, write_series


class Trainer:
    """A run's state (step, status, history, timers) and its built parts; `fit` trains it."""

    def __init__(
        self,
        cfg: Config,
        *,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        data: DataBundle,
        sampler: IndexSampler,
        ctx: RunContext,
        instruments: Sequence[Instrument],
        hooks: Sequence[Hook],
        threads: int,
        out_dir: Optional[Path] = None,
        overrides: Sequence[str] = (),
        console=None,
        label: str = "",
    ):
        self.cfg, self.model, self.opt, self.data, self.sampler, self.ctx = cfg, model, optimizer, data, sampler, ctx
        self.instruments, self.hooks, self.threads = list(instruments), list(hooks), threads
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.overrides, self.console, self.label = list(overrides), console, label
        self.device, self.loss_fn = ctx.device, ctx.loss_fn
        self.regression = data.task == "regression"
        self.meter = Meter(classify=not self.regression)
        self.step = 0
        self.status, self.diverged_at = Status.RUNNING, None
        self.history: Dict[str, List[float]] = {k: [] for k in names.METRIC_ARRAYS}
        self.timers: Dict[str, float] = defaultdict(float)
        self.resumed_at: List[int] = []
        self.wall_before = 0.0  # wall time of the segments before a resume
        self.started: Optional[str] = time.strftime("%Y-%m-%dT%H:%M:%S%z")  # when the run began (kept by resumes)
        self.kept: Optional[Summary] = None  # the record written with the checkpoint on disk (None: none yet)
        self.writer: Any = None  # TensorBoard's SummaryWriter (hooks/tensorboard.py opens it)
        self.steps_per_sec: Optional[float] = None  # of the last train-log window
        self.hparam_keys: Optional[Sequence[str]] = None  # None: the main knobs and the overrides
        self.hparam_domains: Dict[str, list] = {}  # a sweep's values of those keys
        self.loop_scope = contextlib.ExitStack()  # what a hook holds open while the loop runs
        # whether this run ends the job's signal scope when its files are written; an ensemble's
        # member does not (ics.train.group: the scope ends when every member's files are)
        self.owns_scope = True

    @property
    def fresh(self) -> bool:
        """A run starting from nothing: the step-0 work (evaluation, reference measurements, the
        config text, the layout) is still to do. A resume is never fresh, even from a checkpoint of
        step 0 (a run stopped before its first update), whose step-0 work is already in its series."""
        return self.step == 0 and not self.resumed_at

    # --- the loop -----------------------------------------------------------------------------------
    def fit(self) -> Summary:
        steps = self.cfg.trainer.steps
        x_train, y_train = self.data.x_train, self.data.y_train
        before_step = self._calls("before_step")
        after_step = self._calls("after_step")
        with GracefulStop() as stop:
            stop.training()  # from here a signal stops the loop after the current step
            try:
                with contextlib.ExitStack() as final:  # (a signal deferred by the final write acts at its end)
                    self.t_start = time.perf_counter()
                    first = self.step + 1
                    with self.loop_scope:
                        self.call("before_train")
                        while self.step < steps and not stop.requested:
                            idx = self.sampler.next()
                            x, y = x_train[idx], y_train[idx]
                            for hook in before_step:
                                hook(self, x, y)
                            self.train_step(x, y)
                            self.step += 1
                            for hook in after_step:
                                hook(self)
                            if self.status == Status.DIVERGED:
                                break
                            if self.step == first:
                                stopping.reached("first-step")
                        # from here to the last byte: the final write, which a second signal never cuts
                        final.enter_context(whole())
                        self.call("after_train")
                    if stop.requested and self.status == Status.RUNNING and self.step < steps:
                        self.status = Status.INTERRUPTED
                        self.finish()
                        raise RunInterrupted(stop.signum, self.out_dir, self.step)
                    return self.finish()
            except ForcedStop as e:
                with whole():
                    record = write_forced_stop_record(self)
                    self._done()
                raise RunInterrupted(e.first, self.out_dir, record.steps if record is not None else self.step) from None

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.ctx.training_forward = True  # hooks of instruments read only this forward
        logits = self.model(x)
        loss = self.loss_fn(logits, y)
        self.ctx.training_forward = False
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.meter.add(loss.detach(), logits.detach(), y)

    @property
    def last(self) -> bool:
        """This step ends the run: the final one, or a divergence."""
        return self.step == self.cfg.trainer.steps or self.status == Status.DIVERGED

    def diverged(self) -> None:
        self.status, self.diverged_at = Status.DIVERGED, self.step

    def log_scalars(self, values: Dict[str, float]) -> None:
        """TensorBoard scalars at this step (a non-finite value as NaN); nothing without a writer."""
        if self.writer is not None:
            for tag, v in values.items():
                self.writer.add_scalar(tag, v if math.isfinite(v) else float("nan"), self.step)

    def call(self, method: str, *args) -> None:
        for hook in self._calls(method):
            hook(self, *args)

    def _calls(self, method: str) -> List[Callable]:
        return [getattr(h, method) for h in self.hooks if does(h, method)]

    # --- state ---------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "step": self.step,
            "model": own(self.model.state_dict()),
            "optimizer": own(self.opt.state_dict()),
            "sampler": self.sampler.state_dict(),
            "rng": {
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            },
            "instruments": {inst.key: inst.state_dict() for inst in self.instruments},
            "meter": self.meter.state_dict(),
            "history": {k: list(v) for k, v in self.history.items()},
            "threads": self.threads,
            "resumed_at": list(self.resumed_at),
            "wall_before": self.wall_before + (time.perf_counter() - self.t_start if hasattr(self, "t_start") else 0.0),
            "config": to_dict(self.cfg),
            "started": self.started,
        }

    def load_state_dict(self, s: dict) -> None:
        """Continue exactly where a checkpoint left off."""
        self.step = int(s["step"])
        self.model.load_state_dict(s["model"])
        self.opt.load_state_dict(s["optimizer"])
        self.sampler.load_state_dict(s["sampler"])
        torch.set_rng_state(s["rng"]["torch"])
        if s["rng"]["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(s["rng"]["cuda"])
        for inst in self.instruments:
            if inst.key in s["instruments"]:
                inst.load_state_dict(s["instruments"][inst.key])
        self.meter.load_state_dict(s["meter"], self.device)
        self.history = {k: list(s["history"].get(k, [])) for k in names.METRIC_ARRAYS}
        self.resumed_at = list(s.get("resumed_at", [])) + [self.step]
        self.wall_before = float(s.get("wall_before", 0.0))
        # a checkpoint from before "started": unknown (ics status then falls back to the files' times)
        self.started = s["started"] if isinstance(s.get("started"), str) else None

    # --- the end of a run ----------------------------------------------------------------------------
    def finish(self) -> Summary:
        """The final series, checkpoint and record, as one write that no signal cuts."""
        with whole():
            for inst in self.instruments:
                inst.close()  # hooks off: the model is left as built
            if self.status == Status.RUNNING:
                self.status = Status.COMPLETED
                accs = self.history[names.TEST_ACC]
                if accs and accs[-1] < chance_acc(self) + self.cfg.report.not_learning_margin:
                    self.status = Status.NOT_LEARNING
            record = summary(self)
            if self.out_dir is not None:
                self.call("before_save")
                write_series(self)
                if self.cfg.trainer.checkpoint_every:
                    write_checkpoint(self)
                write_summary(self.out_dir, record, before_rename=lambda: stopping.reached("finish"))
                self.kept = record
                self.call("close", record)
            self._done()
        return record

    def fail(self, error: BaseException) -> Summary:
        """Record a crash mid-run (the last checkpoint stays, so the run can still be resumed), best
        effort: if even the record cannot be written, the old one stays whole (summary.failure_record)."""
        with whole():
            for inst in self.instruments:
                try:
                    inst.close()
                except Exception:  # noqa: BLE001 - recording the failure comes first
                    pass
            self.status = Status.FAILED
            record = failure_record(self, error, events_file(self))
            if self.out_dir is not None:
                try:
                    if full_disk_cause(error) is None:  # (on a full disk the series on disk are the checkpoint's)
                        write_series(self)
                    if record is not None:
                        write_summary(self.out_dir, record)
                except OSError:
                    pass  # best effort: every file is whole (old or new) all the same
                self.call("close", None)
            self._done()
        return record if record is not None else summary(self)

    def _done(self) -> None:
        if not self.owns_scope:
            return
        scope = stopping.current()
        if scope is not None:
            scope.done()


def own(state):
    """A state dict whose tensors hold only their own elements: an ensemble member's tensors are
    views into the members' stack, and saving a view would save the whole stack."""
    if torch.is_tensor(state):
        return state.clone() if state.untyped_storage().nbytes() > state.nbytes else state
    if isinstance(state, dict):
        out = type(state)((k, own(v)) for k, v in state.items())
        if hasattr(state, "_metadata"):
            out._metadata = state._metadata  # type: ignore[attr-defined]  # (module versions)
        return out
    if isinstance(state, list):
        return [own(v) for v in state]
    return state
