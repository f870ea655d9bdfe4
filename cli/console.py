"""What the terminal shows at the end of a run or a sweep."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

from ics.record import JobRecord, Status, Summary


def _fmt(v: Optional[float], f: str = "{:.4f}") -> str:
    return "-" if v is None else f.format(v)


def status_text(job: JobRecord) -> str:
    s, st = job.summary, job.status
    if st == Status.DIVERGED and s is not None and s.diverged_at_step is not None:
        return f"diverged @ {s.diverged_at_step}"
    if st == Status.FAILED and s is not None and s.error:
        return f"failed: {s.error}"
    if st in (Status.INTERRUPTED, Status.KILLED) and s is not None:
        return f"{st} @ {s.steps}" + (" (resumable)" if job.has_checkpoint else "")
    if st == Status.KILLED:
        return "killed before its first record"
    if st == Status.UNREADABLE:
        return f"unreadable: {job.problem}"
    return str(st)


def print_status_table(jobs: List[JobRecord], sweep_dir: Path, console=None) -> None:
    """One line per job; overrides every job shares go into the caption, not on every row."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    lists = [j.overrides for j in jobs]
    common = set(lists[0]).intersection(*map(set, lists[1:])) if len(lists) > 1 else set()
    caption = f"common to all jobs: {' '.join(o for o in lists[0] if o in common)}" if common else None
    table = Table(title=f"sweep: {len(jobs)} jobs", caption=caption, caption_justify="left")
    table.add_column("job", no_wrap=True)
    table.add_column("overrides", overflow="fold", min_width=16)
    for col in ("status", "final acc", "best acc", "steps/s (all in)"):
        table.add_column(col, overflow="fold")
    for job in jobs:
        s = job.summary
        bad = job.status in (Status.DIVERGED, Status.FAILED)
        final = _fmt(s.final_test_acc if s else None)
        table.add_row("-" if job.num is None else str(job.num), " ".join(o for o in job.overrides if o not in common) or "-",
                      status_text(job), "-" if bad else final, "-" if bad else _fmt(s.best_test_acc if s else None),
                      _fmt(s.steps_per_sec if s else None, "{:.0f}"))
    console.print(table)


def next_steps(run_dir: Path) -> None:
    """Where things went and what to do next; paths printed whole."""
    print(f"results: {run_dir}")
    print(f"next:    ics report {run_dir}    |    ics tensorboard {run_dir}")


def print_run_summary(summary: Summary, out_dir: Path, console=None) -> None:
    """The short table printed when one run ends."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    title = f"run {summary.status}" + (f" at step {summary.diverged_at_step}" if summary.diverged_at_step else "")
    table = Table(title=title, show_header=False)
    table.add_column("what")
    table.add_column("value", overflow="fold")
    rows = [("steps", str(summary.steps)), ("final test acc", _fmt(summary.final_test_acc)),
            ("best test acc", f"{_fmt(summary.best_test_acc)} (step {summary.best_test_acc_step})"),
            ("final test loss", _fmt(summary.final_test_loss)), ("final train loss", _fmt(summary.final_train_loss)),
            ("steps/s (with evaluation, instruments)", _fmt(summary.steps_per_sec, "{:.0f}")),
            ("wall time", _fmt(summary.wall_time_total_sec or summary.wall_time_sec, "{:.1f} s")),
            ("device / threads", f"{summary.device} / {summary.threads}")]
    if summary.resumed_at:
        rows.append(("resumed at step", ", ".join(map(str, summary.resumed_at))))
    for point, d in list(summary.drift.items())[-1:]:
        rows.append((f"drift {point} (W1/σ_ref vs step 0)", _fmt(d.get("w1_ref"))))
    for r in rows:
        table.add_row(*r)
    console.print(table)
    next_steps(out_dir)
