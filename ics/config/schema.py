"""The config schema: one dataclass per section, each default stated once.

`Config()` is the BN paper's Fig. 1 run (Ioffe & Szegedy 2015, §4.1). Every section of `Config` is a
Hydra config group whose options are YAML files in the top-level configs/ folder (configs/model/*.yaml,
...) or in a user's config folder. Sections whose kinds have different keys (model, data, optim) get
one dataclass per kind, chosen by the section's `name` (`mlp`, `cnn`, ...; registered in KINDS); an
option file names its kind (`name: cnn`) or extends another option (`defaults: [cnn]`), and a file that
names neither is its group's default kind. The other sections have one dataclass each, and their option
files (probe/off.yaml, grad_ics/on.yaml) only set keys. The library itself never needs Hydra: build the
dataclasses directly.

Units: settings that count optimiser steps say "(steps)"; sizes are numbers of examples.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Type

from ics import registry
from ics.config.fields import Rule, between, each, ge, gt, opt
from ics.config.norms import declared

MAX_STEPS = 2**53 - 1  # trainer.steps: the largest step a float64 (metrics.npz) records exactly
MISSING = "???"  # OmegaConf's marker for a value that must be given

# section -> kind name -> dataclass, for the sections whose kinds have different keys. Filled by
# @kind below; a kind is the `name` an option file sets (configs/model/cnn.yaml: `name: cnn`).
KINDS: Dict[str, Dict[str, Type]] = {}


def kind(group: str, name: str):
    def deco(cls):
        KINDS.setdefault(group, {})[name] = cls
        return cls

    return deco


def redefault(cls: Type, name: str, value: Any) -> Any:
    """The same field as in the base class (doc, allowed values) with another default."""
    f = next(f for f in dataclasses.fields(cls) if f.name == name)
    md = dict(f.metadata)
    return opt(value, md["doc"], choices=md["choices"], rule=md["rule"])


# ----------------------------------------------------------------------------------------------
# model


def with_norm_keys(cls):
    """Add the keys each normaliser declares it owns (ics/models/norms/*.py, `keys`), after
    bn_momentum, with their user-facing names (model.norm_groups, model.renorm_r_max, ...): a new
    normaliser's keys come with its module, not with an edit here."""
    rules = {"gt": gt, "ge": ge, "between": between}
    added = {}
    for norm in declared().values():
        for key, (default, doc, *allow) in norm.keys.items():
            how = allow[0] if allow else None
            choices = tuple(how[1:]) if how and how[0] == "choices" else None
            rule = rules[how[0]](*how[1:]) if how and how[0] != "choices" else None
            setattr(cls, key, opt(default, f"norm={norm.name}: {doc}", choices=choices, rule=rule))
            added[key] = type(default).__name__
    at = list(cls.__annotations__).index("bn_momentum") + 1
    items = list(cls.__annotations__.items())
    cls.__annotations__ = dict(items[:at] + list(added.items()) + items[at:])
    return cls


@dataclass
@with_norm_keys
class ModelConfig:
    """Keys every model has. BN sits between the affine map and the nonlinearity (BN paper §3.1).
    bn_eps and bn_momentum are shared by the normalisers; the keys of one normaliser alone are
    declared in its module (ics/config/norms.py)."""

    name: str = opt("", "the model kind, which picks the schema: mlp, cnn or dln (set by the model option's file)")
    activation: str = opt("sigmoid", "nonlinearity of every hidden block", choices=registry.ACTIVATIONS)
    norm: str = opt(
        "batch",
        "normalisation between the affine map and the nonlinearity (ics/models/norms): "
        + "; ".join(f"{n.name} = {n.doc}" for n in declared().values()),
        choices=declared(),
    )
    bn_eps: float = opt(1e-5, "BN's ε in x̂ = (x − μ)/√(σ² + ε)", rule=gt(0))
    bn_momentum: Optional[float] = opt(
        0.1,
        "BN running statistics: new = (1 − m)·old + m·batch (PyTorch's "
        "convention; Keras's momentum 0.99 is m = 0.01); null: the cumulative "
        "average of all batches so far (a population average)",
        rule=Rule(lambda v: v is None or between(0, 1)(v), "must be in [0, 1] or null"),
    )
    noise: str = opt(
        "none",
        "inject distributional shift after each norm (or the affine map with norm=none), "
        "training only: santurkar = Santurkar et al. 2018 §2.1 noisy BN",
        choices=("none", "santurkar"),
    )
    noise_mean_range: float = opt(0.5, "noise: per-step unit mean μ_j ~ U(−a, a); this is a", rule=ge(0))
    noise_scale_max: float = opt(1.25, "noise: per-step unit scale σ_j ~ U(1, b); this is b", rule=ge(1))
    noise_mean_jitter: float = opt(0.1, "noise: per-element shift m ~ U(μ_j − c, μ_j + c); this is c", rule=ge(0))
    noise_scale_jitter: float = opt(0.1, "noise: per-element scale s ~ N(σ_j, d²); this is d", rule=ge(0))
    dropout: float = opt(
        0.0,
        "dropout probability on each hidden block's output, after the nonlinearity (inverted "
        "dropout, training only; 0: none)",
        rule=between(0, 1, hi_open=True),
    )
    init: str = opt(
        "gaussian",
        "weight init: gaussian = N(0, init_std²) (BN paper §4.1), lecun = N(0, 1/fan_in), "
        "PyTorch's default, xavier, kaiming",
        choices=registry.INITS,
    )
    init_std: float = opt(0.1, "std of the gaussian init", rule=gt(0))


@kind("model", "mlp")
@dataclass
class MLPConfig(ModelConfig):
    """Fully connected: flatten, then one Linear → [BN] → activation block per hidden width."""

    name: str = redefault(ModelConfig, "name", "mlp")
    widths: List[int] = opt([100, 100, 100], "hidden widths (Fig. 1: three layers of 100)", rule=each(gt(0), 1))


@kind("model", "cnn")
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


@kind("model", "dln")
@dataclass
class DLNConfig(ModelConfig):
    """Deep linear network (Santurkar et al. 2018, gradient ICS): `depth` linear layers of `width`
    units (the last one is the output layer), no nonlinearity, optional BN after each hidden one."""

    name: str = redefault(ModelConfig, "name", "dln")
    activation: str = redefault(ModelConfig, "activation", "linear")
    init: str = redefault(ModelConfig, "init", "lecun")
    depth: int = opt(25, "linear layers, the output layer included", rule=ge(2))
    width: int = opt(10, "units of every hidden layer", rule=gt(0))


# ----------------------------------------------------------------------------------------------
# data


@dataclass
class DataConfig:
    """Where a data set is read from. Pixels are normalised by the train split's per-channel stats."""

    name: str = opt("", "the data set kind, which picks the schema (set by the data option's file)")
    root: Optional[str] = opt(None, "data root; None: $ICS_DATA_ROOT, then ~/.cache/ics/data")
    download: bool = opt(False, "let torchvision download the files into root")
    cache_dir: Optional[str] = opt(None, "decoded-tensor cache; None: $ICS_CACHE_DIR, then ~/.cache/ics/tensors")
    val_size: int = opt(
        0,
        "examples held out of the training split as a validation set (stratified by class; "
        "0: none). Studies that choose hyper-parameters choose on it and report test",
        rule=ge(0),
    )
    split_seed: int = opt(
        0, "seed of the validation draw (independent of the training seed)", rule=between(0, 2**31 - 1)
    )


@dataclass
class MNISTFamilyConfig(DataConfig):
    binarize: bool = opt(
        False,
        "pixels become 0/1 (threshold 0.5 on the 0–1 scale) and are fed as they are, "
        "not standardised: the BN paper's binary 28×28 input (§4.1)",
    )


@kind("data", "mnist")
@dataclass
class MNISTConfig(MNISTFamilyConfig):
    name: str = redefault(DataConfig, "name", "mnist")


@kind("data", "fashion_mnist")
@dataclass
class FashionMNISTConfig(MNISTFamilyConfig):
    name: str = redefault(DataConfig, "name", "fashion_mnist")


@dataclass
class CIFARConfig(DataConfig):
    image_folder: Optional[str] = opt(None, "read <dir>/{train,test}/<class>/ images instead of the pickles")


@kind("data", "cifar10")
@dataclass
class CIFAR10Config(CIFARConfig):
    name: str = redefault(DataConfig, "name", "cifar10")


@kind("data", "cifar100")
@dataclass
class CIFAR100Config(CIFARConfig):
    name: str = redefault(DataConfig, "name", "cifar100")


@kind("data", "gaussian_regression")
@dataclass
class GaussianRegressionConfig(DataConfig):
    """Synthetic regression, generated (nothing to read): x ~ N(0, I_dim), y = A x (+ noise), with A a
    fixed N(0, 1) matrix; squared loss. The deep-linear-network task of Santurkar et al. (2018)."""

    name: str = redefault(DataConfig, "name", "gaussian_regression")
    dim: int = opt(10, "input dimension", rule=gt(0))
    out_dim: int = opt(10, "target dimension", rule=gt(0))
    train_size: int = opt(1_000, "training examples", rule=ge(2))
    test_size: int = opt(1_000, "test examples", rule=ge(2))
    noise_std: float = opt(0.0, "std of Gaussian noise added to the targets", rule=ge(0))
    seed: int = opt(0, "seed of A and of the examples (independent of the training seed)", rule=between(0, 2**31 - 1))


@kind("data", "image_folder")
@dataclass
class ImageFolderConfig(DataConfig):
    name: str = redefault(DataConfig, "name", "image_folder")
    image_folder: str = opt(MISSING, "folder with train/<class>/ and test/<class>/ images (required)")


# ----------------------------------------------------------------------------------------------
# optimiser


@dataclass
class OptimConfig:
    name: str = opt("", "the optimiser kind, which picks the schema (set by the optim option's file)")
    lr: float = opt(1.0, "learning rate (SGD default 1: chosen on validation by the default_lr study)", rule=gt(0))
    weight_decay: float = opt(0.0, "L2 penalty coefficient (added to the gradient)", rule=ge(0))


@kind("optim", "sgd")
@dataclass
class SGDConfig(OptimConfig):
    """Plain SGD, as in the BN paper's Fig. 1."""

    name: str = redefault(OptimConfig, "name", "sgd")
    momentum: float = opt(0.0, "heavy-ball momentum", rule=between(0, 1, hi_open=True))
    nesterov: bool = opt(False, "Nesterov momentum (needs momentum > 0)")


@kind("optim", "momentum")
@dataclass
class MomentumConfig(SGDConfig):
    name: str = redefault(OptimConfig, "name", "momentum")
    lr: float = redefault(OptimConfig, "lr", 0.05)
    momentum: float = redefault(SGDConfig, "momentum", 0.9)


@kind("optim", "adam")
@dataclass
class AdamConfig(OptimConfig):
    name: str = redefault(OptimConfig, "name", "adam")
    lr: float = redefault(OptimConfig, "lr", 1e-3)
    betas: List[float] = opt([0.9, 0.999], "Adam's (β1, β2)", rule=each(between(0, 1, hi_open=True), 2))


# ----------------------------------------------------------------------------------------------
# the training loop


@dataclass
class TrainerConfig:
    # bounded because metrics.npz stores steps as float64, exact up to 2**53 (nothing else grows with steps)
    steps: int = opt(
        50_000,
        "optimiser steps (steps; at most 2**53 - 1: metrics.npz records steps as float64)",
        rule=Rule(
            lambda v: gt(0)(v) and v <= MAX_STEPS,
            "must be a finite number > 0 and <= 2**53 - 1 (metrics.npz records steps as float64)",
        ),
    )
    batch_size: int = opt(60, "examples per training mini-batch", rule=ge(1))
    eval_every: int = opt(1_000, "evaluate on the whole test split every this many steps (steps)", rule=gt(0))
    eval_log_points: int = opt(
        8,
        "extra evaluations at log-spaced steps before the first eval_every (steps 10 … "
        "eval_every; at most 10,000): fine resolution where learning curves move fast",
        rule=between(0, 10_000),
    )
    eval_batch_size: int = opt(
        500,
        "examples per forward pass during evaluation (speed and memory only; 500: fastest for the CNN in `ics bench`)",
        rule=gt(0),
    )
    log_every: int = opt(
        100,
        "log the train loss/accuracy window every this many steps (steps); divergence is checked at the same cadence",
        rule=gt(0),
    )
    checkpoint_every: int = opt(
        5_000,
        "write a resumable checkpoint every this many steps (steps); 0: none at all (the run cannot be resumed)",
        rule=ge(0),
    )
    seed: int = opt(0, "seed of the init and of the mini-batch order", rule=between(0, 2**62 - 1))
    device: str = opt("auto", "auto (cuda if available), cpu, cuda or cuda:N")
    threads: Any = opt(
        "auto",
        "CPU threads: auto (timed at 1 and all cores, capped by parallel jobs) or a number up to the available cores",
    )
    channels_last: Any = opt(
        "auto",
        "conv models: NHWC memory format for model and data (faster convolutions "
        "on CPU, measured in `ics bench`); auto: on for models with conv layers",
    )
    sampler: str = opt(
        "epoch", "epoch: a fresh randperm every epoch; replacement: i.i.d. draws", choices=("epoch", "replacement")
    )
    divergence_loss: float = opt(1e3, "a train loss above this (or non-finite) ends the run as `diverged`", rule=gt(0))
    progress: Any = opt("auto", "progress display: auto (a bar on a terminal, plain lines in logs), true, false")
    progress_every_sec: float = opt(
        30.0, "without a terminal (logs, SLURM): a plain progress line every this many seconds", rule=gt(0)
    )
    train_eval_size: int = opt(
        0,
        "training examples scored like the test split (eval mode: no dropout, BN with running "
        "statistics) at every evaluation, a fixed stratified draw (the same for every seed): the "
        "train side of the train − test gap; 0: none; larger than the training split: all of it",
        rule=ge(0),
    )


# ----------------------------------------------------------------------------------------------
# instruments: everything that watches training (ics.instruments)


@dataclass
class ProbeConfig:
    """Layer-input distributions on a fixed probe set (BN paper §2, Fig. 1 b/c)."""

    enabled: bool = opt(True, "measure the layer-input distributions")
    points: List[str] = opt(
        ["*.pre_act"],
        "glob patterns of probe points (`*.pre_act`: every nonlinearity's input; `*.in`: every affine layer's input)",
    )
    size: int = opt(1_000, "examples in the fixed probe set (a stratified draw from the test split)", rule=ge(2))
    seed: int = opt(0, "seed of the probe-set draw and of the tracked units", rule=between(0, 2**31 - 1))
    every: int = opt(500, "measure every this many steps (steps), plus step 0 and the last step", rule=gt(0))
    histogram_every: int = opt(
        0,
        "histograms, and the tracked units' raw values kept for density plots, every "
        "this many steps (steps); 0: ten times over the run (plus step 0 and the end)",
        rule=ge(0),
    )
    percentiles: List[float] = opt(
        [15.0, 50.0, 85.0], "percentiles per unit (Fig. 1 b/c: 15/50/85)", rule=each(between(0, 100), 1)
    )
    units: int = opt(5, "tracked units per probe point", rule=ge(1))
    bn_mode: str = opt(
        "batch",
        "BN statistics during the probe pass: batch (the probe set's own) or eval (running)",
        choices=("batch", "eval"),
    )
    on_train_batch: bool = opt(False, "also log the statistics of real training mini-batches")
    train_batch_every: int = opt(100, "cadence of the training-batch statistics (steps)", rule=gt(0))


@dataclass
class GradICSConfig:
    """Gradient-based ICS (Santurkar et al. 2018, Def. 2.1): ics.instruments.grad_ics."""

    enabled: bool = opt(False, "measure gradient-based ICS")
    every: int = opt(100, "measure every this many steps (steps)", rule=gt(0))
    first: int = opt(10, "also measure each of the first this many steps (steps)", rule=ge(0))
    gauge_scales: List[float] = opt(
        [0.5, 1.0, 2.0, 4.0],
        "also cos and rel_l2 with every weight row that feeds a "
        "normaliser set to this norm (the same function; one SGD step at the nominal "
        "LR): gradient ICS depends on that scale; [] for none (each scale costs one "
        "more measurement)",
        rule=each(gt(0)),
    )


@dataclass
class LandscapeConfig:
    """Loss-landscape smoothness along the step (Santurkar et al. 2018, §3.2): ics.instruments.landscape."""

    enabled: bool = opt(False, "measure loss and gradient changes along the training direction")
    every: int = opt(100, "measure every this many steps (steps)", rule=gt(0))
    direction: str = opt(
        "gradient",
        "gradient: θ − η·g for η = lr × multipliers; update: θ + s·Δ with Δ the "
        "optimiser's actual update (momentum, Adam)",
        choices=("gradient", "update"),
    )
    multipliers: List[float] = opt(
        [0.25, 0.5, 1.0, 2.0, 4.0], "step sizes as multiples of lr (or of the update)", rule=each(gt(0), 1)
    )
    scale_invariant: bool = opt(
        False,
        "also the loss range, gradient change and β at the point where every weight "
        "row feeding BN has unit norm (invariant to BN's weight scale; twice the cost)",
    )
    gauge_scales: List[float] = opt(
        [0.5, 1.0, 2.0, 4.0],
        "with scale_invariant: the same three measures with those "
        "rows at each of these norms too (the unit norm is one arbitrary choice of "
        "gauge; each scale costs one more measurement)",
        rule=each(gt(0)),
    )
    hessian: bool = opt(False, "also the Hessian's largest and smallest eigenvalues (Lanczos), logged next to 2/lr")
    power_iters: int = opt(
        20,
        "Lanczos steps (Hessian-vector products) for the extreme eigenvalues (the name is "
        "kept from the power iteration it replaced)",
        rule=ge(1),
    )
    lanczos_max_iters: int = opt(
        200,
        "Lanczos steps at most: after power_iters, more until both extreme Ritz "
        "pairs converge (see lanczos_tol); unconverged values are flagged",
        rule=ge(1),
    )
    lanczos_tol: float = opt(
        1e-3, "converged when ‖Hv − λv‖ <= this × max(|λ_max|, |λ_min|) for both extremes", rule=gt(0)
    )


@dataclass
class BNStatsConfig:
    """BN inference statistics at every evaluation (BN paper Alg. 2): ics.instruments.bn_stats."""

    enabled: bool = opt(False, "evaluate with EMA, precise (population) and pure batch statistics")
    batches: int = opt(200, "training batches averaged for precise BN (fvcore/detectron2 use 200)", rule=ge(1))
    batch_size: Optional[int] = opt(
        None,
        "their size; null: trainer.batch_size",
        rule=Rule(lambda v: v is None or (isinstance(v, int) and v >= 2), "must be an integer >= 2 or null"),
    )
    test_batch_sizes: List[int] = opt(
        [2, 8, 60, 1000], "test batch sizes evaluated with their own statistics", rule=each(ge(2), 1)
    )
    test_subset: int = opt(1_000, "test examples used for the batch-statistics evaluations", rule=ge(2))
    seed: int = opt(0, "seed of the precise-BN batches and of the test subset", rule=between(0, 2**31 - 1))
    recalibrate_at_end: bool = opt(True, "write the final EMA / precise / batch accuracies into summary.json")


@dataclass
class BNNoiseConfig:
    """BN's own noise in Batch Renormalization terms r, d (Ioffe 2017): ics.instruments.bn_noise."""

    enabled: bool = opt(False, "read r = σ_B/σ_pop and d = (μ_B − μ_pop)/σ_pop from the training forward")
    every: int = opt(100, "read every this many steps (steps)", rule=gt(0))


@dataclass
class WeightsConfig:
    """Weight norms, effective LR and angular updates (BN paper §3.3): ics.instruments.weights."""

    enabled: bool = opt(False, "measure weight-row norms, η/‖w‖², angular updates, |cos(w, ∇w)|, γ and β")
    every: int = opt(100, "measure every this many steps (steps)", rule=gt(0))


@dataclass
class GradientsConfig:
    """Gradient flow per layer: ‖∇W‖, its ratio to the output layer's, the nonlinearity's derivative
    and saturation (vanishing gradients): ics.instruments.gradients."""

    enabled: bool = opt(False, "measure per-layer gradient norms and the saturation of each nonlinearity")
    every: int = opt(100, "measure every this many steps (steps)", rule=gt(0))


# ----------------------------------------------------------------------------------------------
# analysis settings (stored with the run, read by `ics report`)


@dataclass
class ReportConfig:
    targets: List[float] = opt(
        [0.9, 0.95, 0.97], "accuracies for steps-to-target", rule=each(between(0, 1, lo_open=True))
    )
    not_learning_margin: float = opt(0.05, "`not_learning`: final test accuracy < chance + this", rule=ge(0))
    equivalence_margin: float = opt(
        0.01,
        "±margin on test accuracy within which `ics report` calls two "
        "measurements equivalent (TOST at 0.05; e.g. BN's EMA vs precise statistics)",
        rule=gt(0),
    )
    baseline: List[str] = opt(
        [],
        "the reference group, as key=value overrides (e.g. [model.norm=batch, "
        "model.dropout=0]): the report contrasts every other group with it (Welch), "
        "whatever keys they differ in",
        rule=each(Rule(lambda v: isinstance(v, str) and "=" in v.strip("="), "a key=value text")),
    )


@dataclass
class ToleranceConfig:
    fraction: float = opt(
        0.9, "an LR is good when its mean score >= fraction × the group's best", rule=between(0, 1, lo_open=True)
    )
    last_k: int = opt(3, "a run's score is the mean of its last k evaluations (validation when held out)", rule=ge(1))


OBJECTIVES = ("val_acc", "best_val_acc", "val_loss", "test_acc", "train_loss")


@dataclass
class SweepConfig:
    """What a job returns to Hydra's sweeper: an optimising sweeper (hydra/sweeper=optuna, nevergrad,
    ax) searches on it. Accuracies (R² for regression) are maximised, losses minimised."""

    objective: str = opt(
        "val_acc",
        "the value each job returns to the sweeper: val_acc (final validation "
        "accuracy; needs data.val_size), best_val_acc, val_loss, test_acc (tunes on the test "
        "split: for checks only), train_loss",
        choices=OBJECTIVES,
    )


def objective_direction(objective: str) -> str:
    """maximize for accuracies (and R²), minimize for losses."""
    return "minimize" if objective.endswith("loss") else "maximize"


@dataclass
class Config:
    model: ModelConfig = field(default_factory=MLPConfig)
    data: DataConfig = field(default_factory=MNISTConfig)
    optim: OptimConfig = field(default_factory=SGDConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    # options of these sections (probe=off, grad_ics=on, ...) only set keys of one schema each
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    grad_ics: GradICSConfig = field(default_factory=GradICSConfig)
    landscape: LandscapeConfig = field(default_factory=LandscapeConfig)
    bn_stats: BNStatsConfig = field(default_factory=BNStatsConfig)
    bn_noise: BNNoiseConfig = field(default_factory=BNNoiseConfig)
    weights: WeightsConfig = field(default_factory=WeightsConfig)
    gradients: GradientsConfig = field(default_factory=GradientsConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    tolerance: ToleranceConfig = field(default_factory=ToleranceConfig)
    sweep: SweepConfig = field(default_factory=SweepConfig)
    name: str = opt("run", "a free-form label stored in the run record")


# every section is a Hydra config group (configs/<section>/*.yaml)
GROUPS = tuple(f.name for f in dataclasses.fields(Config) if f.default_factory is not dataclasses.MISSING)


def schema_of(group: str, name: Optional[str]) -> Type:
    """The dataclass of a section read back from a dict: its kind's (by `name`), else the section's
    default class (an option file that names no kind is its group's default kind)."""
    if name and name in KINDS.get(group, {}):
        return KINDS[group][name]
    return type(getattr(Config(), group))


# Keys that say where or how fast a run goes, never what it computes: a resume may change them
# (ics.train.checkpoint), and runs that differ only in them are the same experiment (ics.analysis.configs).
MACHINE_KEYS = (
    "name",
    "data.root",
    "data.cache_dir",
    "data.download",
    "trainer.device",
    "trainer.threads",
    "trainer.progress",
    "trainer.progress_every_sec",
    "trainer.channels_last",
)
