"""model.norm=none: no normaliser; the affine layer keeps its bias and nothing is invariant."""

from __future__ import annotations

from ics.config.norms import Norm
from ics.registry import NORMS

DECLARED = Norm(name="none", doc="no normaliser", batch_statistics=False, eval_mode="same", invariance=None)


@NORMS.register("none")
def no_norm(features: int, spatial: bool, cfg) -> None:
    return None
