"""Statistics over seeds: means with Student-t 95% confidence intervals, Welch's t-test, and
curves averaged over seeds with a confidence band.

  CI of a mean      x̄ ± t_{0.975, n−1} · s / √n       (s: sample std, ddof = 1; none for n = 1, not shown for n = 2)
  Welch's t-test    t = (x̄_a − x̄_b) / √(s_a²/n_a + s_b²/n_b), Welch–Satterthwaite degrees of
                    freedom; the CI of the difference uses the same t quantile; two-sided p-value
  Holm              step-down adjustment of a family of m p-values (Holm 1979): the i-th smallest
                    becomes max_{j<=i} min(1, (m − j + 1) p_(j)); controls the family-wise error rate
  TOST              two one-sided Welch tests against an equivalence margin ±m (Schuirmann 1987):
                    p = max(p(diff <= −m), p(diff >= +m)); equivalent at 0.05 when p < 0.05, i.e.
                    when the 90% CI of the difference lies inside (−m, +m)
  Kaplan–Meier      steps-to-target with the seeds that never reached it censored at their last
                    evaluation; median with a Brookmeyer–Crowley CI (Greenwood variance, log(−log))
  log-rank          two groups' steps-to-target compared with censoring (Mantel–Cox, χ² with 1 df)
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
    return Estimate(
        float(a.mean()), t_quantile(a.size - 1, level) * float(a.std(ddof=1)) / math.sqrt(a.size), int(a.size)
    )


@dataclass
class Comparison:
    diff: float  # mean(a) − mean(b)
    half: Optional[float]  # half-width of the 95% CI of the difference (Welch)
    p: Optional[float]  # two-sided Welch t-test
    n_a: int
    n_b: int


def welch(xs: Sequence[Optional[float]], ys: Sequence[Optional[float]], level: float = LEVEL) -> Optional[Comparison]:
    from scipy import stats

    a = np.asarray([v for v in xs if v is not None and math.isfinite(v)], dtype=float)
    b = np.asarray([v for v in ys if v is not None and math.isfinite(v)], dtype=float)
    if a.size == 0 or b.size == 0:
        return None
    diff = float(a.mean() - b.mean())
    if a.size < 2 or b.size < 2:
        return Comparison(diff, None, None, int(a.size), int(b.size))
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    se = math.sqrt(va + vb)
    if se == 0:  # identical constant samples: no spread to test against
        return Comparison(diff, 0.0, 1.0 if diff == 0 else 0.0, int(a.size), int(b.size))
    df = (va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1))
    p = float(2 * stats.t.sf(abs(diff) / se, df))  # = ttest_ind(equal_var=False), without its near-constant warning
    return Comparison(diff, t_quantile(df, level) * se, p, int(a.size), int(b.size))


def holm(ps: Sequence[Optional[float]]) -> List[Optional[float]]:
    """Holm-adjusted p-values of one family, in the input's order (None stays None and does not count
    towards the family's size m)."""
    idx = sorted((i for i, p in enumerate(ps) if p is not None), key=lambda i: ps[i])  # type: ignore[arg-type,return-value]
    out: List[Optional[float]] = [None] * len(ps)
    m, running = len(idx), 0.0
    for rank, i in enumerate(idx):
        running = max(running, min(1.0, (m - rank) * float(ps[i])))  # type: ignore[arg-type]
        out[i] = running
    return out


@dataclass
class Equivalence:
    diff: float
    lo90: float  # the 90% CI of the difference (Welch): TOST at 0.05 ⇔ it lies inside (−margin, +margin)
    hi90: float
    margin: float
    p: float  # TOST p-value: the larger of the two one-sided p-values

    @property
    def equivalent(self) -> bool:
        return self.p < 0.05

    def sentence(self) -> str:
        if self.equivalent:
            return f"equivalent within ±{self.margin:g} (TOST p {fmt_p(self.p, eq=True)})"
        return (
            f"not shown equivalent within ±{self.margin:g} (TOST p {fmt_p(self.p, eq=True)}; 90% CI "
            f"{self.lo90:+.4f}, {self.hi90:+.4f})"
        )


def tost(
    xs: Sequence[Optional[float]], ys: Sequence[Optional[float]], margin: float, paired: bool = False
) -> Optional[Equivalence]:
    """Two one-sided Welch tests (paired: one-sample t-tests of the per-seed differences a_i − b_i):
    is mean(a) − mean(b) inside (−margin, +margin)? None below 2 values a side."""
    from scipy import stats

    if paired:
        pairs = [
            (x, y) for x, y in zip(xs, ys) if x is not None and y is not None and math.isfinite(x) and math.isfinite(y)
        ]
        xs, ys = [x for x, _ in pairs], [y for _, y in pairs]
    a = np.asarray([v for v in xs if v is not None and math.isfinite(v)], dtype=float)
    b = np.asarray([v for v in ys if v is not None and math.isfinite(v)], dtype=float)
    if a.size < 2 or b.size < 2 or not margin > 0:
        return None
    diff = float(a.mean() - b.mean())
    if paired:
        d = a - b
        va, vb = d.var(ddof=1) / d.size, 0.0
        df = float(d.size - 1)
    else:
        va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    se = math.sqrt(va + vb)
    if se == 0:
        return Equivalence(diff, diff, diff, margin, 0.0 if abs(diff) < margin else 1.0)
    if not paired:
        df = (va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1))
    p_low = float(stats.t.sf((diff + margin) / se, df))  # H0: diff <= −margin
    p_high = float(stats.t.cdf((diff - margin) / se, df))  # H0: diff >= +margin
    q = t_quantile(df, 0.90)
    return Equivalence(diff, diff - q * se, diff + q * se, margin, max(p_low, p_high))


def tost_summary(
    mean_a: float, half_a: float, mean_b: float, half_b: float, n: int, margin: float, level: float = LEVEL
) -> Equivalence:
    """TOST from two published means with their Student-t CI half-widths over n seeds each (the
    sample std recovered as half · √n / t_{0.975, n−1}): what `tost` gives on the seeds themselves."""
    sd = lambda half: half * math.sqrt(n) / t_quantile(n - 1, level)  # noqa: E731
    rng = np.random.default_rng(0)
    a = _with_moments(rng.standard_normal(n), mean_a, sd(half_a))
    b = _with_moments(rng.standard_normal(n), mean_b, sd(half_b))
    return tost(list(a), list(b), margin)  # type: ignore[return-value]


def _with_moments(z: np.ndarray, mean: float, sd: float) -> np.ndarray:
    """n values with exactly this mean and sample std (Welch's test depends on nothing else)."""
    z = (z - z.mean()) / z.std(ddof=1)
    return mean + sd * z


@dataclass
class Survival:
    """Kaplan–Meier summary of steps-to-target: n seeds, how many never reached it (censored at their
    last evaluation), the median and its 95% CI (None where the curve does not fall that far)."""

    n: int
    censored: int
    median: Optional[float]
    lo: Optional[float]
    hi: Optional[float]

    def fmt(self) -> str:
        if self.n == 0:
            return "-"
        cens = f"{self.censored} of {self.n} censored"
        if self.median is None:
            return f"not reached by half (KM; {cens})"
        ci = f" [95% CI {_num(self.lo)}, {_num(self.hi)}]" if self.n >= MIN_CI_N else ""
        return f"median {self.median:,.0f}{ci} (KM; {cens})"


def _num(v: Optional[float]) -> str:
    return "∞" if v is None else f"{v:,.0f}"


def kaplan_meier(times: Sequence[float], events: Sequence[bool]) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(event times, S(t) just after each, Greenwood variance of S) of right-censored data."""
    t, e = np.asarray(times, dtype=float), np.asarray(events, dtype=bool)
    ts = np.unique(t[e])
    surv, var_sum, s = [], 0.0, 1.0
    var = []
    for u in ts:
        at_risk = int((t >= u).sum())
        d = int(((t == u) & e).sum())
        s *= 1 - d / at_risk
        var_sum += d / (at_risk * (at_risk - d)) if at_risk > d else math.inf
        surv.append(s)
        var.append(s * s * var_sum)
    return ts, np.asarray(surv), np.asarray(var)


def km_median(times: Sequence[float], events: Sequence[bool], level: float = LEVEL) -> Survival:
    """Median steps-to-target with censoring: the first event time where S(t) <= 0.5. Its CI
    (Brookmeyer & Crowley 1982, with the log(−log) interval of S(t) as R's survival package does): from
    the first time the lower limit of S falls to 0.5 to the first time the upper limit does (None:
    it never does within the data, the interval is open above)."""
    from scipy import stats

    n, cens = len(times), int(sum(1 for e in events if not e))
    if n == 0:
        return Survival(0, 0, None, None, None)
    ts, surv, var = kaplan_meier(times, events)
    z = float(stats.norm.ppf(0.5 + level / 2))
    first = lambda mask: float(ts[np.nonzero(mask)[0][0]]) if mask.any() else None  # noqa: E731
    upper, lower = np.empty_like(surv), np.empty_like(surv)
    for i, (s, v) in enumerate(zip(surv, var)):
        if 0 < s < 1 and math.isfinite(v):
            se = math.sqrt(v) / abs(s * math.log(s))
            upper[i], lower[i] = s ** math.exp(-z * se), s ** math.exp(z * se)
        else:  # S = 0: every seed still at risk reached it, the bounds collapse onto 0
            upper[i] = lower[i] = s
    half = 0.5 + 1e-12
    return Survival(n, cens, first(surv <= half), first(lower <= half), first(upper <= half))


def logrank(t_a: Sequence[float], e_a: Sequence[bool], t_b: Sequence[float], e_b: Sequence[bool]) -> Optional[float]:
    """Two-sided log-rank (Mantel–Cox) p-value: do the two groups reach the target at different
    rates? None when nobody reached it."""
    from scipy import stats

    t = np.concatenate([np.asarray(t_a, float), np.asarray(t_b, float)])
    e = np.concatenate([np.asarray(e_a, bool), np.asarray(e_b, bool)])
    in_a = np.concatenate([np.ones(len(t_a), bool), np.zeros(len(t_b), bool)])
    o_minus_e, v = 0.0, 0.0
    for u in np.unique(t[e]):
        risk = t >= u
        n, n_a = int(risk.sum()), int((risk & in_a).sum())
        d, d_a = int(((t == u) & e).sum()), int(((t == u) & e & in_a).sum())
        o_minus_e += d_a - d * n_a / n
        if n > 1:
            v += d * (n_a / n) * (1 - n_a / n) * (n - d) / (n - 1)
    if v == 0:
        return None
    return float(stats.chi2.sf(o_minus_e**2 / v, 1))


def band(
    steps: Sequence[np.ndarray], values: Sequence[np.ndarray], level: float = LEVEL
) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
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


def fmt_p(p: Optional[float], eq: bool = False) -> str:
    """A p-value as printed; eq: with "= " before a number (for sentences: "p = 0.030", "p < 0.001")."""
    if p is None:
        return "-"
    return "< 0.001" if p < 0.001 else ("= " if eq else "") + f"{p:.3f}"


def summary_values(estimates: List[Estimate]) -> List[Optional[float]]:
    return [e.mean for e in estimates]
