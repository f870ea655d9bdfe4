"""model.norm=batch: BatchNorm (Ioffe & Szegedy 2015, Alg. 1), torch's own module.

y = γ·(x − μ_B)/√(σ²_B + ε) + β per unit (a conv channel: over batch, height and width), with
batch statistics in training and running statistics (model.bn_momentum) in evaluation.
Each row w_k of the affine weight is scale-invariant: BN(c·w_k·x) = BN(w_k·x) for c > 0.
"""

from __future__ import annotations

from torch import nn

from ics.config.norms import Norm
from ics.registry import NORMS

DECLARED = Norm(
    name="batch", doc="BatchNorm (Ioffe & Szegedy 2015)", batch_statistics=True, eval_mode="running", invariance="row"
)


@NORMS.register("batch")
def batch_norm(features: int, spatial: bool, cfg) -> nn.Module:
    cls = nn.BatchNorm2d if spatial else nn.BatchNorm1d
    return cls(features, eps=cfg.bn_eps, momentum=cfg.bn_momentum)  # momentum None: cumulative average
