"""trainer.train_eval_size: a fixed subset of the training split scored in eval mode at every
evaluation (the train side of the regularization studies' train − test gap). It never changes
training, it is a stratified draw that is the same for every seed, and it is recorded in
metrics.npz, summary.json and TensorBoard."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from test_instruments import assert_identical, run

from ics.analysis.load import load_metrics
from ics.config import Config, MLPConfig, MNISTConfig, MomentumConfig, ProbeConfig, TrainerConfig, validate
from ics.config.fields import ConfigError
from ics.data import load_data
from ics.record import names, read_summary, write_npz
from ics.train.hooks.evaluation import train_eval_indices

SIZE = 150  # of the tiny MNIST's 600 training examples


def config(mnist_root, size: int, seed: int = 0) -> Config:
    """BN with dropout and Santurkar's noise: both draw random numbers in training mode only."""
    return Config(
        model=MLPConfig(widths=[32, 16], norm="batch", noise="santurkar", dropout=0.5),
        data=MNISTConfig(root=str(mnist_root)),
        optim=MomentumConfig(lr=0.05),
        probe=ProbeConfig(enabled=False),
        trainer=TrainerConfig(
            steps=30,
            batch_size=20,
            eval_every=10,
            eval_log_points=0,
            log_every=5,
            checkpoint_every=10,
            threads=1,
            progress=False,
            seed=seed,
            train_eval_size=size,
        ),
    )


def test_scoring_the_training_subset_never_changes_training(mnist_root, tmp_path):
    data = load_data(config(mnist_root, 0).data)
    on = run(config(mnist_root, SIZE), data, tmp_path / "on")
    off = run(config(mnist_root, 0), data, tmp_path / "off")
    assert_identical(on, off)  # parameters, BN buffers, optimiser state, the global RNG
    h_on, h_off = on[4].history, off[4].history
    assert h_on[names.TEST_ACC] == h_off[names.TEST_ACC] and h_on[names.TRAIN_ACC] == h_off[names.TRAIN_ACC]
    assert len(h_on[names.TRAIN_EVAL_ACC]) == len(h_on[names.EVAL_STEP]) == 4  # steps 0, 10, 20, 30
    assert h_off[names.TRAIN_EVAL_ACC] == [] and h_off[names.TRAIN_EVAL_LOSS] == []


def test_the_subset_is_scored_in_eval_mode_and_recorded(mnist_root, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = config(mnist_root, SIZE)
    data = load_data(cfg.data)
    model_state, _, _, _, trainer = run(cfg, data, tmp_path / "run")
    idx = train_eval_indices(data.y_train, SIZE, data.task)
    # the score by hand: eval mode (no dropout, no noise, BN's running statistics), the subset's rows
    model = trainer.model
    model.eval()
    with torch.no_grad():
        logits = model(data.x_train[idx])
    model.train()
    by_hand_acc = (logits.argmax(1) == data.y_train[idx]).double().mean().item()
    by_hand_loss = torch.nn.functional.cross_entropy(logits, data.y_train[idx]).item()

    summary = read_summary(tmp_path / "run")
    assert summary.final_train_eval_acc == pytest.approx(by_hand_acc, abs=1e-6)
    assert summary.final_train_eval_loss == pytest.approx(by_hand_loss, rel=1e-5)
    metrics = load_metrics(tmp_path / "run")
    assert metrics is not None
    assert metrics.train_eval_acc[-1] == pytest.approx(by_hand_acc, abs=1e-6)
    assert len(metrics.train_eval_loss) == len(metrics.eval_step)
    # dropout 0.5 in training mode scores the same examples lower than eval mode does
    with torch.no_grad():
        dropped = (model(data.x_train[idx]).argmax(1) == data.y_train[idx]).double().mean().item()
    assert dropped < by_hand_acc

    events = EventAccumulator(str(tmp_path / "run"), size_guidance={"scalars": 0})
    events.Reload()
    for tag, series in ((names.TAG_TRAIN_EVAL_ACC, metrics.train_eval_acc), (names.TAG_TRAIN_EVAL_LOSS, None)):
        logged = events.Scalars(tag)
        assert [e.step for e in logged] == [0, 10, 20, 30]
        if series is not None:
            assert [e.value for e in logged] == pytest.approx(series.tolist(), abs=1e-6)


def test_the_subset_is_a_stratified_draw_the_same_for_every_seed_and_untouched_by_the_global_rng():
    y = torch.arange(10).repeat_interleave(torch.tensor([100, 80, 60, 60, 60, 60, 60, 40, 40, 40]))  # 600
    state = torch.get_rng_state()
    a = train_eval_indices(y, SIZE, "classification")
    assert torch.equal(torch.get_rng_state(), state), "the draw used the global RNG"
    torch.manual_seed(123)  # whatever the global RNG has done, the same subset
    b = train_eval_indices(y, SIZE, "classification")
    assert torch.equal(a, b) and len(a) == SIZE and len(set(a.tolist())) == SIZE
    counts = torch.bincount(y[a], minlength=10).tolist()
    assert counts == [25, 20, 15, 15, 15, 15, 15, 10, 10, 10]  # each class its share of 150/600
    assert torch.equal(train_eval_indices(y, 10_000, "classification"), torch.arange(600))  # larger: all
    r = train_eval_indices(torch.zeros(600, 2), SIZE, "regression")
    assert len(set(r.tolist())) == SIZE and r.max() < 600


def test_two_training_seeds_score_the_same_examples(mnist_root, tmp_path):
    """The subset belongs to the study, not to the seed: seeds differ in the model, not in what is scored."""
    data = load_data(config(mnist_root, 0).data)
    picks = []
    for seed in (0, 3):
        trainer = run(config(mnist_root, SIZE, seed=seed), data, tmp_path / f"s{seed}")[4]
        evaluation = next(h for h in trainer.hooks if type(h).__name__ == "Evaluation")
        picks.append(evaluation.y_sub.clone())
    assert torch.equal(picks[0], picks[1])


def test_a_negative_size_is_refused_in_one_line(mnist_root):
    cfg = config(mnist_root, 0)
    bad = dataclasses.replace(cfg, trainer=dataclasses.replace(cfg.trainer, train_eval_size=-1))
    with pytest.raises(ConfigError) as e:
        validate(bad)
    assert "trainer.train_eval_size" in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("length,reads", [(0, True), (3, True), (2, False)])
def test_metrics_with_a_train_eval_curve_of_another_length_are_refused(tmp_path, length, reads):
    arrays = {k: np.zeros(0) for k in names.METRIC_ARRAYS}
    arrays.update({names.EVAL_STEP: np.array([0.0, 10, 20]), names.TEST_ACC: np.ones(3), names.TEST_LOSS: np.ones(3)})
    arrays.update({names.TRAIN_EVAL_ACC: np.ones(length), names.TRAIN_EVAL_LOSS: np.ones(length)})
    write_npz(tmp_path / names.METRICS, arrays)
    assert (load_metrics(tmp_path) is not None) == reads
