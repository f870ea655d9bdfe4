"""Initialisation tolerance on hand-made results, answers worked out by hand in the comments.

Definitions (ics.analysis.init_tolerance): good = mean score >= fraction (0.9) x the group's best mean;
learns = mean >= chance + 0.1 x (1 - chance) (= 0.19 at chance 0.1) with the 95% CI above chance; both
ranges are contiguous runs of grid points around the best init std.
"""

from __future__ import annotations

import pytest

from ics.analysis.configs import flatten
from ics.analysis.init_tolerance import has_init_grid, init_tolerance
from ics.analysis.tables import init_scale_table, init_tolerance_table
from ics.analysis.tolerance import RunResult
from ics.record import Status

CHANCE = 0.1
SCALES = [0.001, 0.01, 0.1, 1.0, 10.0]


def run(norm, s, seed, acc, lr=0.5, status="completed") -> RunResult:
    cfg = flatten(
        {
            "model": {"name": "mlp", "norm": norm, "init": "gaussian", "init_std": s},
            "optim": {"name": "sgd", "lr": lr},
            "trainer": {"seed": seed},
        }
    )
    return RunResult(cfg, Status(status), score=acc, test=acc, chance=CHANCE)


# (seed 0, seed 1, seed 2) per init std
# BN: trains from 0.001 to 1 (0.95–0.97 > 0.9 × 0.97 = 0.873), at 10 only 0.60: learns, not good
BN = {
    0.001: (0.95, 0.95, 0.96),
    0.01: (0.96, 0.96, 0.97),
    0.1: (0.97, 0.97, 0.97),
    1.0: (0.96, 0.95, 0.96),
    10.0: (0.60, 0.62, 0.58),
}
# none: chance at 0.001 (mean 0.10: does not learn), 0.30 at 0.01 (learns, not good), 0.95 at 0.1 (best),
# chance at 1 (a saturated net), 0.92 at 10 again (good, but beyond a gap: not bridged)
NONE = {
    0.001: (0.10, 0.10, 0.10),
    0.01: (0.30, 0.28, 0.32),
    0.1: (0.95, 0.94, 0.96),
    1.0: (0.11, 0.10, 0.09),
    10.0: (0.92, 0.92, 0.92),
}


def runs(table, norm, lr=0.5):
    return [run(norm, s, seed, acc, lr) for s in SCALES for seed, acc in enumerate(table[s])]


@pytest.fixture
def groups():
    return {g.label: g for g in init_tolerance(runs(BN, "batch") + runs(NONE, "none"))}


def test_groups_split_by_everything_but_init_std_and_seed(groups):
    assert set(groups) == {"model.norm=batch", "model.norm=none"}
    assert all(len(g.points) == 5 and all(p.n_runs == 3 for p in g.points) for g in groups.values())
    assert has_init_grid(list(groups.values()))


def test_bn_ranges(groups):
    g = groups["model.norm=batch"]
    assert g.best_scale == 0.1 and g.best_score == pytest.approx(0.97)
    assert g.good_range == (0.001, 1.0) and g.good_outside == []
    assert g.learn_range == (0.001, 10.0)
    assert g.decades(g.good_range) == pytest.approx(3.0)


def test_none_ranges_do_not_bridge_gaps(groups):
    g = groups["model.norm=none"]
    assert g.best_scale == 0.1
    assert g.good_range == (0.1, 0.1) and g.good_outside == [10.0]  # 1.0 is at chance in between
    assert g.learn_range == (0.01, 0.1) and g.learn_outside == [10.0]  # 0.001 and 1.0 do not learn
    assert g.learn_threshold() == pytest.approx(0.19)


def test_failed_runs_count_as_chance_and_nothing_learnt_means_no_range():
    rs = [run("none", s, seed, 0.9, status="failed") for s in SCALES for seed in range(2)]
    (g,) = init_tolerance(rs)
    assert all(p.score.mean == pytest.approx(CHANCE) for p in g.points)
    assert g.good_range is None and g.learn_range is None


def test_lr_is_a_group_key_here_and_runs_without_init_std_are_left_out():
    rs = runs(BN, "batch", lr=0.5) + runs(BN, "batch", lr=2.0)
    no_scale = RunResult(
        flatten({"model": {"norm": "batch"}, "optim": {"lr": 0.5}, "trainer": {"seed": 0}}),
        Status("completed"),
        0.9,
        0.9,
        CHANCE,
    )
    got = init_tolerance(rs + [no_scale])
    assert sorted(g.label for g in got) == ["optim.lr=0.5", "optim.lr=2"]
    assert not has_init_grid(init_tolerance(runs(BN, "batch")[:3]))  # one scale: no grid


def test_tables(groups):
    t = init_tolerance_table(list(groups.values()))
    rows = {r[0]: r for r in t.cells}
    assert rows["model.norm=batch"][3] == "0.001–1 (3 decades)"
    assert rows["model.norm=none"][3] == "only at 0.1; also beyond a gap: 10"
    per = init_scale_table(list(groups.values()))
    none_001 = next(r for r in per.cells if r[0] == "model.norm=none" and r[1] == "0.001")
    assert none_001[-2:] == ["no", "no"]
