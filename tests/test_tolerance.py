"""LR tolerance on hand-made summaries whose answers are worked out by hand in the comments."""
from __future__ import annotations

import math

import pytest

from ics.tolerance import (flatten, group_key, has_lr_grid, lr_tolerance, parse_override,
                           run_config)

CHANCE = 0.1


def summary(norm, lr, seed, acc, status="completed", fraction=0.9, root="/data"):
    """A summary.json as the trainer writes it, reduced to what tolerance reads."""
    return {
        "status": status,
        "final_test_acc": acc,
        "chance_acc": CHANCE,
        "overrides": [f"model.norm={norm}", f"optim.lr={lr}", f"trainer.seed={seed}"],
        "config": {
            "model": {"name": "mlp", "norm": norm, "activation": "sigmoid", "widths": [100, 100]},
            "data": {"name": "mnist", "root": root},  # a path: must not split groups
            "optim": {"name": "sgd", "lr": lr},
            "trainer": {"seed": seed, "steps": 1000, "device": "cpu"},
            "tolerance": {"fraction": fraction},
        },
    }


LRS = [0.01, 0.1, 1.0, 10.0, 100.0]
# (seed 0, seed 1) final accuracy per LR; "D" = diverged (its recorded accuracy 0.5 must be ignored)
BATCH = {0.01: (0.80, 0.82), 0.1: (0.90, 0.92), 1.0: (0.96, 0.98), 10.0: (0.94, 0.85), 100.0: ("D", 0.30)}
NONE = {0.01: (0.50, 0.52), 0.1: (0.88, 0.90), 1.0: (0.93, "D"), 10.0: ("D", "D"), 100.0: ("D", "D")}


def sweep(table, norm, root="/data"):
    out = []
    for lr in LRS:
        for seed, acc in enumerate(table[lr]):
            if acc == "D":
                out.append(summary(norm, lr, seed, 0.5, status="diverged", root=root))
            else:
                out.append(summary(norm, lr, seed, acc, root=root))
    return out


@pytest.fixture
def groups():
    # different data.root per group half: paths are neutral, so still two groups
    runs = sweep(BATCH, "batch", root="/a") + sweep(NONE, "none", root="/b")
    return {g.label: g for g in lr_tolerance(runs)}


def test_groups_keyed_without_lr_and_seed(groups):
    assert set(groups) == {"model.norm=batch", "model.norm=none"}
    g = groups["model.norm=batch"]
    assert g.lrs == LRS
    assert g.seeds == [0, 1]
    assert all(p.n_runs == 2 for p in g.points)
    assert g.fraction == 0.9


def test_batch_group(groups):
    g = groups["model.norm=batch"]
    means = [p.mean_acc for p in g.points]
    # LR 100: seed 0 diverged -> chance 0.1; mean (0.1 + 0.3) / 2
    assert means == pytest.approx([0.81, 0.91, 0.97, 0.895, 0.2])
    assert g.points[2].std_acc == pytest.approx(math.sqrt(2) * 0.01)  # sample std of (0.96, 0.98)
    assert [p.n_diverged for p in g.points] == [0, 0, 0, 0, 1]
    assert g.best_lr == 1.0 and g.best_acc == pytest.approx(0.97)
    # threshold 0.9 * 0.97 = 0.873: 0.1, 1 and 10 qualify; 100 diverged once
    assert g.min_good_lr == 0.1
    assert g.max_stable_lr == 10.0
    assert g.width_decades == pytest.approx(2.0)
    # seed 0: best 0.96 -> 10 (0.94) qualifies; seed 1: best 0.98 -> 10 (0.85) fails, 100 (0.30) fails
    assert g.seed_max_stable == {0: 10.0, 1: 1.0}
    assert g.seed_max_stable_mean == pytest.approx(5.5)
    assert g.seed_max_stable_std == pytest.approx(9 / math.sqrt(2))


def test_none_group(groups):
    g = groups["model.norm=none"]
    assert [p.mean_acc for p in g.points] == pytest.approx([0.51, 0.89, 0.515, 0.1, 0.1])
    assert [p.n_diverged for p in g.points] == [0, 0, 1, 2, 2]
    assert g.best_lr == 0.1
    # threshold 0.801: only 0.1 qualifies (LR 1 had a diverged seed) -> width 0
    assert g.min_good_lr == g.max_stable_lr == 0.1
    assert g.width_decades == 0.0
    # seed 0 alone never diverged at LR 1 and reached 0.93 (its best): its max stable is 1
    assert g.seed_max_stable == {0: 1.0, 1: 0.1}
    assert g.seed_max_stable_mean == pytest.approx(0.55)
    assert g.seed_max_stable_std == pytest.approx(0.9 / math.sqrt(2))


def test_all_diverged_gives_none():
    runs = [summary("none", lr, 0, 0.7, status="diverged") for lr in (1.0, 10.0)]
    (g,) = lr_tolerance(runs)
    assert g.label == "all runs"
    assert [p.mean_acc for p in g.points] == [CHANCE, CHANCE]
    assert g.max_stable_lr is None and g.min_good_lr is None and g.width_decades is None
    assert g.seed_max_stable_mean is None  # one seed only


def test_single_lr():
    runs = [summary("batch", 0.5, s, acc) for s, acc in ((0, 0.9), (1, 0.94))]
    (g,) = lr_tolerance(runs)
    assert g.best_lr == g.max_stable_lr == g.min_good_lr == 0.5
    assert g.width_decades == 0.0
    assert g.points[0].mean_acc == pytest.approx(0.92)
    assert g.seed_max_stable == {0: 0.5, 1: 0.5}
    assert g.seed_max_stable_mean == 0.5 and g.seed_max_stable_std == 0.0
    assert not has_lr_grid([g])


def test_fraction_from_config_and_argument():
    runs = [summary("batch", lr, 0, acc, fraction=0.5) for lr, acc in ((0.1, 0.9), (1.0, 0.6), (10.0, 0.4))]
    (g,) = lr_tolerance(runs)
    assert g.fraction == 0.5 and g.max_stable_lr == 1.0  # 0.6 >= 0.45 > 0.4
    (g,) = lr_tolerance(runs, fraction=0.4)
    assert g.max_stable_lr == 10.0 and g.width_decades == pytest.approx(2.0)


def test_failed_job_rebuilt_from_overrides():
    runs = [summary("batch", 0.1, 0, 0.9), summary("batch", 1.0, 0, 0.95)]
    # a failed job's summary has no config; it joins its group through its overrides
    runs.append({"status": "failed", "error": "boom", "overrides": ["model.norm=batch", "optim.lr=10", "trainer.seed=0"]})
    (g,) = lr_tolerance(runs)
    assert g.lrs == [0.1, 1.0, 10.0]
    assert g.points[2].n_failed == 1 and g.points[2].mean_acc == CHANCE
    assert g.max_stable_lr == 1.0 and g.min_good_lr == 0.1


def test_not_learning_counts_its_accuracy():
    runs = [summary("none", 0.1, 0, 0.9), summary("none", 1.0, 0, 0.12, status="not_learning")]
    (g,) = lr_tolerance(runs)
    assert g.points[1].mean_acc == 0.12 and g.points[1].stable
    assert g.max_stable_lr == 0.1


def test_helpers():
    assert flatten({"a": {"b": 1, "c": [1, 2]}}) == {"a.b": 1, "a.c": (1, 2)}
    assert parse_override("optim.lr=1e-3") == ("optim.lr", 1e-3)
    assert parse_override("model.widths=[10,20]") == ("model.widths", (10, 20))
    assert parse_override("+x.y=abc") == ("x.y", "abc")
    s = summary("batch", 0.1, 3, 0.9)
    cfg = run_config(s)
    assert cfg["optim.lr"] == 0.1 and cfg["trainer.seed"] == 3
    key = dict(group_key(cfg))
    assert "optim.lr" not in key and "trainer.seed" not in key and "data.root" not in key
    assert key["model.norm"] == "batch"
