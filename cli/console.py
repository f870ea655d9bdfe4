"""What the terminal shows at the end of a run or a sweep."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

from ics.record import JobRecord, Status, Summary
from ics.record.jobs import score_text
from ics.words import count


def _fmt(v: Optional[float], f: str = "{:.4f}") -> str:
    return "-" if v is None else f.format(v)


def status_text(job: JobRecord) -> str:
    s, st = job.summary, job.status
    if st == Status.DIVERGED and s is not None and s.diverged_at_step is not None:
        return f"diverged @ {s.diverged_at_step}"
    if st == Status.FAILED and s is not None and s.error:
        return f"failed: {s.error}"
    if st in (Status.INTERRUPTED, Status.KILLED) and s is not None:
        from ics.record.jobs import checkpoint_step, stopped_text

        if not job.has_checkpoint:
            return stopped_text(job)
        return stopped_text(job) + (
            " (resumable)" if checkpoint_step(job.dir) is not None else " (checkpoint unreadable)"
        )
    if st == Status.KILLED:
        return "killed before its first record"
    if st == Status.UNREADABLE:
        return f"unreadable: {job.problem}"
    return str(st)


COLUMNS = ("job", "overrides", "status", "final test acc", "best test acc", "steps/s (all in)")


def columns(jobs: List[JobRecord]) -> tuple:
    """COLUMNS, with R² for the score where every job with a record is a regression run."""
    metrics = {j.summary.metric for j in jobs if j.summary is not None}
    return COLUMNS if metrics != {"r2"} else COLUMNS[:3] + ("final test R²", "best test R²") + COLUMNS[5:]


def status_rows(jobs: List[JobRecord], planned: Optional[List[List[str]]] = None):
    """(rows, caption): one row per job of the sweep, the ones never started too (from jobs.json);
    overrides every job shares go into the caption, not on every row."""
    started = {j.num for j in jobs}
    # a planned job's overrides as a started job's record has them: Hydra's own (the launcher, the
    # sweep folder) are the sweep's settings, not the job's
    missing = [
        (i, [x for x in o if not x.lstrip("+~").startswith("hydra")])
        for i, o in enumerate(planned or [])
        if i not in started
    ]
    lists = [j.overrides for j in jobs] + [o for _, o in missing]
    common = set(lists[0]).intersection(*map(set, lists[1:])) if len(lists) > 1 else set()
    caption = f"common to all jobs: {' '.join(o for o in lists[0] if o in common)}" if common else None
    mine = lambda overrides: " ".join(o for o in overrides if o not in common) or "-"  # noqa: E731
    rows = []
    for job in jobs:
        s = job.summary
        bad = job.status in (Status.DIVERGED, Status.FAILED)
        rows.append(
            (
                "-" if job.num is None else str(job.num),
                mine(job.overrides),
                status_text(job),
                "-" if bad or s is None else score_text(s.final_test_acc, s.steps, s.last_eval_step),
                "-" if bad or s is None else score_text(s.best_test_acc, s.steps, s.last_eval_step, best=True),
                _fmt(s.steps_per_sec if s else None, "{:.0f}"),
            )
        )
    rows += [(str(i), mine(o), "not started", "-", "-", "-") for i, o in missing]
    rows.sort(key=lambda r: (not r[0].isdigit(), int(r[0]) if r[0].isdigit() else 0))
    return rows, caption


def print_status_table(
    jobs: List[JobRecord], sweep_dir: Path, console=None, planned: Optional[List[List[str]]] = None
) -> None:
    """The sweep's closing table; too narrow a terminal for its columns gets one block per job instead
    (a table never loses a column or its border)."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from ics.analysis.tables import fit_widths

    console = console or Console()
    rows, caption = status_rows(jobs, planned)
    cols = columns(jobs)
    title = f"sweep: {count(len(rows), 'job')}"
    # cells are text read from run folders: Text, so that a '[' in them is never Rich markup
    table = Table(title=title, caption=Text(caption) if caption else None, caption_justify="left")
    widths = fit_widths(cols, rows, console.width - 3 * len(cols) - 1)  # 3 per column + 1: borders, padding
    for col, w in zip(cols, widths or [None] * len(cols)):
        table.add_column(col, width=w, overflow="fold")
    for row in rows:
        table.add_row(*map(Text, row))
    if widths is not None:
        console.print(table)
        return
    console.print(title, style="bold", highlight=False)
    for row in rows:
        for line in vertical_block(row, console.width, cols):
            console.print(line, highlight=False, soft_wrap=True, markup=False)
    if caption:
        console.print(caption, highlight=False, markup=False)


def vertical_block(row, width: int, cols=COLUMNS) -> List[str]:
    """One job as lines no wider than `width`: "job N  overrides", then its values, wrapped."""
    import textwrap

    def wrap(text: str) -> List[str]:
        return textwrap.wrap(text, width, initial_indent="  ", subsequent_indent="  ", break_on_hyphens=False)

    values = " · ".join([row[2]] + [f"{name} {value}" for name, value in zip(cols[3:], row[3:])])
    return textwrap.wrap(f"job {row[0]}  {row[1]}", width, subsequent_indent="  ", break_on_hyphens=False) + wrap(
        values
    )


def say(text: str) -> None:
    """A line of prose: on a terminal wrapped at spaces (a narrow one cuts no number or word), in a log
    left whole."""
    import sys

    if not sys.stdout.isatty():
        print(text, flush=True)
        return
    from rich.console import Console

    Console(highlight=False).print(text, markup=False, emoji=False)


def next_steps(run_dir: Path) -> None:
    """Where things went and what to do next; paths printed whole, one command a line."""
    print(f"results: {run_dir}")
    print(f"next:    ics report {run_dir}")
    print(f"         ics tensorboard {run_dir}")


def print_run_summary(summary: Summary, out_dir: Path, console=None) -> None:
    """The short table printed when one run ends."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    title = f"run {summary.status}" + (f" at step {summary.diverged_at_step}" if summary.diverged_at_step else "")
    table = Table(title=title, show_header=False)
    table.add_column("what")
    table.add_column("value", overflow="fold")
    rows = [
        ("steps", str(summary.steps)),
        ("final test acc", _fmt(summary.final_test_acc)),
        ("best test acc", f"{_fmt(summary.best_test_acc)} (step {summary.best_test_acc_step})"),
        ("final test loss", _fmt(summary.final_test_loss)),
        ("final train loss", _fmt(summary.final_train_loss)),
        ("steps/s (with evaluation, instruments)", _fmt(summary.steps_per_sec, "{:.0f}")),
        ("wall time", _fmt(summary.wall_time_total_sec or summary.wall_time_sec, "{:.1f} s")),
        ("device / threads", f"{summary.device} / {summary.threads}"),
    ]
    if summary.resumed_at:
        rows.append(("resumed at step", ", ".join(map(str, summary.resumed_at))))
    for point, d in list(summary.drift.items())[-1:]:  # raw and shape first: W1/σ_ref inflates a wide start
        rows.append((f"drift {point} vs step 0: W1 raw (input units)", _fmt(d.get("w1_raw"))))
        rows.append((f"drift {point} vs step 0: W1 shape (standardised)", _fmt(d.get("w1_shape"))))
        rows.append((f"drift {point} vs step 0: W1/σ_ref", _fmt(d.get("w1_ref"))))
    from rich.text import Text

    for r in rows:  # the run's values and point names: text, never Rich markup
        table.add_row(*(Text(str(c)) for c in r))
    console.print(table)
    next_steps(out_dir)
