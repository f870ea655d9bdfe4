"""model.norm=weight: weight normalisation (Salimans & Kingma 2016, eq. 2), w_k = g_k·v_k/‖v_k‖.

It sits in the norm slot: the affine layer computes v·x with its own weight v (no bias) and this
module rescales each output unit, y_k = (g_k/‖v_k‖)·(v_k·x) + b_k, which is w·x + b with w as above;
gradients reach v through ‖v‖ too. g starts at 1 (unit-norm rows: no data-dependent initialisation,
which the paper proposes as an option), b at 0. Nothing depends on the batch; training and evaluation
are the same function. The output is invariant to scaling any row v_k.
"""

from __future__ import annotations

import torch
from torch import nn

from ics.config.norms import Norm
from ics.registry import NORMS

DECLARED = Norm(
    name="weight",
    doc="weight normalisation (Salimans & Kingma 2016)",
    batch_statistics=False,
    eval_mode="same",
    invariance="row",
)


class WeightNorm(nn.Module):
    def __init__(self, features: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(features))  # g (named like BN's γ: the instruments read it so)
        self.bias = nn.Parameter(torch.zeros(features))
        self._affine = ()  # the bound affine layer, held outside the module tree (its weight is its own)

    def bind(self, affine: nn.Module) -> None:
        self._affine = (affine,)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = self._affine[0].weight
        scale = self.weight / v.reshape(v.shape[0], -1).norm(dim=1)
        view = (1, -1) + (1,) * (x.dim() - 2)
        return x * scale.view(view) + self.bias.view(view)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, g·v/‖v‖ per output unit"


@NORMS.register("weight")
def weight_norm(features: int, spatial: bool, cfg) -> nn.Module:
    return WeightNorm(features)
