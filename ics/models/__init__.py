"""Models: MLPs and CNNs built from one block, affine -> [BN] -> nonlinearity (ics.models.nets),
and their initialisations (ics.models.init).

To add a model: a builder registered with @MODELS.register("<name>") that returns a `Net` (or any
module with `probe_points()`), and its option dataclass in ics/config/schema.py.
"""
from __future__ import annotations

from typing import Sequence

from ics.config import ModelConfig
from ics.models import init as _init  # noqa: F401  (fills the INITS registry)
from ics.models.nets import Block, Net, ProbePoint
from ics.registry import INITS, MODELS

__all__ = ["Block", "Net", "ProbePoint", "build_model"]


def build_model(cfg: ModelConfig, in_shape: Sequence[int], num_classes: int) -> Net:
    """Build and initialise a model. Draws from torch's global RNG: seed before calling."""
    model = MODELS.get_or_raise(cfg.name)(cfg, in_shape, num_classes)
    INITS.get_or_raise(cfg.init)(model, cfg)
    return model
