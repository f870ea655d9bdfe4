"""Learning-rate tolerance of a sweep, with stability and accuracy kept apart.

Ioffe & Szegedy (2015), §3.3: with BatchNorm a layer's output is invariant to the scale of its
weights, BN(a·W u) = BN(W u), and the gradient w.r.t. the weights shrinks as 1/a when they grow;
the claim is that BN networks tolerate much higher learning rates. Two things are easily mixed up
here: a run that *diverges* (non-finite loss, or above trainer.divergence_loss) and a run that
merely ends *bad* (a saturated sigmoid net never diverges, it stops learning). And under BN the
nominal LR is not the step size: the weights grow, so the effective step η/‖w‖² shrinks (Arora et
al. 2019). So, per group of runs that differ only in learning rate and seed:

* score of a run: the mean of its last `tolerance.last_k` evaluations (3), on the validation split
  when the runs held one out (data.val_size), else on test; a diverged or failed run scores chance;
* **max non-diverging LR**: the largest LR at which no seed diverged (or failed);
* **max good LR**: the largest LR whose mean score is >= `fraction` (0.9) × the group's best mean
  (and above chance: where nothing was learnt, no LR is good);
* **good range**: the contiguous run of good LRs around the best LR on the grid; good LRs beyond a
  non-good one are listed separately (gaps are reported, not bridged);
* per seed, the same two limits on that seed's own curve, summarised by the geometric mean and
  geometric std (×/÷) over seeds, since the grid is logarithmic;
* for BN groups, the effective LR η/‖w‖² at the end of the runs at those LRs (the weights
  instrument's final median over rows, averaged over the BN layers).

Everything here is a pure function of `RunResult`s, so it can be tested on hand-made results.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ics.analysis.configs import LR_KEY, SEED_KEY, config_key, labels_for
from ics.analysis.stats import Estimate, geo_mean_std, mean_ci
from ics.record import Status

DEFAULT_FRACTION = 0.9


@dataclass
class RunResult:
    """One finished (or failed) run as tolerance sees it."""

    config: Dict[str, Any]  # flat: "model.norm" -> "batch"
    status: Status
    score: Optional[float]  # the selection score (mean of the last k evaluations; validation if held out)
    test: Optional[float]  # the final test score (what is reported)
    chance: Optional[float]
    eff_lr: Optional[float] = None  # η/‖w‖² at the end (BN layers), when the weights instrument ran
    on_validation: bool = False


@dataclass
class LRPoint:
    """All runs of one group at one learning rate (scores of diverged/failed runs are chance)."""

    lr: float
    seeds: List[Any]
    scores: List[float]
    tests: List[float]
    statuses: List[Status]
    eff_lrs: List[Optional[float]]
    score: Estimate
    test: Estimate

    @property
    def n_runs(self) -> int:
        return len(self.scores)

    @property
    def n_diverged(self) -> int:
        return sum(s == Status.DIVERGED for s in self.statuses)

    @property
    def n_failed(self) -> int:
        return sum(s == Status.FAILED for s in self.statuses)

    @property
    def diverging(self) -> bool:
        return self.n_diverged + self.n_failed > 0

    @property
    def eff_lr(self) -> Optional[float]:
        return geo_mean_std([e for e in self.eff_lrs if e is not None])[0]


@dataclass
class GroupTolerance:
    key: Tuple[Tuple[str, Any], ...]
    label: str
    fraction: float
    points: List[LRPoint]  # sorted by LR
    chance: Optional[float]
    on_validation: bool = False
    best_lr: Optional[float] = None
    best_score: Optional[float] = None
    max_nondiverging_lr: Optional[float] = None
    max_good_lr: Optional[float] = None
    good_range: Optional[Tuple[float, float]] = None
    good_outside: List[float] = field(default_factory=list)  # good LRs beyond a gap
    seed_max_nondiverging: Dict[Any, Optional[float]] = field(default_factory=dict)
    seed_max_good: Dict[Any, Optional[float]] = field(default_factory=dict)

    @property
    def lrs(self) -> List[float]:
        return [p.lr for p in self.points]

    @property
    def seeds(self) -> List[Any]:
        return sorted({s for p in self.points for s in p.seeds}, key=repr)

    def point(self, lr: Optional[float]) -> Optional[LRPoint]:
        return next((p for p in self.points if p.lr == lr), None)

    @property
    def good_lrs(self) -> List[float]:
        """LRs whose mean score is >= fraction × the best, and above chance: where nothing was learnt
        (every run diverged, or the best is chance) no LR is good."""
        if self.best_score is None or (self.chance is not None and self.best_score <= self.chance):
            return []
        return [
            p.lr
            for p in self.points
            if p.score.mean is not None
            and p.score.mean >= self.fraction * self.best_score
            and (self.chance is None or p.score.mean > self.chance)
        ]

    @property
    def width_decades(self) -> Optional[float]:
        """log10 of the contiguous good range's extent."""
        if self.good_range is None:
            return None
        return math.log10(self.good_range[1] / self.good_range[0])

    def seed_summary(self, which: str) -> Tuple[Optional[float], Optional[float], int]:
        values = [
            v for v in (self.seed_max_good if which == "good" else self.seed_max_nondiverging).values() if v is not None
        ]
        gm, gs = geo_mean_std(values)
        return gm, gs, len(values)


def counted(value: Optional[float], status: Status, chance: Optional[float]) -> float:
    """A run's score, or chance for a diverged/failed run or one without a score."""
    fallback = chance if chance is not None else 0.0
    if status.counts_as_chance or value is None or not math.isfinite(value):
        return fallback
    return float(value)


def lr_points(runs: Sequence[RunResult], chance: Optional[float], axis: str = LR_KEY) -> List[LRPoint]:
    """The runs at each value of `axis` (the learning rate; the init scale for init tolerance)."""
    by_lr: Dict[float, List[RunResult]] = {}
    for r in runs:
        by_lr.setdefault(float(r.config[axis]), []).append(r)
    points = []
    for lr in sorted(by_lr):
        rs = by_lr[lr]
        scores = [counted(r.score, r.status, chance) for r in rs]
        tests = [counted(r.test, r.status, chance) for r in rs]
        points.append(
            LRPoint(
                lr,
                [r.config.get(SEED_KEY) for r in rs],
                scores,
                tests,
                [r.status for r in rs],
                [r.eff_lr for r in rs],
                mean_ci(scores),
                mean_ci(tests),
            )
        )
    return points


def max_good(curve: Sequence[Tuple[float, float]], fraction: float, chance: Optional[float] = None) -> Optional[float]:
    """The largest LR whose score is >= fraction × the curve's best score (and above chance)."""
    if not curve:
        return None
    best = max(s for _, s in curve)
    if chance is not None and best <= chance:
        return None
    good = [lr for lr, s in curve if s >= fraction * best and (chance is None or s > chance)]
    return max(good) if good else None


def contiguous_range(points: Sequence[LRPoint], good: set, best_lr: float) -> Tuple[Tuple[float, float], List[float]]:
    """The run of good LRs around the best one on the grid, and the good LRs outside it."""
    lrs = [p.lr for p in points]
    i = j = lrs.index(best_lr)
    while i > 0 and lrs[i - 1] in good:
        i -= 1
    while j < len(lrs) - 1 and lrs[j + 1] in good:
        j += 1
    inside = set(lrs[i : j + 1])
    return (lrs[i], lrs[j]), sorted(good - inside)


def group_tolerance(key, label: str, runs: Sequence[RunResult], fraction: float) -> GroupTolerance:
    chances = [r.chance for r in runs if r.chance is not None]
    chance = float(np.median(chances)) if chances else None
    points = lr_points(runs, chance)
    g = GroupTolerance(key, label, fraction, points, chance, on_validation=any(r.on_validation for r in runs))
    best = max(points, key=lambda p: p.score.mean)  # a tie goes to the smaller LR (sorted; max keeps the first)
    g.best_lr, g.best_score = best.lr, best.score.mean
    stable = [p.lr for p in points if not p.diverging]
    g.max_nondiverging_lr = max(stable) if stable else None
    good = set(g.good_lrs)
    g.max_good_lr = max(good) if good else None
    if good:
        g.good_range, g.good_outside = contiguous_range(points, good, best.lr)
    for seed in g.seeds:
        curve = [(p.lr, sc, st) for p in points for s, sc, st in zip(p.seeds, p.scores, p.statuses) if s == seed]
        ok = [lr for lr, _, st in curve if not st.counts_as_chance]
        g.seed_max_nondiverging[seed] = max(ok) if ok else None
        g.seed_max_good[seed] = max_good([(lr, sc) for lr, sc, _ in curve], fraction, chance)
    return g


def run_fraction(configs: Sequence[Dict[str, Any]], default: float = DEFAULT_FRACTION) -> float:
    """tolerance.fraction from the runs' configs (first one that has it)."""
    for c in configs:
        if c.get("tolerance.fraction") is not None:
            return float(c["tolerance.fraction"])
    return default


def group_runs(runs: Sequence[RunResult], axis: str = LR_KEY) -> Dict[tuple, List[RunResult]]:
    """Group key (the config without `axis`, seed and neutral keys) -> runs, in first-seen order.
    Runs without a value of `axis` are left out."""
    groups: Dict[tuple, List[RunResult]] = {}
    for r in runs:
        if r.config.get(axis) is None:
            continue
        groups.setdefault(config_key(r.config, (axis, SEED_KEY)), []).append(r)
    return groups


def lr_tolerance(runs: Sequence[RunResult], fraction: Optional[float] = None) -> List[GroupTolerance]:
    """LR tolerance of every group of runs (see the module docstring for the definitions).
    fraction: None takes tolerance.fraction from the runs' configs (default 0.9)."""
    groups = group_runs(runs)
    if fraction is None:
        fraction = run_fraction([r.config for rs in groups.values() for r in rs])
    labels = labels_for(list(groups))
    return [group_tolerance(k, labels[k], rs, fraction) for k, rs in groups.items()]


def has_lr_grid(groups: Sequence[GroupTolerance]) -> bool:
    """True when some group was run at two or more learning rates."""
    return any(len(g.points) >= 2 for g in groups)
