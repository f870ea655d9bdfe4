"""Initialisation tolerance: over which initial weight scales does a network train, with and without BN?

The BN explainer this project grew from claims that BN "reduces the dependence on the initialisation";
the BN paper's argument (Ioffe & Szegedy 2015, §3.3) is that BN(a·W u) = BN(W u), so a BN layer's
output does not depend on the scale a of the weights that feed it, while without BN a small scale
shrinks the signal layer by layer and a large one saturates a sigmoid. The study `init_tolerance`
sweeps the init std s of N(0, s²) over decades; per group of runs that differ only in s and seed:

* score of a run: as in LR tolerance (`ics/analysis/tolerance.py`): the mean of its last
  `tolerance.last_k` evaluations, on validation when held out, else test; a failed or diverged run
  scores chance;
* **good scales**: the init scales whose mean score is >= `tolerance.fraction` (0.9) × the group's best
  mean score; the **good range** is the contiguous run of good scales around the best one on the grid
  (good scales beyond a non-good one are listed apart, never bridged);
* **learns**: a scale whose mean score closes at least a tenth of the gap from chance to a perfect
  score, mean >= chance + 0.1 × (1 − chance) (0.19 for 10 classes), and whose 95% CI lies above chance;
  the **learning range** is the contiguous run of such scales around the best one;
* both ranges in decades: log10(high / low) of the grid points, so the resolution is the grid's step
  (a range of one point is 0 decades, "only at s = …").

Pure functions of `RunResult`s, like LR tolerance, so the definitions are testable on made-up results.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, List, Optional, Sequence, Tuple

import numpy as np

from ics.analysis.configs import labels_for
from ics.analysis.tolerance import LRPoint, RunResult, contiguous_range, group_runs, lr_points, run_fraction

INIT_KEY = "model.init_std"
LEARN_GAP = 0.1  # "learns": closes >= this fraction of the gap between chance and a perfect score


@dataclass
class InitTolerance:
    key: Tuple[Tuple[str, Any], ...]
    label: str
    fraction: float
    points: List[LRPoint]  # .lr holds the init scale; sorted by it
    chance: Optional[float]
    on_validation: bool = False
    best_scale: Optional[float] = None
    best_score: Optional[float] = None
    good_range: Optional[Tuple[float, float]] = None
    good_outside: List[float] = field(default_factory=list)
    learn_range: Optional[Tuple[float, float]] = None
    learn_outside: List[float] = field(default_factory=list)

    @property
    def scales(self) -> List[float]:
        return [p.lr for p in self.points]

    def learn_threshold(self) -> float:
        c = self.chance or 0.0
        return c + LEARN_GAP * (1.0 - c)

    def learns(self, p: LRPoint) -> bool:
        m, half = p.score.mean, p.score.half
        above = m is not None and (half is None or self.chance is None or m - half > self.chance)  # n = 1: no CI
        return m is not None and m >= self.learn_threshold() and above

    @property
    def good_scales(self) -> List[float]:
        if self.best_score is None or self.best_score < self.learn_threshold():
            return []  # nothing was learnt at any scale: no scale is "good"
        return [
            p.lr for p in self.points if p.score.mean is not None and p.score.mean >= self.fraction * self.best_score
        ]

    @property
    def learn_scales(self) -> List[float]:
        return [p.lr for p in self.points if self.learns(p)]

    @staticmethod
    def decades(rng: Optional[Tuple[float, float]]) -> Optional[float]:
        return None if rng is None else math.log10(rng[1] / rng[0])


def group_init_tolerance(key, label: str, runs: Sequence[RunResult], fraction: float) -> InitTolerance:
    chances = [r.chance for r in runs if r.chance is not None]
    chance = float(np.median(chances)) if chances else None
    points = lr_points(runs, chance, axis=INIT_KEY)
    g = InitTolerance(key, label, fraction, points, chance, on_validation=any(r.on_validation for r in runs))
    best = max(points, key=lambda p: p.score.mean)  # ties go to the smaller scale
    g.best_scale, g.best_score = best.lr, best.score.mean
    good, learn = set(g.good_scales), set(g.learn_scales)
    if best.lr in good:
        g.good_range, g.good_outside = contiguous_range(points, good, best.lr)
    if best.lr in learn:
        g.learn_range, g.learn_outside = contiguous_range(points, learn, best.lr)
    return g


def init_tolerance(runs: Sequence[RunResult], fraction: Optional[float] = None) -> List[InitTolerance]:
    """Init tolerance of every group of runs with an init scale (see the module docstring)."""
    groups = group_runs(runs, axis=INIT_KEY)
    if fraction is None:
        fraction = run_fraction([r.config for rs in groups.values() for r in rs])
    labels = labels_for(list(groups))
    return [group_init_tolerance(k, labels[k], rs, fraction) for k, rs in groups.items()]


def has_init_grid(groups: Sequence[InitTolerance]) -> bool:
    """True when some group was run at two or more init scales."""
    return any(len(g.points) >= 2 for g in groups)
