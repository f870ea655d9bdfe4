"""LR tolerance on hand-made run results whose answers are worked out by hand in the comments.

Definitions (ics.analysis.tolerance): a diverged or failed run scores chance; the *max non-diverging
LR* is the largest LR at which no seed diverged or failed; an LR is *good* when its mean score is
>= fraction x the group's best mean score; the *good range* is the contiguous run of good LRs around
the best one; per seed the same two limits on the seed's own curve, summarised by the geometric
mean and geometric std over seeds.
"""

from __future__ import annotations

import math

import pytest

from ics.analysis.configs import flatten, group_key, parse_override
from ics.analysis.tolerance import RunResult, has_lr_grid, lr_tolerance
from ics.record import Status

CHANCE = 0.1
T_975_1 = 12.706204736174698  # Student t, 97.5th percentile, 1 degree of freedom (t tables)


def config(norm, lr, seed, fraction=0.9, root="/data") -> dict:
    """A run's nested config as its summary.json records it, reduced to what tolerance reads."""
    return {
        "model": {"name": "mlp", "norm": norm, "activation": "sigmoid", "widths": [100, 100]},
        "data": {"name": "mnist", "root": root},  # a path: must not split groups
        "optim": {"name": "sgd", "lr": lr},
        "trainer": {"seed": seed, "steps": 1000, "device": "cpu"},
        "tolerance": {"fraction": fraction},
    }


def summary(norm, lr, seed, acc, status="completed", fraction=0.9, root="/data") -> RunResult:
    """A run as tolerance sees it: its own flat config, status, final accuracy (no validation split:
    the selection score is the test accuracy) and chance."""
    return RunResult(
        flatten(config(norm, lr, seed, fraction, root)), Status(status), score=acc, test=acc, chance=CHANCE
    )


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
    means = [p.score.mean for p in g.points]
    # LR 100: seed 0 diverged -> chance 0.1; mean (0.1 + 0.3) / 2
    assert means == pytest.approx([0.81, 0.91, 0.97, 0.895, 0.2])
    # over seeds: sample std of (0.96, 0.98) is √2·0.01; the 95% CI half-width is t(0.975, 1)·s/√2
    assert g.points[2].score.half == pytest.approx(T_975_1 * math.sqrt(2) * 0.01 / math.sqrt(2))
    assert g.points[2].score.n == 2
    assert [p.n_diverged for p in g.points] == [0, 0, 0, 0, 1]
    assert g.best_lr == 1.0 and g.best_score == pytest.approx(0.97)
    # threshold 0.9 * 0.97 = 0.873: 0.1, 1 and 10 are good, contiguous around the best LR 1;
    # 100 diverged once, so 10 is also the largest LR at which no seed diverged
    assert g.good_lrs == [0.1, 1.0, 10.0]
    assert g.good_range == (0.1, 10.0) and g.good_outside == []
    assert g.max_good_lr == 10.0
    assert g.max_nondiverging_lr == 10.0
    assert g.width_decades == pytest.approx(2.0)
    # seed 0: best 0.96 -> 10 (0.94) is good; seed 1: best 0.98 -> 10 (0.85) and 100 (0.30) are not
    assert g.seed_max_good == {0: 10.0, 1: 1.0}
    # seed 0 diverged at 100; seed 1 ended at 0.30 there, bad but not diverged
    assert g.seed_max_nondiverging == {0: 10.0, 1: 100.0}
    # geometric mean and std (×/÷) over seeds: of (10, 1) √10 and exp(ln 10/√2); of (10, 100) √1000
    gm, gs, n = g.seed_summary("good")
    assert (gm, gs, n) == (pytest.approx(math.sqrt(10)), pytest.approx(10 ** (1 / math.sqrt(2))), 2)
    gm, gs, n = g.seed_summary("nondiverging")
    assert (gm, gs, n) == (pytest.approx(math.sqrt(1000)), pytest.approx(10 ** (1 / math.sqrt(2))), 2)


def test_none_group(groups):
    g = groups["model.norm=none"]
    assert [p.score.mean for p in g.points] == pytest.approx([0.51, 0.89, 0.515, 0.1, 0.1])
    assert [p.n_diverged for p in g.points] == [0, 0, 1, 2, 2]
    assert g.best_lr == 0.1
    # threshold 0.801: only 0.1 is good (LR 1 had a diverged seed, which counts as chance) -> width 0;
    # LR 1 had a diverged seed, so 0.1 is also the largest non-diverging LR
    assert g.good_lrs == [0.1]
    assert g.max_good_lr == 0.1 and g.good_range == (0.1, 0.1)
    assert g.max_nondiverging_lr == 0.1
    assert g.width_decades == 0.0
    # seed 0 alone never diverged at LR 1 and reached 0.93 (its best): both its limits are 1
    assert g.seed_max_good == {0: 1.0, 1: 0.1}
    assert g.seed_max_nondiverging == {0: 1.0, 1: 0.1}
    gm, gs, n = g.seed_summary("good")  # geometric mean of (1, 0.1) = √0.1, std exp(ln 10/√2)
    assert (gm, gs, n) == (pytest.approx(math.sqrt(0.1)), pytest.approx(10 ** (1 / math.sqrt(2))), 2)


def test_all_diverged_gives_none():
    runs = [summary("none", lr, 0, 0.7, status="diverged") for lr in (1.0, 10.0)]
    (g,) = lr_tolerance(runs)
    assert g.label == "all runs"
    assert [p.score.mean for p in g.points] == [CHANCE, CHANCE]
    assert g.max_nondiverging_lr is None
    assert g.seed_max_nondiverging == {0: None}
    assert g.seed_summary("nondiverging") == (None, None, 0)
    # nothing was learnt at any LR: no LR is good and there is no good range
    assert g.max_good_lr is None and g.good_range is None and g.width_decades is None
    assert g.seed_max_good == {0: None}


def test_single_lr():
    runs = [summary("batch", 0.5, s, acc) for s, acc in ((0, 0.9), (1, 0.94))]
    (g,) = lr_tolerance(runs)
    assert g.best_lr == g.max_good_lr == g.max_nondiverging_lr == 0.5
    assert g.good_range == (0.5, 0.5)
    assert g.width_decades == 0.0
    assert g.points[0].score.mean == pytest.approx(0.92)
    assert g.seed_max_good == {0: 0.5, 1: 0.5}
    assert g.seed_max_nondiverging == {0: 0.5, 1: 0.5}
    # the same LR for both seeds: geometric mean 0.5, geometric std a factor of exactly 1
    assert g.seed_summary("good") == (pytest.approx(0.5), pytest.approx(1.0), 2)
    assert not has_lr_grid([g])


def test_fraction_from_config_and_argument():
    runs = [summary("batch", lr, 0, acc, fraction=0.5) for lr, acc in ((0.1, 0.9), (1.0, 0.6), (10.0, 0.4))]
    (g,) = lr_tolerance(runs)
    assert g.fraction == 0.5 and g.max_good_lr == 1.0  # 0.6 >= 0.45 > 0.4
    assert g.good_range == (0.1, 1.0)
    (g,) = lr_tolerance(runs, fraction=0.4)
    assert g.max_good_lr == 10.0 and g.width_decades == pytest.approx(2.0)


def test_failed_job_joins_its_group_as_chance():
    runs = [summary("batch", 0.1, 0, 0.9), summary("batch", 1.0, 0, 0.95)]
    # a failed job has no accuracy and no chance rate of its own (it may have died before loading
    # the data); it joins its group through its own config and counts as the group's chance
    runs.append(RunResult(flatten(config("batch", 10.0, 0)), Status.FAILED, score=None, test=None, chance=None))
    (g,) = lr_tolerance(runs)
    assert g.lrs == [0.1, 1.0, 10.0]
    assert g.points[2].n_failed == 1 and g.points[2].score.mean == CHANCE
    assert g.max_nondiverging_lr == 1.0  # a failed run disqualifies its LR like a diverged one
    assert g.max_good_lr == 1.0 and g.good_range == (0.1, 1.0)


def test_not_learning_counts_its_accuracy():
    runs = [summary("none", 0.1, 0, 0.9), summary("none", 1.0, 0, 0.12, status="not_learning")]
    (g,) = lr_tolerance(runs)
    assert g.points[1].score.mean == 0.12 and not g.points[1].diverging
    assert g.max_good_lr == 0.1
    assert g.max_nondiverging_lr == 1.0  # not learning is a bad result, not a divergence


def test_helpers():
    assert flatten({"a": {"b": 1, "c": [1, 2]}}) == {"a.b": 1, "a.c": (1, 2)}
    assert parse_override("optim.lr=1e-3") == ("optim.lr", 1e-3)
    assert parse_override("model.widths=[10,20]") == ("model.widths", (10, 20))
    assert parse_override("+x.y=abc") == ("x.y", "abc")
    cfg = flatten(config("batch", 0.1, 3))
    assert cfg["optim.lr"] == 0.1 and cfg["trainer.seed"] == 3 and cfg["model.widths"] == (100, 100)
    key = dict(group_key(cfg))
    assert "optim.lr" not in key and "trainer.seed" not in key and "data.root" not in key
    assert key["model.norm"] == "batch"


def test_steps_to_target_says_its_resolution_instead_of_a_ci_of_zero():
    """Five seeds that cross 0.9 between the same two evaluations: the cell is that interval, not
    "562 ± 0"; seeds in different cells: mean ± CI with the grid's half-width."""
    from types import SimpleNamespace as NS

    from ics.analysis.tables import _steps_cell

    def group(brackets, n=None):
        jobs = [
            NS(summary=NS(steps_to_target={"0.9": first}, steps_to_target_prev={"0.9": prev}, steps=1000), metrics=None)
            for prev, first in brackets
        ]
        return NS(jobs=jobs, n=n or len(jobs))

    assert _steps_cell(group([(440, 562)] * 5), "0.9") == "(440, 562] all 5"
    cell = _steps_cell(group([(440, 562), (562, 750), (440, 562), (562, 750), (440, 562)]), "0.9")
    assert "± 0" not in cell and cell.endswith("(grid ±74)") and cell.startswith("637 ± ")
    # one of two never reached it: censored at its last step (1000), not dropped -> Kaplan–Meier
    assert _steps_cell(group([(None, None), (440, 562)]), "0.9") == "median 562 (KM; 1 of 2 censored)"
