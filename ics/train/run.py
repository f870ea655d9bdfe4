"""Entry points: check that a config can run, and train it in a directory (resuming if it can).

check_runnable(cfg)                 every check that needs no training, before anything is written
train_and_evaluate(cfg, workdir)    train in workdir; a finished run there is left alone, an
                                    interrupted or killed one continues from its checkpoint
resume(workdir)                     the same with the run's own config, from its record
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import torch

from ics.config import Config, ConfigError, from_dict, validate
from ics.data import DataSpec, data_spec
from ics.models import build_model
from ics.record import RecordError, RunBusy, RunLock, Status, Summary, read_summary
from ics.registry import INSTRUMENTS
from ics.train import checkpoint as ckpt
from ics.train.device import resolve_device
from ics.train.stopping import GracefulStop, RunDiskFull, RunInterrupted, SignalStop, run_disk_full
from ics.train.threads import available_cores
from ics.words import count


class AlreadyFinished(Exception):
    """The run directory holds a finished run; nothing was changed."""

    def __init__(self, summary: Summary, run_dir: Path):
        self.summary, self.run_dir = summary, run_dir
        super().__init__(f"{run_dir} already {summary.status} at step {summary.steps}; nothing to resume")


def check_runnable(cfg: Config, data: bool = True) -> Optional[DataSpec]:
    """Raise a one-line ConfigError for anything that would stop this config from training: values,
    the device, thread count, the data files (headers only, nothing decoded) and what depends on
    their shape (batch size, probe points, probe-set size). Returns the data spec when checked."""
    validate(cfg)
    t = cfg.trainer
    resolve_device(t.device)
    if isinstance(t.threads, int) and t.threads > available_cores():
        raise ConfigError(
            f"trainer.threads={t.threads} is invalid: this machine has {count(available_cores(), 'usable core')}; "
            f"allowed: auto or 1..{available_cores()}"
        )
    if not data:
        return None
    spec = data_spec(cfg.data)
    if spec.train_size is not None:
        val = cfg.data.val_size
        if val and val >= spec.train_size:
            raise ConfigError(
                f"data.val_size={val} is invalid: must be < the training split size ({spec.train_size} in {spec.where})"
            )
        if t.batch_size > spec.train_size - val:
            what = f"the training set size ({spec.train_size}" + (f" minus data.val_size={val}" if val else "")
            raise ConfigError(f"trainer.batch_size={t.batch_size} is invalid: must be <= {what} in {spec.where})")
    with torch.device("meta"):  # no memory, no RNG: only the structure is needed
        model = build_model(cfg.model, spec.in_shape, spec.out_features)
    for key, cls in INSTRUMENTS.items():
        section = getattr(cfg, key, None)
        if getattr(section, "enabled", False):
            cls.check(section, cfg, model, spec)
    return spec


def _existing(run_dir: Path) -> Optional[Summary]:
    try:
        return read_summary(run_dir)
    except FileNotFoundError:
        return None
    except (RecordError, OSError):
        return None  # an unreadable record: the checkpoint (if any) decides


def check_resumable(cfg: Config, run_dir: Path) -> None:
    """For a config aimed at an existing directory: a checkpoint there must be of the same run."""
    path = ckpt.path_of(run_dir)
    if path.is_file():
        ckpt.check_matches(cfg, run_dir, ckpt.load(path)["config"])


def train_and_evaluate(
    cfg: Config,
    workdir: Path,
    overrides: Sequence[str] = (),
    *,
    resume: str = "auto",
    max_threads: Optional[int] = None,
    console=None,
    data=None,
    say=None,
    label: str = "",
    hparam_keys: Optional[Sequence[str]] = None,
    hparam_domains: Optional[dict] = None,
) -> Summary:
    """Train `cfg` in `workdir`. resume: "auto" continues from a checkpoint when there is one and
    starts fresh otherwise; "require" makes a missing checkpoint an error; "never" starts fresh.
    A finished run in workdir raises AlreadyFinished; a live one raises RunBusy; a full disk RunDiskFull. say: a callback
    for what is happening (loading data, ...); label: names the run in progress lines; hparam_keys:
    the keys TensorBoard's HParams tab should show (default: the main knobs and the overrides);
    hparam_domains: a sweep's values of those keys ({key: [values]}), for the HParams experiment."""
    workdir = Path(workdir)
    # one signal scope from the first check to the last byte (the CLI's task may hold it already):
    # before training a signal stops at once, nothing of the run written
    with GracefulStop():
        try:
            return _train_and_evaluate(
                cfg, workdir, overrides, resume, max_threads, console, data, say, label, hparam_keys, hparam_domains
            )
        except SignalStop as e:
            raise RunInterrupted(e.signum, workdir, _checkpoint_step(workdir), started=False) from None


def _checkpoint_step(workdir: Path) -> Optional[int]:
    try:
        return ckpt.step_of(ckpt.path_of(workdir))
    except (OSError, ConfigError):
        return None


def _train_and_evaluate(
    cfg, workdir, overrides, resume, max_threads, console, data, say, label, hparam_keys, hparam_domains
):
    from ics.record.files import full_disk_cause
    from ics.train.build import build_trainer
    from ics.train.hooks.tensorboard import events_file

    existing = _existing(workdir)
    if existing is not None and existing.status.finished:  # before the lock: leave every file untouched
        raise AlreadyFinished(existing, workdir)
    lock = RunLock(workdir)
    try:
        lock.acquire()
    except OSError as e:
        full = full_disk_cause(e)
        if full is None:
            raise
        raise run_disk_full(full, workdir, None, str(lock.path), _checkpoint_step(workdir)) from None
    try:
        existing = _existing(workdir)
        if existing is not None and existing.status.finished:
            raise AlreadyFinished(existing, workdir)
        path = ckpt.path_of(workdir)
        if resume != "never" and path.is_file():
            state = ckpt.load(path)
            ckpt.check_matches(cfg, workdir, state["config"])
            if say:
                say(f"resuming from the checkpoint at step {state['step']:,}")
            trainer = build_trainer(
                cfg,
                workdir,
                data=data,
                overrides=overrides,
                console=console,
                threads=state["threads"],
                say=say,
                label=label,
            )
            try:
                trainer.load_state_dict(state)
            except (RuntimeError, KeyError, ValueError, TypeError, IndexError) as e:  # shapes or parts that do not fit
                first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
                raise ConfigError(
                    f"cannot resume from {path}: it does not fit this run's model or state ({first})"
                ) from None
        elif resume == "require":
            raise ConfigError(
                f"cannot resume {workdir}: it has no {path.name} (the run stopped before its first "
                "checkpoint, or ran with trainer.checkpoint_every=0)"
            )
        else:
            trainer = build_trainer(
                cfg,
                workdir,
                data=data,
                overrides=overrides,
                max_threads=max_threads,
                console=console,
                say=say,
                label=label,
            )
        trainer.hparam_keys, trainer.hparam_domains = hparam_keys, hparam_domains or {}
        try:
            return trainer.fit()
        except (RunInterrupted, KeyboardInterrupt):
            raise
        except Exception as e:  # a crash mid-run: recorded, then passed on
            trainer.fail(e)
            full = full_disk_cause(e)
            if full is not None:  # a full disk: one line, the checkpoint on disk is kept
                raise run_disk_full(
                    full, workdir, trainer.step, full.filename or events_file(trainer), _checkpoint_step(workdir)
                ) from None
            raise
    finally:
        lock.release()


def run_config(run_dir: Path) -> tuple:
    """(Config, overrides) of a run directory, from its checkpoint (else its record)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ConfigError(f"{run_dir} is not a directory; give a run directory (one with summary.json)")
    path = ckpt.path_of(run_dir)
    existing = _existing(run_dir)
    if path.is_file():
        saved = ckpt.load(path)["config"]
    elif existing is not None and existing.config:
        saved = existing.config
    else:
        raise ConfigError(f"{run_dir} holds no run: it has no {path.name} and no readable summary.json")
    return from_dict(saved), (existing.overrides if existing is not None else [])


def resume(run_dir: Path, console=None, say=None) -> Summary:
    """Continue a run in its own directory with the config it was started with."""
    cfg, overrides = run_config(run_dir)
    return train_and_evaluate(cfg, run_dir, overrides, resume="require", console=console, say=say)


__all__ = [
    "AlreadyFinished",
    "RunDiskFull",
    "RunBusy",
    "check_runnable",
    "check_resumable",
    "train_and_evaluate",
    "resume",
    "run_config",
    "Status",
]
