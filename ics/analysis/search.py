"""The report of a search: a sweep whose jobs an optimising sweeper (Optuna, Nevergrad, Ax) chose.

Its trials are not seed groups (each searched value is tried once, wherever the sampler put it), so
the report shows what the search found: the best trial, every trial ranked by the objective, and the
objective against each searched key (one scatter panel per key, log axis where the values span more
than a decade and are positive). What the search optimised comes from the sweep's plan.json (as data).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ics.analysis.load import Job
from ics.analysis.tables import TextTable
from ics.record.summary import objective_value


@dataclass
class Search:
    sweeper: str
    metric: str  # sweep.objective
    direction: str  # maximize / minimize
    keys: List[str]  # the searched config keys


def search_of(paths: Sequence[Path], jobs: Sequence[Job]) -> Optional[Search]:
    """The search the folders hold, or None for plain sweeps (or folders of different searches)."""
    import json

    from ics.record.files import read_text
    from ics.record.plan import PlanError, read_plan

    found = []
    for p in paths:
        try:
            plan = read_plan(Path(p))
        except PlanError:
            return None
        if plan is None or plan.sweeper in (None, "basic") or not plan.objective:
            return None
        metric, direction = plan.objective.get("metric"), plan.objective.get("direction")
        if metric is None or direction not in ("maximize", "minimize"):
            return None
        keys: List[str] = []
        try:  # the searched keys, as the sweep wrote them for TensorBoard's HParams
            spec = json.loads(read_text(Path(p) / "hparams.json", 1 << 20))
            keys = [k for k in spec.get("keys", []) if isinstance(k, str)]
        except (OSError, ValueError, AttributeError, RecursionError):
            pass
        found.append(Search(plan.sweeper, metric, direction, keys))
    if not found or any((f.metric, f.direction) != (found[0].metric, found[0].direction) for f in found):
        return None
    keys = list(dict.fromkeys(k for f in found for k in f.keys))
    if not keys:  # no record of them: the keys whose values differ between the trials
        values: Dict[str, set] = {}
        for j in jobs:
            for k, v in j.config.items():
                values.setdefault(k, set()).add(repr(v))
        keys = sorted(k for k, v in values.items() if len(v) > 1 and not k.startswith("trainer.seed"))
    return Search(found[0].sweeper, found[0].metric, found[0].direction, keys)


def trials(jobs: Sequence[Job], search: Search) -> List[Tuple[Job, float]]:
    """(job, objective) of every trial with a result, best first."""
    out = []
    for j in jobs:
        if j.summary is None or not j.status.finished:
            continue
        worst = float(j.config.get("trainer.divergence_loss", 1e3))
        value = objective_value(j.summary, search.metric, worst)
        if value is not None and math.isfinite(value):
            out.append((j, value))
    return sorted(out, key=lambda t: -t[1] if search.direction == "maximize" else t[1])


def _value(v: Any) -> str:
    return f"{v:.6g}" if isinstance(v, float) else str(v)


def search_lines(jobs: Sequence[Job], search: Search) -> List[str]:
    ranked = trials(jobs, search)
    if not ranked:
        return [f"search ({search.sweeper}): no trial has finished yet; nothing to rank on {search.metric}"]
    best, value = ranked[0]
    where = ", ".join(f"{k}={_value(best.config.get(k))}" for k in search.keys) or "(defaults)"
    return [
        f"search ({search.sweeper}, {search.direction} {search.metric}): best {search.metric} {value:.4f} at "
        f"{where} (job {best.num}), {len(ranked)} finished trial{'s' if len(ranked) != 1 else ''}; one run per "
        "point, no interval: re-run the best point over seeds before claiming it"
    ]


def search_table(jobs: Sequence[Job], search: Search) -> TextTable:
    ranked = trials(jobs, search)
    cells = [
        [
            str(rank + 1),
            str(j.num),
            *(_value(j.config.get(k)) for k in search.keys),
            f"{v:.4f}",
            f"{j.summary.final_test_acc:.4f}"
            if j.summary is not None and j.summary.final_test_acc is not None
            else "-",
            str(j.status),
        ]
        for rank, (j, v) in enumerate(ranked)
    ]
    return TextTable(
        f"Search: trials ranked by {search.metric} ({search.direction})",
        ["rank", "job", *search.keys, search.metric, "final test acc", "status"],
        cells,
        f"{search.sweeper} chose each trial; the test split tuned nothing unless the objective is test_acc",
    )


def fig_search(jobs: Sequence[Job], search: Search):
    """The objective against each searched key: one panel per key, the best trial marked."""
    ranked = trials(jobs, search)
    numeric = [
        k
        for k in search.keys
        if all(isinstance(j.config.get(k), (int, float)) and not isinstance(j.config.get(k), bool) for j, _ in ranked)
    ]
    if not ranked or not numeric:
        return None, "no finished trial with a numeric searched key"
    from ics.analysis.figures import _figure

    fig, axes = _figure(1, len(numeric), w=4.6, sharex=False)
    for ax, key in zip(axes[0], numeric):
        xs = [float(j.config[key]) for j, _ in ranked]
        ys = [v for _, v in ranked]
        ax.scatter(xs, ys, s=22, alpha=0.8)
        ax.scatter([xs[0]], [ys[0]], s=90, facecolors="none", edgecolors="red", label="best")
        if min(xs) > 0 and max(xs) / min(xs) > 10:
            ax.set_xscale("log")
        ax.set_xlabel(key)
        ax.set_ylabel(search.metric)
        ax.legend(loc="best", fontsize=8)
    fig.suptitle(f"Search ({search.sweeper}): {search.metric} of each trial ({search.direction})")
    return fig, None
