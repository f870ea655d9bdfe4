"""MLPs and CNNs built from one block: affine map -> [BatchNorm] -> nonlinearity.

BN sits between the affine map and the nonlinearity (Ioffe & Szegedy 2015, §3.1), so a layer that
feeds BN has no bias (BN's β plays its role). Every block exposes named *probe points*:

  <block>.in       the input to the block's Linear/Conv layer
  <block>.pre_act  the input to the block's nonlinearity (BN output γ·x̂+β, or the affine output)

Probe points are (module, "input" | "output") pairs, so probes hook existing modules and a model
without probes runs exactly the modules it would run anyway (no identity taps in the hot path).
"""
from __future__ import annotations

import math
from collections import OrderedDict
from typing import Dict, Optional, Sequence, Tuple

import torch
from torch import nn

from ics.config import ModelConfig
from ics.registry import ACTIVATIONS, INITS, MODELS, NORMS

ACTIVATIONS.register("sigmoid")(nn.Sigmoid)
ACTIVATIONS.register("tanh")(nn.Tanh)
ACTIVATIONS.register("relu")(nn.ReLU)
ACTIVATIONS.register("leaky_relu")(lambda: nn.LeakyReLU(0.01))
ACTIVATIONS.register("elu")(nn.ELU)
ACTIVATIONS.register("gelu")(nn.GELU)
ACTIVATIONS.register("linear")(nn.Identity)


@NORMS.register("none")
def _no_norm(features: int, spatial: bool, cfg: ModelConfig) -> Optional[nn.Module]:
    return None


@NORMS.register("batch")
def _batch_norm(features: int, spatial: bool, cfg: ModelConfig) -> nn.Module:
    cls = nn.BatchNorm2d if spatial else nn.BatchNorm1d
    return cls(features, eps=cfg.bn_eps, momentum=cfg.bn_momentum)


ProbePoint = Tuple[nn.Module, str]  # (module, "input" | "output")


class Block(nn.Module):
    """affine -> [norm] -> activation [-> pool]. The affine layer has a bias only without norm."""

    def __init__(self, affine: nn.Module, norm: Optional[nn.Module], act: nn.Module, pool: Optional[nn.Module] = None):
        super().__init__()
        self.affine = affine
        self.norm = norm
        self.act = act
        self.pool = pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.affine(x)
        if self.norm is not None:
            x = self.norm(x)
        x = self.act(x)
        return x if self.pool is None else self.pool(x)

    def probe_points(self) -> Dict[str, ProbePoint]:
        pre = self.norm if self.norm is not None else self.affine
        return {"in": (self.affine, "input"), "pre_act": (pre, "output")}


class Net(nn.Module):
    """Blocks in order, then a linear output layer `out` (logits; softmax lives in the loss)."""

    def __init__(self, blocks: "OrderedDict[str, nn.Module]", out: nn.Linear, flatten_first: bool):
        super().__init__()
        self.flatten_first = flatten_first
        self.blocks = nn.ModuleDict(blocks)  # keys are block names: h1, h2, ... / c1, c2, ...
        self.out = out
        # conv features are flattened once, before the first Linear block (precomputed: hot path)
        first_linear = next((n for n, b in blocks.items() if isinstance(b.affine, nn.Linear)), None)
        self._flatten_before = None if flatten_first else first_linear

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.flatten_first:
            x = x.flatten(1)
        for name, block in self.blocks.items():
            if name == self._flatten_before:
                x = x.flatten(1)
            x = block(x)
        return self.out(x.flatten(1))

    def probe_points(self) -> "OrderedDict[str, ProbePoint]":
        """Stable, readable names, in forward order: h1.in, h1.pre_act, ..., out.in."""
        points: "OrderedDict[str, ProbePoint]" = OrderedDict()
        for name, block in self.blocks.items():
            for kind, point in block.probe_points().items():
                points[f"{name}.{kind}"] = point
        points["out.in"] = (self.out, "input")
        return points


def _block(affine_cls, n_in: int, n_out: int, cfg: ModelConfig, spatial: bool, pool=None, **kw) -> Block:
    norm = NORMS.get_or_raise(cfg.norm)(n_out, spatial, cfg)
    affine = affine_cls(n_in, n_out, bias=norm is None, **kw)
    return Block(affine, norm, ACTIVATIONS.get_or_raise(cfg.activation)(), pool)


@MODELS.register("mlp")
def build_mlp(cfg: ModelConfig, in_shape: Sequence[int], num_classes: int) -> Net:
    n_in = math.prod(in_shape)
    blocks: "OrderedDict[str, nn.Module]" = OrderedDict()
    for i, width in enumerate(cfg.widths, start=1):
        blocks[f"h{i}"] = _block(nn.Linear, n_in, width, cfg, spatial=False)
        n_in = width
    return Net(blocks, nn.Linear(n_in, num_classes), flatten_first=True)


@MODELS.register("cnn")
def build_cnn(cfg: ModelConfig, in_shape: Sequence[int], num_classes: int) -> Net:
    c_in, h, w = in_shape
    blocks: "OrderedDict[str, nn.Module]" = OrderedDict()
    for i, c_out in enumerate(cfg.channels, start=1):
        pool = None
        if cfg.pool != "none" and min(h, w) >= 2:  # stop pooling once the map is 1x1
            pool = nn.MaxPool2d(2) if cfg.pool == "max" else nn.AvgPool2d(2)
            h, w = h // 2, w // 2
        blocks[f"c{i}"] = _block(nn.Conv2d, c_in, c_out, cfg, spatial=True, pool=pool,
                                 kernel_size=cfg.kernel_size, padding=cfg.kernel_size // 2)
        c_in = c_out
    n_in = c_in * h * w
    for i, width in enumerate(cfg.widths, start=1):
        blocks[f"h{i}"] = _block(nn.Linear, n_in, width, cfg, spatial=False)
        n_in = width
    return Net(blocks, nn.Linear(n_in, num_classes), flatten_first=False)


# --- initialisation -------------------------------------------------------------------------------

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


def build_model(cfg: ModelConfig, in_shape: Sequence[int], num_classes: int) -> Net:
    """Build and initialise a model. Draws from torch's global RNG: seed before calling."""
    model = MODELS.get_or_raise(cfg.name)(cfg, in_shape, num_classes)
    INITS.get_or_raise(cfg.init)(model, cfg)
    return model
