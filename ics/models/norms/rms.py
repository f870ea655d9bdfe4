"""model.norm=rms: RMSNorm (Zhang & Sennrich 2019, eq. 4), with the paper's bias.

Per example, over all of a block's units (MLP) or channels × height × width (CNN), no centring:
y = γ·x/√(mean(x²) + ε) + β, γ, β per unit (MLP) or per channel (CNN). Nothing depends on the batch,
so training and evaluation are the same function. The output is invariant to scaling the whole
affine weight W (all rows by one c > 0), not one row, and, unlike LayerNorm, not to a shift.
"""

from __future__ import annotations

import torch
from torch import nn

from ics.config.norms import Norm
from ics.registry import NORMS

DECLARED = Norm(
    name="rms", doc="RMSNorm (Zhang & Sennrich 2019)", batch_statistics=False, eval_mode="same", invariance="layer"
)


class RMSNorm(nn.Module):
    def __init__(self, features: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(features))  # γ
        self.bias = nn.Parameter(torch.zeros(features))  # β: the block's affine layer has none

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dims = tuple(range(1, x.dim()))
        view = (1, -1) + (1,) * (x.dim() - 2)
        x = x * torch.rsqrt(x.pow(2).mean(dim=dims, keepdim=True) + self.eps)
        return x * self.weight.view(view) + self.bias.view(view)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}"


@NORMS.register("rms")
def rms_norm(features: int, spatial: bool, cfg) -> nn.Module:
    return RMSNorm(features, cfg.bn_eps)
