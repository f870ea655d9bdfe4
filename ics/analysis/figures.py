"""Figures of a report (object-oriented matplotlib: no pyplot state, works headless).

They follow Ioffe & Szegedy (2015), Fig. 1: (a) test accuracy with and without BN, (b, c) the
15/50/85th percentiles of one last-hidden-layer unit's input to its nonlinearity over training;
plus LR tolerance (§3.3) and the drift of every probe point.
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ics.analysis.load import Job
from ics.analysis.tolerance import GroupTolerance, has_lr_grid
from ics.record import Status, names

MAX_PANELS = 12  # per-run panel figures show at most this many runs (readability)
FIGURES = ("accuracy", "percentiles", "lr_tolerance", "drift")
NORM_COLOURS = {"batch": "Blues", "none": "Oranges"}  # colour families; other norms take the rest
OTHER_COLOURS = ("Greens", "Purples", "Reds", "Greys")

def _figure(n_panels: int, panel_w: float = 4.2, panel_h: float = 3.2, sharey: bool = True):
    from matplotlib.figure import Figure

    ncols = min(4, n_panels)
    nrows = math.ceil(n_panels / ncols)
    fig = Figure(figsize=(panel_w * ncols, panel_h * nrows + 0.6), layout="constrained")
    axes = fig.subplots(nrows, ncols, sharex=True, sharey=sharey, squeeze=False).ravel()
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    return fig, axes[:n_panels]


def norm_colours(norms: Sequence[str]) -> List[Any]:
    """A colour per item from its norm: one colour family per norm (BN blue, no BN orange),
    shades within the family so runs of the same norm stay distinguishable."""
    from matplotlib import colormaps

    families = dict(NORM_COLOURS)
    spare = iter(OTHER_COLOURS)
    out: List[Any] = [None] * len(norms)
    for norm in sorted(set(norms)):
        cmap = colormaps[families.setdefault(norm, next(spare, "Greys"))]
        members = [i for i, n in enumerate(norms) if n == norm]
        for k, i in enumerate(members):
            out[i] = cmap(0.95 - 0.45 * k / max(len(members) - 1, 1))  # darkest first, never near-white
    return out


def _markers(n_points: int) -> dict:
    # few points (short runs, a run cut short by divergence): show them, a single point has no line
    return {"marker": "o", "ms": 3} if n_points <= 12 else {}


def _note_if_empty(ax, n_points: int, j: "Job") -> None:
    """A run stopped before its second probe has nothing to draw over time: say why."""
    if n_points < 2:
        ax.text(0.5, 0.5, f"no probe after step 0\n({j.status_text})", transform=ax.transAxes,
                ha="center", va="center", fontsize=9, color="dimgrey")


def _mark_off_scale(ax, arrays: Sequence[np.ndarray], lims: Tuple[float, float]) -> None:
    """Say so in a panel whose values leave the shared y range."""
    vals = np.concatenate([a[np.isfinite(a)] for a in arrays])
    if vals.size and (vals.min() < lims[0] or vals.max() > lims[1]):
        ax.text(0.5, 0.95, f"off scale: values in [{vals.min():.3g}, {vals.max():.3g}]", transform=ax.transAxes,
                ha="center", va="top", fontsize=8, color="crimson",
                bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "crimson"})


def panel_jobs(items: Sequence[Tuple[Job, Any]], limit: int = MAX_PANELS) -> List[Tuple[Job, Any]]:
    """At most `limit` (job, data) pairs for a per-run panel figure. When there are more, take the
    lowest seed of every config first and alternate between norms, so BN and no-BN both show."""
    if len(items) <= limit:
        return list(items)
    seeds = sorted({repr(j.config.get("trainer.seed")) for j, _ in items})
    by_norm: Dict[str, List[Tuple[Job, Any]]] = {}
    for it in sorted(items, key=lambda it: (seeds.index(repr(it[0].config.get("trainer.seed"))), it[0].num)):
        by_norm.setdefault(it[0].norm, []).append(it)
    queues, chosen = list(by_norm.values()), []
    while len(chosen) < limit:
        for q in queues:
            if q and len(chosen) < limit:
                chosen.append(q.pop(0))
    return sorted(chosen, key=lambda it: it[0].num)


def _panel_title(j: Job) -> str:
    return f"#{j.num} {j.label}\n{j.status_text}"


def robust_limits(arrays: Sequence[np.ndarray], pad: float = 0.08, q: float = 0.0) -> Optional[Tuple[float, float]]:
    """y limits covering the q-th to (100-q)-th percentile of the finite values (q > 0: a few
    blown-up values must not squash every other panel of a shared axis)."""
    vals = np.concatenate([a[np.isfinite(a)] for a in arrays]) if arrays else np.array([])
    if vals.size == 0:
        return None
    lo, hi = np.percentile(vals, [q, 100 - q])
    span = hi - lo if hi > lo else max(abs(hi), 1.0)
    return float(lo - pad * span), float(hi + pad * span)


def fig_accuracy(jobs: Sequence[Job]):
    """Test accuracy vs training step, one line per run, coloured by norm (BN paper Fig. 1a)."""
    have = [(i, j) for i, j in enumerate(jobs) if j.metrics is not None and len(j.metrics.eval_step) > 0]
    if not have:
        return None, "no run has evaluation metrics (metrics.npz)"
    from matplotlib.figure import Figure

    colours = norm_colours([j.norm for j in jobs])
    fig = Figure(figsize=(12 if len(have) <= 8 else 14, 5.6), layout="constrained")
    full, zoom = fig.subplots(1, 2)
    late = []  # accuracies after the first 10% of training: the zoomed panel's y range
    for i, j in have:
        steps, acc = j.metrics.eval_step, j.metrics.test_acc
        style = "-" if j.norm == "batch" else "--"
        label = f"#{j.num} {j.label}" + (f" ({j.status_text})" if j.status in (Status.DIVERGED, Status.FAILED) else "")
        for ax in (full, zoom):
            ax.plot(steps, acc, style, color=colours[i], lw=1.8, label=label if ax is full else None,
                    **_markers(len(steps)))
        if j.status == Status.DIVERGED:
            ok = np.isfinite(acc)
            if ok.any():
                full.plot(steps[ok][-1], acc[ok][-1], "x", color=colours[i], ms=10, mew=2.5)
        elif len(steps) > 1:
            tail = acc[(steps >= 0.1 * steps[-1]) & np.isfinite(acc)]
            late += list(tail)
    full.set_ylim(0, 1.02)
    full.set_title("whole range")
    if late:
        lo, hi = float(np.min(late)), float(np.max(late))
        pad = max(0.005, 0.05 * (hi - lo))
        zoom.set_ylim(lo - pad, min(1.0, hi + pad))
    zoom.set_title("zoom: after the first 10% of training")
    for ax in (full, zoom):
        ax.set_xlabel("training step")
        ax.set_ylabel("test accuracy (fraction)")
        ax.grid(alpha=0.3)
    # a figure title: the axes are narrowed by the legend, an axes title would be clipped
    fig.suptitle("Test accuracy over training: BN (solid, blues) vs no BN (dashed, oranges); × = diverged")
    fig.legend(fontsize=8 if len(have) <= 24 else 6.5, loc="outside right center",
               frameon=False, ncols=1 if len(have) <= 24 else 2)
    return fig, None


def tracked_unit(meta: dict) -> Optional[Tuple[str, int]]:
    """(point, unit): the first tracked unit of the last `*.pre_act` point (the last hidden layer)."""
    pre = [p for p in meta.get("points", []) if p.endswith(".pre_act")]
    if not pre:
        return None
    units = (meta.get("tracked_units") or {}).get(pre[-1]) or []
    return (pre[-1], units[0]) if units else None


def _unit_series(j: Job) -> Optional[Tuple[str, int, np.ndarray, List[np.ndarray], List[str]]]:
    """(point, unit, steps, [low, mid, high] percentile series, their names) of a job, or None."""
    if j.probes is None:
        return None
    steps, series, meta = j.probes.steps, j.probes.tags, j.probes.meta
    pu = tracked_unit(meta)
    qs = [names.percentile_name(q) for q in meta.get("percentiles", [])]
    if pu is None or len(qs) < 2:
        return None
    picked = [qs[0], qs[len(qs) // 2], qs[-1]]
    tags = [names.unit_tag(pu[0], pu[1], q) for q in picked]
    if not all(t in series for t in tags):
        return None
    return pu[0], pu[1], steps, [series[t] for t in tags], picked


def fig_percentiles(jobs: Sequence[Job]):
    """p15-p85 band and median of one last-layer unit's input to its nonlinearity (Fig. 1 b/c)."""
    have = panel_jobs([(j, s) for j in jobs if (s := _unit_series(j)) is not None])
    if not have:
        return None, "no run has probe percentiles of a tracked `*.pre_act` unit (probes.npz)"
    fig, axes = _figure(len(have))
    # the shared y range comes from the runs that trained normally, so a blown-up run does not
    # flatten every other panel; its own panel says it is off scale
    healthy = [a for j, s in have if j.status in (Status.COMPLETED, Status.INTERRUPTED) for a in s[3]]
    lims = robust_limits(healthy) if healthy else robust_limits([a for _, s in have for a in s[3]], q=5)
    for ax, (j, (point, unit, steps, (lo, mid, hi), qn)) in zip(axes, have):
        colour = "tab:blue" if j.norm == "batch" else "tab:orange"
        ax.fill_between(steps, lo, hi, color=colour, alpha=0.3, lw=0, label=f"{qn[0]}–{qn[2]}")
        ax.plot(steps, mid, color=colour, lw=1.8, label=qn[1], **_markers(len(steps)))
        ax.set_title(f"{_panel_title(j)} · {point} unit {unit}", fontsize=8.5)
        ax.grid(alpha=0.3)
        _note_if_empty(ax, len(steps), j)
        if lims:
            _mark_off_scale(ax, [lo, hi], lims)
    if lims:
        axes[0].set_ylim(*lims)
    for ax in axes:
        ax.label_outer()
    axes[0].legend(fontsize=8, loc="best")
    fig.supxlabel("training step")
    fig.supylabel("input to the nonlinearity (pre-activation value)")
    fig.suptitle("Evolution of one last-hidden-layer unit's input distribution (percentiles over the probe set)")
    return fig, None


def fig_lr_tolerance(groups: Sequence[GroupTolerance]):
    """Final accuracy vs learning rate per group, error bars over seeds, × = a run diverged/failed."""
    if not has_lr_grid(groups):
        return None, "no group of runs was trained at two or more learning rates"
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 5.2), layout="constrained")
    ax = fig.subplots()
    colours = norm_colours([str(dict(g.key).get("model.norm", "?")) for g in groups])
    for g, c in zip(groups, colours):
        lrs = np.array(g.lrs)
        mean = np.array([p.mean_acc for p in g.points])
        std = np.array([p.std_acc for p in g.points])
        ax.errorbar(lrs, mean, yerr=std, color=c, marker="o", ms=5, capsize=3, lw=1.6, label=g.label)
        bad = np.array([not p.stable for p in g.points])
        if bad.any():
            ax.plot(lrs[bad], mean[bad], "x", color=c, ms=12, mew=2.5)
        if g.min_good_lr is not None:  # the qualifying range, drawn at the accuracy threshold
            thr = g.fraction * g.best_acc
            # end ticks: a single qualifying LR still shows up as a mark
            ax.plot([g.min_good_lr, g.max_stable_lr], [thr, thr], ":", color=c, lw=3, alpha=0.8,
                    marker="|", ms=14, mew=2.5)
    ax.plot([], [], "x", color="k", ms=10, mew=2.5, label="≥1 run diverged or failed (counted at chance)")
    ax.plot([], [], ":", color="k", lw=3, marker="|", ms=14, mew=2.5,
            label=f"qualifying LRs (min good … max stable), at {groups[0].fraction:g} × best")
    chance = [g.chance_acc for g in groups if g.chance_acc is not None]
    if chance:
        ax.axhline(float(np.median(chance)), color="grey", lw=1, ls="--", label="chance")
    ax.set_xscale("log")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel("final test accuracy (fraction; mean ± std over seeds)")
    ax.set_title("Learning-rate tolerance")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    return fig, None


def _drift_series(j: Job) -> Optional[Tuple[np.ndarray, Dict[str, np.ndarray]]]:
    if j.probes is None:
        return None
    steps, series, meta = j.probes.steps, j.probes.tags, j.probes.meta
    lines = {p: series[names.drift_tag(p, "w1_ref")] for p in meta.get("points", [])
             if names.drift_tag(p, "w1_ref") in series}
    return (steps, lines) if lines else None


def fig_drift(jobs: Sequence[Job]):
    """W1 distance of every probe point's input distribution to its step-0 reference, per run."""
    have = panel_jobs([(j, s) for j in jobs if (s := _drift_series(j)) is not None])
    if not have:
        return None, "no run has drift series (probes.npz with drift/<point>/w1_ref)"
    from matplotlib import colormaps

    fig, axes = _figure(len(have))
    points = list(dict.fromkeys(p for _, (_, lines) in have for p in lines))
    cmap = colormaps["viridis"]
    colour = {p: cmap(0.85 * k / max(len(points) - 1, 1)) for k, p in enumerate(points)}
    for ax, (j, (steps, lines)) in zip(axes, have):
        for p, v in lines.items():
            keep = np.isfinite(v) & (v > 0)  # log axis: step 0 is 0 by definition
            ax.plot(steps[keep], v[keep], color=colour[p], lw=1.6, label=p, **_markers(int(keep.sum())))
        _note_if_empty(ax, int(np.sum(steps > 0)), j)
        ax.set_yscale("log")
        ax.set_title(_panel_title(j), fontsize=8.5)
        ax.grid(alpha=0.3, which="both")
    for ax in axes:
        ax.label_outer()
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right upper", fontsize=8, title="probe point")
    fig.supxlabel("training step")
    fig.supylabel("W1 to step-0 distribution / σ_ref (log scale)")
    fig.suptitle("Drift of each layer's input distribution from initialisation")
    return fig, None


def make_figures(jobs: Sequence[Job], groups: Sequence[GroupTolerance]) -> Dict[str, Tuple[Any, Optional[str]]]:
    """name -> (Figure or None, reason it was skipped or None)."""
    return {"accuracy": fig_accuracy(jobs), "percentiles": fig_percentiles(jobs),
            "lr_tolerance": fig_lr_tolerance(groups), "drift": fig_drift(jobs)}


# ----------------------------------------------------------------------------------------------
# The report
