"""The training loop and what it records.

A run directory holds: TensorBoard event files (directly in it, so `tensorboard --logdir <sweep>`
shows one run per job), summary.json (the run record), metrics.npz (eval/train curves), one npz per
instrument, and checkpoint.pt. Names: ics.record.names. Instruments: ics.instruments.

Per step the loop does a forward/backward/step and three list appends (the meter); it syncs with
the device only at logging, evaluation, measurement and checkpoint steps.
"""
from __future__ import annotations

import contextlib
import copy
import math
import time
from collections import defaultdict
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ics.config import Config, ConfigError, to_dict, validate
from ics.data import DataBundle, load_data
from ics.instruments import Batch, RunContext, build_instruments
from ics.instruments.base import Instrument
from ics.models import build_model
from ics.models.evaluate import eval_schedule, evaluate_model
from ics.record import Status, Summary, names, write_npz, write_summary
from ics.record.files import NoSpace, no_space, whole
from ics.train import checkpoint as ckpt
from ics.train.device import device_name, environment, resolve_device
from ics.train.meter import Meter
from ics.train.optim import build_optimizer
from ics.data.sampler import IndexSampler
from ics.train import signals
from ics.train.signals import ForcedStop, GracefulStop, RunInterrupted, pause_point
from ics.train.threads import resolve_threads

SAMPLER_SEED_OFFSET = 10_007  # the sampler's generator must not replay the init RNG stream


def check_fits(cfg: Config, data: DataBundle) -> None:
    """Checks that need the decoded data's sizes."""
    n_train = data.x_train.shape[0]
    if cfg.trainer.batch_size > n_train:
        raise ConfigError(f"trainer.batch_size={cfg.trainer.batch_size} is invalid: must be <= the training set "
                          f"size ({n_train})")


class Trainer:
    def __init__(self, cfg: Config, out_dir: Optional[Path] = None, data: Optional[DataBundle] = None,
                 overrides: Sequence[str] = (), max_threads: Optional[int] = None, console=None,
                 threads: Optional[int] = None, say: Optional[Callable[[str], None]] = None, label: str = ""):
        validate(cfg)
        self.cfg, self.overrides, self.console, self.label = cfg, list(overrides), console, label
        self.say = say or (lambda text: None)
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.device = resolve_device(cfg.trainer.device)
        if data is None:
            self.say(f"loading data: {cfg.data.name}")
            pause_point("loading-data")
        self.data = data if data is not None else load_data(cfg.data, self.device)
        check_fits(cfg, self.data)
        t = cfg.trainer
        torch.manual_seed(t.seed)
        self.regression = self.data.task == "regression"
        self.model = build_model(cfg.model, self.data.in_shape, self.data.out_features, seed=t.seed).to(self.device)
        if uses_conv(self.model) and t.channels_last in ("auto", True):
            self.model, self.data = to_channels_last(self.model, self.data)
        if threads is None and t.threads == "auto" and self.device.type == "cpu":
            self.say("choosing CPU threads (timing a few steps at 1 and at all cores)")
        self.threads = threads if threads is not None else resolve_threads(
            t.threads, self.model, self.data.in_shape, self.data.out_features, t.batch_size, self.device, max_threads,
            regression=self.regression)
        torch.set_num_threads(self.threads)
        self.opt = build_optimizer(self.model.parameters(), cfg.optim)
        self.sampler = IndexSampler(self.data.x_train.shape[0], t.batch_size, t.seed + SAMPLER_SEED_OFFSET,
                                    t.sampler, self.device)
        # classification: cross-entropy, score = accuracy; regression: mean squared error, score = R²
        self.loss_fn = F.mse_loss if self.regression else F.cross_entropy
        self.meter = Meter(classify=not self.regression)
        self.step = 0
        self.status, self.diverged_at = Status.RUNNING, None
        self.history: Dict[str, List[float]] = {k: [] for k in names.METRIC_ARRAYS}
        self.eval_at = eval_schedule(t.steps, t.eval_every, t.eval_log_points)
        self.timers: Dict[str, float] = defaultdict(float)
        self.resumed_at: List[int] = []
        self.wall_before = 0.0  # wall time of the segments before a resume
        self.started: Optional[str] = time.strftime("%Y-%m-%dT%H:%M:%S%z")  # when the run began (kept by resumes)
        self.writer = None
        self._kept: Optional[Summary] = None  # the record written with the checkpoint on disk (None: none yet)
        self.hparam_keys: Optional[Sequence[str]] = None  # None: the main knobs and the overrides
        self.hparam_domains: Dict[str, list] = {}  # a sweep's values of those keys
        self.ctx = RunContext(cfg, self.model, self.opt, self.data, self.device, self.loss_fn, t.steps, t.seed)
        self.instruments: List[Instrument] = build_instruments(cfg, self.ctx)  # may reject probe.points
        # only instruments that look at training batches are asked every step
        self.watchers = [i for i in self.instruments if type(i).wants_batch is not Instrument.wants_batch]

    # --- the loop -----------------------------------------------------------------------------------
    def fit(self) -> Summary:
        t = self.cfg.trainer
        x_train, y_train = self.data.x_train, self.data.y_train
        with GracefulStop() as stop:
            stop.training()  # from here a signal stops the loop after the current step
            try:
                with contextlib.ExitStack() as final:  # (a signal deferred by the final write acts at its end)
                    self.t_start = time.perf_counter()
                    self._last_log = (self.step, self.t_start)
                    self._open()
                    first = self.step + 1
                    with self._progress() as bar:
                        if self.step == 0:
                            self.measure(0)  # the reference snapshot, before any update
                            self.evaluate()
                            self._write_layout()
                        while self.step < t.steps and not stop.requested:
                            idx = self.sampler.next()
                            x, y = x_train[idx], y_train[idx]
                            for inst in self.watchers:
                                if inst.wants_batch(self.step):
                                    self._timed(inst.key, inst.observe_batch, Batch(self.step, x, y))
                            self.train_step(x, y)
                            self.step += 1
                            final_step = self.step == t.steps
                            if self.step % t.log_every == 0 or final_step:
                                if not self.log_train(bar):  # diverged: a result, not a crash
                                    self.evaluate()
                                    self.measure(self.step, final=True)
                                    break
                            if self.step in self.eval_at:
                                self.evaluate()
                            self.measure(self.step, final_step)
                            if t.checkpoint_every and self.step % t.checkpoint_every == 0 and not final_step:
                                self.save_checkpoint()
                            if self.step == first:
                                pause_point("first-step")
                        # from here to the last byte: the final write, which a second signal never cuts
                        final.enter_context(whole())
                        # the display's last word is the final evaluation
                        bar.update(self.step, self.history[names.TRAIN_LOSS][-1] if self.history[names.TRAIN_LOSS] else None,
                                   self.history[names.TEST_ACC][-1] if self.history[names.TEST_ACC] else None, force=True)
                    if stop.requested and self.status == Status.RUNNING and self.step < t.steps:
                        self.status = Status.INTERRUPTED
                        self.finish()
                        raise RunInterrupted(stop.signum, self.out_dir, self.step)
                    return self.finish()
            except ForcedStop as e:
                raise RunInterrupted(e.first, self.out_dir, self._record_forced_stop()) from None

    def _record_forced_stop(self) -> int:
        """A second signal stopped the run between two writes, mid-step: the checkpoint on disk is
        the last periodic one, and the record says `interrupted` at its step (without a checkpoint:
        at the step reached, with nothing to resume from). Returns that step."""
        with whole():
            record = copy.copy(self._kept) if self._kept is not None else None
            if record is None:
                try:
                    record = self.summary()
                except Exception:  # noqa: BLE001 - stopped mid-update: the record on disk stays
                    record = None
            if record is not None and self.out_dir is not None:
                record.status, record.checkpointing = Status.INTERRUPTED, None
                try:
                    write_summary(self.out_dir, record)
                except OSError:
                    pass  # best effort: the record on disk stays whole
            self._done()
        return record.steps if record is not None else self.step

    def _done(self) -> None:
        scope = signals.current()
        if scope is not None:
            scope.done()

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.ctx.training_forward = True  # hooks of instruments read only this forward
        logits = self.model(x)
        loss = self.loss_fn(logits, y)
        self.ctx.training_forward = False
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.meter.add(loss.detach(), logits.detach(), y)

    def measure(self, step: int, final: bool = False) -> None:
        for inst in self.instruments:
            if inst.due(step, final):
                self._timed(inst.key, inst.measure, step)

    def _timed(self, key: str, fn, *args) -> None:
        t0 = time.perf_counter()
        fn(*args)
        self.timers[f"instrument.{key}"] += time.perf_counter() - t0

    def log_train(self, bar) -> bool:
        """Log the window's train loss/acc; return False (and mark the run) if it diverged."""
        last_step, last_t = self._last_log
        m = self.meter.read()
        now = time.perf_counter()
        self._last_log = (self.step, now)
        sps = (self.step - last_step) / max(now - last_t, 1e-9)
        h = self.history
        h[names.TRAIN_STEP].append(self.step)
        h[names.TRAIN_LOSS].append(m["loss"])
        h[names.TRAIN_ACC].append(m["acc"])
        self._scalars({names.TAG_TRAIN_LOSS: m["loss"], names.TAG_TRAIN_ACC: m["acc"],
                       names.TAG_LR: self.opt.param_groups[0]["lr"], names.TAG_STEPS_PER_SEC: sps})
        bar.update(self.step, m["loss"], self.history[names.TEST_ACC][-1] if self.history[names.TEST_ACC] else None, sps)
        if not math.isfinite(m["loss_max"]) or m["loss_max"] > self.cfg.trainer.divergence_loss:
            self.status, self.diverged_at = Status.DIVERGED, self.step
            return False
        return True

    @torch.no_grad()
    def evaluate(self) -> Dict[str, float]:
        """Full test set, model in eval mode (BN uses its running statistics). The score is the
        accuracy, or for regression R² = 1 − SSE / SSE of predicting the training targets' mean."""
        if self.step == self.cfg.trainer.steps:
            pause_point("final-evaluation")
        t0 = time.perf_counter()
        loss, acc = evaluate_model(self.model, self.data, self.cfg.trainer.eval_batch_size)
        self.history[names.EVAL_STEP].append(self.step)
        self.history[names.TEST_LOSS].append(loss)
        self.history[names.TEST_ACC].append(acc)
        self._scalars({names.TAG_TEST_LOSS: loss, names.TAG_TEST_ACC: acc})
        if self.data.x_val is not None:
            vloss, vacc = evaluate_model(self.model, self.data, self.cfg.trainer.eval_batch_size,
                                         self.data.x_val, self.data.y_val)
            self.history[names.VAL_LOSS].append(vloss)
            self.history[names.VAL_ACC].append(vacc)
            self._scalars({names.TAG_VAL_LOSS: vloss, names.TAG_VAL_ACC: vacc})
        self.timers["eval"] += time.perf_counter() - t0
        return {"loss": loss, "acc": acc}

    def _scalars(self, values: Dict[str, float]) -> None:
        if self.writer is not None:
            for tag, v in values.items():
                self.writer.add_scalar(tag, v if math.isfinite(v) else float("nan"), self.step)

    # --- files ---------------------------------------------------------------------------------------
    def _open(self) -> None:
        """The TensorBoard writer and a `running` record. A resumed run purges the events the killed
        run wrote after its checkpoint; a fresh run in a used directory purges all old events."""
        if self.out_dir is None:
            return
        from torch.utils.tensorboard import SummaryWriter
        from omegaconf import OmegaConf

        self.out_dir.mkdir(parents=True, exist_ok=True)
        old_events = any(self.out_dir.glob("events.out.tfevents.*"))
        # everything up to the checkpoint's step was logged before the checkpoint was written
        purge = self.step + 1 if self.step > 0 else (0 if old_events else None)
        quiet_tensorboard_thread()
        try:
            self.writer = SummaryWriter(log_dir=str(self.out_dir), flush_secs=20, purge_step=purge)
        except OSError as e:
            full = no_space(e)
            if full is None:
                raise
            raise NoSpace(full.errno, full.strerror, str(self.out_dir / "events.out.tfevents.*")) from None
        self.ctx.writer = self.writer
        if self.step == 0:
            text = OmegaConf.to_yaml(OmegaConf.structured(self.cfg))
            self.writer.add_text("config", "```yaml\n" + text + "```\n\noverrides: `" + " ".join(self.overrides) + "`", 0)
        record = self.summary()
        write_summary(self.out_dir, record)
        if self.step > 0:
            self._kept = record  # a resumed run: this is the record of the checkpoint it resumed from

    def _write_layout(self) -> None:
        # Custom Scalars: the accuracy first (Fig. 1a), then each instrument's charts
        layout = {"Fig. 1a: test accuracy (set smoothing to 0)": {"test accuracy (all runs)": ["Multiline", [r"^acc/test$"]],
                                             "train accuracy": ["Multiline", [r"^acc/train$"]]}}
        for inst in self.instruments:
            layout.update(inst.layout())
        if self.writer is not None and layout:
            self.writer.add_custom_scalars(layout)

    def save_checkpoint(self) -> None:
        """The series, checkpoint.pt and the record as they stand: a kill loses at most one interval."""
        if self.out_dir is None:
            return
        with whole():  # a second signal waits for the checkpoint and its record (tens of ms)
            t0 = time.perf_counter()
            if self.writer is not None:
                self.writer.flush()  # first: the events up to this step are on disk before the checkpoint says so
            self._write_series()
            self._put_checkpoint()
            record = self.summary()
            write_summary(self.out_dir, record)
            self._kept = record
            self.timers["checkpoint"] += time.perf_counter() - t0

    def _put_checkpoint(self) -> None:
        """checkpoint.pt of this step, announced first by a `running` record saying `checkpointing`
        at this step: whenever the process dies, the record is never behind the checkpoint (a reader
        of a dead run whose record says checkpointing takes the step from the checkpoint itself)."""
        pending = self.summary()
        pending.status, pending.checkpointing = Status.RUNNING, self.step
        write_summary(self.out_dir, pending)
        ckpt.save(ckpt.path_of(self.out_dir), self.state_dict(), before_rename=lambda: pause_point("mid-checkpoint"))

    def _write_series(self) -> None:
        write_npz(self.out_dir / names.METRICS, {k: np.asarray(v, dtype=float) for k, v in self.history.items()})
        for inst in self.instruments:
            write_npz(self.out_dir / names.instrument_file(inst.key), inst.arrays())

    def state_dict(self) -> dict:
        return {
            "step": self.step,
            "model": self.model.state_dict(),
            "optimizer": self.opt.state_dict(),
            "sampler": self.sampler.state_dict(),
            "rng": {"torch": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []},
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
                if accs and accs[-1] < self.chance_acc() + self.cfg.report.not_learning_margin:
                    self.status = Status.NOT_LEARNING
            summary = self.summary()
            if self.out_dir is not None:
                if self.writer is not None:
                    self.writer.flush()
                self._write_series()
                if self.cfg.trainer.checkpoint_every:
                    self._put_checkpoint()
                write_summary(self.out_dir, summary, before_rename=lambda: pause_point("finish"))
                self._kept = summary
                if self.writer is not None:
                    try:  # after the record: TensorBoard's last words are a view, never a reason to fail
                        self.writer.add_text("status", f"{summary.status} at step {summary.steps}", self.step)
                        if self.status != Status.INTERRUPTED:
                            self._write_hparams(summary)
                        self.writer.flush()
                    except OSError:
                        pass
                    self._close_writer()
            self._done()
        return summary

    def _close_writer(self) -> None:
        try:
            self.writer.close()
        except OSError:  # its thread already failed (a full disk): nothing more to save there
            pass

    def events_file(self) -> str:
        """The TensorBoard events file this run writes."""
        name = getattr(getattr(getattr(self.writer, "file_writer", None), "event_writer", None), "_file_name", None)
        return str(name) if name else str(Path(self.out_dir or ".") / "events.out.tfevents.*")

    def fail(self, error: BaseException) -> Summary:
        """Record a crash mid-run (the last checkpoint stays, so the run can still be resumed). A full
        disk (ENOSPC, EDQUOT, EROFS) is recorded as `failed` at the step of the checkpoint on disk,
        best effort: if even the record cannot be written, the old one stays whole."""
        import traceback

        full = no_space(error)
        with whole():
            for inst in self.instruments:
                try:
                    inst.close()
                except Exception:  # noqa: BLE001 - recording the failure comes first
                    pass
            self.status = Status.FAILED
            summary = None
            if full is not None:
                if self._kept is not None:
                    summary = copy.copy(self._kept)  # the record of the checkpoint on disk
                elif not self.resumed_at:
                    summary = self.summary()  # no checkpoint yet: the run as it stands
                # (a resumed run that wrote nothing yet: the record on disk is that of its checkpoint)
                if summary is not None:
                    summary.status, summary.checkpointing = Status.FAILED, None
                    summary.error = f"{no_space_reason(full)}: {full.filename or self.events_file()} at step {self.step}"
                    summary.traceback = None
            else:
                summary = self.summary()
                text = str(error).strip()
                summary.error = f"{type(error).__name__}: {text.splitlines()[0] if text else ''}".rstrip(": ")
                summary.traceback = "".join(traceback.format_exception(error))
            if self.out_dir is not None:
                try:
                    if full is None:
                        self._write_series()
                    if summary is not None:
                        write_summary(self.out_dir, summary)
                except OSError:
                    pass  # best effort: every file is whole (old or new) all the same
                if self.writer is not None:
                    self._close_writer()
            self._done()
        return summary if summary is not None else self.summary()

    def chance_acc(self) -> float:
        """The score of a model that learnt nothing: the majority-class rate; for regression R² = 0."""
        if self.regression:
            return 0.0
        counts = torch.bincount(self.data.y_test.cpu(), minlength=self.data.num_classes)
        return float(counts.max()) / float(counts.sum())

    def steps_to_targets(self) -> tuple:
        """{target: first evaluated step with test score >= target}, {target: the evaluation before it}."""
        first, prev = {}, {}
        steps, accs = self.history[names.EVAL_STEP], self.history[names.TEST_ACC]
        for target in self.cfg.report.targets:
            hit = next((i for i, a in enumerate(accs) if a >= target), None)
            first[f"{target:g}"] = steps[hit] if hit is not None else None
            prev[f"{target:g}"] = steps[hit - 1] if hit else None
        return first, prev

    def summary(self) -> Summary:
        h = self.history
        accs, vaccs = h[names.TEST_ACC], h[names.VAL_ACC]
        finite = [a for a in accs if not math.isnan(a)]
        best_i = int(np.nanargmax(accs)) if finite else None
        best_v = int(np.nanargmax(vaccs)) if [a for a in vaccs if not math.isnan(a)] else None
        to_target, to_target_prev = self.steps_to_targets()
        wall = time.perf_counter() - getattr(self, "t_start", time.perf_counter())
        steps_here = self.step - (self.resumed_at[-1] if self.resumed_at else 0)
        spent = self.timers["eval"] + self.timers["checkpoint"] + \
            sum(v for k, v in self.timers.items() if k.startswith("instrument."))
        return Summary(
            status=self.status, steps=self.step, steps_requested=self.cfg.trainer.steps,
            diverged_at_step=self.diverged_at,
            last_eval_step=h[names.EVAL_STEP][-1] if accs else None,
            final_test_acc=accs[-1] if accs else None, final_test_loss=h[names.TEST_LOSS][-1] if accs else None,
            best_test_acc=accs[best_i] if best_i is not None else None,
            best_test_acc_step=h[names.EVAL_STEP][best_i] if best_i is not None else None,
            final_train_loss=h[names.TRAIN_LOSS][-1] if h[names.TRAIN_LOSS] else None,
            final_train_acc=h[names.TRAIN_ACC][-1] if h[names.TRAIN_ACC] else None,
            final_val_acc=vaccs[-1] if vaccs else None, final_val_loss=h[names.VAL_LOSS][-1] if vaccs else None,
            best_val_acc=vaccs[best_v] if best_v is not None else None,
            best_val_acc_step=h[names.EVAL_STEP][best_v] if best_v is not None else None,
            steps_to_target=to_target, steps_to_target_prev=to_target_prev, chance_acc=self.chance_acc(),
            steps_per_sec=steps_here / max(wall, 1e-9) if wall > 0 else None,
            train_steps_per_sec=steps_here / max(wall - spent, 1e-9) if wall > 0 else None,
            wall_time_sec=wall, wall_time_total_sec=self.wall_before + wall, eval_time_sec=self.timers["eval"],
            instrument_time_sec={k.split(".", 1)[1]: v for k, v in self.timers.items() if k.startswith("instrument.")},
            checkpoint_time_sec=self.timers["checkpoint"],
            device=device_name(self.device), threads=self.threads,
            dataset={"name": self.data.name, "train": int(self.data.x_train.shape[0]),
                     "test": int(self.data.x_test.shape[0]), "source": self.data.source, "task": self.data.task},
            metric="r2" if self.regression else "accuracy",
            instruments={inst.key: inst.summary() for inst in self.instruments},
            overrides=self.overrides, config=to_dict(self.cfg), resumed_at=list(self.resumed_at), started=self.started,
            environment=environment(self.device, self.threads),
        )

    def _write_hparams(self, summary: Summary) -> None:
        """HParams dashboard entry in this run's own directory (SummaryWriter.add_hparams would
        create a second run folder): the experiment/session summaries go through the file writer."""
        from torch.utils.tensorboard.summary import hparams

        values = (summary.final_test_acc, summary.best_test_acc, float(summary.status == Status.DIVERGED),
                  summary.steps_per_sec) + hparam_result(summary, self.cfg.report.targets)
        metrics = {k: float("nan") if v is None else float(v) for k, v in zip(names.HPARAM_METRICS, values)}
        values = hparam_values(self.cfg, self.overrides, self.hparam_keys)
        # a domain whose values are not of this run's type (lr=1 in a float sweep) is left out: the
        # HParams tab then lists the values it sees
        domains = {k: v for k, v in self.hparam_domains.items()
                   if k in values and all(type(x) is type(values[k]) for x in v)}
        # every run, also each job of a sweep, carries the experiment summary in its own folder:
        # TensorBoard takes it from any run, so no extra `.` run at the sweep's root is needed
        for s in hparams(values, metrics, hparam_domain_discrete=domains):
            self.writer.file_writer.add_summary(s)
        for tag, v in metrics.items():
            self.writer.add_scalar(tag, v, self.step)

    def _progress(self):
        from ics.train.progress import Progress, display_mode

        t = self.cfg.trainer
        return Progress(t.steps, start=self.step, mode=display_mode(t.progress), out_dir=self.out_dir,
                        label=self.label, every_sec=t.progress_every_sec, console=self.console,
                        metric="r2" if self.regression else "accuracy")


def hparam_result(summary: Summary, targets) -> tuple:
    """The ICS result as HParams metrics: final drift of the last hidden layer's input (raw, shape)
    and the steps to the first target accuracy (None where not measured or not reached)."""
    pre = [p for p in summary.drift if p.endswith(".pre_act")]
    last = summary.drift.get(pre[-1], {}) if pre else {}
    first = f"{targets[0]:g}" if targets else None
    return last.get("w1_raw"), last.get("w1_shape"), summary.steps_to_target.get(first) if first else None


def no_space_reason(e: OSError) -> str:
    import errno

    return {errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded",
            errno.EROFS: "read-only file system"}.get(e.errno, (e.strerror or "cannot write").lower())


def quiet_tensorboard_thread() -> None:
    """TensorBoard writes its events from a thread; on a full disk that thread dies with a traceback,
    and the same error surfaces in the run at its next write or flush, where it is reported in one
    line. So the thread's own traceback is not printed (other threads' still are)."""
    import threading

    try:
        from tensorboard.summary.writer.event_file_writer import _AsyncWriterThread
    except ImportError:  # pragma: no cover - another TensorBoard layout: leave the hook alone
        return
    hook = threading.excepthook
    if getattr(hook, "_ics_quiet", False):
        return

    def quiet(args) -> None:
        if isinstance(args.thread, _AsyncWriterThread) and isinstance(args.exc_value, OSError):
            return
        hook(args)

    quiet._ics_quiet = True
    threading.excepthook = quiet


def uses_conv(model) -> bool:
    return any(isinstance(m, torch.nn.Conv2d) for m in model.modules())


def to_channels_last(model, data: DataBundle):
    """NHWC for the model and the 4-D data tensors (index lookups keep the format: no per-step copy)."""
    import dataclasses

    nhwc = lambda x: None if x is None or x.dim() != 4 else x.contiguous(memory_format=torch.channels_last)  # noqa: E731
    data = dataclasses.replace(data, x_train=nhwc(data.x_train), x_test=nhwc(data.x_test),
                               x_val=nhwc(data.x_val) if data.x_val is not None else None)
    return model.to(memory_format=torch.channels_last), data


HPARAM_KEYS = ("model.name", "model.activation", "model.norm", "model.init", "data.name", "optim.name", "optim.lr",
               "trainer.batch_size", "trainer.steps", "trainer.seed")


def hparam_value(v):
    """TensorBoard shows numbers with 4 decimals: integers (seeds, sizes) read better as text."""
    if isinstance(v, int) and not isinstance(v, bool):
        return str(v)
    return v


def hparam_values(cfg: Config, overrides: Sequence[str], keys: Optional[Sequence[str]] = None) -> Dict[str, object]:
    """The given keys (a sweep's varying keys), else the main knobs plus every overridden key, as
    TensorBoard-friendly scalars/strings."""
    from omegaconf import OmegaConf

    conf = OmegaConf.structured(cfg)
    if keys is None:
        keys = list(HPARAM_KEYS) + [o.lstrip("+~").split("=")[0] for o in overrides if "=" in o]
    out: Dict[str, object] = {}
    for key in keys:
        if key.startswith("hydra.") or key in out:
            continue
        val = OmegaConf.select(conf, key, default=None)
        if isinstance(val, (bool, int, float, str)):
            out[key] = hparam_value(val)
        elif val is not None:
            out[key] = str(OmegaConf.to_container(val) if OmegaConf.is_config(val) else val)
    return out
