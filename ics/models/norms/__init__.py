"""Normalisers (model.norm), one module each, all placed where BN is: affine -> norm -> [noise] -> act.

A normaliser is a factory registered with @NORMS.register("<name>") that takes (features, spatial,
cfg) and returns a module or None; its settings are keys of ModelConfig (ics/config/schema.py) and
its option file is configs/model/mlp_<name>.yaml. A factory refuses a block it makes no sense for
with a one-line ConfigError (raised while the model is built on the meta device, before anything
is written). The returned module may declare, as class attributes, what the instruments need:

  invariance   which scalings of the affine weight W leave the normaliser's output unchanged:
               "row" (each row w_k on its own: BN, ℓp, weight norm's v), "layer" (all of W at once:
               LayerNorm), "group" (the rows of one group at once: GroupNorm), None (nothing)
  exact        False where the invariance holds for the gradient only (Batch Renorm: r, d are
               constants in backward, so ⟨w, ∇w⟩ = 0, but the forward depends on ‖w‖ through r)
  bind(affine) called with the block's affine layer (weight norm reads its weight)

Normalisers that use batch statistics subclass torch's _BatchNorm (running_mean, running_var,
num_batches_tracked, eps, momentum), so probes' batch mode, precise BN (bn_stats) and bn_noise
treat them as BN; `moments` gives the (shift, scale) each one divides by.
"""
from __future__ import annotations

from typing import Dict, Optional, Tuple

import torch
from torch import nn

from ics.models.norms import batch, batch_renorm, group, layer, lp, weight  # noqa: F401  (fill NORMS)
from ics.registry import NORMS

BATCH_STATISTICS = nn.modules.batchnorm._BatchNorm


@NORMS.register("none")
def _no_norm(features: int, spatial: bool, cfg) -> Optional[nn.Module]:
    return None


def invariance_groups(norm: Optional[nn.Module], rows: int, exact_only: bool = False) -> int:
    """How many groups of consecutive rows of the affine weight (rows = output units/channels) are
    each scale-invariant under `norm`: rows (per row), 1 (the whole layer), G (GroupNorm), 0 (none)."""
    kind = getattr(norm, "invariance", "row" if isinstance(norm, BATCH_STATISTICS) else None)
    if kind is None or (exact_only and not getattr(norm, "exact", True)):
        return 0
    return {"row": rows, "layer": 1, "group": getattr(norm, "num_groups", 1)}[kind]


def exactly_invariant(name: str) -> bool:
    """Whether model.norm=`name` makes its affine weights scale-invariant in the network's function
    (what landscape.scale_invariant needs): read from a 4-unit module of that normaliser."""
    from ics.config import MLPConfig

    return invariance_groups(NORMS[name](4, False, MLPConfig(norm=name, norm_groups=2)), 4, exact_only=True) > 0


def scale_invariant_weights(model: nn.Module, exact_only: bool = False) -> Dict[str, int]:
    """Affine weight name -> number of scale-invariant row groups, for every block whose normaliser
    makes its weight scale-invariant (exact_only: the network's function, not only its gradient)."""
    out = {}
    for name, block in getattr(model, "blocks", {}).items():
        w = block.affine.weight
        n = invariance_groups(getattr(block, "norm", None), w.shape[0], exact_only)
        if n:
            out[f"blocks.{name}.affine.weight"] = n
    return out


def moments(norm: nn.Module, x: torch.Tensor) -> Tuple[Tuple[torch.Tensor, torch.Tensor], Tuple[torch.Tensor, torch.Tensor]]:
    """((shift_B, scale_B), (shift_pop, scale_pop)) per unit: what a batch-statistics normaliser
    subtracts and divides by, from the batch x and from its running statistics."""
    if hasattr(norm, "moments"):
        return norm.moments(x)
    u = x.detach().transpose(0, 1).reshape(x.shape[1], -1)  # (units, samples)
    batch_ = (u.mean(dim=1), torch.sqrt(u.var(dim=1, unbiased=False) + norm.eps))
    return batch_, (norm.running_mean, torch.sqrt(norm.running_var + norm.eps))
