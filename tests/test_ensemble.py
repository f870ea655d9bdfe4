"""The vectorised ensemble (ics.train.ensemble) against each seed trained alone by the Trainer.

Tolerances: a batched matmul (a grouped convolution) sums in another order than K matmuls (K
convolutions), so weights differ by float32 rounding. Measured here (30 steps, 3 members, every case
below): at most 6.7e-7 in any weight or running statistic of an MLP or DLN, 3.1e-6 of a CNN (the
single run's convolutions are channels-last), the test accuracy identical; pinned below with
head-room for other CPUs' kernels.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from ics.config import AdamConfig, CNNConfig, Config, ConfigError, DLNConfig, MLPConfig, SGDConfig, TrainerConfig
from ics.data import DataBundle
from ics.models.evaluate import evaluate_model
from ics.registry import INSTRUMENTS, NORMS
from ics.train import build_trainer
from ics.train.ensemble import Ensemble, member_config
from ics.train.loop import Trainer

WEIGHT_TOL = 2e-6  # max |w_ensemble − w_alone| after STEPS steps, MLP and DLN (measured <= 6.7e-7)
CNN_WEIGHT_TOL = 2e-5  # the same for the CNN (measured <= 3.1e-6)
ACC_TOL = 0.01  # final test accuracy: one example of 100 may flip (measured: none did)
STEPS = 30
SEEDS = [0, 1, 2]


def learnable(shape=(1, 4, 4), n_train=240, n_test=100, classes=4) -> DataBundle:
    """Class prototypes under Gaussian noise: a small net learns them in tens of steps."""
    g = torch.Generator().manual_seed(0)
    proto = torch.randn((classes,) + shape, generator=g)
    y = torch.randint(0, classes, (n_train + n_test,), generator=g)
    x = proto[y] + 0.8 * torch.randn((n_train + n_test,) + shape, generator=g)
    return DataBundle(
        name="prototypes",
        x_train=x[:n_train],
        y_train=y[:n_train],
        x_test=x[n_train:],
        y_test=y[n_train:],
        classes=[str(i) for i in range(classes)],
        mean=(0.0,) * shape[0],
        std=(1.0,) * shape[0],
        source="generated in the test",
    )


def quiet(model, optim, steps: int = STEPS, **trainer) -> Config:
    """Instruments off (they never change training; here they would only cost time), one thread."""
    cfg = Config(
        model=model,
        optim=optim,
        trainer=TrainerConfig(
            steps=steps,
            batch_size=20,
            threads=1,
            progress=False,
            checkpoint_every=0,
            eval_every=steps,
            eval_log_points=0,
            **trainer,
        ),
    )
    return dataclasses.replace(cfg, **{k: dataclasses.replace(getattr(cfg, k), enabled=False) for k in INSTRUMENTS})


SGD, MOMENTUM, ADAM = SGDConfig(lr=0.1), SGDConfig(lr=0.05, momentum=0.9, nesterov=True), AdamConfig(lr=1e-2)
MLP_NORMS = [n for n in NORMS if n != "none"]
CASES = {
    **{
        f"mlp-{norm}-sgd": (MLPConfig(widths=[16, 16], norm=norm, norm_groups=4, renorm_start=5, renorm_ramp=10), SGD)
        for norm in MLP_NORMS
    },
    "mlp-none-sgd": (MLPConfig(widths=[16, 16], norm="none"), SGD),
    "mlp-batch-momentum": (MLPConfig(widths=[16, 16]), SGDConfig(lr=0.05, momentum=0.9, weight_decay=1e-3)),
    "mlp-batch-nesterov": (MLPConfig(widths=[16, 16]), MOMENTUM),
    "mlp-none-adam": (MLPConfig(widths=[16, 16], norm="none"), AdamConfig(lr=1e-2, weight_decay=1e-3)),
    "mlp-batch-adam": (MLPConfig(widths=[16, 16]), ADAM),
    "mlp-batch-cumulative-stats": (MLPConfig(widths=[16, 16], bn_momentum=None), SGD),
    "mlp-noisy-bn-dropout": (MLPConfig(widths=[16, 16], noise="santurkar", dropout=0.2), MOMENTUM),
    "mlp-relu-dropout": (MLPConfig(widths=[16, 16], norm="none", activation="relu", dropout=0.3), SGD),
    "cnn-batch-momentum": (CNNConfig(channels=[4, 8], widths=[16]), MOMENTUM),
    "cnn-none-adam": (CNNConfig(channels=[4, 8], widths=[16], norm="none"), ADAM),
    "dln-batch-sgd": (DLNConfig(depth=4, width=8, norm="batch"), SGDConfig(lr=0.05)),
}


def _data_for(model) -> DataBundle:
    return learnable((3, 8, 8)) if isinstance(model, CNNConfig) else learnable()


def max_diff(a: dict, b: dict) -> float:
    """Max |a − b| over the float tensors of two state dicts; other tensors (counters, generator
    states) must be equal."""
    assert a.keys() == b.keys()
    worst = 0.0
    for name, t in a.items():
        if torch.is_tensor(t) and t.is_floating_point():
            worst = max(worst, (t - b[name]).abs().max().item())
        elif torch.is_tensor(t):
            assert torch.equal(t, b[name]), name
    return worst


def alone(cfg: Config, seed: int, data: DataBundle) -> Trainer:
    trainer = build_trainer(member_config(cfg, seed), None, data=data)
    trainer.fit()
    return trainer


# models the hand-batched forward covers, also trained through vmap (the path every other model takes)
BATCHED = {
    "mlp-batch-sgd",
    "mlp-none-sgd",
    "mlp-batch-momentum",
    "mlp-batch-nesterov",
    "mlp-none-adam",
    "mlp-batch-adam",
    "mlp-batch-cumulative-stats",
    "mlp-noisy-bn-dropout",
    "mlp-relu-dropout",
    "dln-batch-sgd",
}
VMAP_TOO = ["mlp-batch-momentum", "mlp-batch-cumulative-stats", "mlp-noisy-bn-dropout", "dln-batch-sgd"]


@pytest.mark.parametrize("case,path", [(c, "auto") for c in CASES] + [(c, "vmap") for c in VMAP_TOO])
def test_each_member_equals_its_seed_trained_alone(case, path):
    model, optim = CASES[case]
    data = _data_for(model)
    cfg = quiet(model, optim)
    ens = Ensemble(cfg, SEEDS, data, path=path)
    assert ens.path == ("batched" if path == "auto" and case in BATCHED else "vmap")
    ens.fit()
    assert ens.step == STEPS
    for k, seed in enumerate(SEEDS):
        single = alone(cfg, seed, data)
        tol = CNN_WEIGHT_TOL if isinstance(model, CNNConfig) else WEIGHT_TOL
        assert max_diff(single.model.state_dict(), ens.members[k].state_dict()) <= tol
        acc_alone = evaluate_model(single.model, data, 500)[1]
        acc_member = evaluate_model(ens.members[k], data, 500)[1]
        assert abs(acc_alone - acc_member) <= ACC_TOL
    # the members learnt different things (their own init and data order), and something
    w = [m.state_dict()["out.weight"] for m in ens.members]
    assert not torch.allclose(w[0], w[1])


def test_members_are_views_of_the_stack_not_copies():
    ens = Ensemble(quiet(MLPConfig(widths=[8]), SGD), [3, 4], learnable())
    before = ens.members[1].out.weight.clone()
    ens.train_step()
    assert not torch.equal(ens.members[1].out.weight, before)  # the step shows without a copy
    assert ens.members[1].out.weight.data_ptr() == ens.params["out.weight"][1].data_ptr()
    running = ens.members[0].blocks.h1.norm.running_mean
    assert running.data_ptr() == ens.buffers["blocks.h1.norm.running_mean"][0].data_ptr()


@pytest.mark.parametrize("optim", [MOMENTUM, ADAM], ids=["momentum", "adam"])
def test_member_checkpoint_has_the_single_runs_layout_and_resumes_alone(optim):
    """member_state_dict(k) loads into a Trainer of that seed, which then continues as the
    ensemble's member does (within rounding)."""
    data = learnable()
    cfg = quiet(MLPConfig(widths=[8, 8], noise="santurkar"), optim, steps=20)
    ens = Ensemble(cfg, [5, 6], data)
    ens.fit(10)
    state = ens.member_state_dict(1)
    trainer = build_trainer(member_config(cfg, 6), None, data=data)
    for _ in range(10):  # the single run at the same step: the layout to match
        idx = trainer.sampler.next()
        trainer.train_step(data.x_train[idx], data.y_train[idx])
    reference = trainer.state_dict()
    for part in ("model", "optimizer"):
        assert torch.utils._pytree.tree_structure(state[part]) == torch.utils._pytree.tree_structure(reference[part])
    for name, t in reference["model"].items():
        assert (state["model"][name].shape, state["model"][name].dtype) == (t.shape, t.dtype), name
        assert state["model"][name].untyped_storage().nbytes() == t.untyped_storage().nbytes(), name  # no stack inside
    trainer.model.load_state_dict(state["model"])
    trainer.opt.load_state_dict(state["optimizer"])
    trainer.sampler.load_state_dict(state["sampler"])
    for _ in range(10):
        idx = trainer.sampler.next()
        trainer.train_step(data.x_train[idx], data.y_train[idx])
    ens.fit(20)
    assert max_diff(trainer.model.state_dict(), ens.members[1].state_dict()) <= WEIGHT_TOL


def test_a_group_resumed_from_member_checkpoints_is_bit_identical():
    data = learnable()
    cfg = quiet(MLPConfig(widths=[8, 8], dropout=0.2), ADAM, steps=16)
    whole = Ensemble(cfg, [0, 1, 2], data)
    whole.fit()
    cut = Ensemble(cfg, [0, 1, 2], data)
    cut.fit(7)
    states = [
        torch.utils._pytree.tree_map(lambda v: v.clone() if torch.is_tensor(v) else v, cut.member_state_dict(k))
        for k in range(3)
    ]
    resumed = Ensemble(cfg, [0, 1, 2], data)
    resumed.load_member_state_dicts(states)
    resumed.fit()
    for a, b in zip(whole.members, resumed.members):
        assert max_diff(a.state_dict(), b.state_dict()) == 0.0


def test_members_at_different_steps_are_refused():
    data = learnable()
    cfg = quiet(MLPConfig(widths=[8]), SGD)
    ens = Ensemble(cfg, [0, 1], data)
    states = [ens.member_state_dict(0), dict(ens.member_state_dict(1), step=3)]
    with pytest.raises(ConfigError, match="one step"):
        ens.load_member_state_dicts(states)


def test_the_batched_forward_refuses_a_model_it_does_not_cover():
    with pytest.raises(ConfigError, match="allowed path=vmap"):
        Ensemble(quiet(CNNConfig(channels=[4], widths=[8]), SGD), [0], learnable((3, 8, 8)), path="batched")


@pytest.mark.parametrize("seeds,match", [([], "at least one"), ([1, 1], "each seed at most once")])
def test_bad_seed_lists_are_refused_in_one_line(seeds, match):
    with pytest.raises(ConfigError, match=match) as e:
        Ensemble(quiet(MLPConfig(widths=[8]), SGD), seeds, learnable())
    assert "\n" not in str(e.value)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here: the GPU smoke test needs one")
def test_cuda_ensemble_matches_the_cpu_one():
    data = learnable()
    cfg = quiet(MLPConfig(widths=[16, 16], noise="santurkar"), MOMENTUM)
    cpu = Ensemble(cfg, SEEDS, data)
    cpu.fit()
    gpu_cfg = dataclasses.replace(cfg, trainer=dataclasses.replace(cfg.trainer, device="cuda"))
    gpu_data = dataclasses.replace(
        data, **{f: getattr(data, f).cuda() for f in ("x_train", "y_train", "x_test", "y_test")}
    )
    gpu = Ensemble(gpu_cfg, SEEDS, gpu_data)
    gpu.fit()
    for a, b in zip(cpu.members, gpu.members):
        sa = a.state_dict()
        sb = {n: v.cpu() if torch.is_tensor(v) else v for n, v in b.state_dict().items()}
        assert max_diff(sa, sb) <= 1e-4  # other kernels (TF32 off for float32 matmul by default)


@pytest.mark.parametrize("value", ["5,x", "0", "5,,16"])
def test_bench_refuses_a_bad_member_list_in_one_line(value, tmp_path):
    from clirun import invoke

    p = invoke(["bench", "--ensemble", value, "--synthetic"], tmp_path)
    out = (p.stdout + p.stderr).strip()
    assert p.returncode != 0 and f"--ensemble {value!r} is invalid" in out and len(out.splitlines()) == 1, out


@pytest.mark.slow  # in-process, but it times eight short training loops
def test_bench_ensemble_prints_a_ratio_per_model_and_size(tmp_path):
    """Speed itself is judged in the bench's output, never here."""
    import re

    from clirun import invoke

    p = invoke(["bench", "--ensemble", "1,2", "--synthetic", "--steps", "100", "--repeats", "1"], tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    rows = re.findall(r"│ (Fig\. 1 MLP, (?:no )?BN) +│ (\d+) +│ (\d+) +│ (\d+) +│ ([\d.]+)x │", p.stdout)
    assert {(r[0], r[1]) for r in rows} == {(m, k) for m in ("Fig. 1 MLP, BN", "Fig. 1 MLP, no BN") for k in "12"}, (
        p.stdout
    )
    assert all(float(r[4]) > 0 for r in rows)
    assert not list(tmp_path.iterdir()), "the bench writes nothing where it runs"


@pytest.mark.parametrize("path", ["auto", "vmap"])
def test_regression_members_equal_their_seeds_alone(path):
    base = learnable(n_train=200, n_test=60)
    g = torch.Generator().manual_seed(1)
    proj = torch.randn(16, 2, generator=g)
    target = lambda x: x.flatten(1) @ proj  # noqa: E731
    data = dataclasses.replace(base, task="regression", y_train=target(base.x_train), y_test=target(base.x_test))
    cfg = quiet(MLPConfig(widths=[8, 8]), SGDConfig(lr=0.02))
    ens = Ensemble(cfg, [0, 1], data, path=path)
    ens.fit()
    for k, seed in enumerate([0, 1]):
        single = alone(cfg, seed, data)
        assert max_diff(single.model.state_dict(), ens.members[k].state_dict()) <= WEIGHT_TOL


def test_evaluating_members_mid_training_changes_nothing():
    """Member views are evaluated with the ordinary code (eval mode, no noise) between steps: the
    training that follows is bit-identical to one without."""
    data = learnable()
    cfg = quiet(MLPConfig(widths=[8, 8], noise="santurkar", dropout=0.1), MOMENTUM, steps=12)
    watched, plain = Ensemble(cfg, [0, 1], data), Ensemble(cfg, [0, 1], data)
    watched.fit(6)
    for member in watched.members:
        evaluate_model(member, data, 50)
    watched.fit()
    plain.fit()
    for a, b in zip(watched.members, plain.members):
        assert max_diff(a.state_dict(), b.state_dict()) == 0.0


@pytest.mark.parametrize("case", sorted(CASES))
def test_batched_config_reads_the_config_as_batched_ok_reads_the_model(case):
    from ics.train.ensemble import batched_config, batched_ok

    model, optim = CASES[case]
    cfg = quiet(model, optim)
    data = _data_for(model)
    net = build_trainer(cfg, None, data=data).model
    assert batched_config(cfg) == batched_ok(net)
