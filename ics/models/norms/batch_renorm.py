"""model.norm=batch_renorm: Batch Renormalization (Ioffe 2017, arXiv:1702.03275, §3 and Alg. 1).

In training, per unit, with μ_B, σ_B = √(σ²_B + ε) the batch's (σ²_B the biased batch variance) and
μ, σ the running statistics before this step's update:

  r = clip(σ_B/σ, 1/r_max, r_max),  d = clip((μ_B − μ)/σ, −d_max, d_max)   (constants: no gradient)
  y = γ·((x − μ_B)/σ_B · r + d) + β

so that, unclipped, y = γ·(x − μ)/σ + β: the training output uses the running statistics the
evaluation uses, with the batch's only in the gradient. In evaluation y = γ·(x − μ)/σ + β (as BN).
r_max, d_max follow a warm-up in steps (counted by num_batches_tracked, part of the checkpoint):
(1, 0) — plain BN — until model.renorm_start, then linear to (model.renorm_r_max,
model.renorm_d_max) over model.renorm_ramp steps. The running statistics follow Alg. 1 after r and
d are taken: μ ← μ + α(μ_B − μ), σ ← σ + α(σ_B − σ) with α = model.bn_momentum — σ is a moving
average of the batches' standard deviations, not the square root of a moving average of variances
(which at batch 2 sits near √(E s²) while σ_B averages E|x₁ − x₂|/2, so r would centre on ≈ 0.56
instead of 1). σ is kept in running_var as σ² − ε, so that √(running_var + ε) = σ wherever BN's
buffers are read (evaluation, precise statistics, bn_noise). The gradient of w_k is
orthogonal to w_k (r, d are constants), but the forward is not invariant to ‖w_k‖ once r, d are
unclipped: `exact = False`.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ics.config.norms import Norm
from ics.registry import NORMS
from ics.words import count

DECLARED = Norm(
    name="batch_renorm",
    doc="Batch Renormalization (Ioffe 2017)",
    batch_statistics=True,
    eval_mode="running",
    invariance="row",
    exact=False,  # r and d are constants in backward: the gradient is invariant, the forward is not
    keys={
        "renorm_r_max": (3.0, "r_max once warmed up (Ioffe 2017: 3)", ("ge", 1)),
        "renorm_d_max": (5.0, "d_max once warmed up (Ioffe 2017: 5)", ("ge", 0)),
        "renorm_start": (1_000, "steps of plain BN (r_max = 1, d_max = 0) before the warm-up (steps)", ("ge", 0)),
        "renorm_ramp": (
            4_000,
            "steps over which r_max, d_max grow linearly to their values (steps; 0: at once)",
            ("ge", 0),
        ),
    },
)


class RunningStatsNorm(nn.modules.batchnorm._BatchNorm):
    """A _BatchNorm that does its own training-mode normalisation (subclasses: `forward_train`)."""

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() not in (2, 4):
            raise ValueError(f"expected a 2D or 4D input, got {x.dim()}D")

    def dims(self, x: torch.Tensor):
        return [0] if x.dim() == 2 else [0, 2, 3]

    def view(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return t.view((1, -1) + (1,) * (x.dim() - 2))

    def update(self, mean: torch.Tensor, var: torch.Tensor) -> None:
        """running ← (1 − f)·running + f·batch, f = momentum (None: 1/batches so far), as BN."""
        with torch.no_grad():
            self.num_batches_tracked += 1
            f = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
            self.running_mean.mul_(1 - f).add_(mean.detach(), alpha=f)
            self.running_var.mul_(1 - f).add_(var.detach(), alpha=f)

    def update_scale(self, mean: torch.Tensor, scale: torch.Tensor, offset: float) -> None:
        """μ += f(μ_B − μ) and a scale s̄ += f(s − s̄) averaged as itself (not as its square), kept
        in running_var as s̄² − offset (f: momentum; None: 1/batches so far)."""
        with torch.no_grad():
            self.num_batches_tracked += 1
            f = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
            self.running_mean.add_(mean.detach() - self.running_mean, alpha=f)
            s_bar = torch.sqrt(self.running_var + offset)
            s_bar = s_bar + f * (scale.detach() - s_bar)
            self.running_var.copy_(s_bar * s_bar - offset)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(x)
        if not self.training:
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)
        return self.forward_train(x)


class BatchRenorm(RunningStatsNorm):
    def __init__(self, features: int, eps: float, momentum, r_max: float, d_max: float, start: int, ramp: int):
        super().__init__(features, eps=eps, momentum=momentum)
        self.r_max, self.d_max, self.start, self.ramp = r_max, d_max, start, ramp
        self.correct = True  # False: plain BN in training (precise BN recomputes BN's population statistics)

    def limits(self, step: int):
        """(r_max, d_max) at `step` (steps): (1, 0) before start, linear over ramp, then the configured."""
        t = 1.0 if step >= self.start + self.ramp else max(0.0, (step - self.start) / self.ramp) if self.ramp else 0.0
        return 1 + t * (self.r_max - 1), t * self.d_max

    def update_sigma(self, mean: torch.Tensor, sd_b: torch.Tensor) -> None:
        """Alg. 1's update: μ += α(μ_B − μ), σ += α(σ_B − σ) (α: momentum; None: 1/batches so far)."""
        self.update_scale(mean, sd_b, self.eps)

    def forward_train(self, x: torch.Tensor) -> torch.Tensor:
        dims = self.dims(x)
        mean, var = x.mean(dim=dims), x.var(dim=dims, unbiased=False)
        sd_b = torch.sqrt(var + self.eps)
        xhat = (x - self.view(mean, x)) / self.view(sd_b, x)
        if self.correct:
            r_max, d_max = self.limits(int(self.num_batches_tracked))
            with torch.no_grad():  # stop_gradient on r, d (Alg. 1)
                sd = torch.sqrt(self.running_var + self.eps)
                r = (sd_b / sd).clamp(1 / r_max, r_max)
                d = ((mean - self.running_mean) / sd).clamp(-d_max, d_max)
            xhat = xhat * self.view(r, x) + self.view(d, x)
        if self.track_running_stats:
            self.update_sigma(mean, sd_b)
        return xhat * self.view(self.weight, x) + self.view(self.bias, x)

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, r_max={self.r_max}, d_max={self.d_max}, "
            f"from step {self.start} over {count(self.ramp, 'step')}"
        )


@NORMS.register("batch_renorm")
def batch_renorm(features: int, spatial: bool, cfg) -> nn.Module:
    return BatchRenorm(
        features, cfg.bn_eps, cfg.bn_momentum, cfg.renorm_r_max, cfg.renorm_d_max, cfg.renorm_start, cfg.renorm_ramp
    )
