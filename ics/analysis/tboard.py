"""The report in TensorBoard: one run per seed group (`<out>/groups/<label>/`), so that a colour
means a group (BN, no BN), not one seed.

Each group run holds, at the jobs' own steps and under the jobs' own tags (so it overlays them):
* acc/test: the mean over seeds, and acc/test_lo, acc/test_hi: its 95% CI (3+ seeds), drawn as one
  Custom Scalars margin chart per group;
* groups/probe/<last hidden layer>/<percentile>: Fig. 1 b/c, the mean over seeds of the unit-averaged
  percentiles (a margin chart too, of the group runs alone);
* fig1/percentiles: the group's Fig. 1 b/c as an image, on the y-limits every group shares;
* an HParams session: the group's values of the keys that vary, and as metrics the group means of
  final/best test accuracy, final drift of the last hidden layer (raw, shape), steps to the first
  target, and for LR studies the group's max good LR.
The first group run also holds the report's tables as text.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from ics.analysis.configs import group_key, varying_keys
from ics.analysis.groups import Group
from ics.analysis.load import Job
from ics.analysis.stats import band, mean_ci
from ics.analysis.tolerance import GroupTolerance
from ics.record import Status, names

GROUPS_DIR = "groups"
MARGIN_CATEGORY = "Groups (ics report): mean over seeds, band = 95% CI"
FIG1_CATEGORY = "Groups (ics report): Fig. 1 b/c, mean over units and seeds"
# a category of its own: TensorBoard 2.21 keeps the order of categories, not that of margin charts in one
ACC_CHART = "Accuracy on the test set (band clipped to [0, 1])"


def run_names(groups: Sequence[Group]) -> List[str]:
    """A folder name per group from its label ("model.norm=batch"; spaces become commas), only
    characters that are safe in a path, never '.' or '..', unique."""
    out: List[str] = []
    for g in groups:
        name = re.sub(r"[^A-Za-z0-9=.,_+-]", "_", g.label.replace(" ", ","))[:100].strip(".") or "group"
        base, k = name, 2
        while name in out:
            name, k = f"{base}_{k}", k + 1
        out.append(name)
    return out


def _last_pre(j: Job) -> Optional[str]:
    pre = [p for p in (j.probes.meta.get("points", []) if j.probes is not None else []) if p.endswith(".pre_act")]
    return pre[-1] if pre else None


def _percentile_names(g: Group) -> Optional[List[str]]:
    meta = next((j.probes.meta for j in g.jobs if j.probes is not None), None)
    qs = [names.percentile_name(q) for q in (meta or {}).get("percentiles", [])]
    return [qs[0], qs[len(qs) // 2], qs[-1]] if len(qs) >= 2 else None


def _curves(g: Group, tag_of) -> Optional[tuple]:
    """band() over the seeds of one series each job has (None when no job has it)."""
    pairs = [c for j in g.jobs if (c := tag_of(j)) is not None and len(c[0])]
    return band([s for s, _ in pairs], [v for _, v in pairs]) if pairs else None


def group_metrics(g: Group, tol: Sequence[GroupTolerance], first_target: Optional[str]) -> Dict[str, float]:
    """The HParams metrics of a group: means over its seeds (NaN where nothing was measured)."""

    def mean(values) -> float:
        e = mean_ci(values)
        return float("nan") if e.mean is None else e.mean

    ok = [j for j in g.jobs if j.status != Status.DIVERGED]
    last = lambda j, m: (j.summary.drift.get(_last_pre(j) or "", {}) or {}).get(m)  # noqa: E731
    max_good = next((t.max_good_lr for t in tol if t.key == group_key(g.config)), None)
    return {
        "hparams/final_test_acc": mean(g.values("final_test_acc")),
        "hparams/best_test_acc": mean(g.values("best_test_acc")),
        "hparams/diverged": g.n_diverged / max(1, g.n),
        "hparams/steps_per_sec": mean([j.summary.steps_per_sec for j in g.jobs]),
        names.HPARAM_DRIFT_RAW: mean([last(j, "w1_raw") for j in ok]),
        names.HPARAM_DRIFT_SHAPE: mean([last(j, "w1_shape") for j in ok]),
        names.HPARAM_STEPS: mean([j.summary.steps_to_target.get(first_target) for j in g.jobs])
        if first_target
        else float("nan"),
        names.HPARAM_MAX_GOOD_LR: float("nan") if max_good is None else float(max_good),
    }


def write_group_runs(
    root: Path, groups: Sequence[Group], tol: Sequence[GroupTolerance], text: str, percentile_figures: Dict[int, object]
) -> List[Path]:
    """One event file per group under root/<name>/; returns their paths (root/<name>/events...)."""
    from torch.utils.tensorboard import SummaryWriter
    from torch.utils.tensorboard.summary import hparams

    from ics.train.hooks.tensorboard import hparam_value

    keys = [k for k in varying_keys([g.config for g in groups])]
    first_target = next(
        (min(j.summary.steps_to_target, key=float) for g in groups for j in g.jobs if j.summary.steps_to_target), None
    )
    written = []
    for i, (g, name) in enumerate(zip(groups, run_names(groups))):
        writer = SummaryWriter(log_dir=str(root / name))
        try:
            floor = 0.0 if all(j.summary.metric == "accuracy" for j in g.jobs if j.summary is not None) else -np.inf
            acc = _curves(g, lambda j: (j.metrics.eval_step, j.metrics.test_acc) if j.metrics is not None else None)
            if acc is not None:
                for step, m, lo, hi, n in zip(*acc):
                    if np.isfinite(m):
                        writer.add_scalar(names.TAG_TEST_ACC, m, int(step))
                        if n >= 3:  # no band from fewer seeds (stats.MIN_CI_N); accuracy in [0, 1], R² <= 1
                            writer.add_scalar(names.TAG_TEST_ACC + "_lo", max(floor, float(lo)), int(step))
                            writer.add_scalar(names.TAG_TEST_ACC + "_hi", min(1.0, float(hi)), int(step))
            layout = {
                MARGIN_CATEGORY: {
                    ACC_CHART: ["Margin", [names.TAG_TEST_ACC, names.TAG_TEST_ACC + "_lo", names.TAG_TEST_ACC + "_hi"]]
                }
            }
            qn, point = _percentile_names(g), next((p for j in g.jobs if (p := _last_pre(j))), None)
            if qn and point:
                tags = [GROUPS_DIR + "/" + names.probe_tag(point, q) for q in qn]  # only group runs match
                for q, tag in zip(qn, tags):
                    got = _curves(
                        g,
                        lambda j, t=names.probe_tag(point, q): (  # noqa: B008 - binds this q
                            (j.probes.steps, j.probes.tags[t]) if j.probes is not None and t in j.probes.tags else None
                        ),
                    )
                    for step, m in zip(got[0], got[1]) if got is not None else ():
                        if np.isfinite(m):
                            writer.add_scalar(tag, m, int(step))
                layout[FIG1_CATEGORY] = {
                    f"Fig. 1 b/c: {point} {'/'.join(qn)} (mean over units and seeds)": [
                        "Margin",
                        [tags[1], tags[0], tags[2]],
                    ]
                }
            writer.add_custom_scalars(layout)
            if id(g) in percentile_figures:
                writer.add_figure(names.TAG_FIG1, percentile_figures[id(g)], global_step=0, close=False)
            if i == 0 and text:
                writer.add_text("report", text, 0)
            values = {k: hparam_value(g.config[k]) if g.config.get(k) is not None else "-" for k in keys}
            values = {k: v if isinstance(v, (bool, int, float, str)) else str(v) for k, v in values.items()}
            metrics = group_metrics(g, tol, first_target)
            _, ssi, sei = hparams(values, metrics)
            writer.file_writer.add_summary(ssi)
            writer.file_writer.add_summary(sei)
            for tag, v in metrics.items():
                writer.add_scalar(tag, v, 0)
        finally:
            writer.close()
        written += sorted((root / name).glob("events.out.tfevents.*"))
    return written


def percentile_figures(groups: Sequence[Group]) -> Dict[int, object]:
    """Per group, its own Fig. 1 b/c panel, every group on the same y-limits: those of the jobs'
    own images for a saturating nonlinearity, else robust ones (a diverged group is clipped, not
    allowed to stretch the others)."""
    from ics.analysis.figures import _figure, _unit_curves, percentile_limits, shade_saturated

    curves = {id(g): [(j, c) for j in g.jobs if (c := _unit_curves(j)) is not None] for g in groups}
    drawn = [g for g in groups if curves[id(g)]]
    panels = []
    for g in drawn:
        pairs = [(j.status != Status.DIVERGED, v) for j, c in curves[id(g)] for u in c[1].values() for v in u]
        panels.append([v for ok, v in pairs if ok] or [v for _, v in pairs])
    limits, clipped_at = percentile_limits(drawn, panels)
    clipped = {id(drawn[i]) for i in clipped_at}
    out = {}
    for g in groups:
        pairs = curves[id(g)]
        if not pairs:
            continue
        fig, axes = _figure(1, 1, w=5.0, h=3.4)
        ax = axes[0, 0]
        colour = "tab:blue" if g.norm == "batch" else "tab:orange"
        qn = pairs[0][1][3]
        for _, (steps, units, _, _) in pairs:
            for u in units.values():
                for v in u:
                    ax.plot(steps, v, color=colour, alpha=0.25, lw=0.6)
        common = min(len(c[0]) for _, c in pairs)
        for i, ls in enumerate(("--", "-", "--")):
            stack = np.stack([u[i][:common] for _, c in pairs for u in c[1].values()])
            ax.plot(pairs[0][1][0][:common], np.nanmean(stack, axis=0), color=colour, lw=2.2, ls=ls, label=qn[i])
        if limits is not None:
            ax.set_ylim(*limits)
        shade_saturated(ax, g, limits)
        ax.set_xlabel("training step")
        ax.set_ylabel("input to the nonlinearity")
        ax.set_title(
            f"{g.label}: {pairs[0][1][2]} {'/'.join(qn)}\nfaint: units × seeds; bold: mean; "
            "y-limits shared by every group" + (" (this one clipped)" if id(g) in clipped else ""),
            fontsize=8.5,
        )
        ax.legend(fontsize=7.5)
        ax.grid(alpha=0.3)
        out[id(g)] = fig
    return out
