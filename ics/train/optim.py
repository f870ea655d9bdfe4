"""Optimisers, one registry entry each: plain SGD (the BN paper's Fig. 1), momentum SGD, Adam."""

from __future__ import annotations

import torch

from ics.config import OptimConfig
from ics.registry import OPTIMIZERS


@OPTIMIZERS.register("momentum")  # the same optimiser; MomentumConfig defaults to momentum 0.9
@OPTIMIZERS.register("sgd")
def _sgd(params, cfg: OptimConfig) -> torch.optim.Optimizer:
    return torch.optim.SGD(
        params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov, weight_decay=cfg.weight_decay
    )


@OPTIMIZERS.register("adam")
def _adam(params, cfg: OptimConfig) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)


def build_optimizer(params, cfg: OptimConfig) -> torch.optim.Optimizer:
    return OPTIMIZERS.get_or_raise(cfg.name)(params, cfg)
