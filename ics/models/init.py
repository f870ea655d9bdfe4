"""Weight initialisations, one registry entry each (model.init)."""

from __future__ import annotations

from torch import nn

from ics.config import ModelConfig
from ics.registry import INITS


def _affine_layers(model: nn.Module):
    return [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]


@INITS.register("default")
def _init_default(model: nn.Module, cfg: ModelConfig) -> None:
    """PyTorch's own init (Kaiming-uniform with a=√5), left as constructed."""


@INITS.register("gaussian")
def _init_gaussian(model: nn.Module, cfg: ModelConfig) -> None:
    """The BN paper's "small random Gaussian values" (§4.1): W ~ N(0, init_std²), b = 0."""
    for m in _affine_layers(model):
        nn.init.normal_(m.weight, 0.0, cfg.init_std)
        if m.bias is not None:
            nn.init.zeros_(m.bias)


@INITS.register("lecun")
def _init_lecun(model: nn.Module, cfg: ModelConfig) -> None:
    """W ~ N(0, 1/fan_in), b = 0: variance-preserving for linear layers (the deep linear network's init)."""
    for m in _affine_layers(model):
        fan_in = m.weight[0].numel()
        nn.init.normal_(m.weight, 0.0, fan_in**-0.5)
        if m.bias is not None:
            nn.init.zeros_(m.bias)


def _gain_name(activation: str) -> str:
    return {"relu": "relu", "leaky_relu": "leaky_relu", "tanh": "tanh", "sigmoid": "sigmoid"}.get(activation, "linear")


@INITS.register("xavier")
def _init_xavier(model: nn.Module, cfg: ModelConfig) -> None:
    gain = nn.init.calculate_gain(_gain_name(cfg.activation))
    for m in _affine_layers(model):
        nn.init.xavier_normal_(m.weight, gain=gain if m is not getattr(model, "out", None) else 1.0)
        if m.bias is not None:
            nn.init.zeros_(m.bias)


@INITS.register("kaiming")
def _init_kaiming(model: nn.Module, cfg: ModelConfig) -> None:
    nonlin = "relu" if cfg.activation == "relu" else ("leaky_relu" if cfg.activation == "leaky_relu" else "linear")
    for m in _affine_layers(model):
        nn.init.kaiming_normal_(m.weight, nonlinearity=nonlin if m is not getattr(model, "out", None) else "linear")
        if m.bias is not None:
            nn.init.zeros_(m.bias)
