"""The Hydra task: one job = one training run in Hydra's job directory.

In a multirun, a job that fails (bad value, crash) writes a `failed` summary and returns instead of
raising, so one job never kills the sweep; a diverging job is a result (`diverged`) anyway.
"""
from __future__ import annotations

import os
import shutil
import sys
import traceback
from pathlib import Path
from typing import Any, List, Optional

from omegaconf import DictConfig

from ics.config import ConfigError, to_config
from ics.files import write_json
from ics.summaries import print_run_summary


def _parallel_jobs(hc) -> int:
    """How many jobs run at once on this machine (joblib launcher: n_jobs; else 1)."""
    launcher = hc.launcher
    if "joblib" not in str(launcher.get("_target_", "")):
        return 1  # the basic and submitit launchers run one job per process/machine at a time
    n = int(launcher.get("n_jobs", -1) or -1)
    cores = os.cpu_count() or 1
    return cores if n < 0 else max(1, min(n, cores))


def run_job(cfg: DictConfig) -> dict:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from ics.threads import available_cores
    from ics.train import Trainer

    hc = HydraConfig.get()
    out_dir = Path(hc.runtime.output_dir)
    overrides = list(hc.overrides.task)
    # each of N parallel jobs gets a fair share of the cores: N jobs on N cores never oversubscribe
    max_threads = max(1, available_cores() // _parallel_jobs(hc))
    single = hc.mode != RunMode.MULTIRUN
    try:
        trainer = Trainer(to_config(cfg), out_dir, overrides=overrides, max_threads=max_threads)
    except KeyboardInterrupt:
        raise
    except Exception as e:  # noqa: BLE001 - nothing trained yet: leave nothing behind
        _remove_untrained(out_dir, Path(hc.runtime.cwd))
        return _failed(e, out_dir, overrides, hc.job.get("num"), single, write=not single)
    try:
        summary = trainer.fit()
    except KeyboardInterrupt:
        raise
    except Exception as e:  # noqa: BLE001 - a crash mid-run is recorded as `failed`
        return _failed(e, out_dir, overrides, hc.job.get("num"), single, write=True)
    if single:
        print_run_summary(summary, out_dir)
    return summary


def _failed(e: Exception, out_dir: Path, overrides: List[str], num: Optional[int], single: bool, write: bool) -> dict:
    """Record a failed job (summary.json with the traceback) and say so in one line. A single run
    exits non-zero; in a sweep the other jobs go on. HYDRA_FULL_ERROR=1 re-raises instead."""
    if single and os.environ.get("HYDRA_FULL_ERROR") == "1":
        raise e
    summary = {"status": "failed", "error": _one_line(e), "overrides": overrides, "traceback": traceback.format_exc()}
    if write:
        out_dir.mkdir(parents=True, exist_ok=True)
        write_json(out_dir / "summary.json", summary)
    if single:
        print(f"error: {summary['error']}", file=sys.stderr)
        raise SystemExit(2 if isinstance(e, ConfigError) else 1)
    print(f"job {num} failed: {summary['error']}")
    return summary


def _remove_untrained(out_dir: Path, stop: Path) -> None:
    """Delete a job dir that holds only Hydra's bookkeeping (.hydra/, the job log), and the parents
    Hydra made for it (runs/<date>/) once empty, up to the working directory."""
    if not (out_dir.is_dir() and all(p.name in (".hydra", "ics.log") for p in out_dir.iterdir())):
        return
    shutil.rmtree(out_dir)
    parent, stop = out_dir.resolve().parent, stop.resolve()
    while parent != stop and stop in parent.parents and not any(parent.iterdir()):
        parent.rmdir()
        parent = parent.parent


def _one_line(e: BaseException) -> str:
    msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return msg if isinstance(e, ConfigError) else f"{type(e).__name__}: {msg}"


try:  # the callback class is only needed when Hydra is the caller
    from hydra.experimental.callback import Callback
except ImportError:  # pragma: no cover
    Callback = object  # type: ignore


FAILED_JOBS: List[str] = []  # filled after a multirun, so the CLI can exit non-zero


class SweepStatusTable(Callback):
    """After a multirun: one line per job with its status, printed to the console."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from ics.summaries import find_runs, print_status_table

        sweep = Path(config.hydra.sweep.dir)
        print_status_table(sweep)
        FAILED_JOBS[:] = [job.name for job, s in find_runs(sweep) if s.get("status") == "failed"]
