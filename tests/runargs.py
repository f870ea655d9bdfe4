"""Helpers shared by the tests that drive `ics` in subprocesses (durability, SLURM)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

# summary.json fields that legitimately differ between two runs of the same config
TIMING = {
    "steps_per_sec",
    "train_steps_per_sec",
    "wall_time_sec",
    "wall_time_total_sec",
    "eval_time_sec",
    "instrument_time_sec",
    "checkpoint_time_sec",
    "pid",
    "updated",
    "resumed_at",
    "host",
    "started",
}


def merged(*args: str) -> list:
    """Overrides with a later key=value replacing an earlier one (ics refuses a key given twice)."""
    out: dict = {}
    for a in args:
        out[a.split("=", 1)[0] if "=" in a else a] = a
    return list(out.values())


def reference_run(root: Path, ics, run_args, mnist_root) -> Path:
    """The same run, never interrupted: what an interrupted and resumed one must equal, bit for bit.
    `ics(args, env, cwd)` runs the CLI the way the calling test file does."""
    import os

    env = {**os.environ, "ICS_DATA_ROOT": str(mnist_root)}
    env.pop("HYDRA_FULL_ERROR", None)
    p = ics(merged("run", *run_args, f"hydra.run.dir={Path(root) / 'run'}"), env, root)
    assert p.returncode == 0, p.stdout + p.stderr
    assert record(Path(root) / "run")["status"] == "completed"
    return Path(root) / "run"


def record(d: Path) -> dict:
    return json.loads((Path(d) / "summary.json").read_text())


def assert_same_run(a: Path, b: Path) -> None:
    """Everything two runs computed is bit-identical: the record (but timing, and the overrides and
    config that name their directories), curves, probes, the step and the parameters."""
    ra, rb = record(a), record(b)
    for k in ra:
        if k not in TIMING | {"overrides", "config"}:
            assert ra[k] == rb[k], f"summary.json {k}: {ra[k]!r} != {rb[k]!r}"
    for name in ("metrics.npz", "probes.npz"):
        with np.load(Path(a) / name) as za, np.load(Path(b) / name) as zb:
            assert sorted(za.files) == sorted(zb.files)
            for k in za.files:
                assert np.array_equal(za[k], zb[k]), f"{name}:{k} differs"
    ca = torch.load(Path(a) / "checkpoint.pt", weights_only=True)
    cb = torch.load(Path(b) / "checkpoint.pt", weights_only=True)
    assert ca["step"] == cb["step"]
    for k in ca["model"]:
        assert torch.equal(ca["model"][k], cb["model"][k]), f"parameter {k} differs"
