"""model.norm=lp: Santurkar et al. (2018, §3.3)'s ℓp normalisation, p = model.norm_p ∈ {1, 2, inf}.

The paper (§3.3): schemes "that fix the first order moment of the activations, as BatchNorm does, and
then normalize them by the average of their ℓp-norm (before shifting the mean), for p = 1, 2, ∞".
Read here as: per unit j over the batch (a conv channel: over batch, height and width),

  μ_j = (1/m) Σ_i x_ij,   s_j = ((1/m) Σ_i |x_ij|^p)^(1/p)  (p = inf: max_i |x_ij|),
  y_j = γ_j·(x_j − μ_j)/(s_j + ε) + β_j

— the mean subtracted as in BN, the ℓp average taken of the activations before the mean is
subtracted (so p = 2 is not BN: s_2 = √(σ² + μ²) ≥ σ). The mean is fixed, the variance is not. In
evaluation y_j = γ_j·(x_j − μ̄_j)/(s̄_j + ε) + β_j with μ̄, s̄ moving averages of the batches' μ_j and
s_j themselves (model.bn_momentum; s̄ += α(s_j − s̄), the scale ℓp divides by, not the square root of
an average of s²: Jensen would put that above the mean s), kept as running_mean and running_var =
s̄², so that precise BN and bn_noise read them as BN's μ and σ.
Each row w_k is scale-invariant (μ_j and s_j scale with it).
"""

from __future__ import annotations

import torch
from torch import nn

from ics.config.norms import Norm
from ics.models.norms.batch_renorm import RunningStatsNorm
from ics.registry import NORMS

DECLARED = Norm(
    name="lp",
    doc="ℓp normalisation (Santurkar et al. 2018, §3.3)",
    batch_statistics=True,
    eval_mode="running",
    invariance="row",
    keys={
        "norm_p": (
            "2",
            "the p of Santurkar et al.'s ℓp normalisation (subtract the batch mean, divide "
            "by the average ℓp norm over the batch)",
            ("choices", "1", "2", "inf"),
        )
    },
)


class LpNorm(RunningStatsNorm):
    def __init__(self, features: int, eps: float, momentum, p: str):
        super().__init__(features, eps=eps, momentum=momentum)
        self.p = p

    def scale(self, x: torch.Tensor) -> torch.Tensor:
        """s_j: the average ℓp norm of each unit's activations over the batch (before centring)."""
        a = x.abs().transpose(0, 1).reshape(x.shape[1], -1)  # (units, samples)
        if self.p == "inf":
            return a.amax(dim=1)
        return a.mean(dim=1) if self.p == "1" else a.pow(2).mean(dim=1).sqrt()

    def forward_train(self, x: torch.Tensor) -> torch.Tensor:
        mean, s = x.mean(dim=self.dims(x)), self.scale(x)
        if self.track_running_stats:
            self.update_scale(mean, s, 0.0)
        return self._normalise(x, mean, s)

    def _normalise(self, x: torch.Tensor, mean: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        return (x - self.view(mean, x)) / self.view(s + self.eps, x) * self.view(self.weight, x) + self.view(
            self.bias, x
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            return self.forward_train(x)
        return self._normalise(x, self.running_mean, self.running_var.sqrt())

    def moments(self, x: torch.Tensor):
        """((μ_B, s_B), (μ_pop, s_pop)): what ℓp subtracts and divides by."""
        x = x.detach()
        return (
            (x.mean(dim=self.dims(x)), self.scale(x) + self.eps),
            (self.running_mean, self.running_var.sqrt() + self.eps),
        )

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, p={self.p}"


@NORMS.register("lp")
def lp_norm(features: int, spatial: bool, cfg) -> nn.Module:
    return LpNorm(features, cfg.bn_eps, cfg.bn_momentum, str(cfg.norm_p))
