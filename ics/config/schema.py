"""The config schema: one dataclass per option, each default stated once.

`Config()` is the BN paper's Fig. 1 run (Ioffe & Szegedy 2015, §4.1). Groups whose options have
different keys (model, data, optim) get one dataclass per option, chosen by its `name`; the probe
presets (default, all, off) share one schema. The CLI registers these classes with Hydra as config
groups (`model=cnn`), and derives the defaults list from `Config()`, so nothing here is repeated in
YAML. The library itself never needs Hydra: build the dataclasses directly.

Units: settings that count optimiser steps say "(steps)"; sizes are numbers of examples.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Type

from ics import registry
from ics.config.fields import between, each, ge, gt, opt

MISSING = "???"  # OmegaConf's marker for a value that must be given

# group -> option name -> dataclass. Filled by @option below; the CLI turns it into Hydra groups.
OPTIONS: Dict[str, Dict[str, Type]] = {}


def option(group: str, name: str):
    def deco(cls):
        OPTIONS.setdefault(group, {})[name] = cls
        return cls

    return deco


def redefault(cls: Type, name: str, value: Any) -> Any:
    """The same field as in the base class (doc, allowed values) with another default."""
    f = next(f for f in dataclasses.fields(cls) if f.name == name)
    md = dict(f.metadata)
    return opt(value, md["doc"], choices=md["choices"], rule=md["rule"])


# ----------------------------------------------------------------------------------------------
# model


@dataclass
class ModelConfig:
    """Keys every model has. BN sits between the affine map and the nonlinearity (BN paper §3.1)."""

    name: str = opt("", "the model option (set by model=<option>)")
    activation: str = opt("sigmoid", "nonlinearity of every hidden block", choices=registry.ACTIVATIONS)
    norm: str = opt("batch", "normalisation between the affine map and the nonlinearity", choices=registry.NORMS)
    bn_eps: float = opt(1e-5, "BN's ε in x̂ = (x − μ)/√(σ² + ε)", rule=gt(0))
    bn_momentum: float = opt(0.1, "BN running-statistics update: new = (1 − m)·old + m·batch (PyTorch's "
                                  "convention; Keras's 0.99 means m = 0.01)", rule=between(0, 1))
    init: str = opt("gaussian", "weight init: gaussian = N(0, init_std²) (BN paper §4.1), or PyTorch's default, "
                                "xavier, kaiming", choices=registry.INITS)
    init_std: float = opt(0.1, "std of the gaussian init", rule=gt(0))


@option("model", "mlp")
@dataclass
class MLPConfig(ModelConfig):
    """Fully connected: flatten, then one Linear → [BN] → activation block per hidden width."""

    name: str = redefault(ModelConfig, "name", "mlp")
    widths: List[int] = opt([100, 100, 100], "hidden widths (Fig. 1: three layers of 100)", rule=each(gt(0), 1))


@option("model", "cnn")
@dataclass
class CNNConfig(ModelConfig):
    """conv(k×k) → [BN] → activation → 2×2 pool per entry of `channels`, then a Linear head."""

    name: str = redefault(ModelConfig, "name", "cnn")
    activation: str = redefault(ModelConfig, "activation", "relu")
    init: str = redefault(ModelConfig, "init", "kaiming")
    channels: List[int] = opt([32, 64, 128], "output channels of each conv block", rule=each(gt(0), 1))
    widths: List[int] = opt([128], "hidden widths of the Linear head after the conv blocks", rule=each(gt(0)))
    kernel_size: int = opt(3, "conv kernel size (odd)", rule=gt(0))
    pool: str = opt("max", "pooling after every conv block", choices=("max", "avg", "none"))


# ----------------------------------------------------------------------------------------------
# data


@dataclass
class DataConfig:
    """Where a data set is read from. Pixels are normalised by the train split's per-channel stats."""

    name: str = opt("", "the data set (set by data=<option>)")
    root: Optional[str] = opt(None, "data root; None: $ICS_DATA_ROOT, then ~/.cache/ics/data")
    download: bool = opt(False, "let torchvision download the files into root")
    cache_dir: Optional[str] = opt(None, "decoded-tensor cache; None: $ICS_CACHE_DIR, then ~/.cache/ics/tensors")


@option("data", "mnist")
@dataclass
class MNISTConfig(DataConfig):
    name: str = redefault(DataConfig, "name", "mnist")


@option("data", "fashion_mnist")
@dataclass
class FashionMNISTConfig(DataConfig):
    name: str = redefault(DataConfig, "name", "fashion_mnist")


@dataclass
class CIFARConfig(DataConfig):
    image_folder: Optional[str] = opt(None, "read <dir>/{train,test}/<class>/ images instead of the pickles")


@option("data", "cifar10")
@dataclass
class CIFAR10Config(CIFARConfig):
    name: str = redefault(DataConfig, "name", "cifar10")


@option("data", "cifar100")
@dataclass
class CIFAR100Config(CIFARConfig):
    name: str = redefault(DataConfig, "name", "cifar100")


@option("data", "image_folder")
@dataclass
class ImageFolderConfig(DataConfig):
    name: str = redefault(DataConfig, "name", "image_folder")
    image_folder: str = opt(MISSING, "folder with train/<class>/ and test/<class>/ images (required)")


# ----------------------------------------------------------------------------------------------
# optimiser


@dataclass
class OptimConfig:
    name: str = opt("", "the optimiser (set by optim=<option>)")
    lr: float = opt(0.5, "learning rate", rule=gt(0))
    weight_decay: float = opt(0.0, "L2 penalty coefficient (added to the gradient)", rule=ge(0))


@option("optim", "sgd")
@dataclass
class SGDConfig(OptimConfig):
    """Plain SGD, as in the BN paper's Fig. 1."""

    name: str = redefault(OptimConfig, "name", "sgd")
    momentum: float = opt(0.0, "heavy-ball momentum", rule=between(0, 1, hi_open=True))
    nesterov: bool = opt(False, "Nesterov momentum (needs momentum > 0)")


@option("optim", "momentum")
@dataclass
class MomentumConfig(SGDConfig):
    name: str = redefault(OptimConfig, "name", "momentum")
    lr: float = redefault(OptimConfig, "lr", 0.05)
    momentum: float = redefault(SGDConfig, "momentum", 0.9)


@option("optim", "adam")
@dataclass
class AdamConfig(OptimConfig):
    name: str = redefault(OptimConfig, "name", "adam")
    lr: float = redefault(OptimConfig, "lr", 1e-3)
    betas: List[float] = opt([0.9, 0.999], "Adam's (β1, β2)",
                             rule=each(between(0, 1, hi_open=True), 2))


# ----------------------------------------------------------------------------------------------
# the training loop


@dataclass
class TrainerConfig:
    steps: int = opt(50_000, "optimiser steps (steps)", rule=gt(0))
    batch_size: int = opt(60, "examples per training mini-batch", rule=ge(1))
    eval_every: int = opt(1_000, "evaluate on the whole test split every this many steps (steps)", rule=gt(0))
    eval_batch_size: int = opt(2_000, "examples per forward pass during evaluation (memory only)", rule=gt(0))
    log_every: int = opt(100, "log the train loss/accuracy window every this many steps (steps); "
                              "divergence is checked at the same cadence", rule=gt(0))
    checkpoint_every: int = opt(5_000, "write a resumable checkpoint every this many steps (steps); "
                                       "0: none at all (the run cannot be resumed)", rule=ge(0))
    seed: int = opt(0, "seed of the init and of the mini-batch order", rule=between(0, 2**62 - 1))
    device: str = opt("auto", "auto (cuda if available), cpu, cuda or cuda:N")
    threads: Any = opt("auto", "CPU threads: auto (timed at 1 and all cores, capped by parallel jobs) "
                               "or a number up to the available cores")
    sampler: str = opt("epoch", "epoch: a fresh randperm every epoch; replacement: i.i.d. draws",
                       choices=("epoch", "replacement"))
    divergence_loss: float = opt(1e3, "a train loss above this (or non-finite) ends the run as `diverged`",
                                 rule=gt(0))
    progress: Any = opt("auto", "progress bar: auto (only on a terminal), true, false")


# ----------------------------------------------------------------------------------------------
# instruments: everything that watches training (ics.instruments)


@dataclass
class ProbeConfig:
    """Layer-input distributions on a fixed probe set (BN paper §2, Fig. 1 b/c)."""

    enabled: bool = opt(True, "measure the layer-input distributions")
    points: List[str] = opt(["*.pre_act"], "glob patterns of probe points (`*.pre_act`: every nonlinearity's "
                                           "input; `*.in`: every affine layer's input)")
    size: int = opt(1_000, "examples in the fixed probe set (a stratified draw from the test split)", rule=ge(2))
    seed: int = opt(0, "seed of the probe-set draw and of the tracked units", rule=between(0, 2**31 - 1))
    every: int = opt(500, "measure every this many steps (steps), plus step 0 and the last step", rule=gt(0))
    histogram_every: int = opt(5_000, "write histograms every this many steps (steps)", rule=gt(0))
    percentiles: List[float] = opt([15.0, 50.0, 85.0], "percentiles per unit (Fig. 1 b/c: 15/50/85)",
                                   rule=each(between(0, 100), 1))
    units: int = opt(5, "tracked units per probe point", rule=ge(1))
    bn_mode: str = opt("batch", "BN statistics during the probe pass: batch (the probe set's own) or eval "
                                "(running)", choices=("batch", "eval"))
    on_train_batch: bool = opt(False, "also log the statistics of real training mini-batches")
    train_batch_every: int = opt(100, "cadence of the training-batch statistics (steps)", rule=gt(0))


@option("probe", "default")
@dataclass
class ProbeDefault(ProbeConfig):
    pass


@option("probe", "all")
@dataclass
class ProbeAll(ProbeConfig):
    points: List[str] = redefault(ProbeConfig, "points", ["*"])


@option("probe", "off")
@dataclass
class ProbeOff(ProbeConfig):
    enabled: bool = redefault(ProbeConfig, "enabled", False)


# ----------------------------------------------------------------------------------------------
# analysis settings (stored with the run, read by `ics report`)


@dataclass
class ReportConfig:
    targets: List[float] = opt([0.9, 0.95, 0.97], "accuracies for steps-to-target", rule=each(between(0, 1, lo_open=True)))
    not_learning_margin: float = opt(0.05, "`not_learning`: final test accuracy < chance + this", rule=ge(0))


@dataclass
class ToleranceConfig:
    fraction: float = opt(0.9, "an LR is good when its mean accuracy >= fraction × the group's best",
                          rule=between(0, 1, lo_open=True))


@dataclass
class Config:
    model: ModelConfig = field(default_factory=MLPConfig)
    data: DataConfig = field(default_factory=MNISTConfig)
    optim: OptimConfig = field(default_factory=SGDConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    probe: ProbeConfig = field(default_factory=ProbeDefault)
    report: ReportConfig = field(default_factory=ReportConfig)
    tolerance: ToleranceConfig = field(default_factory=ToleranceConfig)
    name: str = opt("run", "a free-form label stored in the run record")


GROUPS = tuple(OPTIONS)  # model, data, optim, probe


def option_name(group: str, node: Any) -> str:
    """The option of `group` that a config section was built from (its `name`, or its preset class)."""
    if getattr(node, "name", ""):
        return node.name
    for name, cls in OPTIONS[group].items():
        if type(node) is cls:
            return name
    return next(iter(OPTIONS[group]))


def schema_of(group: str, name: Optional[str]) -> Type:
    """The dataclass for a section read back from a dict: by `name` for model/data/optim."""
    options = OPTIONS[group]
    if name and name in options:
        return options[name]
    base = type(getattr(Config(), group))
    return base if group != "probe" else ProbeConfig
