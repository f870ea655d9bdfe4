"""Figures of a report (object-oriented matplotlib: no pyplot state, works headless).

One line per seed group: the mean over seeds with a shaded 95% confidence band (no band for a
single seed). They follow Ioffe & Szegedy (2015), Fig. 1: (a) test accuracy with and without BN,
(b, c) the 15/50/85th percentiles of a last-hidden-layer unit's input to its nonlinearity; plus the
density of that input at a few steps, drift in three units, LR tolerance (§3.3), and one figure per
instrument (Santurkar et al. 2018: gradient ICS, landscape; BN inference statistics; BN's noise).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ics.analysis.groups import Group
from ics.analysis.init_tolerance import InitTolerance, has_init_grid
from ics.analysis.load import Job, series
from ics.analysis.stats import MIN_CI_N, band, mean_ci
from ics.analysis.tolerance import GroupTolerance, has_lr_grid
from ics.instruments.probes import SATURATION
from ics.record import Status, names

MAX_PANELS = 12
BUILT_IN = (
    "accuracy",
    "percentiles",
    "density",
    "drift_layers",
    "drift",
    "lr_tolerance",
    "init_tolerance",
    "grad_ics",
    "landscape",
    "gradients",
    "bn_inference",
    "bn_noise",
    "weights",
    "normalizers",
)


def shown_instruments() -> Dict[str, Any]:
    """Instrument key -> its `shown` declaration (ics.instruments.shown), for every registered instrument
    that declares how the report shows it: a figure, a table and a caption with no edit here."""
    from ics.registry import INSTRUMENTS

    return {k: cls.shown for k, cls in INSTRUMENTS.items() if getattr(cls, "shown", None) is not None}


FIGURES = BUILT_IN + tuple(k for k in shown_instruments() if k not in BUILT_IN)  # the report's order
NORM_COLOURS = {"batch": "Blues", "none": "Oranges"}  # colour families; other norms take the rest
OTHER_COLOURS = ("Greens", "Purples", "Reds", "Greys", "PuRd", "BuGn", "YlOrBr")
Getter = Callable[[Job], Optional[Tuple[np.ndarray, np.ndarray]]]


def _figure(nrows: int, ncols: int, w: float = 4.4, h: float = 3.3, sharex: bool = True, sharey: Any = False):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w * ncols + 2.2, h * nrows + 0.8), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, sharex=sharex, sharey=sharey)
    return fig, axes


def group_colours(groups: Sequence[Group]) -> List[Any]:
    """One colour family per norm (BN blue, no BN orange), distinct shades within a family, and a
    different family for every further value of a second varying key (noise, batch size ...)."""
    from matplotlib import colormaps

    keys = [g.norm for g in groups]
    families = dict(NORM_COLOURS)
    spare = iter(OTHER_COLOURS)
    out: List[Any] = [None] * len(groups)
    for norm in dict.fromkeys(keys):
        if norm not in families:  # (not setdefault: that would use up a spare family for batch and none too)
            families[norm] = next(spare, "Greys")
        cmap = colormaps[families[norm]]
        members = [i for i, n in enumerate(keys) if n == norm]
        for k, i in enumerate(members):
            out[i] = cmap(0.9 - 0.55 * k / max(len(members) - 1, 1))  # darkest first, never near-white
    return out


def _style(g: Group) -> str:
    return "-" if g.norm == "batch" else "--"


def draw_groups(
    ax,
    groups: Sequence[Group],
    getter: Getter,
    colours,
    label: bool = True,
    log: bool = False,
    clip: Optional[Tuple[float, float]] = None,
) -> int:
    """Mean ± 95% CI band over each group's seeds, the band clipped to `clip` (the metric's range: an
    accuracy's t-interval from 3 seeds can reach below 0); returns how many groups had data."""
    drawn = 0
    for g, c in zip(groups, colours):
        curves = [r for j in g.jobs if (r := getter(j)) is not None and len(r[0])]
        if not curves:
            continue
        if log:  # a log-scale quantity: geometric mean and its CI (the band of the log values)
            with np.errstate(divide="ignore", invalid="ignore"):
                curves = [
                    (st, np.where(np.asarray(v, float) > 0, np.log10(np.asarray(v, float)), np.nan)) for st, v in curves
                ]
        steps, mean, lo, hi, n = band([s for s, _ in curves], [v for _, v in curves])
        if log:
            mean, lo, hi = 10**mean, 10**lo, 10**hi
        keep = np.isfinite(mean) & ((mean > 0) if log else True)
        text = f"{g.label} (n={len(curves)})" if label else None
        ax.plot(
            steps[keep],
            mean[keep],
            _style(g),
            color=c,
            lw=1.7,
            label=text,
            **({"marker": "o", "ms": 3} if keep.sum() <= 12 else {}),
        )
        multi = keep & (n >= MIN_CI_N)  # no band from fewer seeds: see stats.MIN_CI_N
        if clip is not None:
            lo, hi = np.clip(lo, *clip), np.clip(hi, *clip)
        if multi.any():
            ax.fill_between(steps[multi], lo[multi], hi[multi], color=c, alpha=0.2, lw=0)
        drawn += 1
    if log:
        ax.set_yscale("log")
    ax.grid(alpha=0.3, which="both")
    return drawn


def _legend(fig, axes_flat, n_groups: int) -> None:
    handles, labels = axes_flat[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside right center", fontsize=8 if n_groups <= 16 else 6.5, frameon=False)


def _title_of(groups: Sequence[Group]) -> str:
    norms = sorted({g.norm for g in groups})
    if norms == ["batch", "none"]:
        return "BN (solid, blues) vs no BN (dashed, oranges)"
    return {"batch": "all with BN", "none": "all without BN"}.get(norms[0], "") if len(norms) == 1 else ""


# ----------------------------------------------------------------------------------------------
# Fig. 1a, b/c and the input distributions


def _metric(field: str) -> Getter:
    def get(j: Job):
        m = j.metrics
        if m is None:
            return None
        return m.eval_step, getattr(m, field)

    return get


def fig_accuracy(groups: Sequence[Group], score: str = "accuracy"):
    if not any(j.metrics is not None and len(j.metrics.eval_step) for g in groups for j in g.jobs):
        return None, "no run has evaluation metrics (metrics.npz)"
    fig, axes = _figure(1, 2, w=5.2, sharex=False)
    full, zoom = axes[0]
    colours = group_colours(groups)
    within = (0.0, 1.0) if score == "accuracy" else (-np.inf, 1.0)  # R² <= 1
    draw_groups(full, groups, _metric("test_acc"), colours, clip=within)
    draw_groups(zoom, groups, _metric("test_acc"), colours, label=False, clip=within)
    last = max(
        int(j.metrics.eval_step[-1])
        for g in groups
        for j in g.jobs
        if j.metrics is not None and len(j.metrics.eval_step)
    )
    start = 0.1 * last
    late = [
        v
        for g in groups
        for j in g.jobs
        if j.metrics is not None and j.status != Status.DIVERGED
        for s, v in zip(j.metrics.eval_step, j.metrics.test_acc)
        if s >= start and math.isfinite(v)
    ]
    if late:
        lo, hi = float(np.min(late)), float(np.max(late))
        pad = max(0.003, 0.05 * (hi - lo))
        zoom.set_ylim(lo - pad, min(1.0, hi + pad) if score == "accuracy" else hi + pad)
    zoom.set_xlim(start, last * 1.02)
    full.set_ylim(0 if score == "accuracy" else None, 1.02 if score == "accuracy" else None)
    # the early evaluations are log-spaced and "trains faster" lives there: a log step axis (linear
    # below the first evaluation after step 0, so step 0 stays on it)
    first = min(
        (float(s) for g in groups for j in g.jobs if j.metrics is not None for s in j.metrics.eval_step if s > 0),
        default=1.0,
    )
    full.set_xscale("symlog", linthresh=first, linscale=0.3)
    full.set_xlim(0, last * 1.2)
    full.set_title("whole run (log step axis)")
    zoom.set_title(f"zoom: from step {start:,.0f} (10% of the run)")
    for ax in (full, zoom):
        ax.set_xlabel("training step")
        ax.set_ylabel(f"test {score}")
    fig.suptitle(f"Test {score} (mean ± 95% CI over seeds): {_title_of(groups)}".rstrip(": "))
    _legend(fig, [full], len(groups))
    return fig, None


def tracked_unit(meta: dict) -> Optional[Tuple[str, int]]:
    """(point, unit): the first tracked unit of the last `*.pre_act` point (the last hidden layer)."""
    pre = [p for p in meta.get("points", []) if p.endswith(".pre_act")]
    if not pre:
        return None
    units = (meta.get("tracked_units") or {}).get(pre[-1]) or []
    return (pre[-1], units[0]) if units else None


def _unit_curves(j: Job):
    """(steps, {unit: (p_lo, p_mid, p_hi)}) of every tracked unit of the last hidden layer of a run."""
    meta = j.probes.meta if j.probes is not None else {}
    pu = tracked_unit(meta)
    qs = [names.percentile_name(q) for q in meta.get("percentiles", [])]
    if pu is None or len(qs) < 2:
        return None
    point = pu[0]
    qn = [qs[0], qs[len(qs) // 2], qs[-1]]
    out = {}
    for unit in (meta.get("tracked_units") or {}).get(point) or []:
        tags = [names.unit_tag(point, unit, q) for q in qn]
        if all(t in j.probes.tags and len(j.probes.tags[t]) == len(j.probes.steps) for t in tags):
            out[unit] = tuple(np.asarray(j.probes.tags[t], float) for t in tags)
    return (j.probes.steps, out, point, qn) if out else None


def robust_limits(values: Sequence[np.ndarray], pad: float = 0.08) -> Optional[Tuple[float, float]]:
    """y-limits that hold the bulk of the data: the 0.5th to 99.5th percentile of every finite value,
    padded; one blown-up run is clipped instead of flattening every other panel."""
    flat = np.concatenate([np.ravel(v)[np.isfinite(np.ravel(v))] for v in values]) if values else np.zeros(0)
    if flat.size == 0:
        return None
    lo, hi = np.percentile(flat, [0.5, 99.5])
    span = max(hi - lo, 1e-6)
    return float(lo - pad * span), float(hi + pad * span)


OUTLIER_SPAN = 10.0  # a panel whose range is this many times a typical panel's does not set the shared y-range


def percentile_limits(
    groups: Sequence[Group], panels: Sequence[Sequence[np.ndarray]]
) -> Tuple[Optional[Tuple[float, float]], List[int]]:
    """The y-range of Fig. 1 b/c shared by every panel, and the panels it clips. For a saturating
    nonlinearity: the range every run's own image uses (±Y_SATURATED × the start of its flat part),
    so the report's panels and every Images card of a sweep compare. Otherwise the union of each
    panel's robust range, leaving out panels whose range is OUTLIER_SPAN × a typical one's (the
    lower quartile of the panels' ranges: a blown-up LR): those are clipped, and say so, instead of flattening every other panel."""
    from ics.instruments.probes import Y_SATURATED

    sats = {SATURATION.get(str(g.config.get("model.activation", ""))) for g in groups}
    ranges = [robust_limits(p, pad=0.0) for p in panels]
    if len(sats) == 1 and None not in sats:
        sat = sats.pop() * Y_SATURATED
        return (-sat, sat), [i for i, r in enumerate(ranges) if r is not None and (r[0] < -sat or r[1] > sat)]
    spans = [r[1] - r[0] for r in ranges if r is not None]
    if not spans:
        return None, []
    typical = max(float(np.percentile(spans, 25)), 1e-6)  # a quarter of the panels may be blown up and not count
    kept = [r for r in ranges if r is not None and r[1] - r[0] <= OUTLIER_SPAN * typical]
    lo, hi = min(r[0] for r in kept), max(r[1] for r in kept)
    pad = 0.08 * max(hi - lo, 1e-6)
    clipped = [i for i, r in enumerate(ranges) if r is not None and (r[0] < lo - pad or r[1] > hi + pad)]
    return (lo - pad, hi + pad), clipped


def shade_saturated(ax, g: Group, limits: Optional[Tuple[float, float]]) -> None:
    """Grey bands where the group's nonlinearity is flat (sigmoid |x| > 4.36), on a y-axis of inputs."""
    sat = SATURATION.get(str(g.config.get("model.activation", "")))
    if sat is not None and limits is not None:
        for a, b in ((limits[0], -sat), (sat, limits[1])):
            if b > a:
                ax.axhspan(a, b, color="grey", alpha=0.12, lw=0)


def _grid_of(groups: Sequence[Group]):
    """Panels as rows × columns: with several learning rates, one row per group of the other keys
    (norm ...) and one column per LR; otherwise one panel per group, four to a row."""
    from ics.analysis.configs import LR_KEY, group_key, labels_for

    lrs = sorted({float(g.config[LR_KEY]) for g in groups if g.config.get(LR_KEY) is not None})
    if len(lrs) < 2:
        ncols = min(4, len(groups))
        return [[groups[i : i + ncols]] for i in range(0, len(groups), ncols)], None
    keys = list(dict.fromkeys(group_key(g.config) for g in groups))
    labels = labels_for(keys)
    rows = []
    for k in keys:
        cells = {
            float(g.config[LR_KEY]): g for g in groups if group_key(g.config) == k and g.config.get(LR_KEY) is not None
        }
        rows.append((labels[k], [cells.get(lr) for lr in lrs]))
    return rows, lrs


def fig_percentiles(groups: Sequence[Group]):
    """Fig. 1 b/c: the 15th/50th/85th percentiles of the last hidden layer's units' input over the
    probe set. Every tracked unit of every seed is a faint line, the mean over them bold; all panels
    on one y-scale (robust limits: a diverged run is clipped, not allowed to flatten the others); an
    LR study is laid out as norm × learning rate."""
    data = {}
    for g in groups:
        pairs = [(j, c) for j in g.jobs if (c := _unit_curves(j)) is not None]
        if pairs:
            data[id(g)] = (g, [c for _, c in pairs], [j.status != Status.DIVERGED for j, _ in pairs])
    if not data:
        return None, "no run has probe percentiles of a tracked `*.pre_act` unit (probes.npz)"
    with_data = [g for g in groups if id(g) in data]
    layout, lrs = _grid_of(with_data)
    if lrs is None:
        rows = [(None, [g for g in layout[i][0]]) for i in range(len(layout))]
        ncols = max(len(r[1]) for r in rows)
    else:
        rows, ncols = layout, len(lrs)
        rows = rows[:4]
    fig, axes = _figure(len(rows), ncols, w=3.6 if ncols > 3 else 4.4, h=3.0, sharex=True, sharey=True)
    # each panel's values: its runs that did not diverge (all of them where every one did)
    panel_values = []
    for g in with_data:
        _, curves, oks = data[id(g)]
        pairs = [(ok, v) for c, ok in zip(curves, oks) for u in c[1].values() for v in u]
        panel_values.append([v for ok, v in pairs if ok] or [v for _, v in pairs])
    limits, clipped_at = percentile_limits(with_data, panel_values)
    clipped = {id(with_data[i]) for i in clipped_at}
    qn = next(iter(data.values()))[1][0][3]
    point = next(iter(data.values()))[1][0][2]
    for r, (row_label, cells) in enumerate(rows):
        for c in range(ncols):
            ax = axes[r, c]
            g = cells[c] if c < len(cells) else None
            if g is None or id(g) not in data:
                ax.set_visible(lrs is None)
                ax.axis("off")
                continue
            colour = "tab:blue" if g.norm == "batch" else "tab:orange"
            curves = data[id(g)][1]
            n_lines = 0
            for steps, units, _, _ in curves:
                for lo, mid, hi in units.values():
                    for v, lw in ((lo, 0.6), (mid, 0.8), (hi, 0.6)):
                        ax.plot(steps, v, color=colour, alpha=0.25, lw=lw)
                    n_lines += 1
            common = min(len(s) for s, *_ in curves)
            stack = [np.stack([u[i][:common] for _, units, *_ in curves for u in units.values()]) for i in range(3)]
            steps = curves[0][0][:common]
            for i, ls in enumerate(("--", "-", "--")):
                ax.plot(
                    steps,
                    np.nanmean(stack[i], axis=0),
                    color=colour,
                    lw=2.2,
                    ls=ls,
                    label=f"{qn[i]} (mean)" if r == 0 and c == 0 else None,
                )
            shade_saturated(ax, g, limits)
            diverged = sum(j.status == Status.DIVERGED for j in g.jobs)
            title = g.label if lrs is None else f"{row_label}\nlr={lrs[c]:g}"
            ax.set_title(
                f"{title}\n{n_lines} units × seeds"
                + (f", {diverged} diverged" if diverged else "")
                + (" (clipped)" if id(g) in clipped else ""),
                fontsize=8.5,
                color="firebrick" if id(g) in clipped else "black",
            )
            ax.grid(alpha=0.3)
            ax.set_xlabel("training step")
            if c == 0:
                ax.set_ylabel("input to the nonlinearity")
    if limits is not None:
        axes[0, 0].set_ylim(*limits)
    axes[0, 0].legend(fontsize=7.5, loc="best")
    fig.suptitle(
        f"Fig. 1 b/c: {'/'.join(qn)} percentiles of the last hidden layer's input ({point}) over the probe "
        "set\nfaint: each tracked unit of each seed; bold: their mean; every panel on one y-scale"
    )
    return fig, None


def _pick_steps(steps: np.ndarray, n: int = 4) -> List[int]:
    """n distinct recorded steps near 0, 2%, 10% and 100% of the run (as many as were recorded)."""
    steps = np.asarray(steps)
    end = int(steps[-1])
    picked: List[int] = []
    for w in (0, end // 50, end // 10, end):
        free = [int(s) for s in steps if int(s) not in picked]
        if free:
            picked.append(min(free, key=lambda s: abs(s - w)))
    return sorted(picked)[:n]


def _best_lr_each(groups: Sequence[Group]) -> List[Group]:
    """With several learning rates, each group of the other keys (BN, no BN) at the LR of its best
    mean final score: the density rows compare like with like; otherwise the groups as given."""
    from ics.analysis.configs import LR_KEY, group_key

    if len({g.config.get(LR_KEY) for g in groups}) < 2:
        return list(groups)
    best: Dict[tuple, Group] = {}
    for g in groups:
        k, score = group_key(g.config), g.estimate("final_test_acc").mean
        if score is not None and (k not in best or score > best[k].estimate("final_test_acc").mean):
            best[k] = g
    return list(best.values())


def fig_density(groups: Sequence[Group]):
    """The input of one unit as a distribution that moves: histogram + fitted normal at four
    matched steps, the first seed of each group (at most 4 groups; in an LR study each at its best
    LR) in rows. Each column (a step) shares its x-axis across the groups; the nonlinearity's
    saturated region is shaded."""
    rows = []
    for g in _best_lr_each(groups):
        j = next(
            (
                j
                for j in g.jobs
                if j.probes is not None and "sample_steps" in j.probes.tags and len(j.probes.tags["sample_steps"])
            ),
            None,
        )
        pu = tracked_unit(j.probes.meta) if j else None
        tag = f"samples/{pu[0]}/unit{pu[1]}" if pu else None
        if j is not None and tag in j.probes.tags:
            rows.append((g, j, pu, j.probes.tags["sample_steps"], j.probes.tags[tag]))
    if not rows:
        return None, "no run kept a tracked unit's probe-set values (probes.npz samples/, written since 0.2)"
    rows = rows[:4]
    cols = _pick_steps(rows[0][3])
    fig, axes = _figure(len(rows), len(cols), w=3.2, h=2.4, sharex=False)
    picked = [[r[4][int(np.argmin(np.abs(r[3] - step)))] for step in cols] for r in rows]
    for c in range(len(cols)):  # one x-range per column: the groups at that step side by side
        ranges = [robust_limits([row[c]], pad=0.0) for row in picked]
        spans = [r[1] - r[0] for r in ranges if r is not None]
        typical = max(float(np.percentile(spans, 25)), 1e-6) if spans else 1.0
        # a row 10 × wider than a typical one (a blown-up run) is clipped, not allowed to squash the rest
        # (only a diverged run's row: a healthy one, e.g. BN's wide input at step 0, always stays inside)
        vals = [
            row[c]
            for row, r, (_, j, *_) in zip(picked, ranges, rows)
            if r is not None and (r[1] - r[0] <= OUTLIER_SPAN * typical or j.status != Status.DIVERGED)
        ]
        lim = robust_limits(vals, pad=0.05) or (-1.0, 1.0)
        for r, (g, j, _point_unit, sst, _values) in enumerate(rows):
            ax = axes[r, c]
            x = picked[r][c][np.isfinite(picked[r][c])]
            i = int(np.argmin(np.abs(sst - cols[c])))
            colour = "tab:blue" if g.norm == "batch" else "tab:orange"
            sat = SATURATION.get(str(g.config.get("model.activation", "")))
            if sat is not None:
                for lo, hi in ((lim[0], -sat), (sat, lim[1])):
                    if hi > lo:
                        ax.axvspan(lo, hi, color="grey", alpha=0.15, lw=0)
            ax.hist(np.clip(x, *lim), bins=40, range=lim, density=True, color=colour, alpha=0.5)
            if x.size > 1 and x.std() > 0:
                grid = np.linspace(*lim, 200)
                mu, sd = float(x.mean()), float(x.std())
                ax.plot(grid, np.exp(-0.5 * ((grid - mu) / sd) ** 2) / (sd * math.sqrt(2 * math.pi)), color="k", lw=1.2)
                ax.axvline(mu, color="k", lw=0.8, ls=":")
            ax.set_xlim(*lim)
            ax.set_title(f"step {int(sst[i]):,}", fontsize=8.5)
            if c == 0:
                ax.set_ylabel(f"{g.label}, seed {j.seed}\ndensity", fontsize=8)
    sat = SATURATION.get(str(rows[0][0].config.get("model.activation", "")))
    fig.supxlabel(
        f"input to the nonlinearity ({rows[0][2][0]}, unit {rows[0][2][1]}; probe set); each column shares "
        "its x-axis" + (f"; grey: saturated region |x| > {sat} (derivative < 5% of its peak)" if sat else "")
    )
    fig.suptitle("How one unit's input distribution moves: histogram and fitted normal (black) at four steps")
    return fig, None


def _drift(point_of: Callable[[Job], Optional[str]], metric: str) -> Getter:
    def get(j: Job):
        p = point_of(j)
        if j.probes is None or p is None:
            return None
        tag = names.drift_tag(p, metric)
        return (j.probes.steps, j.probes.tags[tag]) if tag in j.probes.tags else None

    return get


def _last_pre(j: Job) -> Optional[str]:
    pre = [p for p in (j.probes.meta.get("points", []) if j.probes else []) if p.endswith(".pre_act")]
    return pre[-1] if pre else None


def _first_pre(j: Job) -> Optional[str]:
    pre = [p for p in (j.probes.meta.get("points", []) if j.probes else []) if p.endswith(".pre_act")]
    return pre[0] if pre else None


def decades(getters: Sequence[Getter], groups: Sequence[Group]) -> float:
    """How many decades the positive values of these series span (0 when none): a log axis over less
    than one shows ticks like 6×10⁻¹ and no more than a linear one."""
    values = [np.asarray(r[1], float) for get in getters for g in groups for j in g.jobs if (r := get(j)) is not None]
    v = np.concatenate(values) if values else np.zeros(0)
    v = v[np.isfinite(v) & (v > 0)]
    return float(np.log10(v.max() / v.min())) if v.size else 0.0


def fig_drift(groups: Sequence[Group]):
    """Drift from step 0 of the first and the last hidden layer's pre-activations, in raw units,
    shape-only, and σ_ref units (the unit that inflates small-spread layers) -- in that order."""
    if not any(j.probes is not None for g in groups for j in g.jobs):
        return None, "no run has drift series (probes.npz)"
    fig, axes = _figure(2, 3, w=4.0, h=3.0, sharey="col")  # a column is one unit: both layers on one y-scale
    colours = group_colours(groups)
    units = [("w1_raw", "W1 raw (input units)"), ("w1_shape", "W1 shape (standardised)"), ("w1_ref", "W1 / σ_ref")]
    layers = (("last hidden layer", _last_pre), ("first hidden layer", _first_pre))
    for c, (metric, title) in enumerate(units):
        log = decades([_drift(point_of, metric) for _, point_of in layers], groups) >= 1.0
        for r, (where, point_of) in enumerate(layers):
            ax = axes[r, c]
            draw_groups(ax, groups, _drift(point_of, metric), colours, label=(r == 0 and c == 0), log=log)
            ax.set_title(f"{title}: {where}" + (" (log)" if log else ""), fontsize=9)
    fig.supxlabel("training step")
    fig.supylabel("distance to the step-0 distribution (log axis where the data span a decade or more)")
    fig.suptitle(
        "Drift of the pre-activation distribution from initialisation, in three units "
        "(geometric mean ± 95% CI over seeds)"
    )
    _legend(fig, axes.ravel(), len(groups))
    return fig, None


def fig_drift_layers(groups: Sequence[Group]):
    """Final drift of every probed layer's input from step 0 (summary.json), raw and shape units:
    per group a bar per layer, mean over seeds with its 95% CI (diverged runs left out; no error bar
    below MIN_CI_N seeds)."""
    points = list(
        dict.fromkeys(
            p
            for g in groups
            for j in g.jobs
            if j.summary is not None
            for p in j.summary.drift
            if p.endswith(".pre_act")
        )
    )
    if not points:
        return None, "no run recorded final drift (probe instrument)"
    fig, axes = _figure(1, 2, w=max(4.4, 1.1 * len(points) * max(1, len(groups)) ** 0.5), h=3.4, sharex=False)
    colours = group_colours(groups)
    width = 0.8 / max(1, len(groups))
    x = np.arange(len(points))
    for ax, (metric, title) in zip(
        axes[0], (("w1_raw", "W1 raw (input units)"), ("w1_shape", "W1 shape (standardised)"))
    ):
        for k, (g, c) in enumerate(zip(groups, colours)):
            est = [
                mean_ci([j.summary.drift.get(p, {}).get(metric) for j in g.jobs if j.status != Status.DIVERGED])
                for p in points
            ]
            mean = np.array([np.nan if e.mean is None else e.mean for e in est])
            err = np.array([e.shown_half or 0.0 for e in est])
            ax.bar(
                x + (k - (len(groups) - 1) / 2) * width,
                mean,
                width,
                yerr=err,
                color=c,
                capsize=3,
                label=f"{g.label} (n={max(e.n for e in est)})" if metric == "w1_raw" else None,
                hatch=None if g.norm == "batch" else "//",
                edgecolor="k",
                lw=0.4,
            )
        ax.set_xticks(x, [p.replace(".pre_act", "") for p in points])
        ax.set_xlabel("layer (input to its nonlinearity)")
        ax.set_ylabel(title)
        ax.set_title(f"final drift from step 0: {title}", fontsize=9.5)
        ax.grid(alpha=0.3, axis="y")
    fig.suptitle("Final drift per layer, mean over units, then mean ± 95% CI over seeds")
    _legend(fig, axes.ravel(), len(groups))
    return fig, None


# ----------------------------------------------------------------------------------------------
# LR tolerance


def fig_lr_tolerance(tol: Sequence[GroupTolerance]):
    """Score vs nominal LR (limits marked); and, for groups that recorded it (BN), score vs the
    effective LR η/‖w‖² their runs ended with."""
    if not has_lr_grid(tol):
        return None, "no group of runs was trained at two or more learning rates"
    from matplotlib import colormaps

    eff = [g for g in tol if any(p.eff_lr is not None for p in g.points)]
    fig, axes = _figure(1, 2 if eff else 1, w=6.2, h=4.4, sharex=False, sharey=True)
    ax = axes[0, 0]
    cmap = colormaps["tab10"]
    colour = {g.label: cmap(i % 10) for i, g in enumerate(tol)}
    for g in tol:
        c = colour[g.label]
        lrs = np.array(g.lrs)
        mean = np.array([p.score.mean for p in g.points])
        half = np.array([p.score.half or 0.0 for p in g.points])
        ax.errorbar(lrs, mean, yerr=half, color=c, marker="o", ms=4, capsize=3, lw=1.5, label=g.label)
        bad = np.array([p.diverging for p in g.points])
        if bad.any():
            ax.plot(lrs[bad], mean[bad], "x", color=c, ms=11, mew=2.4)
        if g.max_nondiverging_lr is not None:
            ax.axvline(g.max_nondiverging_lr, color=c, ls=":", lw=1.4)
        if g.max_good_lr is not None:
            p = g.point(g.max_good_lr)
            ax.plot([g.max_good_lr], [p.score.mean], marker="v", color=c, ms=12, mec="k")
    ax.plot([], [], "x", color="k", ms=10, mew=2.4, label="≥1 seed diverged (counted at chance)")
    ax.plot([], [], ":", color="k", label="max non-diverging LR")
    ax.plot([], [], "v", color="w", mec="k", ms=10, label=f"max good LR (≥ {tol[0].fraction:g} × best)")
    chance = [g.chance for g in tol if g.chance is not None]
    if chance:
        ax.axhline(float(np.median(chance)), color="grey", lw=1, ls="--", label="chance")
    on = "validation" if any(g.on_validation for g in tol) else "test"
    ax.set_xscale("log")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("nominal learning rate η (log scale)")
    ax.set_ylabel(f"{on} accuracy (mean ± 95% CI)")
    ax.set_title("stability and accuracy vs the nominal LR", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    if eff:
        ax2 = axes[0, 1]
        for g in eff:
            pts = [(p.eff_lr, p.score.mean) for p in g.points if p.eff_lr is not None and p.score.mean is not None]
            if pts:
                x, y = zip(*pts)
                ax2.plot(x, y, marker="o", ms=4, color=colour[g.label], lw=1.5)
        ax2.set_xscale("log")
        ax2.set_xlabel("effective LR η/‖w‖² at the end (rows feeding BN; log scale)")
        ax2.set_title("the BN groups against their effective LR", fontsize=10)
        ax2.grid(alpha=0.3, which="both")
    fig.legend(*ax.get_legend_handles_labels(), loc="outside right center", fontsize=7.5, frameon=False)
    fig.suptitle("Learning-rate tolerance (BN paper §3.3)")
    return fig, None


def fig_init_tolerance(itol: Sequence[InitTolerance]):
    """Score vs the init std (log axis), mean ± 95% CI per group; each group's good range (thick bar)
    and learning range (thin bar) drawn under the curves, one row per group."""
    if not has_init_grid(itol):
        return None, "no group of runs was trained at two or more init scales"
    from matplotlib import colormaps

    fig, axes = _figure(1, 1, w=7.4, h=4.8)
    ax = axes[0, 0]
    cmap = colormaps["tab10"]
    for i, g in enumerate(itol):
        c = cmap(i % 10)
        x = np.array(g.scales)
        mean = np.array([p.score.mean for p in g.points], dtype=float)
        half = np.array([p.score.half or 0.0 for p in g.points])
        ax.errorbar(x, mean, yerr=half, color=c, marker="o", ms=4, capsize=3, lw=1.5, label=g.label)
        y = -0.05 - 0.045 * i  # the ranges sit below the axis' 0, one row per group
        if g.learn_range is not None:
            ax.plot(g.learn_range, [y, y], color=c, lw=2, solid_capstyle="butt", marker="|", ms=8)
        if g.good_range is not None:
            ax.plot(g.good_range, [y, y], color=c, lw=6, solid_capstyle="butt")
    ax.plot([], [], color="k", lw=6, label=f"good range (>= {itol[0].fraction:g} × best)")
    ax.plot([], [], color="k", lw=2, marker="|", ms=8, label="learns at all")
    chance = [g.chance for g in itol if g.chance is not None]
    if chance:
        c0 = float(np.median(chance))
        ax.axhline(c0, color="grey", lw=1, ls="--", label="chance")
        ax.axhline(itol[0].learn_threshold(), color="grey", lw=1, ls=":", label="'learns' threshold")
    on = "validation" if any(g.on_validation for g in itol) else "test"
    ax.set_xscale("log")
    ax.set_ylim(-0.07 - 0.045 * len(itol), 1.02)
    ax.set_xlabel("init std s of N(0, s²) (log scale)")
    ax.set_ylabel(f"{on} accuracy (mean ± 95% CI)")
    ax.grid(alpha=0.3, which="both")
    fig.legend(*ax.get_legend_handles_labels(), loc="outside right center", fontsize=7.5, frameon=False)
    fig.suptitle("Initialisation tolerance: which init scales train, with and without BN")
    return fig, None


# ----------------------------------------------------------------------------------------------
# instruments


def _tag(key: str, tag: str) -> Getter:
    def get(j: Job):
        s = series(j, key)
        if s is None or tag not in s.tags:
            return None
        return s.steps, s.tags[tag]

    return get


def _meta(groups: Sequence[Group], key: str) -> Optional[dict]:
    return next((s.meta for g in groups for j in g.jobs if (s := series(j, key)) is not None), None)


def _panels(groups, key: str, panels: List[Tuple[str, str, bool]], title: str, ncols: int = 4):
    colours = group_colours(groups)
    nrows = math.ceil(len(panels) / ncols)
    fig, axes = _figure(nrows, min(ncols, len(panels)), w=3.9, h=2.9)
    flat = axes.ravel()
    for ax in flat[len(panels) :]:
        ax.set_visible(False)
    for i, (ax, (tag, ylabel, log)) in enumerate(zip(flat, panels)):
        draw_groups(ax, groups, _tag(key, tag), colours, label=(i == 0), log=log)
        ax.set_title(ylabel, fontsize=9)
    fig.supxlabel("training step")
    fig.suptitle(title)
    _legend(fig, flat, len(groups))
    return fig


def fig_grad_ics(groups: Sequence[Group]):
    meta = _meta(groups, "grad_ics")
    if meta is None:
        return None, "no run measured gradient ICS (grad_ics=on)"
    layers = meta["layers"][1:] or meta["layers"]  # the first layer has no earlier layers: G′ = G by definition
    pick = sorted(
        {layers[0], layers[len(layers) // 2], layers[-2] if len(layers) > 1 else layers[0], layers[-1]},
        key=layers.index,
    )
    panels = [(f"grad_ics/{l}/cos", f"cos(G, G′) {l}", False) for l in pick] + [
        (f"grad_ics/{l}/rel_l2", f"‖G − G′‖/‖G‖ {l}", True) for l in pick
    ]
    return _panels(
        groups,
        "grad_ics",
        panels,
        "Gradient ICS (Santurkar et al. 2018, Def. 2.1): mean ± 95% CI (log panels: geometric)",
        ncols=len(pick),
    ), None


def fig_landscape(groups: Sequence[Group]):
    meta = _meta(groups, "landscape")
    if meta is None:
        return None, "no run measured the loss landscape (landscape=on)"
    panels = [
        ("landscape/loss_range", "loss range along the step", True),
        ("landscape/grad_change_rel", "max ‖∇L(θ_k) − g‖ / ‖g‖", True),
        ("landscape/beta", "effective β-smoothness", True),
    ]
    if any((s := series(j, "landscape")) is not None and s.meta.get("scale_invariant") for g in groups for j in g.jobs):
        panels += [
            ("landscape/si/loss_range", "loss range, unit-norm BN-fed rows", True),
            ("landscape/si/grad_change_rel", "gradient change, unit-norm rows", True),
            ("landscape/si/beta", "effective β, unit-norm rows", True),
        ]
    n_before = len(panels)
    if meta.get("hessian"):
        panels += [
            ("landscape/top_eig", "largest Hessian eigenvalue (dashed: 2/lr)", True),
            ("landscape/min_eig", "most negative Hessian eigenvalue", False),
        ]
    fig = _panels(
        groups, "landscape", panels, "Loss landscape along the training step (Santurkar et al. 2018, §3.2)", ncols=3
    )
    if meta.get("hessian"):
        ax = fig.axes[n_before]
        for g, c in zip(groups, group_colours(groups)):
            lrs = {g.config.get("optim.lr")}
            for lr in lrs:
                if lr:
                    ax.axhline(2 / float(lr), color=c, ls="--", lw=1)
    return fig, None


def fig_gradients(groups: Sequence[Group]):
    meta = _meta(groups, "gradients")
    if meta is None:
        return None, "no run measured gradient flow (gradients=on)"
    layers, blocks = meta["layers"], meta.get("blocks", [])
    pick = sorted({layers[0], layers[len(layers) // 2], layers[-2] if len(layers) > 1 else layers[0]}, key=layers.index)
    panels = [(f"gradients/{l}/grad_ratio", f"‖∇W‖ / ‖∇W_out‖, {l}", True) for l in pick]
    panels += [(f"gradients/{b}/saturated", f"saturated fraction of g′, {b}", False) for b in pick if b in blocks]
    return _panels(
        groups, "gradients", panels, "Gradient flow: do the first layers' gradients vanish?", ncols=len(pick)
    ), None


def fig_bn_inference(groups: Sequence[Group]):
    meta = _meta(groups, "bn_stats")
    if meta is None:
        return None, "no run evaluated BN inference statistics (bn_stats=on)"
    kinds = ["ema", "precise"] + [f"batch{b}" for b in meta["test_batch_sizes"]]
    panels = [(f"test_bn/{k}/acc", f"test accuracy, {k} statistics", False) for k in kinds]
    return _panels(
        groups,
        "bn_stats",
        panels,
        "BN inference statistics: EMA vs precise (population) vs batch",
        ncols=min(4, len(panels)),
    ), None


def fig_bn_noise(groups: Sequence[Group]):
    meta = _meta(groups, "bn_noise")
    if meta is None:
        return None, "no run measured BN's noise (bn_noise=on)"
    panels = []
    for l in meta["layers"][:4]:
        panels += [
            (f"bn_noise/{l}/r_std", f"spread of r = σ_B/σ_pop, {l}", False),
            (f"bn_noise/{l}/d_abs", f"mean |d| = |μ_B − μ_pop|/σ_pop, {l}", False),
        ]
    return _panels(groups, "bn_noise", panels, "BN's own step-to-step noise (Batch Renormalization r, d)"), None


def fig_weights(groups: Sequence[Group]):
    meta = _meta(groups, "weights")
    if meta is None:
        return None, "no run measured weight norms (weights=on)"
    layers = meta["layers"]
    panels = [(f"weights/{l}/row_norm_median", f"median ‖w_k‖, {l}", True) for l in layers[:3]]
    panels += [(f"weights/{l}/eff_lr_median", f"η/‖w_k‖², {l}", True) for l in meta.get("bn_layers", [])[:3]]
    return _panels(groups, "weights", panels, "Weight-row norms and the effective learning rate (BN paper §3.3)"), None


def fig_shown(groups: Sequence[Group], key: str, shown):
    """The figure an instrument declares (ics.instruments.shown): one panel per column."""
    meta = _meta(groups, key)
    if meta is None:
        return None, f"no run measured {key} ({key}=on)"
    panels = [(c.tag, c.label, c.log) for c in shown.expand(meta)]
    if not panels:
        return None, f"{key}'s runs list no {shown.over}"
    return _panels(groups, key, panels, shown.title), None


def fig_normalizers(groups: Sequence[Group], targets: Sequence[str]):
    """One bar per seed group (mean, 95% CI whiskers) for each of the per-normaliser table's numbers."""
    from ics.analysis.tables import is_norm_study, last_hidden, norm_measures

    if not is_norm_study(groups):
        return None, "the groups do not compare normalisers beyond none/batch (model.norm)"
    point, layer = last_hidden(groups)
    rows = [norm_measures(g, targets, point, layer) for g in groups]
    names_ = [c for c in rows[0] if c != "β" and any(r[c].mean is not None for r in rows)]
    log = {"eff LR"}
    ncols = min(4, len(names_))
    fig, axes = _figure(math.ceil(len(names_) / ncols), ncols, w=3.6, h=2.9, sharex=False)
    flat = axes.ravel()
    for ax in flat[len(names_) :]:
        ax.set_visible(False)
    colours = group_colours(groups)
    x = np.arange(len(groups))
    for ax, name in zip(flat, names_):
        est = [r[name] for r in rows]
        mean = np.array([np.nan if e.mean is None else e.mean for e in est])
        err = np.array([0.0 if e.half is None else e.half for e in est])
        ax.bar(x, np.nan_to_num(mean), yerr=err, color=colours, capsize=3)
        if name in log and np.nanmin(np.where(mean > 0, mean, np.nan), initial=np.inf) < np.inf:
            ax.set_yscale("log")
        if name in ("final test acc", "early acc") and np.isfinite(mean).any():
            lo = np.nanmin(mean - err)
            ax.set_ylim(max(0.0, lo - 0.02), min(1.0, np.nanmax(mean + err) + 0.01))
        ax.set_title(
            name
            + (" (an eighth into the run)" if name == "early acc" else "")
            + (f" ({layer})" if name in ("grad-ICS cos", "eff LR") else "")
            + (f" ({point})" if name.startswith("drift") else ""),
            fontsize=9,
        )
        ax.set_xticks(
            x,
            [g.label.replace("model.", "").replace("trainer.", "") for g in groups],
            rotation=60,
            ha="right",
            fontsize=7,
        )
        ax.grid(alpha=0.3, axis="y")
    fig.suptitle("Normalisers side by side: mean ± 95% CI over seeds (a missing bar: not measured / not defined)")
    return fig, None


def make_figures(
    groups: Sequence[Group],
    tol: Sequence[GroupTolerance],
    score: str,
    every: Optional[Sequence[Group]] = None,
    itol: Sequence[InitTolerance] = (),
    targets: Sequence[str] = (),
) -> Dict[str, Tuple[Any, Optional[str]]]:
    """name -> (Figure or None, the reason it was skipped). A figure that cannot be drawn from the
    files read (a job's npz that is not what its instrument writes) is skipped with the reason; the
    other figures and the report go on. every: all the groups, for the percentile panels (norm × LR);
    groups: those drawn as curves."""
    makers = {
        "accuracy": lambda: fig_accuracy(groups, score),
        "percentiles": lambda: fig_percentiles(every or groups),
        "density": lambda: fig_density(groups),
        "drift_layers": lambda: fig_drift_layers(groups),
        "drift": lambda: fig_drift(groups),
        "lr_tolerance": lambda: fig_lr_tolerance(tol),
        "init_tolerance": lambda: fig_init_tolerance(itol),
        "grad_ics": lambda: fig_grad_ics(groups),
        "landscape": lambda: fig_landscape(groups),
        "gradients": lambda: fig_gradients(groups),
        "bn_inference": lambda: fig_bn_inference(groups),
        "bn_noise": lambda: fig_bn_noise(groups),
        "weights": lambda: fig_weights(groups),
        "normalizers": lambda: fig_normalizers(groups, targets),
    }
    for key, shown in shown_instruments().items():  # bound now: the loop variables move on
        makers.setdefault(key, lambda key=key, shown=shown: fig_shown(groups, key, shown))
    out: Dict[str, Tuple[Any, Optional[str]]] = {}
    for name, make in makers.items():
        try:
            out[name] = make()
        except Exception as e:  # noqa: BLE001 - data from files anyone may have written
            out[name] = (None, f"could not be drawn from these files ({type(e).__name__}: {str(e)[:100]})")
    return out
