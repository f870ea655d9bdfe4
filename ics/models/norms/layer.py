"""model.norm=layer: LayerNorm (Ba, Kiros & Hinton 2016, eq. 4).

Per example, over all of a block's units (MLP) or channels × height × width (CNN):
y = γ·(x − μ)/√(σ² + ε) + β, μ and σ² that example's own, so training and evaluation are the same
function and nothing depends on the batch. γ, β are per unit (MLP) or per channel (CNN, the usual
choice for conv nets; torch's GroupNorm with one group). The output is invariant to scaling the
whole affine weight W (all rows by one c > 0), not to scaling one row.
"""

from __future__ import annotations

from torch import nn

from ics.config.norms import Norm
from ics.registry import NORMS

DECLARED = Norm(
    name="layer", doc="LayerNorm (Ba et al. 2016)", batch_statistics=False, eval_mode="same", invariance="layer"
)


class LayerNorm2d(nn.GroupNorm):
    def __init__(self, channels: int, eps: float):
        super().__init__(1, channels, eps=eps)


@NORMS.register("layer")
def layer_norm(features: int, spatial: bool, cfg) -> nn.Module:
    return LayerNorm2d(features, cfg.bn_eps) if spatial else nn.LayerNorm(features, eps=cfg.bn_eps)
