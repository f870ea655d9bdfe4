"""A Trainer from a Config: the data, model, optimiser, sampler, thread count, instruments and hooks,
built in the order that fixes the random streams (the seed, then the model's initialisation)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional, Sequence

import torch
import torch.nn.functional as F

from ics.config import Config, ConfigError, validate
from ics.data import DataBundle, load_data
from ics.data.sampler import IndexSampler
from ics.instruments import RunContext, build_instruments
from ics.models import build_model
from ics.train import stopping
from ics.train.device import resolve_device
from ics.train.hooks import Hook, default_hooks
from ics.train.loop import Trainer
from ics.train.optim import build_optimizer
from ics.train.threads import resolve_threads

SAMPLER_SEED_OFFSET = 10_007  # the sampler's generator must not replay the init RNG stream


def build_trainer(
    cfg: Config,
    out_dir: Optional[Path] = None,
    data: Optional[DataBundle] = None,
    overrides: Sequence[str] = (),
    max_threads: Optional[int] = None,
    console=None,
    threads: Optional[int] = None,
    say: Optional[Callable[[str], None]] = None,
    label: str = "",
    hooks: Optional[Sequence[Hook]] = None,
) -> Trainer:
    """data: the decoded data (loaded from cfg.data when None); threads: a thread count to use as is
    (a resumed run keeps its own), else trainer.threads decides, capped at max_threads; say: a
    callback for what is happening; label: names the run in progress lines; hooks: the periodic
    actions (default: ics.train.hooks.DEFAULT_HOOKS)."""
    validate(cfg)
    say = say or (lambda text: None)
    device = resolve_device(cfg.trainer.device)
    if data is None:
        say(f"loading data: {cfg.data.name}")
        stopping.reached("loading-data")
        data = load_data(cfg.data, device)
    check_fits(cfg, data)
    t = cfg.trainer
    torch.manual_seed(t.seed)
    regression = data.task == "regression"
    model = build_model(cfg.model, data.in_shape, data.out_features, seed=t.seed).to(device)
    if uses_conv(model) and t.channels_last in ("auto", True):
        model, data = to_channels_last(model, data)
    if threads is None and t.threads == "auto" and device.type == "cpu":
        say("choosing CPU threads (timing a few steps at 1 and at all cores)")
    if threads is None:
        threads = resolve_threads(
            t.threads, model, data.in_shape, data.out_features, t.batch_size, device, max_threads, regression=regression
        )
    torch.set_num_threads(threads)
    opt = build_optimizer(model.parameters(), cfg.optim)
    sampler = IndexSampler(data.x_train.shape[0], t.batch_size, t.seed + SAMPLER_SEED_OFFSET, t.sampler, device)
    # classification: cross-entropy, score = accuracy; regression: mean squared error, score = R²
    loss_fn = F.mse_loss if regression else F.cross_entropy
    ctx = RunContext(cfg, model, opt, data, device, loss_fn, t.steps, t.seed)
    instruments = build_instruments(cfg, ctx)  # may reject probe.points
    return Trainer(
        cfg,
        model=model,
        optimizer=opt,
        data=data,
        sampler=sampler,
        ctx=ctx,
        instruments=instruments,
        hooks=default_hooks() if hooks is None else hooks,
        threads=threads,
        out_dir=out_dir,
        overrides=overrides,
        console=console,
        label=label,
    )


def check_fits(cfg: Config, data: DataBundle) -> None:
    """Checks that need the decoded data's sizes."""
    n_train = data.x_train.shape[0]
    if cfg.trainer.batch_size > n_train:
        raise ConfigError(
            f"trainer.batch_size={cfg.trainer.batch_size} is invalid: must be <= the training set size ({n_train})"
        )


def uses_conv(model) -> bool:
    return any(isinstance(m, torch.nn.Conv2d) for m in model.modules())


def to_channels_last(model, data: DataBundle):
    """NHWC for the model and the 4-D data tensors (index lookups keep the format: no per-step copy)."""
    import dataclasses

    def nhwc(x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x

    data = dataclasses.replace(
        data,
        x_train=nhwc(data.x_train),
        x_test=nhwc(data.x_test),
        x_val=nhwc(data.x_val) if data.x_val is not None else None,
    )
    return model.to(memory_format=torch.channels_last), data
