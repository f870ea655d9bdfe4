"""Tables of a report: one row per job, LR tolerance per group, per (group, LR). The same
`TextTable` is printed with rich, written to report.md, and (for runs) to runs.csv."""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from ics.analysis.load import Job
from ics.analysis.tolerance import DEFAULT_FRACTION, GroupTolerance, format_value
from ics.record import Summary


def max_drift(summary: Optional[Summary]) -> Optional[float]:
    """Max over probe points of the final W1 to the step-0 reference (units of σ_ref)."""
    if summary is None:
        return None
    vals = [v["w1_ref"] for v in summary.drift.values() if v.get("w1_ref") is not None]
    finite = [v for v in vals if math.isfinite(v)]
    if len(finite) < len(vals):
        return float("inf")  # a NaN/inf drift means the layer blew up: the max is unbounded
    return max(finite) if finite else None


def targets_of(jobs: Sequence[Job]) -> List[str]:
    """Target accuracies present in any summary's steps_to_target, ascending."""
    keys = {k for j in jobs if j.summary is not None for k in j.summary.steps_to_target}
    return sorted(keys, key=float)


def run_rows(jobs: Sequence[Job]) -> List[Dict[str, Any]]:
    """One flat dict per job: the runs table and runs.csv."""
    targets = targets_of(jobs)
    rows = []
    for j in jobs:
        s = j.summary
        row: Dict[str, Any] = {"job": j.num, "label": j.label, "overrides": j.record.label, "dir": str(j.dir),
                               "status": str(j.status), "status_text": j.status_text}
        for k in ("diverged_at_step", "steps", "final_test_acc", "best_test_acc", "best_test_acc_step",
                  "chance_acc", "steps_per_sec", "wall_time_sec", "error"):
            row[k] = getattr(s, k) if s is not None else None
        if s is None and j.record.problem:
            row["error"] = j.record.problem
        for t in targets:
            row[f"steps_to_{t}"] = s.steps_to_target.get(t) if s is not None else None
        row["max_drift_w1_ref"] = max_drift(s)
        for point, d in (s.drift if s is not None else {}).items():
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


def runs_table(rows: Sequence[Dict[str, Any]], targets: Sequence[str], title: str,
               common: Sequence[str] = ()) -> "TextTable":
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
