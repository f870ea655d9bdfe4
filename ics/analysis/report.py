"""`ics report <dir>`: tables, learning-rate tolerance and figures for a run or sweep directory.

Reads what every job wrote through the run record (summary.json, metrics.npz, the instruments'
npz files; never the event files; jobs in any state, each with its own config) and writes into
`<dir>/report/` (or `out`):

* report.md    every table in Markdown, the figures, the definitions;
* runs.csv     one row per job (summary numbers, drift per point in three units, the whole config);
* groups.csv   one row per seed group: mean, CI half-width and n of the same numbers;
* one PNG per figure (a figure is skipped, with the reason in report.md, when its data is absent);
* a TensorBoard event file with the figures as images and the tables as text, so
  `tensorboard --logdir <sweep>` shows the report as one more "run" next to the jobs.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from ics.analysis.figures import FIGURES, make_figures
from ics.analysis.groups import Group, contrasts, seed_groups
from ics.analysis.load import Job, common_overrides, load_jobs, planned_jobs
from ics.analysis.tables import (TextTable, contrast_table, drift_table, effective_lr_table, group_rows, groups_table,
                                 instrument_tables, lr_table, markdown_table, print_tables, run_rows, runs_table,
                                 score_name, targets_of, tolerance_table, write_csv)
from ics.analysis.tolerance import GroupTolerance, has_lr_grid, lr_tolerance

MAX_CURVES = 16  # groups drawn in one curve figure; an LR sweep shows each group at its best LR

DEFINITIONS = """\
* **Seed groups**: runs that differ only in `trainer.seed`. Every group number is the mean over seeds
  ± the half-width of its 95% confidence interval, x̄ ± t₀.₉₇₅,ₙ₋₁ · s/√n (Student t; s with ddof 1;
  no ± for n = 1). A diverged or failed run counts as chance accuracy, everywhere.
* **Differences**: groups that differ in exactly one key (`model.norm`, `model.noise`, ...): the
  difference of mean final test accuracy, its 95% CI and the two-sided p-value of Welch's t-test.
* **final / best acc**: test accuracy (whole test split, BN with its running statistics) at the last /
  the best evaluation; for regression tasks the score is R² = 1 − SSE/SSE(predicting the training mean).
* **steps→t**: first evaluated step with test score ≥ t, reached somewhere in (previous evaluation, step].
* **Drift** of a layer's input distribution from step 0, per unit then averaged over units:
  W1 raw = W1(P_t, P_0) in the probed quantity's units; W1 shape = W1 between the two distributions
  each standardised by its own mean and std (0 for a pure shift or rescaling); W1/σ_ref = W1 raw
  divided by the unit's step-0 std (inflated where that std is small, e.g. sigmoid inputs without BN).
* **LR tolerance**: see `ics/analysis/tolerance.py`: max non-diverging LR (no seed's loss went
  non-finite or above the divergence threshold) and max good LR (mean score ≥ fraction × the best)
  are kept apart; per-seed limits are summarised by geometric mean ×/÷ geometric std.
"""


def _n(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def state_counts(jobs: Sequence[Job]) -> str:
    """"3 completed, 1 killed": how many jobs are in each state."""
    counts = Counter(str(j.status) for j in jobs)
    return ", ".join(f"{n} {state}" for state, n in counts.most_common())


def curve_groups(groups: List[Group], tol: Sequence[GroupTolerance]) -> List[Group]:
    """The groups drawn in curve figures: all of them, or in a big LR sweep each tolerance
    group at its best learning rate."""
    if len(groups) <= MAX_CURVES or not tol:
        return groups[:MAX_CURVES]
    best = {(g.key, g.best_lr) for g in tol}
    from ics.analysis.configs import LR_KEY, group_key

    picked = [g for g in groups if (group_key(dict(g.key)), g.config.get(LR_KEY)) in best]
    return picked[:MAX_CURVES] or groups[:MAX_CURVES]


def write_markdown(path: Path, src: Path, jobs: Sequence[Job], tables: Sequence[TextTable], figures: Dict[str, Path],
                   skipped: Dict[str, str], notes: Sequence[str]) -> str:
    parts = [f"# ICS report: `{src}`", "", f"{_n(len(jobs), 'job')}: {state_counts(jobs)}.", ""]
    parts += [f"_{n}_\n" for n in notes]
    for t in tables:
        parts += [markdown_table(t), ""]
    text_only = "\n".join(parts + ["## Definitions", "", DEFINITIONS])
    parts += ["## Figures", ""]
    for name in FIGURES:
        if name in figures:
            parts += [f"### {name}", "", f"![{name}]({figures[name].name})", ""]
        elif name in skipped:
            parts += [f"### {name}", "", f"_skipped: {skipped[name]}_", ""]
    parts += ["## Definitions", "", DEFINITIONS]
    path.write_text("\n".join(parts))
    return text_only


def _log_tensorboard(out: Path, figs: Dict[str, Any], text: str) -> None:
    """Figures as images (the Images tab) and the tables as self-contained text (no image links)."""
    from torch.utils.tensorboard import SummaryWriter

    for old in out.glob("events.out.tfevents.*"):  # a re-run replaces the report, not adds a copy
        old.unlink()
    writer = SummaryWriter(log_dir=str(out))
    try:
        for name, fig in figs.items():
            writer.add_figure(f"report/{name}", fig, global_step=0, close=False)
        writer.add_text("report", text, 0)
    finally:
        writer.close()


def make_report(path: Path, out: Optional[Path] = None, console=None) -> dict:
    """Build the report of a run or sweep directory; returns the paths written and the tables."""
    path = Path(path)
    jobs = load_jobs(path)
    out = Path(out) if out is not None else path / "report"
    out.mkdir(parents=True, exist_ok=True)
    score = score_name(jobs)
    targets = targets_of(jobs)
    rows = run_rows(jobs)
    groups = seed_groups(jobs)
    k = next((int(j.config.get("tolerance.last_k", 3)) for j in jobs if j.config), 3)
    tol = lr_tolerance([r for j in jobs if (r := j.result(k)) is not None])
    notes = []
    planned = planned_jobs(path)
    if planned and len(planned) > len(jobs):
        missing = [_planned_label(i, planned) for i in range(len(planned)) if i not in {j.num for j in jobs}]
        notes.append(f"{len(missing)} of the sweep's {len(planned)} jobs have not started: "
                     + "; ".join(missing[:10]) + (" …" if len(missing) > 10 else "")
                     + " (once the sweep has ended, ics resume runs them)")
    unreadable = [j for j in jobs if j.problems]
    if unreadable:
        notes.append("files that could not be read (their figures leave these jobs out): " +
                     "; ".join(f"#{j.num}: {', '.join(j.problems)}" for j in unreadable))
    left_out = [j for j in jobs if j.result(k) is None]
    if left_out:
        notes.append(f"{len(left_out)} job(s) without a final result or a known config are listed but left out of "
                     f"the group statistics: {', '.join(f'#{j.num} ({j.status})' for j in left_out)}.")

    tables = [runs_table(rows, targets, f"{path}: {_n(len(jobs), 'job')} ({state_counts(jobs)})",
                         common_overrides(jobs), score)]
    if any(g.n > 1 for g in groups) or len(groups) > 1:
        tables.append(groups_table(groups, targets, score))
        contrast = contrasts(groups)
        if contrast:
            tables.append(contrast_table(contrast, score))
    if any(j.summary is not None and j.summary.drift for j in jobs):
        tables.append(drift_table(groups))
    tables += instrument_tables(groups)
    if has_lr_grid(tol):
        tables += [tolerance_table(tol), lr_table(tol)]
        eff = effective_lr_table(tol)
        if eff is not None:
            tables.append(eff)
    print_tables(tables, console)
    for n in notes:
        (console.print if console is not None else print)(f"note: {n}")

    written, skipped, figs = {}, {}, {}
    for name, (fig, reason) in make_figures(curve_groups(groups, tol), tol, "R²" if score == "R²" else "accuracy").items():
        if fig is None:
            skipped[name] = reason
            continue
        written[name] = out / f"{name}.png"
        fig.savefig(written[name], dpi=100)
        figs[name] = fig
    csv_path, groups_path, md_path = out / "runs.csv", out / "groups.csv", out / "report.md"
    write_csv(csv_path, rows)
    write_csv(groups_path, group_rows(groups, targets))
    text = write_markdown(md_path, path, jobs, tables, written, skipped, notes)
    _log_tensorboard(out, figs, text)
    (console.print if console is not None else print)(
        f"wrote: {out}/ (report.md, runs.csv, groups.csv"
        + (f", {_n(len(written), 'figure')}: {', '.join(p.name for p in written.values())})" if written
           else "; no figure: see report.md for why)"))
    by_title = {t.title: t for t in tables}
    return {"out": out, "report_md": md_path, "runs_csv": csv_path, "groups_csv": groups_path, "figures": written,
            "skipped": skipped, "runs": rows, "groups": groups, "tables": tables, "tolerance": tol,
            "runs_table": tables[0], "tolerance_table": next((t for t in tables if t.title.startswith("LR tolerance")), None),
            "lr_table": next((t for t in tables if t.title.startswith("Per learning rate")), None),
            "by_title": by_title}


def _planned_label(num: int, planned: List[List[str]]) -> str:
    """A planned job by its number and the values that vary across the sweep, as they were typed
    (job numbers are the launch order of the plan): '#2 (optim.lr=0.3)'."""
    from ics.analysis.configs import parse_override, varying_keys

    jobs = [{kv[0]: o.split("=", 1)[1] for o in job
             if (kv := parse_override(o)) is not None and not kv[0].startswith("hydra")} for job in planned]
    swept = ", ".join(f"{k}={jobs[num][k]}" for k in varying_keys(jobs) if k in jobs[num])
    return f"#{num}" + (f" ({swept})" if swept else "")
