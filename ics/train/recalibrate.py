"""Post-training BN recalibration ("precise BN"): replace the EMA running statistics of a run's
final checkpoint by population statistics (the cumulative average over training batches, BN
paper Alg. 2) and record the test accuracy with both in the run's summary.json."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from ics.config import ConfigError
from ics.data import load_data
from ics.instruments.bn_stats import bn_layers, precise_statistics
from ics.models import build_model
from ics.models.evaluate import evaluate_model
from ics.record import read_summary, write_summary
from ics.train import checkpoint as ckpt
from ics.train.device import resolve_device
from ics.train.run import run_config


def recalibrate(run_dir: Path, batches: int = 200, batch_size: Optional[int] = None, seed: int = 0) -> dict:
    run_dir = Path(run_dir)
    cfg, _ = run_config(run_dir)
    path = ckpt.path_of(run_dir)
    if not path.is_file():
        raise ConfigError(f"cannot recalibrate {run_dir}: it has no {path.name} (trainer.checkpoint_every=0?)")
    state = ckpt.load(path)
    device = resolve_device(cfg.trainer.device)
    data = load_data(cfg.data, device)
    model = build_model(cfg.model, data.in_shape, data.out_features, seed=cfg.trainer.seed).to(device)
    model.load_state_dict(state["model"])
    if not bn_layers(model):
        raise ConfigError(f"cannot recalibrate {run_dir}: its model has no BN layer (model.norm={cfg.model.norm})")
    bs = batch_size or cfg.trainer.batch_size
    ema_loss, ema_acc = evaluate_model(model, data, cfg.trainer.eval_batch_size)
    twin = precise_statistics(model, data.x_train, batches, bs, seed)
    pop_loss, pop_acc = evaluate_model(twin, data, cfg.trainer.eval_batch_size)
    result = {
        "step": int(state["step"]),
        "batches": batches,
        "batch_size": bs,
        "seed": seed,
        "ema_acc": ema_acc,
        "ema_loss": ema_loss,
        "precise_acc": pop_acc,
        "precise_loss": pop_loss,
    }
    summary = read_summary(run_dir)
    summary.recalibrated = result
    write_summary(run_dir, summary)
    return result
