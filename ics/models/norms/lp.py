"""model.norm=lp: Santurkar et al. (2018, §3.3)'s ℓp normalisation, p = model.norm_p ∈ {1, 2, inf}.

BN's division by the batch standard deviation replaced by the average ℓp norm of the unit's
activations over the batch (a conv channel: over batch, height and width), before BN's affine map:

  s_j = ((1/m) Σ_i |x_ij|^p)^(1/p)   (p = inf: max_i |x_ij|),   y_j = γ_j·x_j/(s_j + ε) + β_j

Nothing is subtracted, so neither the mean nor the variance of a unit's output is fixed (the point of
the paper's experiment: normalisation without distributional stability). In evaluation s_j is the
running average of the batches' s_j (model.bn_momentum, as BN's statistics), kept as running_var = s²
so that precise BN and bn_noise read it as BN's σ; running_mean tracks μ_B (reported, not used).
Each row w_k is scale-invariant (s_j scales with it).
"""
from __future__ import annotations

import torch
from torch import nn

from ics.models.norms.batch_renorm import RunningStatsNorm
from ics.registry import NORMS


class LpNorm(RunningStatsNorm):
    invariance = "row"

    def __init__(self, features: int, eps: float, momentum, p: str):
        super().__init__(features, eps=eps, momentum=momentum)
        self.p = p

    def scale(self, x: torch.Tensor) -> torch.Tensor:
        a = x.abs().transpose(0, 1).reshape(x.shape[1], -1)  # (units, samples)
        if self.p == "inf":
            return a.amax(dim=1)
        return a.mean(dim=1) if self.p == "1" else a.pow(2).mean(dim=1).sqrt()

    def forward_train(self, x: torch.Tensor) -> torch.Tensor:
        s = self.scale(x)
        if self.track_running_stats:
            self.update(x.mean(dim=self.dims(x)), s * s)
        return x / self.view(s + self.eps, x) * self.view(self.weight, x) + self.view(self.bias, x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            return self.forward_train(x)
        s = self.running_var.sqrt()
        return x / self.view(s + self.eps, x) * self.view(self.weight, x) + self.view(self.bias, x)

    def moments(self, x: torch.Tensor):
        """((0, s_B), (0, s_pop)): ℓp subtracts nothing and divides by s."""
        zero = torch.zeros_like(self.running_mean)
        return (zero, self.scale(x.detach()) + self.eps), (zero, self.running_var.sqrt() + self.eps)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, p={self.p}"


@NORMS.register("lp")
def lp_norm(features: int, spatial: bool, cfg) -> nn.Module:
    return LpNorm(features, cfg.bn_eps, cfg.bn_momentum, str(cfg.norm_p))
