"""What `ics run`, `ics sweep` and `ics resume` do around Hydra's runtime: the folder a launch writes into
(checked, or claimed fresh), how a sweep's job folders are named, the sweep's own record written before
its first job, and the closing table with the exit code. cli/main.py parses the command and calls these;
a refusal is a UserError (one line; `code` is the exit status).

Imported by the commands when they run, never by `ics --help` or a Tab (it imports Hydra and the library).
"""

from __future__ import annotations

import logging
import os
import shutil
import signal as sig
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import typer
from ics_cli.configdirs import RECORD as SWEEP_RECORD
from ics_cli.configdirs import STAGE, ConfigDirs, write_sweep_record
from ics_cli.console import next_steps, print_status_table, say
from ics_cli.errors import UserError
from ics_cli.hydra_app import NAME_EXCLUDE_KEYS
from ics_cli.preflight import compose
from ics_cli.rundirs import claim, planted_link, quote
from ics_cli.sweeps import (
    HPARAMS_FILE,
    STOP_FILE,
    keys_left_out_of_names,
    run_name,
    sweep_keys,
    sweep_name,
    write_hparams,
)

from ics.config import Config, ConfigError, from_dict
from ics.record import RecordError, Status, names, read_job, read_jobs, read_planned, read_summary
from ics.record.files import MAX_YAML_BYTES, atomic_write, copy_tree, one_line, read_bytes, write_json
from ics.record.lock import RunBusy, RunLock, holder
from ics.record.plan import Plan as JobPlan
from ics.record.plan import PlanError, PlannedJob, read_plan, write_plan
from ics.words import count, them


def stamp() -> str:
    """A log's timestamp (output not to a terminal: every line stamped); "" on a terminal."""
    return "" if sys.stdout.isatty() else time.strftime("%H:%M:%S ")


def check_writable(path: Path, key: str) -> None:
    """The nearest existing parent of the run directory must be writable (nothing is created here)."""
    parent = Path(os.path.abspath(path))
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(
            f"{key}={path} is not writable: {parent} "
            f"{'is not a directory' if not parent.is_dir() else 'is read-only'}; choose a writable place"
        )


def check_user_dir(target: Path, multirun: bool, overrides: List[str]) -> Optional[str]:
    """A launch aimed at an existing, non-empty folder (hydra.run.dir / hydra.sweep.dir) is checked
    before Hydra writes anything there: it must be an ics run (or sweep); a run must not be live, and
    must have been started with the same config (the launch then resumes it). Refused in one line, with
    nothing written. Returns the line to say when the run has finished already (it is left as it is)."""
    if not target.is_dir() or not any(target.iterdir()):
        return None
    link = planted_link(target)
    if link is not None:
        raise UserError(
            f"{link} is a symbolic link; ics does not write through links in a run or sweep folder: "
            "remove it, or choose a new folder"
        )
    key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
    if multirun:
        if not any(
            (target / n).is_file() for n in ("multirun.yaml", names.PLANNED_JOBS, names.JOB_PLAN, names.SWEEP_LOCK)
        ):
            raise UserError(
                f"{key}={target} is a non-empty folder that is not an ics sweep; choose a new or empty folder"
            )
        return None
    if not any((target / n).exists() for n in (names.SUMMARY, names.CHECKPOINT, names.LOCK, ".hydra")):
        raise UserError(f"{key}={target} is a non-empty folder that is not an ics run; choose a new or empty folder")
    who = holder(target)
    if who:
        raise UserError(f"{key}={target} is being trained by {who}; wait for it to end, or choose another folder")
    # torch: only for a launch into an existing run folder (`ics run --cfg job` and the like import none)
    from ics.train import check_resumable
    from ics.train import checkpoint as ckpt

    try:
        cfg = from_dict(compose(overrides))
        check_resumable(cfg, target)
        try:
            record = read_summary(target)
        except (FileNotFoundError, RecordError):
            record = None
        if record is not None and isinstance(record.config, dict) and record.config:
            diff = ckpt.config_difference(cfg, record.config)
            if diff is not None:
                raise ConfigError(
                    f"{key}={target} holds a run started with {diff[0]}={diff[1]}; the config now "
                    f"says {diff[0]}={diff[2]}: resume it with `ics resume {target}`, or choose "
                    "another folder"
                )
    except ConfigError as e:
        raise UserError(str(e)) from None
    if record is not None and record.status.finished:
        return f"run: {target} already {record.status} at step {record.steps}; left as it is"
    return None


def target_of(plan, multirun: bool, study: Optional[str], argv: List[str]) -> Tuple[Path, List[str], Optional[str]]:
    """The folder the launch writes into, the argv that tells Hydra so, and the line to say instead of
    launching (a run in a user-given folder that has finished). A folder of the user's
    (hydra.run.dir=/hydra.sweep.dir=) is checked; else a fresh one is claimed beside Hydra's template."""
    key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
    if plan.user_dir:
        target = Path(str(plan.hydra.sweep.dir if multirun else plan.hydra.run.dir))
        check_writable(target, key)
        done = check_user_dir(target, multirun, plan.jobs[0] if plan.jobs else [])
        if done is not None:
            return target, argv, done
        try:
            target.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UserError(f"{key}={target} cannot be created: {e.strerror}; choose a writable place") from None
        return target, argv, None
    base = Path(str(plan.hydra.sweep.dir if multirun else plan.hydra.run.dir))
    named = next((o.split("=", 1)[1] for o in plan.jobs[0] if o.startswith("experiment=")), None) if plan.jobs else None
    suffix = (
        (study or named or sweep_name(sweep_keys(plan.jobs)[0]))
        if multirun
        else run_name(plan.jobs[0] if plan.jobs else [])
    )
    check_writable(base, key)
    try:
        target = claim(base.with_name(f"{base.name}_{suffix}") if suffix else base)
    except OSError as e:
        raise UserError(
            f"cannot create the {'sweep' if multirun else 'run'} directory under {base.parent}: "
            f"{e.strerror}; run from a writable directory or set {key}=<a writable path>"
        ) from None
    return target, argv + [f"{key}={quote(target)}"], None


def name_jobs(plan, argv: List[str], target: Path) -> Tuple[List[str], Dict[str, list]]:
    """A sweep's job folders are named by what varies ("3_norm=batch,seed=1"), not every constant too,
    and never longer than a folder name may be. Returns the argv that says so and the varying keys."""
    varying, constant = sweep_keys(plan.jobs)
    exclude = sorted(set(NAME_EXCLUDE_KEYS) | {k for k in constant if not k.startswith("hydra")})
    too_long = keys_left_out_of_names(plan.jobs, exclude)  # a folder name has at most 255 bytes
    if too_long:
        exclude = sorted(set(exclude) | set(too_long))
        typer.echo(
            f"note: job folders are named without {', '.join(too_long)} (its values make names longer "
            "than a folder name may be); each job's overrides are in its .hydra/overrides.yaml",
            err=True,
        )
    argv = [a for a in argv if not a.startswith("hydra.job.config.override_dirname.exclude_keys=")]
    argv.append("hydra.job.config.override_dirname.exclude_keys=[" + ",".join(exclude) + "]")
    # nothing swept shows in the names: job "0", not "0_" (a sweep made with "0_" folders keeps them)
    named_keys = [k for k in varying if k not in exclude and not k.startswith("hydra")]
    old_style = any(p.name.endswith("_") for p in target.iterdir()) if target.is_dir() else False
    if not named_keys and not old_style and not any(a.startswith("hydra.sweep.subdir=") for a in argv):
        argv.append("hydra.sweep.subdir=${hydra.job.num}")
    return argv, varying


def keep_study(stage: Path, target: Path, plan, argv: List[str]) -> List[str]:
    """A study given by path was staged in a temporary folder: its copy lives in the sweep from now on
    (the jobs' search path points there)."""
    kept = target / STAGE
    copy_tree(stage, kept)  # into a sweep folder: never through a link planted there
    shutil.rmtree(stage, ignore_errors=True)
    plan.dirs = [kept.resolve() if d == stage else d for d in plan.dirs]
    argv = [a for a in argv if not a.startswith("hydra.searchpath=")]
    argv[1:1] = ConfigDirs(dirs=plan.dirs).searchpath_override()
    return argv


def hold_sweep(target: Path, doing: str) -> RunLock:
    """The sweep's own lock (sweep.lock), held by the one `ics` process that runs or resumes it, until
    that process ends or releases it. A second one is refused in one line (UserError), before it
    writes anything: two processes resuming one sweep would start the same jobs."""
    lock = RunLock(target, names.SWEEP_LOCK, f"{doing} it")
    try:
        return lock.acquire()
    except RunBusy as e:  # "<sweep> is in use by pid N on host, resuming it", or a lock ics cannot use
        busy = holder(target, names.SWEEP_LOCK) is not None
        raise UserError(f"{e}; nothing was changed: wait for it to end" if busy else str(e)) from None


def start_sweep(target: Path, plan, varying: Dict[str, list], study: Optional[str]) -> None:
    """The sweep's own record, written before its first job: every job as data (what `ics resume`
    rebuilds the jobs from, never composing again), the swept keys, where its configs came from."""
    target.mkdir(parents=True, exist_ok=True)
    (target / STOP_FILE).unlink(missing_ok=True)  # a resumed sweep was stopped once; it runs now
    search = plan.sweeper is not None and plan.sweeper.option != "basic"
    if not search:  # lets a report name the jobs never started (a search's jobs are not known in advance)
        write_json(target / names.PLANNED_JOBS, plan.jobs)
    write_plan(
        target,
        JobPlan(
            launcher=plan.launcher.option,
            sweeper=plan.sweeper.option if plan.sweeper else None,
            objective=plan.objective,
            jobs=[
                PlannedJob(i, [o for o in job if not o.lstrip("+~").startswith("hydra")], config)
                for i, (job, config) in enumerate(zip(plan.jobs, plan.configs))
            ]
            if not search
            else [],
        ),
    )
    if not (target / HPARAMS_FILE).exists():  # a search's values are drawn as it goes: keys, no domains
        write_hparams(target, {k: [] for k in plan.searched} if search else varying)
    if not (target / SWEEP_RECORD).exists():  # a resumed sweep keeps the record it was started with
        write_sweep_record(target, study, plan.dirs, plan.config_name)
    swept = ", ".join(f"{k} ({len(v)})" for k, v in varying.items()) or "nothing"
    if search:
        trials = count(plan.total, "trial") if plan.total else "trials"
        say(
            f"{stamp()}search: {trials} of hydra/sweeper={plan.sweeper.option} into {target} (launcher "
            f"{plan.launcher.option}; {plan.objective['direction']} sweep.objective={plan.objective['metric']} over "
            f"{', '.join(plan.searched)})"
        )
        return
    say(
        f"{stamp()}sweep: {count(len(plan.jobs), 'job')} into {target} (launcher {plan.launcher.option}; swept: {swept})"
    )


class _NoResultLines:
    """A logging filter for the Optuna sweeper's lines about a trial that returned nothing: ics returns
    no objective only for a job that was stopped or failed, and says so itself (its line, the table)."""

    def filter(self, record) -> bool:
        return "Got 'None'" not in record.getMessage()


def quiet_optuna() -> None:
    """Optuna logs each study and trial at INFO on its own handler: under the live view that is noise
    (the sweep's table and `ics report` say what it found); warnings still show."""
    logging.getLogger("hydra_plugins.hydra_optuna_sweeper._impl").addFilter(_NoResultLines())
    try:
        import optuna  # an optional extra (ics[optuna])

        optuna.logging.set_verbosity(optuna.logging.WARNING)
    except ImportError:
        pass


def progress_every(jobs: Sequence[Sequence[str]]) -> float:
    """trainer.progress_every_sec of the sweep (its first job's override, else the default): how often a
    sweep without a terminal logs each running job's progress."""
    given = [o.split("=", 1)[1] for o in (jobs[0] if jobs else []) if o.startswith("trainer.progress_every_sec=")]
    try:
        return max(float(given[-1]), 0.5) if given else float(Config().trainer.progress_every_sec)
    except ValueError:
        return float(Config().trainer.progress_every_sec)


def unrecorded(target: Path, todo: Sequence[str]) -> List[str]:
    """The jobs of a resume's `todo` that ended without a record (they failed before writing anything;
    the live view shows no line for them), each said on stderr."""
    missing = [name for name in todo if read_job(target / name, target).summary is None]
    for name in missing:
        typer.echo(f"resume: {target / name} ended without a record (it could not start)", err=True)
    return missing


def best_trial(sweep_dir: Path) -> None:
    """After a search (an optimising sweeper), the trial it found best, by the objective it searched on."""
    try:
        plan = read_plan(sweep_dir)
    except PlanError:
        return
    if plan is None or plan.sweeper in (None, "basic"):
        return
    from ics.analysis.load import load_jobs  # the report's reader: only after a search
    from ics.analysis.search import search_lines, search_of

    jobs = load_jobs(sweep_dir)
    search = search_of([sweep_dir], jobs)
    if search is not None:
        for line in search_lines(jobs, search):
            typer.echo(line)


def after_sweep(sweep_dir: Path, signum: Optional[int] = None, refused: Sequence[str] = ()) -> None:
    """The sweep's closing table, the best trial of a search and what to do next; then the exit: 128 +
    signal for a stopped sweep (typer.Exit), a UserError (code 1) naming the jobs that failed, cannot be
    resumed or did not finish."""
    sweep_dir = sweep_dir.absolute()  # the resume hints below are copied into other shells
    jobs = read_jobs(sweep_dir)
    if signum is not None and not jobs:
        typer.echo(
            f"sweep stopped by {sig.Signals(signum).name} before any job started. "
            f"Start it with: ics resume {sweep_dir}",
            err=True,
        )
        raise typer.Exit(128 + signum)
    print_status_table(jobs, sweep_dir, planned=read_planned(sweep_dir))  # the jobs never started too
    best_trial(sweep_dir)
    next_steps(sweep_dir)
    if signum is not None:
        typer.echo(
            f"sweep stopped by {sig.Signals(signum).name}: the table shows where each job stopped "
            f"(interrupted: checkpoint at that step; killed: its last periodic checkpoint). "
            f"Finish it with: ics resume {sweep_dir}",
            err=True,
        )
        raise typer.Exit(128 + signum)
    failed = [str(j.num) for j in jobs if j.status == Status.FAILED]
    if failed:  # diverged or not_learning jobs are results; a failed job is an error
        raise UserError(f"{len(failed)} job(s) failed: {', '.join(failed)} (see their summary.json)", code=1)
    cannot = [name.split("_", 1)[0] for name in dict.fromkeys(refused)]
    unfinished = [
        str(j.num) for j in jobs if j.status in (Status.INTERRUPTED, Status.KILLED) and j.dir.name not in refused
    ]
    if cannot:  # resume named each with its reason: resuming again would not help
        raise UserError(
            f"{count(len(cannot), 'job')} cannot be resumed: {', '.join(cannot)} (see why above)"
            + (
                f"; {len(unfinished)} did not finish: {', '.join(unfinished)}, finish {them(unfinished)} with ics resume {sweep_dir}"
                if unfinished
                else ""
            ),
            code=1,
        )
    if unfinished:
        raise UserError(
            f"{len(unfinished)} job(s) did not finish: {', '.join(unfinished)}; finish them with "
            f"ics resume {sweep_dir}",
            code=1,
        )


def read_sweep_record(target: Path) -> Optional[bytes]:
    """The sweep's own multirun.yaml, which a resume's Hydra run rewrites: kept to be put back after
    (None: the folder had none, e.g. a search's). Read as data, with a cap (a sparse 1 GB file would
    otherwise be read whole)."""
    record = target / "multirun.yaml"
    try:
        return read_bytes(record, MAX_YAML_BYTES) if record.is_file() and not record.is_symlink() else None
    except (OSError, ValueError) as e:
        raise UserError(f"{record} does not read ({one_line(e)}); move it away to resume") from None


def put_back_sweep_record(target: Path, kept: Optional[bytes]) -> None:
    record = target / "multirun.yaml"
    if kept is not None:
        atomic_write(record, lambda p: p.write_bytes(kept))
    elif record.is_file() and not record.is_symlink():
        record.unlink()  # the resume's own Hydra record: it would misdescribe the sweep
