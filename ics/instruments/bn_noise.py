"""BN's own step-to-step noise, in the Batch Renormalization terms (Ioffe 2017).

From the training forward pass itself (forward pre-hooks on the BN layers; no extra pass), every
`bn_noise.every` steps, per BN layer and unit j:

  r_j = σ_B,j / σ_pop,j         d_j = (μ_B,j − μ_pop,j) / σ_pop,j

with μ_B, σ_B the mini-batch's statistics (σ² biased, + ε: what BN divides by) and μ_pop, σ_pop the
running statistics before this step's update (σ_pop = √(running_var + ε)). For the other
normalisers with batch statistics: Batch Renorm as BN; ℓp (which divides by the average ℓp norm s
instead of σ) r = s_B/s_pop and d = (μ_B − μ_pop)/s_pop (ics.models.norms.moments). r = 1, d = 0 would be a
batch that looks exactly like the population; their spread is the distribution shift BN itself
injects every step. Logged: r_mean, r_std, d_mean, d_std (over units), d_abs (mean |d|);
summary.json adds their spread over steps. TensorBoard: bn_noise/<layer>/<metric>.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

import numpy as np
import torch

from ics.config import ConfigError
from ics.instruments.base import Batch, Instrument, RunContext
from ics.instruments.bn_stats import NOT_BATCH_STATS, bn_layers
from ics.models.norms import moments
from ics.registry import INSTRUMENTS

METRICS = ("r_mean", "r_std", "d_mean", "d_std", "d_abs")


@INSTRUMENTS.register("bn_noise")
class BNNoise(Instrument):
    key = "bn_noise"
    watches_training_forward = True

    def __init__(self, cfg, ctx: RunContext):
        super().__init__(cfg, ctx)
        self.layers = bn_layers(ctx.model)
        self.armed: Optional[int] = None  # the step whose training forward is to be read
        self.captured: Dict[str, torch.Tensor] = {}
        self.handles = [
            bn.register_forward_pre_hook(lambda m, args, n=name: self._hook(n, m, args[0]))
            for name, bn in self.layers.items()
        ]

    @classmethod
    def check(cls, section, cfg, model, spec) -> None:
        if not bn_layers(model):
            raise ConfigError(f"bn_noise.enabled=true is invalid with model.norm={cfg.model.norm}: {NOT_BATCH_STATS}")

    def _hook(self, name: str, bn, x: torch.Tensor) -> None:
        # only the loop's own training forward: never an instrument's pass through the same modules
        if self.armed is None or not self.ctx.training_forward or not bn.training:
            return
        with torch.no_grad():
            (mu_b, sd_b), (mu_pop, sd_pop) = moments(bn, x.detach())
            r = sd_b / sd_pop
            d = (mu_b - mu_pop) / sd_pop
            self.captured[name] = torch.stack([r.mean(), r.std(), d.mean(), d.std(), d.abs().mean()])

    def wants_batch(self, step: int) -> bool:
        return step % self.cfg.every == 0

    def observe_batch(self, batch: Batch) -> None:
        self.armed = batch.step
        self.captured = {}

    def due(self, step: int, final: bool = False) -> bool:
        return self.armed is not None and step == self.armed + 1

    def measure(self, step: int) -> None:
        if self.captured:
            names = [f"bn_noise/{layer}/{m}" for layer in self.captured for m in METRICS]
            values = torch.cat(list(self.captured.values())).tolist()
            self.emit(self.armed, dict(zip(names, values)))  # labelled with the batch's step
        self.armed, self.captured = None, {}

    def layout(self) -> dict:
        return {
            "BN's own noise (Batch Renorm r, d)": {
                "r = σ_B/σ_pop (mean over units)": ["Multiline", [r"bn_noise/.*/r_mean$"]],
                "d = (μ_B − μ_pop)/σ_pop: mean |d|": ["Multiline", [r"bn_noise/.*/d_abs$"]],
                "spread of r over units": ["Multiline", [r"bn_noise/.*/r_std$"]],
            }
        }

    def meta(self) -> Dict[str, Any]:
        return {"layers": list(self.layers), "metrics": list(METRICS)}

    def summary(self) -> Dict[str, Any]:
        """Per layer: the mean of each metric over steps, and the spread over steps of r_mean, d_mean."""
        out = {}
        for layer in self.layers:
            d = {}
            for m in METRICS:
                s = self.series.get(f"bn_noise/{layer}/{m}")
                if s:
                    d[m] = float(np.nanmean(s))
            for m in ("r_mean", "d_mean"):
                s = self.series.get(f"bn_noise/{layer}/{m}")
                if s and len(s) > 1:
                    d[f"{m}_std_over_steps"] = float(np.nanstd(s, ddof=1))
            out[layer] = d
        return out

    def state_dict(self) -> dict:
        return {**super().state_dict(), "armed": -1 if self.armed is None else self.armed}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.armed = None  # a checkpoint is written after the step's measurements

    def close(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles = []
