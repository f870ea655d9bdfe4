"""The measurement interface's guarantee, for every registered instrument automatically: training
with all instruments on is bit-identical to training with them off (parameters, BN buffers,
optimiser state, the global RNG), and instruments leave no hooks behind."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from ics.config import (
    CNNConfig,
    Config,
    ImageFolderConfig,
    MLPConfig,
    MNISTConfig,
    MomentumConfig,
    ProbeConfig,
    TrainerConfig,
)
from ics.config.norms import declared
from ics.data import load_data
from ics.registry import INSTRUMENTS
from ics.train import build_trainer

STEPS = 30


def applicable(cfg: Config, key: str, data) -> bool:
    """Whether an instrument can watch this model at all (e.g. BN statistics need BN)."""
    from ics.config import ConfigError
    from ics.models import build_model

    with torch.device("meta"):
        model = build_model(cfg.model, data.in_shape, data.out_features)
    try:
        INSTRUMENTS[key].check(dataclasses.replace(getattr(cfg, key), enabled=True), cfg, model, data)
        return True
    except ConfigError:
        return False


def switched(cfg: Config, on: bool, data) -> Config:
    """Every registered instrument that applies on (at a dense cadence, every optional feature
    on), or every one off."""
    sections = {}
    for key in INSTRUMENTS:
        section = getattr(cfg, key)
        changes = {"enabled": on and applicable(cfg, key, data)}
        if on:
            for f in dataclasses.fields(section):
                value = getattr(section, f.name)
                if f.name.endswith("every") and isinstance(value, int):
                    changes[f.name] = 3
                elif isinstance(value, bool) and f.name != "enabled":
                    changes[f.name] = True
        sections[key] = dataclasses.replace(section, **changes)
    return dataclasses.replace(cfg, **sections)


def run(cfg: Config, data, out_dir):
    trainer = build_trainer(cfg, out_dir, data=data)
    trainer.fit()
    hooks = sum(
        len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in trainer.model.modules()
    )
    return trainer.model.state_dict(), trainer.opt.state_dict(), torch.get_rng_state(), hooks, trainer


def assert_identical(a, b):
    (pa, oa, ra, _, _), (pb, ob, rb, _, _) = a, b
    assert pa.keys() == pb.keys()
    for k in pa:
        assert torch.equal(pa[k], pb[k]), f"{k} differs with instruments on"
    for sa, sb in zip(oa["state"].values(), ob["state"].values()):
        for k in sa:
            assert torch.equal(torch.as_tensor(sa[k]), torch.as_tensor(sb[k])), f"optimiser state {k} differs"
    assert torch.equal(ra, rb), "an instrument used the global RNG"


def cases() -> dict:
    """case -> model.norm: BN with and without noise or dropout, no norm, and every other declared normaliser
    (ics/config/norms.py) in an MLP, plus GroupNorm and LayerNorm in a CNN."""
    out = {"mlp_bn": "batch", "mlp_plain": "none", "mlp_noisy": "batch", "mlp_dropout": "batch", "cnn_bn": "batch"}
    out.update({f"mlp_{n}": n for n in declared() if n not in ("batch", "none")})
    out.update({"cnn_group": "group", "cnn_layer": "layer"})
    return out


# each case trains twice with every instrument on (10-40 s on a busy 2-core machine): the fast tier keeps
# an MLP with BN and one without (every instrument, with and without batch statistics); the CNNs, the
# other normalisers, noise and dropout are slow
FAST = {"mlp_bn", "mlp_plain"}


@pytest.mark.parametrize("model", [pytest.param(m, marks=[] if m in FAST else [pytest.mark.slow]) for m in cases()])
def test_instruments_never_change_training(mnist_root, cifar_folder, tmp_path, model):
    norm = cases()[model]
    batch_stats = declared()[norm].batch_statistics  # with them, noisy-BN injection after the norm too
    if model.startswith("cnn"):
        base = Config(
            model=CNNConfig(channels=[4, 8], widths=[16], norm=norm, norm_groups=2),
            data=ImageFolderConfig(image_folder=str(cifar_folder)),
        )
    else:
        base = Config(
            model=MLPConfig(
                widths=[32, 16],
                norm=norm,
                norm_groups=2,
                noise="santurkar" if model == "mlp_noisy" or (batch_stats and norm != "batch") else "none",
                dropout=0.3 if model == "mlp_dropout" else 0.0,
                renorm_start=5,
                renorm_ramp=5,
            ),  # Batch Renorm opens within the 30 steps
            data=MNISTConfig(root=str(mnist_root)),
        )
    base = dataclasses.replace(
        base,
        optim=MomentumConfig(lr=0.05),  # an optimiser with state
        trainer=TrainerConfig(
            steps=STEPS, batch_size=20, eval_every=10, log_every=5, checkpoint_every=10, threads=1, progress=False
        ),
        probe=ProbeConfig(size=40, points=["*"]),
    )  # the tiny test split has 40 examples
    data = load_data(base.data)
    on, off = switched(base, True, data), switched(base, False, data)
    expected = {k for k in INSTRUMENTS if applicable(base, k, data)}
    if batch_stats:
        assert expected == set(INSTRUMENTS)  # with batch statistics every instrument applies
    else:
        assert expected == set(INSTRUMENTS) - {"bn_stats", "bn_noise"}
    with_on = run(on, data, tmp_path / "on")
    with_off = run(off, data, tmp_path / "off")
    assert {i.key for i in with_on[4].instruments} == expected and not with_off[4].instruments
    assert_identical(with_on, with_off)
    assert with_on[3] == 0, "an instrument left a hook on the model"
    # and each instrument measured something
    for inst in with_on[4].instruments:
        assert inst.series, f"{inst.key} recorded nothing"
