"""`ics report <dir>`: tables, learning-rate tolerance and figures for a run or sweep directory.

Reads what every job wrote through the run record (summary.json, metrics.npz, probes.npz; never
the event files; jobs in any state, each with its own config) and writes into `<dir>/report/` (or `out`):

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

from collections import Counter
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

from ics.analysis.figures import FIGURES, MAX_PANELS, make_figures
from ics.analysis.load import Job, common_overrides, load_jobs
from ics.analysis.tables import (TextTable, lr_table, markdown_table, print_tables, run_rows, runs_table,
                                 targets_of, tolerance_table, write_csv)
from ics.analysis.tolerance import has_lr_grid, lr_tolerance

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




def write_markdown(path: Path, src: Path, jobs: Sequence[Job], runs_tab: TextTable,
                   tol_tabs: Sequence[TextTable], figures: Dict[str, Path], skipped: Dict[str, str]) -> None:
    truncated = sum(1 for j in jobs if j.probes is not None) > MAX_PANELS
    parts = [f"# ICS report: `{src}`", "", f"{len(jobs)} job(s): {state_counts(jobs)}.", ""]
    left_out = [j for j in jobs if j.result() is None]
    if left_out and tol_tabs:
        parts += [f"_{len(left_out)} job(s) without a final result or a known config are left out of the "
                  f"tolerance tables: {', '.join(f'#{j.num} ({j.status})' for j in left_out)}._", ""]
    parts += ["## Runs", "", markdown_table(runs_tab), ""]
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
    runs_tab = runs_table(rows, targets_of(jobs), f"{path}: {len(jobs)} jobs ({state_counts(jobs)})",
                          common_overrides(jobs))
    groups = lr_tolerance([r for j in jobs if (r := j.result()) is not None])
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


def state_counts(jobs: Sequence[Job]) -> str:
    """"3 completed, 1 killed": how many jobs are in each state."""
    counts = Counter(str(j.status) for j in jobs)
    return ", ".join(f"{n} {state}" for state, n in counts.most_common())
