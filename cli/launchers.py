"""Everything ics knows about Hydra's launchers, in one table.

A sweep is launched by one of six launchers (hydra/launcher=<option>). What differs between them —
where jobs run, how many at once on this machine, how a stopped sweep keeps its queued jobs from
starting, which pip extra brings them — is one `Launcher` row below; the CLI asks `launcher_of()`
instead of testing class names. A launcher the user installed that is not in the table runs as one
whose jobs have processes of their own. `ics resume` takes from a sweep folder at most the option
name of a launcher in this table (cli/resume.py), never a target or a setting.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

from ics_cli.errors import UserError


@dataclass(frozen=True)
class Launcher:
    option: str  # hydra/launcher=<option>
    target: str  # the class Hydra builds
    where: str  # "in-process" (one job after another in the CLI's process), "local" (worker processes
    #             on this machine) or "cluster" (jobs on other machines)
    # how a job interrupted by a signal ends: "stop" (the next jobs run in the same process: write the
    # sweep's stop file so they do not start), "return" (a joblib worker: an exception would make
    # joblib kill the other workers mid-checkpoint), "exit" (its own process: exit 128 + signal)
    on_interrupt: str = "exit"
    extra: Optional[str] = None  # the pip extra that provides it

    def parallelism(self, node) -> int:
        """How many jobs run at once (the live view's ETA divides by it)."""
        if self.option == "joblib":  # n_jobs -1: one worker per core
            n = node.get("n_jobs", -1)
            n = -1 if n is None else int(n)
            return (os.cpu_count() or 1) if n < 0 else max(1, n)
        if self.option.startswith("submitit") or self.option == "slurm":
            return max(1, int(node.get("array_parallelism", 256) or 256))
        if self.option == "ensemble":  # a group's members advance together
            return max(1, int(node.get("members_max", 16) or 16))
        return 1

    def local_jobs(self, node) -> int:
        """How many jobs share this machine's cores at once: each job's threads are capped at
        cores // this, so that parallel jobs never oversubscribe the cores."""
        return self.parallelism(node) if self.where == "local" else 1


_SUBMITIT = "hydra_plugins.hydra_submitit_launcher.submitit_launcher."
LAUNCHERS = (
    Launcher("basic", "hydra._internal.core_plugins.basic_launcher.BasicLauncher", "in-process", "stop"),
    Launcher(
        "joblib", "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher", "local", "return", "joblib"
    ),
    Launcher("submitit_local", _SUBMITIT + "LocalLauncher", "local", extra="submitit"),
    Launcher("submitit_slurm", _SUBMITIT + "SlurmLauncher", "cluster", extra="submitit"),
    Launcher("slurm", "hydra_plugins.ics.slurm_launcher.SlurmLauncher", "cluster", extra="submitit"),  # cli/plugins
    # the seeds of a config as one vectorised model, in the CLI's process (cli/ensemble.py)
    Launcher("ensemble", "hydra_plugins.ics.ensemble_launcher.EnsembleLauncher", "in-process", "stop"),
)
OPTIONS = tuple(launcher.option for launcher in LAUNCHERS)


def launcher_of(node) -> Launcher:
    """The row of a composed `hydra.launcher` node. A launcher ics has no row for (one the user
    installed) runs too, as jobs in processes of their own; a `_target_` that does not import is a
    UserError."""
    target = str(node.get("_target_", "") if node is not None else "")
    for launcher in LAUNCHERS:
        if target == launcher.target:
            return launcher
    module, _, name = target.rpartition(".")
    try:
        import importlib

        found = bool(module) and hasattr(importlib.import_module(module), name)
    except Exception:  # noqa: BLE001 - any import failure: the launcher cannot run
        found = False
    if not found:
        raise UserError(
            f"hydra.launcher._target_={target or '(none)'} cannot be imported; choose an installed "
            f"launcher: hydra/launcher={', '.join(OPTIONS)} or a plugin's option"
        )
    return Launcher(name.lower().removesuffix("launcher") or "launcher", target, "local")


def by_option(option: str) -> Optional[Launcher]:
    return next((launcher for launcher in LAUNCHERS if launcher.option == option), None)


def install_hint(option: str) -> Optional[str]:
    launcher = by_option(option)
    if launcher is None or launcher.extra is None:
        return None
    return f"{option} launcher: pip install 'ics[{launcher.extra}]'"
