"""`ics report <dir>`: tables, learning-rate tolerance and figures for a run or sweep directory.

Reads what every job wrote (summary.json, metrics.npz, probes.npz; never the event files) and
writes into `<dir>/report/` (or `out`):

* report.md   the tables in Markdown, links to the figures, short metric definitions;
* runs.csv    one row per job, flat columns (summary scalars, drift per point, the whole config);
* accuracy.png, percentiles.png, lr_tolerance.png, drift.png (a figure is skipped, with the
  reason in report.md, when its data is absent);
* a TensorBoard event file with the same figures, so `tensorboard --logdir <sweep>` shows the
  report as one more "run" next to the jobs.

Figures follow Ioffe & Szegedy (2015), Fig. 1: (a) test accuracy with and without BN, (b, c) the
15/50/85th percentiles of one last-hidden-layer unit's input to its nonlinearity over training.
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ics.config import ConfigError
from ics.summaries import find_runs, job_label, job_number
from ics.tolerance import (DEFAULT_FRACTION, GroupTolerance, all_configs, format_value, has_lr_grid, lr_tolerance,
                           parse_override, varying_keys)

MAX_PANELS = 12  # per-run panel figures show at most this many runs (readability)
FIGURES = ("accuracy", "percentiles", "lr_tolerance", "drift")
NORM_COLOURS = {"batch": "Blues", "none": "Oranges"}  # colour families; other norms take the rest
OTHER_COLOURS = ("Greens", "Purples", "Reds", "Greys")

DEFINITIONS = """\
* **final / best acc**: test accuracy (fraction correct on the whole test split, BN in eval mode)
  at the last evaluation / the best evaluation.
* **steps→t**: first evaluated training step at which test accuracy reached t (`-`: never).
* **max drift**: max over probe points of the final W1(ref): the Wasserstein-1 distance between a
  unit's input distribution on the fixed probe set now and at step 0, in units of its step-0 std
  (W1 / σ_ref), averaged over units. 0 = the layer's input distribution has not moved.
* **LR tolerance** (runs grouped by config without `optim.lr` and `trainer.seed`): a diverged or
  failed run counts as chance accuracy. Mean ± std are over seeds (sample std). An LR *qualifies*
  when none of its runs diverged and its mean accuracy ≥ fraction × the group's best mean.
  **max stable LR** / **min good LR** = largest / smallest qualifying LR; **width** =
  log10(max stable / min good) in decades (0: one LR qualifies, `-`: none does); **per-seed max
  stable** = the same criterion on each seed's own curve, mean ± std over seeds.
  (BN paper §3.3: BN makes a layer's output invariant to its weights' scale, so higher learning
  rates should be tolerated.)
"""


@dataclass
class Job:
    num: int
    dir: Path
    summary: dict
    config: Dict[str, Any]  # flat: "model.norm" -> "batch"
    label: str  # short: only the overrides that differ between jobs
    metrics: Optional[Dict[str, np.ndarray]]
    probes: Optional[Tuple[np.ndarray, Dict[str, np.ndarray], dict]]  # (steps, series, meta)

    @property
    def status(self) -> str:
        return self.summary.get("status", "?")

    @property
    def norm(self) -> str:
        return str(self.config.get("model.norm", "?"))

    @property
    def status_text(self) -> str:
        if self.status == "diverged" and self.summary.get("diverged_at_step") is not None:
            return f"diverged @ {self.summary['diverged_at_step']}"
        if self.status == "failed" and self.summary.get("error"):
            err = self.summary["error"]
            return f"failed: {err[:60]}…" if len(err) > 60 else f"failed: {err}"
        return self.status


# ----------------------------------------------------------------------------------------------
# Reading


def load_jobs(path: Path) -> List[Job]:
    """Every job under path (a sweep dir, or one run dir), ordered by job number."""
    path = Path(path)
    if not path.is_dir():
        raise ConfigError(f"{path} is not a directory; give a run or sweep directory")
    runs = find_runs(path)  # an unreadable summary.json comes back as a `failed` job
    if not runs:
        raise ConfigError(f"{path}: no summary.json under it; give a run or sweep directory")
    configs = all_configs([s for _, s in runs])
    labels = short_labels([s for _, s in runs])
    return [Job(_number(d, path, i), d, s, c, lab, _load_metrics(d), _load_probes(d))
            for i, ((d, s), c, lab) in enumerate(zip(runs, configs, labels))]


def _number(job_dir: Path, root: Path, index: int) -> int:
    num = job_number(job_dir, root)
    return index if num is None else num


def _load_metrics(d: Path) -> Optional[Dict[str, np.ndarray]]:
    try:
        with np.load(d / "metrics.npz") as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError):  # missing (failed job) or unreadable: the figures skip it
        return None


def _load_probes(d: Path):
    from ics.probes import load_probes

    try:
        return load_probes(d / "probes.npz")
    except (OSError, ValueError, KeyError):
        return None


def short_labels(summaries: Sequence[dict]) -> List[str]:
    """Per job, the overrides whose values differ between jobs (e.g. "model.norm=batch optim.lr=1");
    constant ones (data.root=..., trainer.steps=...) would only make legends long."""
    parsed = [dict(kv for kv in map(parse_override, s.get("overrides") or []) if kv) for s in summaries]
    vary = varying_keys(parsed)
    out = []
    for s, p in zip(summaries, parsed):
        text = " ".join(f"{k}={format_value(p[k])}" for k in vary if k in p)
        out.append(text or job_label(s))
    return out


# ----------------------------------------------------------------------------------------------
# Tables


def max_drift(summary: dict) -> Optional[float]:
    """Max over probe points of the final W1 to the step-0 reference (units of σ_ref)."""
    vals = [v["w1_ref"] for v in (summary.get("drift") or {}).values() if v.get("w1_ref") is not None]
    finite = [v for v in vals if math.isfinite(v)]
    if len(finite) < len(vals):
        return float("inf")  # a NaN/inf drift means the layer blew up: the max is unbounded
    return max(finite) if finite else None


def targets_of(jobs: Sequence[Job]) -> List[str]:
    """Target accuracies present in any summary's steps_to_target, ascending."""
    keys = {k for j in jobs for k in (j.summary.get("steps_to_target") or {})}
    return sorted(keys, key=float)


def run_rows(jobs: Sequence[Job]) -> List[Dict[str, Any]]:
    """One flat dict per job: the runs table and runs.csv."""
    targets = targets_of(jobs)
    rows = []
    for j in jobs:
        s = j.summary
        row: Dict[str, Any] = {"job": j.num, "label": j.label, "overrides": job_label(s), "dir": str(j.dir),
                               "status": j.status, "status_text": j.status_text}
        for k in ("diverged_at_step", "steps", "final_test_acc", "best_test_acc", "best_test_acc_step",
                  "chance_acc", "steps_per_sec", "wall_time_sec", "error"):
            row[k] = s.get(k)
        for t in targets:
            row[f"steps_to_{t}"] = (s.get("steps_to_target") or {}).get(t)
        row["max_drift_w1_ref"] = max_drift(s)
        for point, d in (s.get("drift") or {}).items():
            row[f"drift.{point}.w1_ref"] = d.get("w1_ref")
        row.update({f"config.{k}": None if v is None else format_value(v) for k, v in j.config.items()})
        rows.append(row)
    return rows


def _fmt(v: Any, spec: str = ".4f") -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return format(v, spec) if math.isfinite(v) else str(v)
    return str(v)


def common_overrides(jobs: Sequence[Job]) -> List[str]:
    """Overrides every job shares (shown once, not on every row)."""
    lists = [j.summary.get("overrides") or [] for j in jobs]
    shared = set(lists[0]).intersection(*map(set, lists[1:])) if len(lists) > 1 else set()
    return [o for o in lists[0] if o in shared]


def runs_table(rows: Sequence[Dict[str, Any]], targets: Sequence[str], title: str,
               common: Sequence[str] = ()) -> TextTable:
    """The per-job table; overrides = the ones that differ between jobs (common ones in the caption)."""
    headers = ["job", "overrides", "status", "final acc", "best acc"] + [f"steps→{t}" for t in targets] + ["max drift"]
    cells = []
    for r in rows:
        cells.append([str(r["job"]), r["label"], r["status_text"], _fmt(r["final_test_acc"]),
                      _fmt(r["best_test_acc"])] + [_fmt(r[f"steps_to_{t}"]) for t in targets] +
                     [_fmt(r["max_drift_w1_ref"], ".3f")])
    caption = f"common overrides: {' '.join(common)}" if common else None
    return TextTable(title, headers, cells, caption)


@dataclass
class TextTable:
    """A table for the console (rich) and report.md alike."""

    title: str
    headers: List[str]
    cells: List[List[str]]
    caption: Optional[str] = None


def _lr(v: Optional[float]) -> str:
    return "-" if v is None else f"{v:g}"


def tolerance_table(groups: Sequence[GroupTolerance]) -> TextTable:
    """One row per group: best, max stable, min good LR, width, per-seed max stable LR."""
    headers = ["group", "LRs", "best LR (acc)", "max stable LR", "min good LR", "width (decades)",
               "max stable LR per seed"]
    cells = []
    for g in groups:
        seed = "-" if g.seed_max_stable_mean is None else \
            f"{g.seed_max_stable_mean:.3g} ± {g.seed_max_stable_std:.3g} (n={len(g.seed_max_stable)})"
        cells.append([g.label, str(len(g.points)), f"{g.best_lr:g} ({g.best_acc:.3f})", _lr(g.max_stable_lr),
                      _lr(g.min_good_lr), "-" if g.width_decades is None else f"{g.width_decades:.2f}", seed])
    fraction = groups[0].fraction if groups else DEFAULT_FRACTION
    return TextTable(f"LR tolerance (qualifying: no divergence, mean acc >= {fraction:g} x best)", headers, cells)


def lr_table(groups: Sequence[GroupTolerance]) -> TextTable:
    """One row per (group, LR): final accuracy mean ± std over seeds, diverged/failed counts."""
    headers = ["group", "LR", "final acc (mean ± std)", "runs", "diverged", "failed", "qualifies"]
    cells = []
    for g in groups:
        ok = set() if g.min_good_lr is None else \
            {p.lr for p in g.points if p.stable and p.mean_acc >= g.fraction * g.best_acc}
        for p in g.points:
            cells.append([g.label, f"{p.lr:g}", f"{p.mean_acc:.4f} ± {p.std_acc:.4f}", str(p.n_runs),
                          str(p.n_diverged), str(p.n_failed), "yes" if p.lr in ok else "no"])
    return TextTable("Final test accuracy per learning rate (diverged/failed runs count as chance)", headers, cells)


LABEL_COLUMNS = {"overrides", "group"}  # long text: these wrap, the short columns keep their width


def print_tables(tables: Sequence[TextTable], console=None) -> None:
    from rich.console import Console
    from rich.table import Table

    # piped output (logs, CI) gets rich's 80-column default, which squeezes the label column to
    # nothing: without a terminal there is no width to respect, so use a wide one
    console = console or Console(width=None if Console().is_terminal else 160)
    for t in tables:
        table = Table(title=t.title, caption=t.caption)
        for h in t.headers:
            table.add_column(h, no_wrap=h not in LABEL_COLUMNS, overflow="fold")
        for row in t.cells:
            table.add_row(*row)
        console.print(table)


def markdown_table(t: TextTable) -> str:
    esc = lambda s: str(s).replace("|", "\\|")  # noqa: E731
    lines = [f"**{t.title}**", ""]
    lines += ["| " + " | ".join(esc(h) for h in t.headers) + " |", "|" + "---|" * len(t.headers)]
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in t.cells]
    if t.caption:
        lines += ["", f"_{t.caption}_"]
    return "\n".join(lines)


def write_csv(path: Path, rows: Sequence[Dict[str, Any]]) -> None:
    cols: List[str] = []
    for r in rows:  # union of columns in first-seen order (drift points differ between models)
        cols += [k for k in r if k not in cols]
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=cols, restval="")
        w.writeheader()
        for r in rows:
            w.writerow({k: "" if v is None else v for k, v in r.items()})


# ----------------------------------------------------------------------------------------------
# Figures (object-oriented matplotlib: no pyplot state, works headless)


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
    have = [(i, j) for i, j in enumerate(jobs) if j.metrics is not None and len(j.metrics.get("eval_step", [])) > 0]
    if not have:
        return None, "no run has evaluation metrics (metrics.npz)"
    from matplotlib.figure import Figure

    colours = norm_colours([j.norm for j in jobs])
    fig = Figure(figsize=(12 if len(have) <= 8 else 14, 5.6), layout="constrained")
    full, zoom = fig.subplots(1, 2)
    late = []  # accuracies after the first 10% of training: the zoomed panel's y range
    for i, j in have:
        steps, acc = j.metrics["eval_step"], j.metrics["test_acc"]
        style = "-" if j.norm == "batch" else "--"
        label = f"#{j.num} {j.label}" + (f" ({j.status_text})" if j.status in ("diverged", "failed") else "")
        for ax in (full, zoom):
            ax.plot(steps, acc, style, color=colours[i], lw=1.8, label=label if ax is full else None,
                    **_markers(len(steps)))
        if j.status == "diverged":
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
    steps, series, meta = j.probes
    pu = tracked_unit(meta)
    qs = [f"p{q:g}" for q in meta.get("percentiles", [])]
    if pu is None or len(qs) < 2:
        return None
    names = [qs[0], qs[len(qs) // 2], qs[-1]]
    tags = [f"probe/{pu[0]}/unit{pu[1]}/{q}" for q in names]
    if not all(t in series for t in tags):
        return None
    return pu[0], pu[1], steps, [series[t] for t in tags], names


def fig_percentiles(jobs: Sequence[Job]):
    """p15-p85 band and median of one last-layer unit's input to its nonlinearity (Fig. 1 b/c)."""
    have = panel_jobs([(j, s) for j in jobs if (s := _unit_series(j)) is not None])
    if not have:
        return None, "no run has probe percentiles of a tracked `*.pre_act` unit (probes.npz)"
    fig, axes = _figure(len(have))
    # the shared y range comes from the runs that trained normally, so a blown-up run does not
    # flatten every other panel; its own panel says it is off scale
    healthy = [a for j, s in have if j.status in ("completed", "interrupted") for a in s[3]]
    lims = robust_limits(healthy) if healthy else robust_limits([a for _, s in have for a in s[3]], q=5)
    for ax, (j, (point, unit, steps, (lo, mid, hi), names)) in zip(axes, have):
        colour = "tab:blue" if j.norm == "batch" else "tab:orange"
        ax.fill_between(steps, lo, hi, color=colour, alpha=0.3, lw=0, label=f"{names[0]}–{names[2]}")
        ax.plot(steps, mid, color=colour, lw=1.8, label=names[1], **_markers(len(steps)))
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
    steps, series, meta = j.probes
    lines = {p: series[f"drift/{p}/w1_ref"] for p in meta.get("points", []) if f"drift/{p}/w1_ref" in series}
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


def write_markdown(path: Path, src: Path, jobs: Sequence[Job], runs_tab: TextTable,
                   tol_tabs: Sequence[TextTable], figures: Dict[str, Path], skipped: Dict[str, str]) -> None:
    truncated = sum(1 for j in jobs if j.probes is not None) > MAX_PANELS
    parts = [f"# ICS report: `{src}`", "", f"{len(jobs)} job(s).", "", "## Runs", "", markdown_table(runs_tab), ""]
    if tol_tabs:
        parts += ["## Learning-rate tolerance", ""]
        for t in tol_tabs:
            parts += [markdown_table(t), ""]
    parts += ["## Figures", ""]
    for name in FIGURES:
        if name in figures:
            parts += [f"### {name}", "", f"![{name}]({figures[name].name})", ""]
        else:
            parts += [f"### {name}", "", f"_skipped: {skipped[name]}_", ""]
    if truncated:
        parts += [f"_Per-run panel figures (percentiles, drift) show {MAX_PANELS} of the runs with probes: "
                  "the lowest seed of each config first, alternating between norms._", ""]
    parts += ["## Definitions", "", DEFINITIONS]
    path.write_text("\n".join(parts))


def _log_tensorboard(out: Path, figs: Dict[str, Any], markdown: str) -> None:
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(log_dir=str(out))
    try:
        for name, fig in figs.items():
            writer.add_figure(f"report/{name}", fig, global_step=0, close=False)
        writer.add_text("report", markdown, 0)
    finally:
        writer.close()


def make_report(path: Path, out: Optional[Path] = None, console=None) -> dict:
    """Build the report of a run or sweep directory; returns the paths written and the tables."""
    path = Path(path)
    jobs = load_jobs(path)
    out = Path(out) if out is not None else path / "report"
    out.mkdir(parents=True, exist_ok=True)

    rows = run_rows(jobs)
    runs_tab = runs_table(rows, targets_of(jobs), f"{path}: {len(jobs)} jobs", common_overrides(jobs))
    groups = lr_tolerance([j.summary for j in jobs])
    # the tolerance tables only mean something when some group was run at 2+ learning rates
    tol_tabs = [tolerance_table(groups), lr_table(groups)] if has_lr_grid(groups) else []
    print_tables([runs_tab] + tol_tabs, console)

    written, skipped, figs = {}, {}, {}
    for name, (fig, reason) in make_figures(jobs, groups).items():
        if fig is None:
            skipped[name] = reason
            continue
        written[name] = out / f"{name}.png"
        fig.savefig(written[name], dpi=110)
        figs[name] = fig
    csv_path, md_path = out / "runs.csv", out / "report.md"
    write_csv(csv_path, rows)
    write_markdown(md_path, path, jobs, runs_tab, tol_tabs, written, skipped)
    _log_tensorboard(out, figs, md_path.read_text())
    return {"out": out, "report_md": md_path, "runs_csv": csv_path, "figures": written, "skipped": skipped,
            "runs": rows, "runs_table": runs_tab, "tolerance": groups,
            "tolerance_table": tol_tabs[0] if tol_tabs else None, "lr_table": tol_tabs[1] if tol_tabs else None}
