"""BN's inference statistics (BN paper §3.1 and Alg. 2): what an evaluation of a BN model means.

At every evaluation (trainer.eval_every, and the last step) the test split is also evaluated with

  ema       the running statistics PyTorch keeps during training (new = (1 − m)·old + m·batch,
            m = model.bn_momentum; what test/acc uses)
  precise   population statistics recomputed on a copy ("precise BN"): running statistics reset,
            then the cumulative average (momentum=None) over bn_stats.batches training batches of
            the training batch size, shuffled passes without replacement from a fixed generator
            (the same batches every time).
            PyTorch averages the unbiased batch variances, i.e. Var = m/(m−1)·E[σ²_B] as in Alg. 2
  batch{b}  pure batch statistics: the test set (a fixed subset of bn_stats.test_subset examples in
            a fixed random order) in batches of b, each normalised by its own statistics — the
            normaliser's training-mode forward without updating anything; for Batch Renorm that is
            the batch's statistics corrected by r, d towards the running ones (what it computes in
            training), for ℓp the batch's μ and ℓp average

and per BN layer |μ_EMA − μ_pop| / σ_pop and |log σ²_EMA / σ²_pop| (means over units), where pop
is the precise estimate. TensorBoard: test_bn/<kind>/acc|loss and test_bn/<layer>/mean_gap|log_var_gap.
With bn_stats.recalibrate_at_end the final precise-BN accuracy goes into summary.json.
"""

from __future__ import annotations

import copy
from typing import Any, Dict, List

import torch
from torch import nn

from ics.config import ConfigError
from ics.config.norms import declared
from ics.instruments.base import Instrument, RunContext
from ics.models import noise_off
from ics.models.evaluate import eval_schedule, evaluate_model
from ics.registry import INSTRUMENTS

BN = nn.modules.batchnorm._BatchNorm  # every normaliser that declares batch statistics subclasses it
_with = [n for n, norm in declared().items() if norm.batch_statistics]
_without = [n for n, norm in declared().items() if not norm.batch_statistics and n != "none"]
NOT_BATCH_STATS = (
    f"it needs a normaliser with batch statistics; allowed: model.norm={', '.join(_with)} "
    f"({', '.join(_without)} have no batch or running statistics)"
)


def bn_layers(model: nn.Module) -> Dict[str, BN]:
    """Block name -> its BN module (h1, c1, ...)."""
    out = {}
    for name, m in model.named_modules():
        if isinstance(m, BN):
            parts = name.split(".")
            out[parts[1] if parts[0] == "blocks" and len(parts) > 2 else name] = m
    return out


@torch.no_grad()
def precise_statistics(model: nn.Module, x_train: torch.Tensor, batches: int, batch_size: int, seed: int) -> nn.Module:
    """A copy of `model` whose BN running statistics are the cumulative average over `batches`
    training batches (a fixed draw from `seed`): population statistics instead of the EMA."""
    twin = copy.deepcopy(model)
    for bn in twin.modules():
        if isinstance(bn, BN):
            bn.reset_running_stats()
            bn.momentum = None  # cumulative moving average
            if hasattr(bn, "correct"):
                bn.correct = False  # Batch Renorm: the population statistics of the batch-normalised net, as BN's
    gen = torch.Generator().manual_seed(seed)
    twin.train()
    n = x_train.shape[0]
    perm, pos = torch.randperm(n, generator=gen), 0
    with noise_off(twin):
        for _ in range(batches):  # shuffled passes without replacement, like a data loader
            if pos + batch_size > n:
                perm, pos = torch.randperm(n, generator=gen), 0
            twin(x_train[perm[pos : pos + batch_size].to(x_train.device)])
            pos += batch_size
    twin.eval()
    return twin


@torch.no_grad()
def batch_statistics_eval(model: nn.Module, data, loss_fn, batch: int, subset: torch.Tensor) -> List[float]:
    """(loss, score) with every BN normalising by its own test batch (full batches only)."""
    from ics.instruments.probes import probe_mode

    x, y = data.x_test[subset], data.y_test[subset]
    n = (x.shape[0] // batch) * batch
    loss_sum = torch.zeros((), device=x.device)
    score = torch.zeros((), device=x.device)
    with probe_mode(model, "batch"), noise_off(model):
        for i in range(0, n, batch):
            out = model(x[i : i + batch])
            loss_sum += loss_fn(out, y[i : i + batch]) * batch
            if data.task != "regression":
                score += (out.argmax(1) == y[i : i + batch]).sum()
    loss, score = (torch.stack([loss_sum, score]) / max(n, 1)).tolist()
    return [loss, score if data.task != "regression" else float("nan")]


@INSTRUMENTS.register("bn_stats")
class BNInferenceStatistics(Instrument):
    key = "bn_stats"

    def __init__(self, cfg, ctx: RunContext):
        super().__init__(cfg, ctx)
        gen = torch.Generator().manual_seed(cfg.seed + 1)
        n = min(cfg.test_subset, ctx.data.x_test.shape[0])
        self.subset = torch.randperm(ctx.data.x_test.shape[0], generator=gen)[:n].to(ctx.data.x_test.device)
        self.batch_size = cfg.batch_size or ctx.cfg.trainer.batch_size
        self._schedule = None  # the loop's evaluation steps (eval_schedule), made on first use

    @classmethod
    def check(cls, section, cfg, model, spec) -> None:
        if not bn_layers(model):
            raise ConfigError(f"bn_stats.enabled=true is invalid with model.norm={cfg.model.norm}: {NOT_BATCH_STATS}")
        if min(section.test_batch_sizes) < 2:
            raise ConfigError(
                f"bn_stats.test_batch_sizes={list(section.test_batch_sizes)} is invalid: every size "
                "must be >= 2 (BN needs 2+ examples)"
            )

    def due(self, step: int, final: bool = False) -> bool:
        """At every evaluation of the loop: step 0, every eval_every, and the log-spaced early ones
        (10, 13, ..., where EMA and population statistics differ most), and the last step."""
        t = self.ctx.cfg.trainer
        if self._schedule is None:
            self._schedule = eval_schedule(t.steps, t.eval_every, t.eval_log_points)
        return final or step == 0 or step in self._schedule

    def measure(self, step: int) -> None:
        ctx, cfg = self.ctx, self.cfg
        bs = ctx.cfg.trainer.eval_batch_size
        out: Dict[str, float] = {}
        out["test_bn/ema/loss"], out["test_bn/ema/acc"] = evaluate_model(ctx.model, ctx.data, bs)
        twin = precise_statistics(ctx.model, ctx.data.x_train, cfg.batches, self.batch_size, cfg.seed)
        out["test_bn/precise/loss"], out["test_bn/precise/acc"] = evaluate_model(twin, ctx.data, bs)
        for b in cfg.test_batch_sizes:
            out[f"test_bn/batch{b}/loss"], out[f"test_bn/batch{b}/acc"] = batch_statistics_eval(
                ctx.model, ctx.data, ctx.loss_fn, b, self.subset
            )
        gaps = []
        names = []
        for (layer, ema), pop in zip(bn_layers(ctx.model).items(), bn_layers(twin).values()):
            sd = torch.sqrt(pop.running_var + pop.eps)
            gaps += [
                ((ema.running_mean - pop.running_mean).abs() / sd).mean(),
                torch.log((ema.running_var + ema.eps) / (pop.running_var + pop.eps)).abs().mean(),
            ]
            names += [f"test_bn/{layer}/mean_gap", f"test_bn/{layer}/log_var_gap"]
        out.update(zip(names, torch.stack(gaps).tolist()))
        self.emit(step, out)

    def layout(self) -> dict:
        return {
            "BN inference statistics (BN paper Alg. 2)": {
                "test accuracy: EMA vs precise vs batch statistics": ["Multiline", [r"test_bn/[a-z0-9]+/acc$"]],
                "EMA vs population: |μ gap| / σ_pop": ["Multiline", [r"test_bn/.*/mean_gap$"]],
                "EMA vs population: |log σ² ratio|": ["Multiline", [r"test_bn/.*/log_var_gap$"]],
            }
        }

    def meta(self) -> Dict[str, Any]:
        return {
            "batches": self.cfg.batches,
            "batch_size": self.batch_size,
            "test_batch_sizes": list(self.cfg.test_batch_sizes),
            "test_subset": int(self.subset.numel()),
        }

    def summary(self) -> Dict[str, Any]:
        if not self.cfg.recalibrate_at_end:
            return {}
        keys = ["ema", "precise"] + [f"batch{b}" for b in self.cfg.test_batch_sizes]
        return {k: self.series[f"test_bn/{k}/acc"][-1] for k in keys if self.series.get(f"test_bn/{k}/acc")}
