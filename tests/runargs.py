"""Helpers shared by the tests that drive `ics` in subprocesses (durability, SLURM)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import numpy as np
import torch

# the runs of test_durable.py and test_durable_sweeps.py: long enough on tiny data (~1-3 s) that a
# kill after the first checkpoint lands mid-run
RUN = [
    "trainer.steps=3000",
    "trainer.checkpoint_every=200",
    "trainer.threads=1",
    "trainer.eval_every=100",
    "trainer.log_every=50",
    "probe.every=50",
    "probe.size=100",
    "probe.histogram_every=500",
    "model.widths=[64,64]",
]


def wait_for(path: Path, proc: subprocess.Popen, timeout=120) -> None:
    t0 = time.time()
    while not path.exists():
        assert proc.poll() is None, f"ended before {path.name} appeared: {proc.communicate()}"
        assert time.time() - t0 < timeout, f"{path} never appeared"
        time.sleep(0.02)


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
