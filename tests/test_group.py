"""A group of seeds trained as one ensemble (ics.train.group) writes, per member, what the single
run of that seed writes: the same files, records, checkpoints (the single run's layout) and
instrument series, within float rounding (tests/test_ensemble.py states the rounding); a group
stopped mid-run resumes, whole or in part, bit-identically to one that was never stopped."""

from __future__ import annotations

import dataclasses
import signal

import numpy as np
import pytest
import torch

from ics.config import Config, MLPConfig, SGDConfig, TrainerConfig
from ics.record import Status, Summary, read_summary
from ics.train import checkpoint as ckpt
from ics.train.ensemble import member_config
from ics.train.group import GroupInterrupted, group_key, group_refusal, train_group
from ics.train.run import AlreadyFinished, train_and_evaluate
from tests.test_ensemble import learnable, max_diff

SEEDS = [0, 1, 2]
WEIGHT_TOL = 1e-5  # 40 steps at lr 0.2, momentum 0.9 (measured: 2.6e-6 at most)
SERIES_TOL = 1e-4  # an instrument's measurement of weights that differ by WEIGHT_TOL


def config(steps: int = 40, **model) -> Config:
    """The default instruments on (probes, weights, gradients where the schema enables them), one
    thread, a checkpoint every 10 steps."""
    cfg = Config(
        model=MLPConfig(widths=[16, 16], **model),
        optim=SGDConfig(lr=0.2, momentum=0.9),
        trainer=TrainerConfig(
            steps=steps, batch_size=20, threads=1, progress=False, checkpoint_every=10, eval_every=10, log_every=5
        ),
    )
    return dataclasses.replace(cfg, probe=dataclasses.replace(cfg.probe, size=50, every=10))  # 100 test examples


def with_instruments(cfg: Config, *keys: str) -> Config:
    return dataclasses.replace(cfg, **{k: dataclasses.replace(getattr(cfg, k), enabled=True) for k in keys})


def group(cfg: Config, root, data, seeds=SEEDS):
    configs = [member_config(cfg, s) for s in seeds]
    dirs = [root / f"seed={s}" for s in seeds]
    return dirs, train_group(configs, dirs, [[f"trainer.seed={s}"] for s in seeds], [""] * len(seeds), data=data)


def files(folder) -> list:
    """The file names of a run folder, TensorBoard's (time, host, pid in the name) as one kind."""
    return sorted(
        "events.out.tfevents" if p.name.startswith("events.out.tfevents") else p.name for p in folder.iterdir()
    )


def npz(path) -> dict:
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


@pytest.mark.slow  # trains 6 runs with instruments
def test_each_member_writes_what_its_single_run_writes(tmp_path):
    data = learnable()
    cfg = with_instruments(config(), "weights", "gradients", "probe", "grad_ics")
    dirs, outcomes = group(cfg, tmp_path / "group", data)
    assert all(isinstance(o, Summary) for o in outcomes), outcomes
    for k, seed in enumerate(SEEDS):
        alone_dir = tmp_path / f"alone{seed}"
        alone = train_and_evaluate(member_config(cfg, seed), alone_dir, [f"trainer.seed={seed}"], data=data)
        member = outcomes[k]
        assert member.status == alone.status == Status.COMPLETED
        assert member.steps == alone.steps == 40 and member.config == alone.config
        assert abs(member.final_test_acc - alone.final_test_acc) <= 0.01
        assert files(dirs[k]) == files(alone_dir)
        a, b = ckpt.load(ckpt.path_of(dirs[k])), ckpt.load(ckpt.path_of(alone_dir))
        assert max_diff(a["model"], b["model"]) <= WEIGHT_TOL
        assert torch.utils._pytree.tree_structure(a["optimizer"]) == torch.utils._pytree.tree_structure(b["optimizer"])
        for name, t in a["model"].items():  # a member's checkpoint holds its own tensors, not the stack
            if torch.is_tensor(t):
                assert t.untyped_storage().nbytes() == t.nbytes, name
        for f in dirs[k].glob("*.npz"):
            mine, theirs = npz(f), npz(alone_dir / f.name)
            assert mine.keys() == theirs.keys(), f.name
            for key in mine:
                assert mine[key].shape == theirs[key].shape, (f.name, key)
                if mine[key].dtype.kind == "f":
                    np.testing.assert_allclose(
                        mine[key], theirs[key], atol=SERIES_TOL, rtol=1e-3, err_msg=f"{f.name}:{key}"
                    )
        assert read_summary(dirs[k]).status == Status.COMPLETED


def test_a_finished_member_stays_out_and_the_others_train(tmp_path):
    data = learnable()
    cfg = config(steps=10)
    dirs, first = group(cfg, tmp_path, data, seeds=[0])
    dirs, outcomes = group(cfg, tmp_path, data, seeds=[0, 1])
    assert isinstance(outcomes[0], AlreadyFinished)
    assert outcomes[1].status == Status.COMPLETED and outcomes[1].steps == 10


def _stop_at(step: int, monkeypatch):
    """SIGINT delivered inside the group's loop at `step` (as a user's Ctrl-C would be)."""
    from ics.train.ensemble import Ensemble

    real = Ensemble.train_step

    def step_then_signal(self, *args):
        out = real(self, *args)
        if self.step == step:
            signal.raise_signal(signal.SIGINT)
        return out

    monkeypatch.setattr(Ensemble, "train_step", step_then_signal)


@pytest.mark.slow  # trains 3 groups
@pytest.mark.parametrize("part", ["whole", "member"])
def test_a_stopped_group_resumes_bit_identically(tmp_path, monkeypatch, part):
    data = learnable()
    cfg = config(steps=30)
    dirs, done = group(cfg, tmp_path / "straight", data)
    with monkeypatch.context() as m:
        _stop_at(14, m)
        with pytest.raises(GroupInterrupted) as stopped:
            group(cfg, tmp_path / "cut", data)
    assert [r.status for r in stopped.value.records] == [Status.INTERRUPTED] * 3
    cut = [tmp_path / "cut" / d.name for d in dirs]
    assert {ckpt.load(ckpt.path_of(d))["step"] for d in cut} == {14}
    if part == "whole":
        _, resumed = group(cfg, tmp_path / "cut", data)
    else:  # member 1 alone, as a group of one
        _, resumed = group(cfg, tmp_path / "cut", data, seeds=[1])
        resumed = [None, resumed[0], None]
    for k in range(3):
        if resumed[k] is None:
            continue
        assert resumed[k].status == Status.COMPLETED
        a, b = ckpt.load(ckpt.path_of(dirs[k])), ckpt.load(ckpt.path_of(cut[k]))
        assert max_diff(a["model"], b["model"]) == 0.0
        for f in dirs[k].glob("*.npz"):
            mine, theirs = npz(f), npz(cut[k] / f.name)
            for key in mine:
                np.testing.assert_array_equal(mine[key], theirs[key], err_msg=f"{f.name}:{key}")


def test_group_key_ignores_only_the_seed():
    a, b = member_config(config(), 0), member_config(config(), 5)
    assert group_key(a) == group_key(b)
    assert group_key(a) != group_key(dataclasses.replace(a, optim=SGDConfig(lr=0.3)))


def test_instruments_that_watch_the_training_forward_keep_a_job_out_of_groups():
    assert group_refusal(config()) is None
    assert "bn_noise" in group_refusal(with_instruments(config(), "bn_noise"))


@pytest.mark.slow  # trains 4 CNN runs
def test_a_cnn_group_matches_its_runs_alone(tmp_path):
    """The CNN (channels-last in a single run, the vmap path in a group), with Adam."""
    from ics.config import AdamConfig, CNNConfig

    data = learnable((3, 8, 8))
    cfg = dataclasses.replace(
        config(steps=20), model=CNNConfig(channels=[4, 8], widths=[16]), optim=AdamConfig(lr=1e-2)
    )
    dirs, outcomes = group(cfg, tmp_path / "group", data, seeds=[0, 1])
    for k, seed in enumerate([0, 1]):
        alone_dir = tmp_path / f"alone{seed}"
        train_and_evaluate(member_config(cfg, seed), alone_dir, [f"trainer.seed={seed}"], data=data)
        a, b = ckpt.load(ckpt.path_of(dirs[k])), ckpt.load(ckpt.path_of(alone_dir))
        assert max_diff(a["model"], b["model"]) <= 2e-5  # as tests/test_ensemble.py's CNN_WEIGHT_TOL
        assert abs(outcomes[k].final_test_acc - read_summary(alone_dir).final_test_acc) <= 0.01


def test_configs_without_a_batched_step_group_on_a_cpu_only_when_asked():
    from ics.config import CNNConfig

    cnn = dataclasses.replace(config(), model=CNNConfig(channels=[4], widths=[8]))
    layer = config(norm="layer")
    for cfg in (cnn, layer):
        assert "no batched step" in group_refusal(cfg) and "hydra.launcher.vmap=true" in group_refusal(cfg)
        assert group_refusal(cfg, vmap=True) is None
