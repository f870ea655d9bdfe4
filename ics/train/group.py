"""A group of runs that differ only in trainer.seed, trained as one vectorised model (an ensemble).

Each member is a whole run: its own Trainer (build_trainer, so its seeding, model, optimiser, sampler,
instruments and hooks are exactly a single run's), its own folder, lock, record, checkpoint and
TensorBoard events. Only the update is shared: ics.train.ensemble.Ensemble stacks the members'
parameters and steps all of them at once; the members' models are views into that stack, so every
hook (evaluation, instruments, checkpoints, TensorBoard, progress, the record) runs on each member
with the usual code. A member's checkpoint has the single run's layout; a group resumed from its
members' checkpoints continues bit-identically, whether the whole group or a part of it resumes.

    train_group(configs, workdirs)   lock, build (or resume) and train the members; per member a
                                     Summary, or the exception that ended it before training
    fit_group(ensemble, trainers)    the lockstep loop (Trainer.fit for K members)

Instruments that watch the loop's own forward pass (bn_noise) cannot see a member's part of the
vectorised forward: `group_refusal` names them, and the launcher runs such jobs one by one.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Union

import torch

from ics.config import Config, ConfigError, to_dict
from ics.data import DataBundle
from ics.record import RunLock, Status, Summary
from ics.record.files import whole
from ics.train import checkpoint as ckpt
from ics.train import stopping
from ics.train.ensemble import ELEMENTWISE_OPTIMIZERS, Ensemble, batched_config
from ics.train.loop import Trainer
from ics.train.stopping import ForcedStop, GracefulStop, RunInterrupted
from ics.train.summary import write_forced_stop_record

Outcome = Union[Summary, BaseException]


class GroupInterrupted(RunInterrupted):
    """A signal stopped the group: every member that was still training wrote its checkpoint and
    its `interrupted` record. records: each member's final record (None: it never trained)."""

    def __init__(self, signum: int, run_dir, step: Optional[int], records: Sequence[Optional[Summary]]):
        super().__init__(signum, run_dir, step)
        self.records = list(records)


def group_key(cfg: Config) -> dict:
    """What members of one group share: the whole config but the seed."""
    d = to_dict(cfg)
    d["trainer"] = {k: v for k, v in d["trainer"].items() if k != "seed"}
    return d


def group_refusal(cfg: Config, vmap: bool = False) -> Optional[str]:
    """Why this config cannot train as a member of a group (None: it can). vmap: group configs
    without a hand-batched step (CNNs, normalisers other than BN) on a CPU too, where their
    torch.func.vmap step measured slower than one run at a time (docs/benchmark.md)."""
    if cfg.optim.name not in ELEMENTWISE_OPTIMIZERS:
        return f"optim={cfg.optim.name} (a group updates elementwise: {', '.join(ELEMENTWISE_OPTIMIZERS)})"
    if (
        not vmap
        and not batched_config(cfg)
        and cfg.trainer.device in ("cpu", "auto")
        and not (cfg.trainer.device == "auto" and torch.cuda.is_available())
    ):
        return (
            f"model={cfg.model.name} with model.norm={cfg.model.norm} has no batched step, and its vmap step "
            "on a CPU is slower than one job at a time (hydra.launcher.vmap=true groups it anyway)"
        )
    from ics.registry import INSTRUMENTS

    for key, cls in INSTRUMENTS.items():
        if cls.watches_training_forward and getattr(getattr(cfg, key, None), "enabled", False):
            return f"{key} is on (it watches each run's own forward pass)"
    return None


def train_group(
    configs: Sequence[Config],
    workdirs: Sequence[Path],
    overrides: Sequence[Sequence[str]],
    labels: Sequence[str],
    *,
    data: Optional[DataBundle] = None,
    max_threads: Optional[int] = None,
    say: Optional[Callable[[str], None]] = None,
    hparam_keys: Optional[Sequence[str]] = None,
    hparam_domains: Optional[dict] = None,
) -> List[Outcome]:
    """Train the members (configs equal but for trainer.seed) in their folders, continuing each
    from its checkpoint where it has one. Per member: its final Summary, or the exception that kept
    it out of the group (AlreadyFinished, RunBusy, a ConfigError from its checkpoint). A signal
    stops every member after the same step (each writes its checkpoint and record) and raises
    RunInterrupted; a crash of the shared step is recorded in every member and raised."""
    from ics.train.build import build_trainer
    from ics.train.run import AlreadyFinished, _existing

    outcomes: List[Optional[Outcome]] = [None] * len(configs)
    trainers: List[Trainer] = []
    slots: List[int] = []
    threads = None
    with GracefulStop(), contextlib.ExitStack() as held:
        for i, (cfg, workdir) in enumerate(zip(configs, workdirs)):
            try:
                existing = _existing(workdir)
                if existing is not None and existing.status.finished:
                    raise AlreadyFinished(existing, workdir)
                lock = RunLock(workdir)
                lock.acquire()  # RunBusy: another process trains it
                held.callback(lock.release)
                state = None
                if ckpt.path_of(workdir).is_file():
                    state = ckpt.load(ckpt.path_of(workdir))
                    ckpt.check_matches(cfg, workdir, state["config"])
                trainer = build_trainer(
                    cfg,
                    workdir,
                    data=data,
                    overrides=overrides[i],
                    max_threads=max_threads,
                    threads=state["threads"] if state is not None else threads,
                    say=say if data is None else None,
                    label=labels[i],
                )
                if state is not None:
                    trainer.load_state_dict(state)
            except stopping.SignalStop:
                raise
            except Exception as e:  # noqa: BLE001 - this member stays out; the others train
                outcomes[i] = e
                continue
            data, threads = trainer.data, trainer.threads  # one decoded copy, one thread count for all
            trainer.owns_scope = False
            trainer.hparam_keys, trainer.hparam_domains = hparam_keys, hparam_domains or {}
            trainers.append(trainer)
            slots.append(i)
        if trainers:
            steps = {t.step for t in trainers}
            if len(steps) > 1:  # members of one group stop together; apart, each resumes on its own
                raise ConfigError(
                    f"the members of a group must continue from one step; their checkpoints are at steps "
                    f"{sorted(steps)}"
                )
            ens = Ensemble(
                trainers[0].cfg,
                [t.cfg.trainer.seed for t in trainers],
                trainers[0].data,
                members=[t.model for t in trainers],
                samplers=[t.sampler for t in trainers],
                optimizers=[t.opt for t in trainers],
            )
            ens.step = trainers[0].step
            try:
                records = fit_group(ens, trainers)
            except GroupInterrupted as e:  # the whole group, in the launch's order
                full: List[Optional[Summary]] = [None] * len(configs)
                for i, record in zip(slots, e.records):
                    full[i] = record
                e.records = full
                raise
            for i, record in zip(slots, records):
                outcomes[i] = record
    return [o if o is not None else ConfigError("not trained") for o in outcomes]


def fit_group(ens: Ensemble, trainers: List[Trainer]) -> List[Summary]:
    """Trainer.fit for the members in lockstep: per step one batch per member (its own sampler),
    each member's before_step hooks, one vectorised update, each member's after_step hooks. A member
    that diverges ends at that step (its record written) while the others go on."""
    steps = trainers[0].cfg.trainer.steps
    before = [t._calls("before_step") for t in trainers]
    after = [t._calls("after_step") for t in trainers]
    grads_read = any(inst.reads_update_grads for t in trainers for inst in t.instruments)
    records: List[Optional[Summary]] = [None] * len(trainers)
    active = list(range(len(trainers)))
    with GracefulStop() as stop:
        stop.training()
        try:
            with contextlib.ExitStack() as final:
                first = ens.step + 1
                with contextlib.ExitStack() as scopes:
                    for t in trainers:
                        t.t_start = time.perf_counter()
                        scopes.enter_context(t.loop_scope)
                        t.call("before_train")
                    while ens.step < steps and not stop.requested and active:
                        x, y = ens.next_batches()
                        for k in active:
                            for hook in before[k]:
                                hook(trainers[k], x[k], y[k])
                        for t in trainers:
                            t.ctx.training_forward = True
                        loss, out = ens.train_step(x, y)
                        for t in trainers:
                            t.ctx.training_forward = False
                        if grads_read:
                            ens.bind_member_grads()
                        for k in list(active):
                            t = trainers[k]
                            t.meter.add(loss[k], out[k], y[k])
                            t.step += 1
                            for hook in after[k]:
                                hook(t)
                            if t.status == Status.DIVERGED:  # this member ends here; the group goes on
                                t.call("after_train")
                                records[k] = t.finish()
                                active.remove(k)
                        if ens.step == first:
                            stopping.reached("first-step")
                    final.enter_context(whole())
                    for k in active:
                        trainers[k].call("after_train")
                for k in active:
                    t = trainers[k]
                    if stop.requested and t.status == Status.RUNNING and t.step < steps:
                        t.status = Status.INTERRUPTED
                    records[k] = t.finish()
                stop.done()
                if stop.requested and any(trainers[k].status == Status.INTERRUPTED for k in active):
                    assert stop.signum is not None
                    raise GroupInterrupted(stop.signum, trainers[active[0]].out_dir, ens.step, records)
                return [r for r in records if r is not None]
        except ForcedStop as e:
            with whole():
                for k in active:
                    records[k] = write_forced_stop_record(trainers[k])
                stop.done()
            raise GroupInterrupted(e.first, trainers[active[0]].out_dir, ens.step, records) from None
        except (RunInterrupted, KeyboardInterrupt):
            raise
        except Exception as e:  # a crash of the shared step: recorded in every member, then passed on
            for k in active:
                trainers[k].fail(e)
            stop.done()
            raise
