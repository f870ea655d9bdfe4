"""Normalisers (model.norm), one module each, all placed where BN is: affine -> norm -> [noise] -> act.

A normaliser is one module here (found without an import list) holding

  DECLARED = Norm(...)  its rules, read by the schema, the checks, the instruments and the tests
                        (ics/config/norms.py: its keys, batch statistics, evaluation mode, invariance)
  a factory             registered with @NORMS.register("<name>"), that takes (features, spatial, cfg)
                        and returns a module or None

plus its option file configs/model/mlp_<name>.yaml and its own test. A factory refuses a block it
makes no sense for with a one-line ConfigError (raised while the model is built on the meta device,
before anything is written). The returned module may have `bind(affine)`, called with the block's
affine layer (weight norm reads its weight). `build_norm` gives every module its declaration as
`norm_spec`, which the instruments read. A normaliser with batch statistics subclasses torch's
_BatchNorm (running_mean, running_var, num_batches_tracked, eps, momentum), so that the probes' batch
mode, precise BN (bn_stats) and bn_noise treat it as BN; `moments` gives the (shift, scale) each one
divides by.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Dict, Optional, Tuple

import torch
from torch import nn

from ics.config.norms import Norm, declared
from ics.registry import NORMS

for _m in pkgutil.iter_modules(__path__):  # each module registers its factory (@NORMS.register)
    importlib.import_module(f"{__name__}.{_m.name}")


def build_norm(name: str, features: int, spatial: bool, cfg) -> Optional[nn.Module]:
    """The normaliser `name` for a block of `features` units or channels, carrying its declaration."""
    module = NORMS.get_or_raise(name)(features, spatial, cfg)
    if module is not None:
        module.norm_spec = declared()[name]
    return module


def invariance_groups(norm: Optional[nn.Module], rows: int, exact_only: bool = False) -> int:
    """How many groups of consecutive rows of the affine weight (rows = output units/channels) are
    each scale-invariant under `norm`: rows (per row), 1 (the whole layer), G (GroupNorm), 0 (none)."""
    spec: Optional[Norm] = getattr(norm, "norm_spec", None)
    if spec is None or spec.invariance is None or (exact_only and not spec.exact):
        return 0
    kind = spec.invariance
    return {"row": rows, "layer": 1, "group": getattr(norm, "num_groups", 1)}[kind]


def exactly_invariant(name: str) -> bool:
    """Whether model.norm=`name` makes its affine weights scale-invariant in the network's function
    (what landscape.scale_invariant needs), as it declares."""
    norm = declared()[name]
    return norm.invariance is not None and norm.exact


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


def moments(
    norm: nn.Module, x: torch.Tensor
) -> Tuple[Tuple[torch.Tensor, torch.Tensor], Tuple[torch.Tensor, torch.Tensor]]:
    """((shift_B, scale_B), (shift_pop, scale_pop)) per unit: what a batch-statistics normaliser
    subtracts and divides by, from the batch x and from its running statistics."""
    if hasattr(norm, "moments"):
        return norm.moments(x)
    u = x.detach().transpose(0, 1).reshape(x.shape[1], -1)  # (units, samples)
    batch_ = (u.mean(dim=1), torch.sqrt(u.var(dim=1, unbiased=False) + norm.eps))
    return batch_, (norm.running_mean, torch.sqrt(norm.running_var + norm.eps))
