"""Structured config schema (dataclasses) and value validation.

The dataclasses are the single source of truth for every config key: Hydra validates the YAML in
configs/ against them (types, unknown keys), and the library can be used without Hydra by building
them directly (``Config(model=ModelConfig(norm="none"))``). ``validate`` adds the value checks that
a type system cannot express (lr > 0, batch >= 2 with BN, ...).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, List, Optional

from omegaconf import MISSING, DictConfig, OmegaConf


class ConfigError(ValueError):
    """A bad config value. Its message is one line: the key, the bad value and what is allowed."""


@dataclass
class ModelConfig:
    name: str = "mlp"  # registry key: mlp | cnn
    # mlp: hidden widths. cnn: hidden widths of the linear head after the conv blocks.
    widths: List[int] = field(default_factory=lambda: [100, 100, 100])
    channels: List[int] = field(default_factory=lambda: [32, 64, 128])  # cnn: one conv block each
    kernel_size: int = 3  # cnn
    pool: str = "max"  # cnn: pooling after every conv block: max | avg | none
    activation: str = "sigmoid"
    norm: str = "batch"  # none | batch; BN sits between the affine map and the nonlinearity
    bn_eps: float = 1e-5
    bn_momentum: float = 0.1
    init: str = "gaussian"  # gaussian | default | xavier | kaiming
    init_std: float = 0.1  # std of the "small random Gaussian" init (paper §4.1)


@dataclass
class DataConfig:
    name: str = "mnist"  # registry key
    root: Optional[str] = None  # None: $ICS_DATA_ROOT, then the user cache dir
    image_folder: Optional[str] = None  # read train/ and test/ class folders from here instead
    download: bool = False  # let torchvision download into root
    cache_dir: Optional[str] = None  # decoded-tensor cache; None: $ICS_CACHE_DIR or ~/.cache/ics


@dataclass
class OptimConfig:
    name: str = "sgd"  # sgd | momentum | adam
    lr: float = 0.5
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0
    betas: List[float] = field(default_factory=lambda: [0.9, 0.999])


@dataclass
class TrainerConfig:
    steps: int = 50_000
    batch_size: int = 60
    eval_every: int = 1_000
    eval_batch_size: int = 2_000
    log_every: int = 100
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    threads: Any = "auto"  # auto | positive int
    sampler: str = "epoch"  # epoch (randperm, no replacement) | replacement
    divergence_loss: float = 1e3  # stop as `diverged` when the train loss exceeds this (or NaN)
    progress: Any = "auto"  # auto (only on a TTY) | true | false
    checkpoint: bool = True


@dataclass
class ProbeConfig:
    enabled: bool = True
    points: List[str] = field(default_factory=lambda: ["*.pre_act"])  # glob patterns
    size: int = 1_000  # examples in the fixed probe set (stratified draw from the test split)
    seed: int = 0  # the probe set's own generator: same probe set for every training seed
    every: int = 500
    histogram_every: int = 5_000
    percentiles: List[float] = field(default_factory=lambda: [15.0, 50.0, 85.0])
    units: int = 5  # tracked units per probe point
    bn_mode: str = "batch"  # batch | eval
    on_train_batch: bool = False
    train_batch_every: int = 100


@dataclass
class ReportConfig:
    targets: List[float] = field(default_factory=lambda: [0.9, 0.95, 0.97])
    not_learning_margin: float = 0.05  # `not_learning`: final test acc < chance + margin


@dataclass
class ToleranceConfig:
    fraction: float = 0.9


@dataclass
class Config:
    model: ModelConfig = MISSING
    data: DataConfig = MISSING
    optim: OptimConfig = MISSING
    trainer: TrainerConfig = MISSING
    probe: ProbeConfig = MISSING
    report: ReportConfig = field(default_factory=ReportConfig)
    tolerance: ToleranceConfig = field(default_factory=ToleranceConfig)
    name: str = "run"  # free-form label stored in summary.json


def register_configs() -> None:
    """Register the schema and the packaged experiments in Hydra's ConfigStore. configs/config.yaml
    lists `ics_schema` first in its defaults, so every group file merges into a typed dataclass
    field: unknown keys and wrong types fail at composition."""
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    cs.store(name="ics_schema", node=Config)
    _register_experiments(cs)


def _register_experiments(cs) -> None:
    # experiments/ ships as the package ics.experiments. It is exposed as the `experiment` group
    # through the ConfigStore because a pkg:// search path would need the folder to be *named*
    # `experiment`, which an editable install cannot provide.
    for name, path in experiment_files().items():
        node = OmegaConf.load(path)
        cs.store(group="experiment", name=name, node=node, package="_global_")


def experiment_files() -> dict:
    from importlib import resources

    root = resources.files("ics.experiments")
    return {p.name[:-5]: p for p in sorted(root.iterdir(), key=lambda p: p.name) if p.name.endswith(".yaml")}


def to_config(cfg: Any) -> Config:
    """DictConfig (from Hydra) or Config -> typed Config object."""
    if isinstance(cfg, Config):
        return cfg
    cfg = _strip_hydra(cfg)
    _reject_unknown_keys(cfg, Config)
    merged = OmegaConf.merge(OmegaConf.structured(Config), cfg)
    return OmegaConf.to_object(merged)


def _reject_unknown_keys(node: Any, schema: type, prefix: str = "") -> None:
    """Hydra's `+key=value` can add keys to a typed node; the schema has the last word."""
    import dataclasses

    if not isinstance(node, DictConfig):
        return
    fields = {f.name: f for f in dataclasses.fields(schema)}
    for key in node.keys():
        if key not in fields:
            where = f"keys in {prefix.rstrip('.')}" if prefix else "top-level keys"
            raise ConfigError(f"{prefix}{key} is not a config key; {where}: {', '.join(fields)}")
        sub = fields[key].type
        sub = globals().get(sub, sub) if isinstance(sub, str) else sub
        if dataclasses.is_dataclass(sub):
            _reject_unknown_keys(node[key], sub, f"{prefix}{key}.")


def _strip_hydra(cfg: Any) -> Any:
    if isinstance(cfg, DictConfig) and "hydra" in cfg:
        cfg = OmegaConf.masked_copy(cfg, [k for k in cfg.keys() if k != "hydra"])
    return cfg


def _check(ok: bool, key: str, value: Any, allowed: str) -> None:
    if not ok:
        raise ConfigError(f"{key}={value!r} is invalid: {allowed}")


def validate(cfg: Config, train_size: Optional[int] = None) -> None:
    """Value checks that run before anything is trained or written."""
    from ics import registry

    m, o, t, p = cfg.model, cfg.optim, cfg.trainer, cfg.probe
    _check(m.name in registry.MODELS, "model.name", m.name, f"allowed: {', '.join(registry.MODELS)}")
    _check(m.activation in registry.ACTIVATIONS, "model.activation", m.activation,
           f"allowed: {', '.join(registry.ACTIVATIONS)}")
    _check(m.norm in registry.NORMS, "model.norm", m.norm, f"allowed: {', '.join(registry.NORMS)}")
    _check(m.init in registry.INITS, "model.init", m.init, f"allowed: {', '.join(registry.INITS)}")
    _check(m.init_std > 0, "model.init_std", m.init_std, "must be > 0")
    _check(all(w > 0 for w in m.widths), "model.widths", list(m.widths), "every width must be > 0")
    if m.name == "cnn":
        _check(len(m.channels) > 0 and all(c > 0 for c in m.channels), "model.channels", list(m.channels),
               "need at least one channel count, each > 0")
    _check(m.bn_eps > 0, "model.bn_eps", m.bn_eps, "must be > 0")
    _check(0 <= m.bn_momentum <= 1, "model.bn_momentum", m.bn_momentum, "must be in [0, 1]")
    _check(m.kernel_size > 0 and m.kernel_size % 2 == 1, "model.kernel_size", m.kernel_size, "must be odd and > 0")
    _check(m.pool in ("max", "avg", "none"), "model.pool", m.pool, "allowed: max, avg, none")
    _check(cfg.data.name in registry.DATASETS, "data.name", cfg.data.name, f"allowed: {', '.join(registry.DATASETS)}")
    _check(o.name in registry.OPTIMIZERS, "optim.name", o.name, f"allowed: {', '.join(registry.OPTIMIZERS)}")
    _check(o.lr > 0, "optim.lr", o.lr, "must be > 0")
    _check(0 <= o.momentum < 1, "optim.momentum", o.momentum, "must be in [0, 1)")
    if o.name == "adam":
        _check(o.momentum == 0 and not o.nesterov, "optim.momentum", o.momentum,
               "adam has no momentum/nesterov setting; use optim.betas")
        _check(len(o.betas) == 2 and all(0 <= b < 1 for b in o.betas), "optim.betas", list(o.betas),
               "need two values in [0, 1)")
    if o.name == "momentum":
        _check(o.momentum > 0, "optim.momentum", o.momentum, "must be > 0 for optim=momentum (optim=sgd is plain SGD)")
    _check(not o.nesterov or o.momentum > 0, "optim.nesterov", o.nesterov, "needs optim.momentum > 0")
    _check(o.weight_decay >= 0, "optim.weight_decay", o.weight_decay, "must be >= 0")
    _check(t.steps > 0, "trainer.steps", t.steps, "must be > 0")
    _check(0 <= t.seed < 2**62, "trainer.seed", t.seed, "must be in [0, 2**62)")
    _check(0 <= p.seed < 2**31, "probe.seed", p.seed, "must be in [0, 2**31)")
    if cfg.data.image_folder and cfg.data.name in ("mnist", "fashion_mnist"):
        raise ConfigError(f"data.image_folder={cfg.data.image_folder!r} is not read by data={cfg.data.name}; "
                          "allowed with data=cifar10, cifar100 or image_folder")
    min_batch = 2 if m.norm == "batch" else 1
    _check(t.batch_size >= min_batch, "trainer.batch_size", t.batch_size,
           f"must be >= {min_batch}" + (" with model.norm=batch (BN needs 2+ examples per batch)" if min_batch == 2 else ""))
    if train_size is not None:
        _check(t.batch_size <= train_size, "trainer.batch_size", t.batch_size,
               f"must be <= the training set size ({train_size})")
    _check(t.eval_every > 0, "trainer.eval_every", t.eval_every, "must be > 0")
    _check(t.eval_batch_size > 0, "trainer.eval_batch_size", t.eval_batch_size, "must be > 0")
    _check(t.log_every > 0, "trainer.log_every", t.log_every, "must be > 0")
    _check(t.sampler in ("epoch", "replacement"), "trainer.sampler", t.sampler, "allowed: epoch, replacement")
    _check(t.divergence_loss > 0, "trainer.divergence_loss", t.divergence_loss, "must be > 0")
    _check(t.device == "auto" or t.device == "cpu" or str(t.device).startswith("cuda"), "trainer.device",
           t.device, "allowed: auto, cpu, cuda, cuda:N")
    _check(t.threads == "auto" or (isinstance(t.threads, int) and not isinstance(t.threads, bool) and t.threads > 0),
           "trainer.threads", t.threads, "allowed: auto or a positive integer")
    _check(t.progress in ("auto", True, False), "trainer.progress", t.progress, "allowed: auto, true, false")
    _check(p.size >= 2, "probe.size", p.size, "must be >= 2")
    _check(p.every > 0, "probe.every", p.every, "must be > 0")
    _check(p.histogram_every > 0, "probe.histogram_every", p.histogram_every, "must be > 0")
    _check(p.train_batch_every > 0, "probe.train_batch_every", p.train_batch_every, "must be > 0")
    _check(p.units >= 1, "probe.units", p.units, "must be >= 1")
    _check(len(p.percentiles) > 0 and all(0 <= q <= 100 for q in p.percentiles), "probe.percentiles",
           list(p.percentiles), "need one or more values in [0, 100]")
    _check(p.bn_mode in ("batch", "eval"), "probe.bn_mode", p.bn_mode, "allowed: batch, eval")
    _check(len(p.points) > 0, "probe.points", list(p.points), "need at least one glob pattern")
    _check(0 < cfg.tolerance.fraction <= 1, "tolerance.fraction", cfg.tolerance.fraction, "must be in (0, 1]")
    _check(all(0 < x <= 1 for x in cfg.report.targets), "report.targets", list(cfg.report.targets),
           "every target accuracy must be in (0, 1]")
