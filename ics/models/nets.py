"""MLPs and CNNs built from one block: affine map -> [norm] -> nonlinearity.

The normaliser (model.norm: BN or another, ics/models/norms) sits between the affine map and the
nonlinearity (Ioffe & Szegedy 2015, §3.1), so a layer that feeds it has no bias (its β plays that role). Every block exposes named *probe points*:

  <block>.in       the input to the block's Linear/Conv layer
  <block>.pre_act  the input to the block's nonlinearity (the normaliser's output, e.g. BN's γ·x̂+β,
                   or the affine output)

Probe points are (module, "input" | "output") pairs, so probes hook existing modules and a model
without probes runs exactly the modules it would run anyway (no identity taps in the hot path).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from ics.config import CNNConfig, ConfigError, DLNConfig, MLPConfig, ModelConfig
from ics.models import norms as _norms
from ics.models.noise import Dropout, ScaleShiftNoise
from ics.registry import ACTIVATIONS, MODELS

ACTIVATIONS.register("sigmoid")(nn.Sigmoid)
ACTIVATIONS.register("tanh")(nn.Tanh)
ACTIVATIONS.register("relu")(nn.ReLU)
ACTIVATIONS.register("leaky_relu")(lambda: nn.LeakyReLU(0.01))
ACTIVATIONS.register("elu")(nn.ELU)
ACTIVATIONS.register("gelu")(nn.GELU)
ACTIVATIONS.register("linear")(nn.Identity)


ProbePoint = Tuple[nn.Module, str]  # (module, "input" | "output")


class Block(nn.Module):
    """affine -> [norm] -> [noise] -> activation [-> pool] [-> dropout]. The affine layer has a bias
    only without norm; noise (model.noise) and dropout (model.dropout) act in training mode only.
    Dropout sits on the block's output, after the nonlinearity (and pooling), where Srivastava et al.
    (2014) drop hidden units: it perturbs the next layer's *input*, and leaves the nonlinearity's input
    (the probes' pre_act, and BN's statistics) as they were."""

    def __init__(
        self,
        affine: nn.Module,
        norm: Optional[nn.Module],
        act: nn.Module,
        pool: Optional[nn.Module] = None,
        noise: Optional[nn.Module] = None,
        dropout: Optional[nn.Module] = None,
    ):
        super().__init__()
        self.affine = affine
        self.norm = norm
        self.noise = noise
        self.act = act
        self.pool = pool
        self.dropout = dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.affine(x)
        if self.norm is not None:
            x = self.norm(x)
        if self.noise is not None:
            x = self.noise(x)
        x = self.act(x)
        if self.pool is not None:
            x = self.pool(x)
        return x if self.dropout is None else self.dropout(x)

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

    def param_layers(self) -> "OrderedDict[str, Tuple[List[str], List[str]]]":
        """Per parameterised layer in forward order (h1, ..., out): the names (as in
        named_parameters) of its affine parameters and of its normaliser's parameters (BN's γ, β;
        weight norm's g, b)."""
        names = [n for n, _ in self.named_parameters()]
        layers: "OrderedDict[str, Tuple[List[str], List[str]]]" = OrderedDict()
        for name in list(self.blocks) + ["out"]:
            prefix = "out." if name == "out" else f"blocks.{name}."
            layers[name] = (
                [n for n in names if n.startswith(prefix + "affine.") or (name == "out" and n.startswith(prefix))],
                [n for n in names if n.startswith(prefix + "norm.")],
            )
        return layers


def _block(affine_cls, n_in: int, n_out: int, cfg: ModelConfig, spatial: bool, pool=None, **kw) -> Block:
    norm = _norms.build_norm(cfg.norm, n_out, spatial, cfg)
    affine = affine_cls(n_in, n_out, bias=norm is None, **kw)
    bind = getattr(norm, "bind", None)
    if bind is not None:  # weight norm reads the affine layer's weight
        bind(affine)
    noise = None
    if cfg.noise == "santurkar":
        noise = ScaleShiftNoise(
            cfg.noise_mean_range, cfg.noise_scale_max, cfg.noise_mean_jitter, cfg.noise_scale_jitter
        )
    dropout = Dropout(cfg.dropout) if cfg.dropout > 0 else None
    return Block(affine, norm, ACTIVATIONS.get_or_raise(cfg.activation)(), pool, noise, dropout)


def _dense(blocks: "OrderedDict[str, nn.Module]", n_in: int, widths: Sequence[int], cfg: ModelConfig) -> int:
    """Append Linear blocks h1, h2, ... of the given widths; return the last width."""
    for i, width in enumerate(widths, start=1):
        blocks[f"h{i}"] = _block(nn.Linear, n_in, width, cfg, spatial=False)
        n_in = width
    return n_in


@MODELS.register("mlp")
def build_mlp(cfg: MLPConfig, in_shape: Sequence[int], num_classes: int) -> Net:
    blocks: "OrderedDict[str, nn.Module]" = OrderedDict()
    n_in = _dense(blocks, math.prod(in_shape), cfg.widths, cfg)
    return Net(blocks, nn.Linear(n_in, num_classes), flatten_first=True)


@MODELS.register("cnn")
def build_cnn(cfg: CNNConfig, in_shape: Sequence[int], num_classes: int) -> Net:
    if len(in_shape) != 3:  # e.g. data=gaussian_regression: vectors, not images
        raise ConfigError(
            f"model=cnn needs images (channels, height, width); this data set's inputs have shape "
            f"{tuple(in_shape)}: use model=mlp or model=dln"
        )
    c_in, h, w = in_shape
    blocks: "OrderedDict[str, nn.Module]" = OrderedDict()
    for i, c_out in enumerate(cfg.channels, start=1):
        pool = None
        if cfg.pool != "none" and min(h, w) >= 2:  # stop pooling once the map is 1x1
            pool = nn.MaxPool2d(2) if cfg.pool == "max" else nn.AvgPool2d(2)
            h, w = h // 2, w // 2
        blocks[f"c{i}"] = _block(
            nn.Conv2d,
            c_in,
            c_out,
            cfg,
            spatial=True,
            pool=pool,
            kernel_size=cfg.kernel_size,
            padding=cfg.kernel_size // 2,
        )
        c_in = c_out
    n_in = _dense(blocks, c_in * h * w, cfg.widths, cfg)
    return Net(blocks, nn.Linear(n_in, num_classes), flatten_first=False)


@MODELS.register("dln")
def build_dln(cfg: DLNConfig, in_shape: Sequence[int], num_outputs: int) -> Net:
    """depth - 1 hidden Linear(width) -> [BN] blocks with no nonlinearity, then the output layer."""
    blocks: "OrderedDict[str, nn.Module]" = OrderedDict()
    n_in = _dense(blocks, math.prod(in_shape), [cfg.width] * (cfg.depth - 1), cfg)
    return Net(blocks, nn.Linear(n_in, num_outputs), flatten_first=True)
