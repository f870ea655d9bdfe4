"""The training loop and what it records.

A run directory holds: TensorBoard event files (directly in it, so `tensorboard --logdir <sweep>`
shows one run per job), summary.json, metrics.npz (eval/train curves), probes.npz (probe series)
and checkpoint.pt (model + optimiser + step + sampler + RNG states).
"""
from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from ics.config import Config, validate
from ics.data import DataBundle, load_data, stratified_indices
from ics.files import atomic_write, write_json, write_npz
from ics.models import build_model
from ics.optim import build_optimizer
from ics.sampler import IndexSampler
from ics.threads import resolve_threads

SAMPLER_SEED_OFFSET = 10_007  # the sampler's generator must not replay the init RNG stream


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        from ics.config import ConfigError

        raise ConfigError(f"trainer.device={name!r} is invalid: CUDA is not available here; allowed: auto, cpu")
    return torch.device(name)


class Meter:
    """Running train loss/accuracy over a logging window. Per step it only keeps references to the
    detached loss and logits (no tensor ops, no sync); every FOLD steps, and when the window is
    logged, they are reduced on the device, so memory stays bounded whatever trainer.log_every is."""

    FOLD = 500

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.losses: List[torch.Tensor] = []
        self.logits: List[torch.Tensor] = []
        self.targets: List[torch.Tensor] = []
        self.sums: Optional[torch.Tensor] = None  # (loss sum, loss max, correct) of folded steps
        self.steps = self.count = 0

    def add(self, loss: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> None:
        self.losses.append(loss)
        self.logits.append(logits)
        self.targets.append(y)
        if len(self.losses) >= self.FOLD:
            self._fold()

    def _fold(self) -> None:
        losses = torch.stack(self.losses)
        correct = (torch.cat(self.logits).argmax(1) == torch.cat(self.targets)).sum().to(losses.dtype)
        # max propagates NaN, so a divergence anywhere in the window is seen
        part = torch.stack([losses.sum(), losses.max(), correct])
        if self.sums is None:
            self.sums = part
        else:
            self.sums = torch.stack([self.sums[0] + part[0], torch.maximum(self.sums[1], part[1]), self.sums[2] + part[2]])
        self.steps += len(self.losses)
        self.count += sum(t.shape[0] for t in self.targets)
        self.losses, self.logits, self.targets = [], [], []

    def read(self) -> Dict[str, float]:
        if self.losses:
            self._fold()
        total, worst, correct = self.sums.tolist()  # sync point
        out = {"loss": total / self.steps, "loss_max": worst, "acc": correct / self.count}
        self.reset()
        return out


class Trainer:
    def __init__(self, cfg: Config, out_dir: Optional[Path], data: Optional[DataBundle] = None,
                 overrides: Sequence[str] = (), max_threads: Optional[int] = None, console=None):
        validate(cfg)
        self.cfg, self.overrides = cfg, list(overrides)
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.device = resolve_device(cfg.trainer.device)
        self.data = data if data is not None else load_data(cfg.data, self.device)
        validate(cfg, train_size=self.data.x_train.shape[0])
        t = cfg.trainer
        torch.manual_seed(t.seed)
        self.model = build_model(cfg.model, self.data.in_shape, self.data.num_classes).to(self.device)
        self.threads = resolve_threads(t.threads, self.model, self.data.in_shape, self.data.num_classes,
                                       t.batch_size, self.device, max_threads)
        self.opt = build_optimizer(self.model.parameters(), cfg.optim)
        self.sampler = IndexSampler(self.data.x_train.shape[0], t.batch_size, t.seed + SAMPLER_SEED_OFFSET,
                                    t.sampler, self.device)
        self.meter = Meter()
        self.step = 0
        self.status, self.diverged_at = "running", None
        self.history: Dict[str, List[float]] = {k: [] for k in
                                                ("eval_step", "test_loss", "test_acc", "train_step", "train_loss", "train_acc")}
        self.timers = {"eval": 0.0, "probe": 0.0}
        self.console = console
        self.probes = self._make_probes()  # may still reject probe.points: before anything is written
        self.writer = self._make_writer() if self.out_dir is not None else None
        if self.probes is not None:
            self.probes.writer = self.writer

    # --- set-up helpers ---------------------------------------------------------------------------
    def _make_writer(self):
        from torch.utils.tensorboard import SummaryWriter

        self.out_dir.mkdir(parents=True, exist_ok=True)
        writer = SummaryWriter(log_dir=str(self.out_dir), flush_secs=20)
        text = OmegaConf.to_yaml(OmegaConf.structured(self.cfg))
        writer.add_text("config", "```yaml\n" + text + "```\n\noverrides: `" + " ".join(self.overrides) + "`", 0)
        return writer

    def _make_probes(self):
        if not self.cfg.probe.enabled:
            return None
        from ics.probes import ProbeSuite

        p = self.cfg.probe
        idx = stratified_indices(self.data.y_test.cpu(), p.size, p.seed).to(self.device)
        return ProbeSuite(p, self.model, self.data.x_test[idx], self.cfg.model.activation)

    # --- the loop ---------------------------------------------------------------------------------
    def fit(self) -> dict:
        t, steps = self.cfg.trainer, self.cfg.trainer.steps
        x_train, y_train = self.data.x_train, self.data.y_train
        self.t_start = time.perf_counter()
        self._last_log = (0, self.t_start)
        try:
            with self._progress() as bar:
                if self.step == 0:
                    self._probe(0)  # the reference snapshot, before any update
                    self.evaluate()
                while self.step < steps:
                    idx = self.sampler.next()
                    self.train_step(x_train[idx], y_train[idx])
                    self.step += 1
                    if self.step % t.log_every == 0 or self.step == steps:
                        if not self.log_train(bar):
                            # diverged: a result, not a crash. Record the state it ended in.
                            self.evaluate()
                            self._probe(self.step, force=True)
                            break
                    if self.step % t.eval_every == 0 or self.step == steps:
                        self.evaluate()
                    self._probe(self.step)
        except KeyboardInterrupt:
            self.status = "interrupted"
            if not self.history["eval_step"] or self.history["eval_step"][-1] != self.step:
                self.evaluate()  # the summary's final accuracy is that of the step it stopped at
            self.finish()
            raise
        return self.finish()

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        logits = self.model(x)
        loss = F.cross_entropy(logits, y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.meter.add(loss.detach(), logits.detach(), y)

    def _probe(self, step: int, force: bool = False) -> None:
        if self.probes is not None and (self.probes.due(step) or force or step == self.cfg.trainer.steps):
            t0 = time.perf_counter()
            self.probes.measure(step)
            self.timers["probe"] += time.perf_counter() - t0

    def log_train(self, bar) -> bool:
        """Log the window's train loss/acc; return False (and mark the run) if it diverged."""
        last_step, last_t = self._last_log
        m = self.meter.read()
        now = time.perf_counter()
        self._last_log = (self.step, now)
        sps = (self.step - last_step) / max(now - last_t, 1e-9)
        self.history["train_step"].append(self.step)
        self.history["train_loss"].append(m["loss"])
        self.history["train_acc"].append(m["acc"])
        if self.writer is not None:
            for tag, val in (("train/loss", m["loss"]), ("train/acc", m["acc"]),
                             ("optim/lr", self.opt.param_groups[0]["lr"]), ("perf/steps_per_sec", sps)):
                self.writer.add_scalar(tag, val if math.isfinite(val) else float("nan"), self.step)
        bar.update(self.step, loss=m["loss"])
        if not math.isfinite(m["loss_max"]) or m["loss_max"] > self.cfg.trainer.divergence_loss:
            self.status, self.diverged_at = "diverged", self.step
            return False
        return True

    @torch.no_grad()
    def evaluate(self) -> Dict[str, float]:
        """Full test set, model in eval mode (BN uses its running statistics)."""
        t0 = time.perf_counter()
        x, y, bs = self.data.x_test, self.data.y_test, self.cfg.trainer.eval_batch_size
        self.model.eval()
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device)
        for i in range(0, x.shape[0], bs):
            logits = self.model(x[i:i + bs])
            loss_sum += F.cross_entropy(logits, y[i:i + bs], reduction="sum")
            correct += (logits.argmax(1) == y[i:i + bs]).sum()
        self.model.train()
        loss, acc = (torch.stack([loss_sum, correct]) / x.shape[0]).tolist()  # sync point
        self.history["eval_step"].append(self.step)
        self.history["test_loss"].append(loss)
        self.history["test_acc"].append(acc)
        if self.writer is not None:
            self.writer.add_scalar("test/loss", loss if math.isfinite(loss) else float("nan"), self.step)
            self.writer.add_scalar("test/acc", acc, self.step)
        self.timers["eval"] += time.perf_counter() - t0
        return {"loss": loss, "acc": acc}

    # --- the end of a run -------------------------------------------------------------------------
    def finish(self) -> dict:
        wall = time.perf_counter() - getattr(self, "t_start", time.perf_counter())
        if self.probes is not None:
            self.probes.close()  # removes the training-batch hooks: the model is left as built
        if self.status == "running":
            self.status = "completed"
            if self.history["test_acc"] and self.history["test_acc"][-1] < self.chance_acc() + self.cfg.report.not_learning_margin:
                self.status = "not_learning"
        summary = self.summary(wall)
        if self.out_dir is not None:
            self._save(summary)
        return summary

    def chance_acc(self) -> float:
        counts = torch.bincount(self.data.y_test.cpu(), minlength=self.data.num_classes)
        return float(counts.max()) / float(counts.sum())

    def steps_to_targets(self) -> Dict[str, Optional[int]]:
        out = {}
        for target in self.cfg.report.targets:
            hits = [s for s, a in zip(self.history["eval_step"], self.history["test_acc"]) if a >= target]
            out[f"{target:g}"] = hits[0] if hits else None
        return out

    def summary(self, wall: float) -> dict:
        h = self.history
        accs = h["test_acc"]
        best_i = int(np.nanargmax(accs)) if accs and not all(math.isnan(a) for a in accs) else None
        train_time = max(wall - self.timers["eval"] - self.timers["probe"], 1e-9)
        return {
            "status": self.status,
            "diverged_at_step": self.diverged_at,
            "steps": self.step,
            "steps_requested": self.cfg.trainer.steps,
            "final_test_acc": accs[-1] if accs else None,
            "final_test_loss": h["test_loss"][-1] if accs else None,
            "best_test_acc": accs[best_i] if best_i is not None else None,
            "best_test_acc_step": h["eval_step"][best_i] if best_i is not None else None,
            "final_train_loss": h["train_loss"][-1] if h["train_loss"] else None,
            "final_train_acc": h["train_acc"][-1] if h["train_acc"] else None,
            "steps_to_target": self.steps_to_targets(),
            "chance_acc": self.chance_acc(),
            "steps_per_sec": self.step / max(wall, 1e-9),
            "train_steps_per_sec": self.step / train_time,
            "wall_time_sec": wall,
            "eval_time_sec": self.timers["eval"],
            "probe_time_sec": self.timers["probe"],
            "device": str(self.device) if self.device.type != "cuda" else torch.cuda.get_device_name(self.device),
            "threads": self.threads,
            "dataset": {"name": self.data.name, "train": int(self.data.x_train.shape[0]),
                        "test": int(self.data.x_test.shape[0]), "source": self.data.source},
            "drift": self.probes.final_summary() if self.probes is not None else {},
            "overrides": self.overrides,
            "config": OmegaConf.to_container(OmegaConf.structured(self.cfg)),
        }

    def _save(self, summary: dict) -> None:
        d = self.out_dir
        write_json(d / "summary.json", summary)
        write_npz(d / "metrics.npz", {k: np.asarray(v, dtype=float) for k, v in self.history.items()})
        if self.probes is not None:
            write_npz(d / "probes.npz", self.probes.arrays())
        if self.cfg.trainer.checkpoint:
            atomic_write(d / "checkpoint.pt", lambda p: torch.save(self.checkpoint(), p))
        if self.writer is not None:
            self.writer.add_text("status", f"{summary['status']} at step {summary['steps']}", self.step)
            self._write_hparams(summary)
            self.writer.flush()
            self.writer.close()

    def _write_hparams(self, summary: dict) -> None:
        """HParams dashboard entry in this run's own directory (SummaryWriter.add_hparams would
        create a second run folder): the experiment/session summaries go through the file writer."""
        from torch.utils.tensorboard.summary import hparams

        metrics = {"hparams/final_test_acc": summary["final_test_acc"], "hparams/best_test_acc": summary["best_test_acc"],
                   "hparams/diverged": float(summary["status"] == "diverged"),
                   "hparams/steps_per_sec": summary["steps_per_sec"]}
        metrics = {k: float("nan") if v is None else float(v) for k, v in metrics.items()}
        exp, ssi, sei = hparams(hparam_values(self.cfg, self.overrides), metrics)
        for s in (exp, ssi, sei):
            self.writer.file_writer.add_summary(s)
        for tag, v in metrics.items():
            self.writer.add_scalar(tag, v, self.step)

    def checkpoint(self) -> dict:
        return {
            "step": self.step,
            "model": self.model.state_dict(),
            "optimizer": self.opt.state_dict(),
            "sampler": self.sampler.state_dict(),
            "rng": {"torch": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None},
            "probes": self.probes.state_dict() if self.probes is not None else None,
            "history": self.history,
            "status": self.status,
            "config": OmegaConf.to_container(OmegaConf.structured(self.cfg)),
        }

    def _progress(self):
        from ics.progress import RunProgress

        show = self.cfg.trainer.progress
        if show == "auto":
            show = sys.stdout.isatty()
        return RunProgress(self.cfg.trainer.steps, enabled=bool(show), console=self.console,
                           test_acc=lambda: self.history["test_acc"][-1] if self.history["test_acc"] else None)


HPARAM_KEYS = ("model.name", "model.activation", "model.norm", "model.init", "data.name", "optim.name", "optim.lr",
               "trainer.batch_size", "trainer.steps", "trainer.seed")


def hparam_values(cfg: Config, overrides: Sequence[str]) -> Dict[str, object]:
    """The main knobs plus every overridden key, as TensorBoard-friendly scalars/strings."""
    conf = OmegaConf.structured(cfg)
    keys = list(HPARAM_KEYS) + [o.lstrip("+~").split("=")[0] for o in overrides if "=" in o]
    out: Dict[str, object] = {}
    for key in keys:
        if key.startswith("hydra.") or key in out:
            continue
        val = OmegaConf.select(conf, key, default=None)
        if isinstance(val, (bool, int, float, str)):
            out[key] = val
        elif val is not None:
            out[key] = str(OmegaConf.to_container(val) if OmegaConf.is_config(val) else val)
    return out


def train(cfg: Config, out_dir: Optional[Path] = None, data: Optional[DataBundle] = None, **kw) -> dict:
    """Library entry point: build, fit, return the summary dict (no Hydra needed)."""
    return Trainer(cfg, out_dir, data=data, **kw).fit()
