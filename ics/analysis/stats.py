"""Statistics over seeds: means with Student-t 95% confidence intervals, Welch's t-test, and
curves averaged over seeds with a confidence band.

  CI of a mean      x̄ ± t_{0.975, n−1} · s / √n       (s: sample std, ddof = 1; none for n = 1, not shown for n = 2)
  Welch's t-test    t = (x̄_a − x̄_b) / √(s_a²/n_a + s_b²/n_b), Welch–Satterthwaite degrees of
                    freedom; the CI of the difference uses the same t quantile; two-sided p-value
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np

LEVEL = 0.95
MIN_CI_N = 3  # below this many seeds no interval is shown: at n = 2, t(0.975, 1) = 12.7 makes it meaningless


@dataclass
class Estimate:
    mean: Optional[float]
    half: Optional[float]  # half-width of the 95% CI; None for n < 2
    n: int

    def fmt(self, spec: str = ".4f", show_n: bool = True) -> str:
        if self.mean is None:
            return "-"
        text = format(self.mean, spec)
        if self.shown_half is not None:
            text += f" ± {format(self.half, spec)}"
        return text + (f" (n={self.n})" if show_n else "")

    @property
    def shown_half(self) -> Optional[float]:
        """The half-width when there are enough seeds to show it (n >= MIN_CI_N), else None."""
        return self.half if self.n >= MIN_CI_N else None


def t_quantile(df: float, level: float = LEVEL) -> float:
    from scipy import stats

    return float(stats.t.ppf(0.5 + level / 2, df))


def mean_ci(values: Sequence[Optional[float]], level: float = LEVEL) -> Estimate:
    a = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if a.size == 0:
        return Estimate(None, None, 0)
    if a.size == 1:
        return Estimate(float(a[0]), None, 1)
    return Estimate(float(a.mean()), t_quantile(a.size - 1, level) * float(a.std(ddof=1)) / math.sqrt(a.size),
                    int(a.size))


@dataclass
class Comparison:
    diff: float  # mean(a) − mean(b)
    half: Optional[float]  # half-width of the 95% CI of the difference (Welch)
    p: Optional[float]  # two-sided Welch t-test
    n_a: int
    n_b: int


def welch(a: Sequence[float], b: Sequence[float], level: float = LEVEL) -> Optional[Comparison]:
    from scipy import stats

    a = np.asarray([v for v in a if v is not None and math.isfinite(v)], dtype=float)
    b = np.asarray([v for v in b if v is not None and math.isfinite(v)], dtype=float)
    if a.size == 0 or b.size == 0:
        return None
    diff = float(a.mean() - b.mean())
    if a.size < 2 or b.size < 2:
        return Comparison(diff, None, None, int(a.size), int(b.size))
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    se = math.sqrt(va + vb)
    if se == 0:  # identical constant samples: no spread to test against
        return Comparison(diff, 0.0, 1.0 if diff == 0 else 0.0, int(a.size), int(b.size))
    df = (va + vb) ** 2 / (va ** 2 / (a.size - 1) + vb ** 2 / (b.size - 1))
    p = float(2 * stats.t.sf(abs(diff) / se, df))  # = ttest_ind(equal_var=False), without its near-constant warning
    return Comparison(diff, t_quantile(df, level) * se, p, int(a.size), int(b.size))


def band(steps: Sequence[np.ndarray], values: Sequence[np.ndarray],
         level: float = LEVEL) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Curves of several seeds -> (steps, mean, lower, upper, n) over the union of their steps; at
    each step the seeds that have it count (a diverged seed stops early). No band where n = 1."""
    all_steps = np.unique(np.concatenate([np.asarray(s) for s in steps])) if steps else np.zeros(0)
    mean, lo, hi, n = (np.full(all_steps.shape, np.nan) for _ in range(4))
    lookup = [dict(zip(np.asarray(s).tolist(), np.asarray(v, dtype=float).tolist())) for s, v in zip(steps, values)]
    for i, st in enumerate(all_steps.tolist()):
        e = mean_ci([d[st] for d in lookup if st in d], level)
        n[i] = e.n
        if e.mean is not None:
            mean[i] = e.mean
            lo[i] = e.mean - (e.half or 0.0)
            hi[i] = e.mean + (e.half or 0.0)
    return all_steps, mean, lo, hi, n


def geo_mean_std(values: Sequence[float]) -> Tuple[Optional[float], Optional[float]]:
    """Geometric mean and geometric std (a factor, ×/÷) of positive values: the natural summary on
    a logarithmic grid. std is None for fewer than two values."""
    a = np.asarray([v for v in values if v is not None and v > 0], dtype=float)
    if a.size == 0:
        return None, None
    logs = np.log(a)
    return float(np.exp(logs.mean())), float(np.exp(logs.std(ddof=1))) if a.size > 1 else None


def fmt_p(p: Optional[float]) -> str:
    if p is None:
        return "-"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def summary_values(estimates: List[Estimate]) -> List[Optional[float]]:
    return [e.mean for e in estimates]
