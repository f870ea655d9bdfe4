"""Reading run directories back: every job directory holds a summary.json."""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional, Tuple


def find_runs(root: Path) -> List[Tuple[Path, dict]]:
    """(job dir, summary) for every summary.json under root (root itself may be one run)."""
    root = Path(root)
    paths = sorted(root.rglob("summary.json"), key=lambda p: _job_key(p.parent, root))
    return [(p.parent, _read(p)) for p in paths]


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:  # a job killed mid-write by hand, a truncated copy
        return {"status": "failed", "error": f"unreadable {path.name}: {e}"}


def job_number(job: Path, root: Path) -> Optional[int]:
    """Hydra names sweep jobs "<num>_<overrides>"; None for any other directory name."""
    head = job.relative_to(root).parts[0] if job != root else ""
    num = head.split("_", 1)[0]
    return int(num) if num.isdigit() else None


def _job_key(job: Path, root: Path):
    num = job_number(job, root)  # order by the job number, not alphabetically
    return (num if num is not None else 1 << 30, str(job))


def job_label(summary: dict) -> str:
    return " ".join(summary.get("overrides") or []) or "(defaults)"


def print_status_table(sweep_dir: Path, console=None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    runs = find_runs(sweep_dir)
    table = Table(title=f"sweep {sweep_dir}: {len(runs)} jobs")
    for col in ("job", "overrides", "status", "final acc", "best acc", "steps/s"):
        table.add_column(col)
    for job, s in runs:
        fmt = lambda v: "-" if v is None else f"{v:.4f}"  # noqa: E731
        status = s.get("status", "?")
        if status == "diverged":
            status += f" @ {s.get('diverged_at_step')}"
        if status == "failed":
            status += f": {s.get('error', '')}"
        table.add_row(job.name.split("_", 1)[0], job_label(s), status, fmt(s.get("final_test_acc")),
                      fmt(s.get("best_test_acc")), "-" if s.get("steps_per_sec") is None else f"{s['steps_per_sec']:.0f}")
    console.print(table)


def print_run_summary(summary: dict, out_dir: Path, console=None) -> None:
    """The short table printed when one run ends."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    fmt = lambda v, f="{:.4f}": "-" if v is None else f.format(v)  # noqa: E731
    table = Table(title=f"run {summary['status']}" + (f" at step {summary['diverged_at_step']}"
                                                      if summary.get("diverged_at_step") else ""), show_header=False)
    table.add_column("what")
    table.add_column("value")
    rows = [("steps", str(summary["steps"])), ("final test acc", fmt(summary["final_test_acc"])),
            ("best test acc", f"{fmt(summary['best_test_acc'])} (step {summary['best_test_acc_step']})"),
            ("final test loss", fmt(summary["final_test_loss"])), ("final train loss", fmt(summary["final_train_loss"])),
            ("steps/s", fmt(summary["steps_per_sec"], "{:.0f}")), ("wall time", fmt(summary["wall_time_sec"], "{:.1f} s")),
            ("device / threads", f"{summary['device']} / {summary['threads']}")]
    last = list(summary.get("drift", {}).items())[-1:]
    for point, d in last:
        rows.append((f"drift {point} (W1/σ_ref vs step 0)", fmt(d.get("w1_ref"))))
    rows.append(("run dir", str(out_dir)))
    for r in rows:
        table.add_row(*r)
    console.print(table)
