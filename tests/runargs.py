"""Helpers shared by the tests that drive `ics` in subprocesses (durability, SLURM)."""
from __future__ import annotations

# summary.json fields that legitimately differ between two runs of the same config
TIMING = {"steps_per_sec", "train_steps_per_sec", "wall_time_sec", "wall_time_total_sec", "eval_time_sec",
          "instrument_time_sec", "checkpoint_time_sec", "pid", "updated", "resumed_at", "host"}


def merged(*args: str) -> list:
    """Overrides with a later key=value replacing an earlier one (ics refuses a key given twice)."""
    out: dict = {}
    for a in args:
        out[a.split("=", 1)[0] if "=" in a else a] = a
    return list(out.values())
