"""Trains on the real MNIST copy when ICS_DATA_ROOT points at it (CI: ../shared/data); skipped otherwise."""

from __future__ import annotations

import os

import pytest

from ics.config import Config, MLPConfig, MNISTConfig, ProbeConfig, SGDConfig, TrainerConfig
from ics.record import Status
from ics.train import build_trainer

pytestmark = pytest.mark.slow  # 3,000 steps on the real MNIST, twice


@pytest.mark.real_data
@pytest.mark.parametrize("norm", ["batch", "none"])
def test_fig1_net_learns_real_mnist(norm, tmp_path):
    cfg = Config(
        model=MLPConfig(norm=norm),
        data=MNISTConfig(root=os.environ["ICS_DATA_ROOT"]),
        optim=SGDConfig(lr=0.5),
        trainer=TrainerConfig(steps=3000, eval_every=1000, threads="auto", progress=False, checkpoint_every=0),
        probe=ProbeConfig(every=1000),
    )
    summary = build_trainer(cfg, tmp_path).fit()
    assert summary.dataset["train"] == 60_000 and summary.dataset["test"] == 10_000
    assert summary.status == Status.COMPLETED
    # a correct Fig. 1 net is above 0.95 after 3,000 steps of batch 60 (3 epochs); a broken loss,
    # normalisation or BN placement is not
    assert summary.final_test_acc >= 0.95
    # the probes saw the training move the last hidden layer's inputs
    assert summary.drift["h3.pre_act"]["w1_ref"] > 0
