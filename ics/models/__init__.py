"""Models: MLPs and CNNs built from one block, affine -> [norm] -> nonlinearity (ics.models.nets),
their normalisers (ics.models.norms: one module each, with its declared rules) and
their initialisations (ics.models.init).

To add a model: a builder registered with @MODELS.register("<name>") that returns a `Net` (or any
module with `probe_points()`), its kind dataclass in ics/config/schema.py (@kind("model", "<name>")),
and its option file configs/model/<name>.yaml.
"""

from __future__ import annotations

from typing import Sequence

from ics.config import ModelConfig
from ics.models import init as _init  # noqa: F401  (fills the INITS registry)
from ics.models.nets import Block, Net, ProbePoint
from ics.models.noise import Dropout, ScaleShiftNoise, Stochastic, noise_off, noise_replay
from ics.registry import INITS, MODELS

__all__ = [
    "Block",
    "Dropout",
    "Net",
    "ProbePoint",
    "ScaleShiftNoise",
    "Stochastic",
    "build_model",
    "noise_off",
    "noise_replay",
]


def build_model(cfg: ModelConfig, in_shape: Sequence[int], num_outputs: int, seed: int = 0) -> Net:
    """Build and initialise a model. The init draws from torch's global RNG (seed before calling);
    noise layers (model.noise) and dropout (model.dropout) get their own generators, seeded from `seed`."""
    model = MODELS.get_or_raise(cfg.name)(cfg, in_shape, num_outputs)
    INITS.get_or_raise(cfg.init)(model, cfg)
    for i, m in enumerate(m for m in model.modules() if isinstance(m, ScaleShiftNoise)):
        m.seed(seed * 7_919 + 104_729 + i)
    for i, m in enumerate(m for m in model.modules() if isinstance(m, Dropout)):
        m.seed(seed * 6_113 + 52_711 + i)  # a stream of its own: dropout on or off leaves the noise as it was
    return model
