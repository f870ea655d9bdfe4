"""`ics recalibrate` (precise BN, BN paper Alg. 2) and the bench's FLOP count, in-process: both were
reached only by slow tests, or none."""

from __future__ import annotations

import json

import pytest
import torch
from clirun import invoke

RUN = [
    "trainer.steps=20",
    "trainer.eval_every=10",
    "trainer.checkpoint_every=10",
    "trainer.threads=1",
    "probe=off",
    "probe.size=100",
]


@pytest.fixture
def bn_run(tiny_env, tmp_path):
    run = tmp_path / "run"
    p = invoke(["run", *RUN, f"hydra.run.dir={run}"], tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    return run


def test_recalibrate_writes_both_accuracies_into_the_record(bn_run, tmp_path):
    p = invoke(["recalibrate", str(bn_run), "--batches", "4", "--batch-size", "30"], tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "step 20: test accuracy with the EMA running statistics" in p.stdout and "over 4 batches of 30" in p.stdout
    rec = json.loads((bn_run / "summary.json").read_text())["recalibrated"]
    assert (rec["step"], rec["batches"], rec["batch_size"]) == (20, 4, 30)
    assert 0.0 <= rec["ema_acc"] <= 1.0 and 0.0 <= rec["precise_acc"] <= 1.0


def test_recalibrate_refuses_a_model_without_bn_and_a_missing_folder(tiny_env, tmp_path):
    run = tmp_path / "nobn"
    assert invoke(["run", *RUN, "model.norm=none", f"hydra.run.dir={run}"], tmp_path).returncode == 0
    p = invoke(["recalibrate", str(run)], tmp_path)
    assert p.returncode == 2 and "has no BN layer (model.norm=none)" in p.stderr, p.stdout + p.stderr
    p = invoke(["recalibrate", str(tmp_path / "nothing")], tmp_path)
    assert p.returncode == 2 and "is not a directory" in p.stderr, p.stderr


def test_bench_counts_a_training_steps_flops():
    from ics.bench import step_flops

    # 2 FLOPs per multiply-add, the backward pass twice the forward: 3 * 2 * (8*5*4 + 8*4*2)
    net = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    assert step_flops(net, torch.zeros(8, 5)) == 3 * 2 * (8 * 4 * 5 + 8 * 2 * 4)
    conv = torch.nn.Conv2d(3, 6, 3, padding=1)  # every output: a 3x3x3 window
    assert step_flops(conv, torch.zeros(2, 3, 4, 4)) == 3 * 2 * (2 * 6 * 4 * 4) * 27
