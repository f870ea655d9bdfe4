"""Reading run directories back: every job directory holds a summary.json."""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Tuple


def find_runs(root: Path) -> List[Tuple[Path, dict]]:
    """(job dir, summary) for every summary.json under root (root itself may be one run)."""
    root = Path(root)
    paths = sorted(root.rglob("summary.json"), key=lambda p: _job_key(p.parent, root))
    return [(p.parent, json.loads(p.read_text())) for p in paths]


def _job_key(job: Path, root: Path):
    # Hydra names sweep jobs "<num>_<overrides>": order by the job number, not alphabetically
    head = job.relative_to(root).parts[0] if job != root else ""
    num = head.split("_", 1)[0]
    return (int(num) if num.isdigit() else 1 << 30, str(job))


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
