"""`ics`: Typer owns the commands; Hydra owns everything after the command name of run and sweep."""
from __future__ import annotations

import math
import os
import re
import sys
import time
from pathlib import Path
from typing import List, Optional, Sequence

if os.environ.get("_ICS_COMPLETE"):  # a Tab: an override is answered before Typer is even imported
    from ics_cli.completion import fast_answer

    if (_answer := fast_answer(os.environ)) is not None:
        print(_answer)
        sys.exit(0)

import typer  # noqa: E402

from ics_cli.completion import complete_override, complete_section, complete_study, use_own_scripts
from ics_cli.configdirs import STAGE, ConfigDirs
from ics_cli.errors import UserError

app = typer.Typer(
    name="ics", no_args_is_help=True, rich_markup_mode="rich", add_completion=True,
    help="Train MLPs and CNNs with and without BatchNorm and measure internal covariate shift: how "
         "each layer's input distribution drifts during training.\n\n"
         "Example: [bold]ics run model=cnn data=cifar10 model.norm=none optim.lr=0.05[/bold]",
)
PASS_THROUGH = {"allow_extra_args": True, "ignore_unknown_options": True}
use_own_scripts()  # bash: no space after a completed "key="


def _fail(msg: str, code: int = 2) -> None:
    typer.secho(f"error: {msg}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def _version(value: bool) -> None:
    if value:
        from ics import __version__

        typer.echo(f"ics {__version__}")
        raise typer.Exit()


@app.callback()
def main(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                      help="Print the version and exit.")) -> None:
    pass


def _hydra(argv: List[str]) -> None:
    from hydra.core.global_hydra import GlobalHydra

    from ics_cli.hydra_entry import hydra_main

    GlobalHydra.instance().clear()  # preflight's compose session; hydra.main starts its own
    sys.argv = ["ics", *argv]
    hydra_main()


class _EarlyStop(BaseException):
    """A stop signal before the run's task took over its own signals (preflight, claiming the folder,
    Hydra writing .hydra/): a BaseException, so that Hydra's error reporting lets it through."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


class _StopBeforeRun:
    """SIGINT/SIGTERM from the first line of `ics run` until the task's own handling begins: the
    command stops at once, removes a run folder that holds only Hydra's bookkeeping, says so in one
    true line and exits 128 + signal. Once the run has a record, a late signal (Hydra shutting down)
    changes nothing."""

    def __init__(self):
        self.target: Optional[Path] = None
        self._old: dict = {}

    def _handle(self, signum, frame) -> None:
        if self.target is not None and (self.target / "summary.json").exists():
            return  # the run wrote its record and is ending: nothing to stop
        raise _EarlyStop(signum)

    def __enter__(self) -> "_StopBeforeRun":
        import signal as sig
        import threading

        if threading.current_thread() is threading.main_thread():
            for s in (sig.SIGINT, sig.SIGTERM):
                self._old[s] = sig.signal(s, self._handle)
        return self

    def __exit__(self, kind, value, tb) -> bool:
        import signal as sig

        for s, old in self._old.items():
            if sig.getsignal(s) == self._handle:  # the run's own scope may have left a handler that keeps
                sig.signal(s, old)                # its exit code through shutdown: leave that one
        if not isinstance(value, _EarlyStop):
            return False
        from ics_cli.rundirs import remove_untrained  # light: a signal may have cut an import short

        kept = ""
        if self.target is not None:
            remove_untrained(self.target, Path.cwd())
            if self.target.exists() and any(self.target.iterdir()):
                kept = f" ({self.target} left as it was)"
        typer.echo(f"run interrupted by {sig.Signals(value.signum).name} before training started; nothing was "
                   f"kept{kept}", err=True)
        raise typer.Exit(128 + value.signum)


def _test_pause(phase: str) -> None:
    """Test hook (as ics.train.signals.pause_point, for the CLI's own phases): with
    ICS_TEST_PAUSE_AT=<phase>, write the pid to ICS_TEST_PAUSE_FILE and wait (60 s at most) for a
    signal, whose handler raises here, or for the file to be removed. Without the variable: nothing."""
    import time

    marker = os.environ.get("ICS_TEST_PAUSE_FILE")
    if os.environ.get("ICS_TEST_PAUSE_AT") != phase or not marker:
        return
    Path(marker + ".tmp").write_text(f"{os.getpid()} {phase}\n")
    os.replace(marker + ".tmp", marker)
    deadline = time.monotonic() + 60
    while os.path.exists(marker) and time.monotonic() < deadline:
        time.sleep(0.002)


def _launch(args: List[str], force_multirun: bool = False, study: Optional[str] = None,
            extra_dirs: Sequence[Path] = (), stage: Optional[Path] = None) -> None:
    early = _StopBeforeRun()
    with early:
        _launch_run(early, args, force_multirun, study, extra_dirs, stage)


def _launch_run(early: "_StopBeforeRun", args: List[str], force_multirun: bool, study: Optional[str],
                extra_dirs: Sequence[Path], stage: Optional[Path]) -> None:
    """Validate every job, claim a fresh directory, then hand over to Hydra's runtime. `stage`: a
    temporary config folder holding a study given by path, moved into the sweep directory."""
    shows = any(a.split("=", 1)[0] in ("--cfg", "-c", "--help", "-h", "--hydra-help", "--info", "-i", "--version",
                                       "-sc", "--shell-completion") for a in args)
    if not shows:  # the first word within a second of Enter: what follows imports torch (a log: stamped)
        stamp = "" if sys.stdout.isatty() else time.strftime("%H:%M:%S ")
        typer.echo(stamp + "ics: checking the config" + (" of every job" if force_multirun or "-m" in args
                                                         or "--multirun" in args else "") + " ...")
    from ics_cli.hydra_app import NAME_EXCLUDE_KEYS
    from ics_cli.preflight import preflight
    from ics_cli.rundirs import claim, quote, remove_if_empty
    from ics_cli.sweeps import keys_left_out_of_names, run_name, sweep_keys, sweep_name

    try:
        plan = preflight(args, force_multirun=force_multirun, extra_dirs=extra_dirs)
    except UserError as e:
        _fail(str(e))
    argv = plan.argv if not force_multirun or "--multirun" in plan.argv or "-m" in plan.argv \
        else ["--multirun", *plan.argv]
    if plan.mode == "show":  # --cfg, --info, --help: Hydra prints and exits (a study's --cfg needs no -m)
        _hydra(plan.argv)
        return
    multirun = plan.mode == "multirun"
    key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
    if plan.user_dir:
        target = Path(str(plan.hydra.sweep.dir if multirun else plan.hydra.run.dir))
        _check_writable(target, key)
        _check_user_dir(target, multirun, plan.jobs[0] if plan.jobs else [])
        try:
            target.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            _fail(f"{key}={target} cannot be created: {e.strerror}; choose a writable place")
    else:
        base = Path(str(plan.hydra.sweep.dir if multirun else plan.hydra.run.dir))
        named = next((o.split("=", 1)[1] for o in plan.jobs[0] if o.startswith("experiment=")), None) \
            if plan.jobs else None
        suffix = (study or named or sweep_name(sweep_keys(plan.jobs)[0])) if multirun \
            else run_name(plan.jobs[0] if plan.jobs else [])
        _check_writable(base, key)
        try:
            target = claim(base.with_name(f"{base.name}_{suffix}") if suffix else base)
        except OSError as e:
            _fail(f"cannot create the {'sweep' if multirun else 'run'} directory under {base.parent}: {e.strerror}; "
                  f"run from a writable directory or set {key}=<a writable path>")
        argv = argv + [f"{key}={quote(target)}"]
    if not multirun:
        early.target = target
    varying: dict = {}
    if multirun:
        varying, constant = sweep_keys(plan.jobs)
        # job directories are named by what varies: "3_norm=batch,seed=1", not every constant too
        exclude = sorted(set(NAME_EXCLUDE_KEYS) | {k for k in constant if not k.startswith("hydra")})
        too_long = keys_left_out_of_names(plan.jobs, exclude)  # a folder name has at most 255 bytes
        if too_long:
            exclude = sorted(set(exclude) | set(too_long))
            typer.echo(f"note: job folders are named without {', '.join(too_long)} (its values make names longer "
                       "than a folder name may be); each job's overrides are in its .hydra/overrides.yaml", err=True)
        argv = [a for a in argv if not a.startswith("hydra.job.config.override_dirname.exclude_keys=")]
        argv.append("hydra.job.config.override_dirname.exclude_keys=[" + ",".join(exclude) + "]")
        # nothing swept shows in the names: job "0", not "0_" (a sweep made with "0_" folders keeps them)
        named_keys = [k for k in varying if k not in exclude and not k.startswith("hydra")]
        old_style = any(p.name.endswith("_") for p in target.iterdir()) if target.is_dir() else False
        if not named_keys and not old_style and not any(a.startswith("hydra.sweep.subdir=") for a in argv):
            argv.append("hydra.sweep.subdir=${hydra.job.num}")
        if stage is not None:  # the study given by path: its copy lives in the sweep from now on
            import shutil

            from ics.record.files import copy_tree

            kept = target / STAGE
            copy_tree(stage, kept)  # into a sweep folder: never through a link planted there
            shutil.rmtree(stage, ignore_errors=True)
            plan.dirs = [kept.resolve() if d == stage else d for d in plan.dirs]
            argv = [a for a in argv if not a.startswith("hydra.searchpath=")]
            argv[1:1] = ConfigDirs(dirs=plan.dirs).searchpath_override()
        _start_sweep(target, plan, varying, study)
    stop = ForwardStop(target) if multirun else None
    try:
        if multirun:
            from ics_cli.sweeps import LiveSweep

            parallel = plan.launcher.parallelism(plan.hydra.launcher)
            if plan.sweeper is not None and plan.sweeper.option == "optuna":
                _quiet_optuna()
            with stop, LiveSweep(target, plan.total or 0, parallel, swept=list(varying),
                                 every_sec=_progress_every(plan.jobs)):
                _hydra(argv)
        else:
            _test_pause("launch")
            _hydra(argv)
    except (SystemExit, Exception):
        if stop is None or stop.signum is None:
            raise
    finally:
        remove_if_empty(target)
    if multirun:
        from ics_cli.sweeps import STOP_FILE, stop_signal_of

        signum = stop.signum or stop_signal_of(target)
        (target / STOP_FILE).unlink(missing_ok=True)
        _after_sweep(target, signum)


class _NoResultLines:
    """A logging filter for the Optuna sweeper's lines about a trial that returned nothing: ics returns
    no objective only for a job that was stopped or failed, and says so itself (its line, the table)."""

    def filter(self, record) -> bool:
        return "Got 'None'" not in record.getMessage()


def _quiet_optuna() -> None:
    """Optuna logs each study and trial at INFO on its own handler: under the live view that is noise
    (the sweep's table and `ics report` say what it found); warnings still show."""
    import logging

    logging.getLogger("hydra_plugins.hydra_optuna_sweeper._impl").addFilter(_NoResultLines())
    try:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
    except ImportError:
        pass


def _progress_every(jobs) -> float:
    """trainer.progress_every_sec of the sweep (its first job's override, else the default): how often a
    sweep without a terminal logs each running job's progress."""
    from ics.config import Config

    given = [o.split("=", 1)[1] for o in (jobs[0] if jobs else []) if o.startswith("trainer.progress_every_sec=")]
    try:
        return max(float(given[-1]), 0.5) if given else float(Config().trainer.progress_every_sec)
    except ValueError:
        return float(Config().trainer.progress_every_sec)


def _start_sweep(target: Path, plan, varying, study: Optional[str]) -> None:

    from ics_cli.configdirs import RECORD as SWEEP_RECORD
    from ics_cli.configdirs import write_sweep_record

    from ics.record import names
    from ics_cli.sweeps import HPARAMS_FILE, write_hparams

    from ics_cli.sweeps import STOP_FILE

    from ics.record.files import write_json
    from ics.record.plan import Plan as JobPlan
    from ics.record.plan import PlannedJob, write_plan

    target.mkdir(parents=True, exist_ok=True)
    (target / STOP_FILE).unlink(missing_ok=True)  # a resumed sweep was stopped once; it runs now
    search = plan.sweeper is not None and plan.sweeper.option != "basic"
    if not search:  # lets a report name the jobs never started (a search's jobs are not known in advance)
        write_json(target / names.PLANNED_JOBS, plan.jobs)
    # every job as data: what `ics resume` rebuilds the jobs from, never composing again
    write_plan(target, JobPlan(launcher=plan.launcher.option, sweeper=plan.sweeper.option if plan.sweeper else None,
                               objective=plan.objective,
                               jobs=[PlannedJob(i, [o for o in job if not o.lstrip("+~").startswith("hydra")], config)
                                     for i, (job, config)
                                     in enumerate(zip(plan.jobs, plan.configs))] if not search else []))
    if not (target / HPARAMS_FILE).exists():  # a search's values are drawn as it goes: keys, no domains
        write_hparams(target, {k: [] for k in plan.searched} if search else varying)
    if not (target / SWEEP_RECORD).exists():  # a resumed sweep keeps the record it was started with
        write_sweep_record(target, study, plan.dirs, plan.config_name)
    swept = ", ".join(f"{k} ({len(v)})" for k, v in varying.items()) or "nothing"
    from ics_cli.console import say

    stamp = "" if sys.stdout.isatty() else time.strftime("%H:%M:%S ")  # a log: every line timestamped
    if search:
        trials = f"{plan.total} trials" if plan.total else "trials"
        say(f"{stamp}search: {trials} of hydra/sweeper={plan.sweeper.option} into {target} (launcher "
            f"{plan.launcher.option}; {plan.objective['direction']} sweep.objective={plan.objective['metric']} over "
            f"{', '.join(plan.searched)})")
        return
    say(f"{stamp}sweep: {len(plan.jobs)} jobs into {target} (launcher {plan.launcher.option}; swept: {swept})")


def _check_writable(path: Path, key: str) -> None:
    """The nearest existing parent of the run directory must be writable (nothing is created here)."""
    import os

    parent = Path(os.path.abspath(path))
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        _fail(f"{key}={path} is not writable: {parent} {'is not a directory' if not parent.is_dir() else 'is read-only'}; "
              "choose a writable place")


def _check_user_dir(target: Path, multirun: bool, overrides: List[str]) -> None:
    """A launch aimed at an existing, non-empty folder (hydra.run.dir / hydra.sweep.dir) is checked
    before Hydra writes anything there: it must be an ics run (or sweep); a run must not be live, and
    must have been started with the same config (the launch then resumes it); a finished run is left
    as it is. Refused in one line, with nothing written."""
    if not target.is_dir() or not any(target.iterdir()):
        return
    from ics.record import names
    from ics_cli.rundirs import planted_link

    link = planted_link(target)
    if link is not None:
        _fail(f"{link} is a symbolic link; ics does not write through links in a run or sweep folder: remove it, "
              "or choose a new folder")

    key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
    if multirun:
        if not any((target / n).is_file() for n in ("multirun.yaml", names.PLANNED_JOBS, names.JOB_PLAN)):
            _fail(f"{key}={target} is a non-empty folder that is not an ics sweep; choose a new or empty folder")
        return
    from ics.config import ConfigError, from_dict
    from ics.record import RecordError, read_summary
    from ics.record.lock import holder
    from ics.train import check_resumable
    from ics.train import checkpoint as ckpt
    from ics_cli.preflight import compose

    if not any((target / n).exists() for n in (names.SUMMARY, names.CHECKPOINT, names.LOCK, ".hydra")):
        _fail(f"{key}={target} is a non-empty folder that is not an ics run; choose a new or empty folder")
    who = holder(target)
    if who:
        _fail(f"{key}={target} is being trained by {who}; wait for it to end, or choose another folder")
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
                raise ConfigError(f"{key}={target} holds a run started with {diff[0]}={diff[1]}; the config now "
                                  f"says {diff[0]}={diff[2]}: resume it with `ics resume {target}`, or choose "
                                  "another folder")
    except ConfigError as e:
        _fail(str(e))
    if record is not None and record.status.finished:
        typer.echo(f"run: {target} already {record.status} at step {record.steps}; left as it is")
        raise typer.Exit(0)


class ForwardStop:
    """A sweep's SIGINT/SIGTERM reaches its jobs: the signal is passed on to every process the CLI
    started (joblib and submitit workers), each job checkpoints and ends `interrupted`, and the
    sweep stops with its status table and how to resume. (A terminal's Ctrl-C reaches them anyway.)"""

    def __init__(self, sweep_dir: Path):
        self.signum = None
        self.sweep_dir = sweep_dir
        self._old = {}

    def _handle(self, signum, frame) -> None:
        from ics_cli.sweeps import write_stop_file

        first = self.signum is None
        self.signum = signum
        if first:
            try:  # jobs not yet started see it and do not start
                write_stop_file(self.sweep_dir, signum)
            except OSError:
                pass
        below = _descendants(os.getpid())
        # the first signal goes to the processes training a job (they hold its run lock): an idle
        # joblib worker has no handler and would die, and joblib would then kill the others
        # mid-checkpoint; a job still loading its data is not signalled and finishes. A second
        # signal goes to every process below: the jobs exit at once.
        for pid in (_training(self.sweep_dir, below) if first else below):
            try:
                os.kill(pid, signum)
            except OSError:
                pass
        if not first:  # a second signal: stop waiting for the jobs
            raise KeyboardInterrupt

    def __enter__(self) -> "ForwardStop":
        import signal as sig
        import threading

        if threading.current_thread() is threading.main_thread():
            for s in (sig.SIGINT, sig.SIGTERM):
                self._old[s] = sig.signal(s, self._handle)
        return self

    def __exit__(self, *exc) -> bool:
        import signal as sig

        for s, old in self._old.items():
            sig.signal(s, old)
        return exc[0] is KeyboardInterrupt and self.signum is not None  # handled: the table follows


def _training(sweep_dir: Path, candidates: List[int]) -> List[int]:
    """The processes among `candidates` that hold a job's run lock in this sweep, on this host."""
    from ics.record.lock import holder_pid

    jobs = [d for d in sweep_dir.iterdir() if d.is_dir()] if sweep_dir.is_dir() else []
    return [pid for pid in map(holder_pid, jobs) if pid is not None and pid in candidates]


def _descendants(pid: int) -> List[int]:
    """Every process below `pid` (Linux /proc; elsewhere none)."""
    children: dict = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(entry.name))
        except (OSError, ValueError, IndexError):
            continue
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def _best_trial(sweep_dir: Path) -> None:
    """After a search (an optimising sweeper), the trial it found best, by the objective it searched on."""
    from ics.record.plan import PlanError, read_plan

    try:
        plan = read_plan(sweep_dir)
    except PlanError:
        return
    if plan is None or plan.sweeper in (None, "basic"):
        return
    from ics.analysis.load import load_jobs
    from ics.analysis.search import search_lines, search_of

    jobs = load_jobs(sweep_dir)
    search = search_of([sweep_dir], jobs)
    if search is not None:
        for line in search_lines(jobs, search):
            typer.echo(line)


def _after_sweep(sweep_dir: Path, signum: Optional[int] = None, refused: Sequence[str] = ()) -> None:
    sweep_dir = sweep_dir.absolute()  # the resume hints below are copied into other shells
    from ics.record import Status, read_jobs, read_planned
    from ics_cli.console import next_steps, print_status_table

    jobs = read_jobs(sweep_dir)
    if signum is not None and not jobs:
        import signal as sig

        typer.echo(f"sweep stopped by {sig.Signals(signum).name} before any job started. "
                   f"Start it with: ics resume {sweep_dir}", err=True)
        raise typer.Exit(128 + signum)
    print_status_table(jobs, sweep_dir, planned=read_planned(sweep_dir))  # the jobs never started too
    _best_trial(sweep_dir)
    next_steps(sweep_dir)
    if signum is not None:
        import signal as sig

        typer.echo(f"sweep stopped by {sig.Signals(signum).name}: the table shows where each job stopped "
                   f"(interrupted: checkpoint at that step; killed: its last periodic checkpoint). "
                   f"Finish it with: ics resume {sweep_dir}", err=True)
        raise typer.Exit(128 + signum)
    failed = [str(j.num) for j in jobs if j.status == Status.FAILED]
    if failed:  # diverged or not_learning jobs are results; a failed job is an error
        _fail(f"{len(failed)} job(s) failed: {', '.join(failed)} (see their summary.json)", code=1)
    cannot = [name.split("_", 1)[0] for name in dict.fromkeys(refused)]
    unfinished = [str(j.num) for j in jobs if j.status in (Status.INTERRUPTED, Status.KILLED) and j.dir.name not in refused]
    if cannot:  # resume named each with its reason: resuming again would not help
        _fail(f"{len(cannot)} job(s) cannot be resumed: {', '.join(cannot)} (see why above)"
              + (f"; {len(unfinished)} did not finish: {', '.join(unfinished)}, finish them with ics resume "
                 f"{sweep_dir}" if unfinished else ""), code=1)
    if unfinished:
        _fail(f"{len(unfinished)} job(s) did not finish: {', '.join(unfinished)}; finish them with "
              f"ics resume {sweep_dir}", code=1)


@app.command(context_settings=PASS_THROUGH)
def run(overrides: Optional[List[str]] = typer.Argument(
        None, help="Hydra overrides and flags: key=value, group=option, -m/--multirun, --cfg job, ...",
        autocompletion=complete_override)) -> None:
    """Train one run (or a Hydra multirun with -m) and log it to TensorBoard.

    Examples:

      [bold]ics run[/bold]  (BN paper Fig. 1: MNIST, 3x100 sigmoid MLP with BN, batch 60, 50k steps)

      [bold]ics run model.norm=none trainer.steps=5000[/bold]

      [bold]ics run model=cnn data=cifar10 data.image_folder=/data/cifar10-jpeg model.norm=none optim.lr=0.05[/bold]

      [bold]ics run -m model.norm=none,batch optim.lr=0.01,0.1,1[/bold]
    """
    _launch(list(overrides or []))


@app.command(context_settings=PASS_THROUGH)
def sweep(experiment: str = typer.Argument(..., help="A study: its name (in your config folders' experiment/, then "
                                                     "experiments/; see `ics list`) or a study file's path.",
                                          autocompletion=complete_study),
          overrides: Optional[List[str]] = typer.Argument(None, help="Extra Hydra overrides, --config-dir DIR.",
                                                          autocompletion=complete_override)) -> None:
    """Run a study as a Hydra multirun, into multiruns/<date>/<time>_<study>.

    Examples: [bold]ics sweep fig1 trainer.steps=5000[/bold]   [bold]ics sweep my_study --config-dir conf[/bold]
    [bold]ics sweep conf/experiment/my_study.yaml[/bold]
    """
    import tempfile

    from ics_cli import configdirs

    args = list(overrides or [])
    try:
        found = configdirs.split(args)
        if configdirs.is_study_path(experiment) or Path(experiment).is_file():
            path = Path(experiment)
            if not path.is_file():
                raise UserError(f"{experiment} is not a study file (a YAML file like experiments/fig1.yaml)")
            stage = Path(tempfile.mkdtemp(prefix="ics-study-"))
            try:
                name, root = configdirs.stage_study(path, stage)
                configdirs.check_files(root, str(root))
            except UserError:
                import shutil

                shutil.rmtree(stage, ignore_errors=True)
                raise
            try:
                _launch([f"experiment={name}", *args], force_multirun=True, study=name, extra_dirs=[stage, root],
                        stage=stage)
            finally:  # a refused launch leaves no staging folder behind (a launched one has moved it)
                import shutil

                shutil.rmtree(stage, ignore_errors=True)
            return
        known = configdirs.studies(found.dirs)
    except UserError as e:
        _fail(str(e))
    if experiment not in known:
        where = " and your config folders" if found.dirs else ""
        _fail(f"unknown study {experiment!r}; allowed (experiments/{where}): {', '.join(known)}; "
              "or give a study file's path")
    _launch([f"experiment={experiment}", *args], force_multirun=True, study=experiment)


@app.command(context_settings=PASS_THROUGH)
def resume(path: Path = typer.Argument(..., help="A run directory, or a sweep directory (one with multirun.yaml)."),
           overrides: Optional[List[str]] = typer.Argument(
               None, help="Sweeps only: launcher settings, e.g. hydra/launcher=joblib hydra.launcher.n_jobs=2.")) -> None:
    """Continue an interrupted or killed run, or finish a sweep, in its own directory.

    A run continues from its last checkpoint with the config it was started with. In a sweep,
    finished jobs are left alone, interrupted or killed ones continue from their checkpoints, and
    jobs that never started run.

    Examples: [bold]ics resume runs/2026-11-28/12-00-00[/bold]   [bold]ics resume multiruns/2026-11-28/12-00-00[/bold]
    """
    if not path.is_dir():
        _fail(f"{path} is not a directory; give a run directory or a sweep directory")
    if (path / "multirun.yaml").is_file() or (path / "plan.json").is_file():
        _resume_sweep(path, list(overrides or []))
    else:
        if overrides:
            _fail(f"a single run resumes with its own config; drop {' '.join(overrides)}")
        _resume_run(path)


def _resume_run(path: Path) -> None:
    path = path.absolute()  # every path printed for copying is absolute
    from ics.config import ConfigError
    from ics.record import RunBusy
    from ics.train import AlreadyFinished, RunInterrupted
    from ics.train import resume as resume_run
    from ics.train.run import NoSpaceLeft
    from ics.train.signals import GracefulStop, SignalStop, signal_name
    from ics_cli.console import print_run_summary

    typer.echo(f"resuming {path} ...")
    with GracefulStop() as scope:  # the run's one signal scope, from here to the process's end
        try:
            summary = resume_run(path, say=lambda text: typer.echo(f"run: {text}"))
        except AlreadyFinished as e:
            typer.echo(f"{e}")
            scope.linger(0)
            return
        except NoSpaceLeft as e:
            scope.linger(1)
            _fail(str(e), code=1)
        except (ConfigError, RunBusy) as e:
            scope.linger(2)
            _fail(str(e))
        except (RunInterrupted, SignalStop) as e:
            started = isinstance(e, RunInterrupted) and e.started
            if not started:
                typer.echo(f"resume interrupted by {signal_name(e.signum)} before training restarted; the run is as "
                           f"it was. Resume with: ics resume {path}", err=True)
            else:
                typer.echo(f"run interrupted by {e}: checkpoint and record written. Resume with: ics resume {path}",
                           err=True)
            scope.linger(128 + e.signum)
            raise typer.Exit(128 + e.signum)
        scope.linger(0)
    print_run_summary(summary, path)


def _resume_sweep(path: Path, extra: List[str]) -> None:
    """Finish a sweep in its own folder, every job rebuilt from data (cli/resume.py): finished jobs are
    left alone, the others continue from their checkpoints or run from step 0, and what cannot be
    resumed is named with its reason (exit 1)."""
    from ics_cli import resume as plan

    if "${" in str(path.resolve()):
        _fail(f"{path} holds '${{' in its path, which Hydra would read as an interpolation; rename the folder")
    try:
        plan.check_extra(extra)
        what = plan.plan_resume(path.resolve())
    except UserError as e:
        _fail(str(e))
    written = ("multirun.yaml", "plan.json", "jobs.json", "hparams.json", "sweep.json", ".stopped", ".submitit")
    links = [name for name in written if (path / name).is_symlink()]  # what Hydra or ics writes at the root
    if links:
        _fail(f"{path / links[0]} is a symbolic link; ics resume does not write through links (a sweep folder is "
              "data): put the file itself there, or remove it")
    if what.launcher_note:
        typer.echo(f"resume: {what.launcher_note}", err=True)
    for line in plan.describe(what):
        typer.echo(line)
    for name, why in what.refused:
        typer.echo(f"resume: cannot resume {path / name}: {why}", err=True)
    if what.todo:
        n_jobs = [o.split("=", 1)[1] for o in extra if o.startswith("hydra.launcher.n_jobs=")]
        parallel = int(n_jobs[-1]) if n_jobs and n_jobs[-1].isdigit() else 1
        _relaunch(path.resolve(), plan.resume_argv(path.resolve(), what, extra), len(what.todo) + len(what.finished),
                  parallel, [name for name, _ in what.refused], [t.name for t in what.todo])
    elif not what.refused:
        typer.echo(f"resume: nothing to do: every job of {path} has finished")
    if what.refused:
        _fail(f"{len(what.refused)} job(s) cannot be resumed (said above, with why); the others "
              f"{'ran' if what.todo else 'are finished'}", code=1)


def _relaunch(target: Path, argv: List[str], total: int, parallel: int, refused: Sequence[str] = (),
              todo: Sequence[str] = ()) -> None:
    """The resume's Hydra sweep, with the live view, signal forwarding and closing table of a sweep.
    Hydra rewrites multirun.yaml at the sweep's root: the sweep's own copy is put back after (and a
    search's folder, which had none, gets none). A job of `todo` that ended without a record is named."""
    from ics.record.files import atomic_write
    from ics_cli.sweeps import STOP_FILE, LiveSweep, stop_signal_of

    from ics.record.files import MAX_YAML_BYTES, one_line, read_bytes

    record = target / "multirun.yaml"
    try:  # data: read with a cap (a sparse 1 GB file would otherwise be read whole)
        kept = read_bytes(record, MAX_YAML_BYTES) if record.is_file() and not record.is_symlink() else None
    except (OSError, ValueError) as e:
        _fail(f"{record} does not read ({one_line(e)}); move it away to resume")
    (target / STOP_FILE).unlink(missing_ok=True)
    stop = ForwardStop(target)
    early = _StopBeforeRun()
    try:
        with early, stop, LiveSweep(target, total, parallel, swept=[], every_sec=_progress_every([])):
            _hydra(argv)
    except (SystemExit, Exception):
        if stop.signum is None:
            raise
    finally:
        if kept is not None:
            atomic_write(record, lambda p: p.write_bytes(kept))
        elif record.is_file() and not record.is_symlink():
            record.unlink()  # the resume's own Hydra record: it would misdescribe the sweep
    signum = stop.signum or stop_signal_of(target)
    (target / STOP_FILE).unlink(missing_ok=True)
    if signum is None:
        from ics.record import read_job

        missing = [name for name in todo if read_job(target / name, target).summary is None]
        if missing:  # a job that failed before it could write anything (the live view shows no line for it)
            refused = [*refused, *missing]
            for name in missing:
                typer.echo(f"resume: {target / name} ended without a record (it could not start)", err=True)
    _after_sweep(target, signum, refused)


@app.command()
def tensorboard(path: Optional[Path] = typer.Argument(None, help="A run or sweep directory (default: runs/ and "
                                                                 "multiruns/ here)."),
                port: Optional[int] = typer.Option(None, min=1, max=65535, help="Port (default: a free one)."),
                host: str = typer.Option("127.0.0.1", help="Address to listen on. 127.0.0.1: this machine only "
                                                           "(reach it from elsewhere with ssh -L). 0.0.0.0: every "
                                                           "network interface, so anyone who can reach this machine "
                                                           "can read all the runs shown, without a password."),
                open_browser: bool = typer.Option(True, "--open/--no-open",
                                                  help="Open the URL in a browser where one can open.")) -> None:
    """Start TensorBoard and print its URL (with smoothing 0: evaluations are few and log-spaced).

    SIGINT, SIGTERM and SIGHUP stop TensorBoard too.

    Example: [bold]ics tensorboard multiruns/2026-11-28/12-00-00_fig1[/bold]
    """
    from ics_cli.tensorboard import serve

    if path is not None and not path.is_dir():
        _fail(f"{path} is not a directory; give a run or sweep directory")
    where = [path] if path is not None else [Path(d) for d in ("runs", "multiruns") if Path(d).is_dir()]
    if not any(next(d.rglob("events.out.tfevents.*"), None) for d in where):
        _fail(f"no TensorBoard events under {', '.join(map(str, where)) or 'runs/ or multiruns/ here'}; "
              "give a run or sweep directory (`ics tensorboard <dir>`)")
    try:
        code = serve(path, port, host, open_browser)
    except ValueError as e:
        _fail(str(e))
    raise typer.Exit(code)


@app.command()
def status(path: Optional[Path] = typer.Argument(None, help="Where to look (default: here).")) -> None:
    """The runs and sweeps under a folder, newest first: state, progress and ETA.

    Reads each job's progress.json and summary.json: use it from another terminal while they run.

    Example: [bold]ics status[/bold]   [bold]ics status multiruns/2026-11-28[/bold]
    """
    from ics_cli.status import lines

    root = path or Path(".")
    if not root.is_dir():
        _fail(f"{root} is not a directory; give a folder that holds runs or sweeps")
    found = lines(root, terminal=True)
    for line in found:
        typer.echo(line)
    if not found:
        typer.echo(f"no runs or sweeps under {root}")


@app.command()
def recalibrate(path: Path = typer.Argument(..., help="A run directory with a checkpoint."),
                batches: int = typer.Option(200, min=1, help="Training batches averaged for the population statistics."),
                batch_size: Optional[int] = typer.Option(None, min=2, help="Their size (default: the run's)."),
                seed: int = typer.Option(0, min=0, help="Seed of the batch draw.")) -> None:
    """Precise BN (BN paper Alg. 2): a finished BN run's test accuracy with population statistics.

    Recomputes the BN statistics on training batches and writes the test accuracy with EMA and
    with population statistics into the run's summary.json.

    Example: [bold]ics recalibrate runs/2026-11-28/12-00-00[/bold]
    """
    from ics.config import ConfigError
    from ics.record import RecordError
    from ics.train.recalibrate import recalibrate as run_recalibrate

    if not path.is_dir():
        _fail(f"{path} is not a directory; give a run directory (one with checkpoint.pt)")
    try:
        r = run_recalibrate(path, batches, batch_size, seed)
    except (ConfigError, RecordError) as e:
        _fail(str(e))
    typer.echo(f"step {r['step']}: test accuracy with the EMA running statistics {r['ema_acc']:.4f}, with population "
               f"statistics over {r['batches']} batches of {r['batch_size']} {r['precise_acc']:.4f} "
               f"(written to {path / 'summary.json'})")


@app.command(name="config", context_settings=PASS_THROUGH)
def show_config(overrides: Optional[List[str]] = typer.Argument(None, help="Hydra overrides; --config-dir DIR, "
                                                                            "--config-name NAME.",
                                                                autocompletion=complete_override)) -> None:
    """Print the composed config, every key of every section (no training).

    Example: [bold]ics config model=cnn optim=adam[/bold]   [bold]ics config --config-dir conf model=my_mlp[/bold]
    """
    from omegaconf import OmegaConf

    from ics.config import from_dict, to_dict
    from ics_cli import configdirs
    from ics_cli import hydra_compat as compat
    from ics_cli.preflight import check_jobs, compose, use

    try:
        where = configdirs.split(list(overrides or []))
        args = where.args
        ns = compat.parse_args(args)
        flags = [a for a in args if a not in (ns.overrides or []) and a != ns.config_name
                 and not a.startswith(("-cn", "--config-name", "--config_name"))]
        if flags:
            raise UserError(f"ics config takes overrides (key=value), --config-dir and --config-name only, not "
                            f"{' '.join(flags)}; for Hydra's flags use `ics run`, e.g. `ics run --cfg job`")
        dirs = list(where.dirs)
        if ns.config_name and where.config_dir is not None and where.config_dir not in dirs:
            dirs.insert(0, where.config_dir)
        use(dirs, ns.config_name)
        args = list(ns.overrides or [])
        if any(o.is_sweep_override() for o in compat.parse_overrides(args)):
            raise UserError("ics config prints one config, not a sweep (a,b); run sweeps with `ics run -m`")
        check_jobs([args], data=False)
        cfg = to_dict(from_dict(compose(args)))
    except UserError as e:
        _fail(str(e))
    typer.echo(OmegaConf.to_yaml(OmegaConf.create(cfg)), nl=False)


@app.command(name="list")
def list_options(section: Optional[str] = typer.Argument(
        None, help="A config section or group (model, trainer, probe, grad_ics, ...; model=cnn for an option): "
                   "list its keys with defaults, units and allowed values.",
        autocompletion=complete_section),
        config_dir: Optional[List[Path]] = typer.Option(None, "--config-dir", "-cd",
                                                        help="A config folder of yours (repeatable); "
                                                             "ICS_CONFIG_PATH adds more.")) -> None:
    """List every config group with its options and where each comes from, and every study; or the keys
    of one section or option.

    Examples: [bold]ics list[/bold]   [bold]ics list trainer[/bold]   [bold]ics list model=cnn_relu_bn[/bold]
    """
    from rich.console import Console
    from rich.table import Table

    from ics_cli import configdirs

    console = Console()
    try:
        where = configdirs.split([a for d in (config_dir or []) for a in ("--config-dir", str(d))])
    except UserError as e:
        _fail(str(e))
    if section is not None:
        _list_keys(section, console, where.dirs)
        return
    from rich.markup import escape

    from ics.config import GROUPS

    table = Table(title="config groups (choose with group=option; `ics list <group>=<option>` for its keys)")
    table.add_column("group", no_wrap=True)
    table.add_column("options (configs/<group>/)")
    table.add_column("from your folders", overflow="fold")
    for group in GROUPS:
        opts = configdirs.options(group, where.dirs)
        shipped = [n for n, src in opts.items() if src == configdirs.SHIPPED]
        mine = [f"{n} ({src})" for n, src in opts.items() if src != configdirs.SHIPPED]
        table.add_row(group, ", ".join(shipped), escape(", ".join(mine)))
    console.print(table)
    for note in configdirs.shadowed(where.dirs, GROUPS):
        console.print(f"note: {note}")
    exps = Table(title="studies (ics sweep <name>; `ics config experiment=<name>` shows one)", show_lines=True)
    exps.add_column("study", no_wrap=True)
    exps.add_column("jobs", justify="right")
    exps.add_column("what it asks, and its measured time", overflow="fold")
    for name, path in configdirs.studies(where.dirs).items():
        jobs, problem = _job_count(name, where.dirs, path)
        text = escape(_study_text(path))
        if path.parent != configdirs.experiments_dir():
            text = f"(from {escape(str(path))}) " + text
        exps.add_row(escape(name), jobs,
                     text + (f" [bold red]cannot run: {escape(problem)}[/bold red]" if problem else ""))
    console.print(exps)


def _study_text(path: Path) -> str:
    try:
        lines = path.read_bytes().decode("utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return "(unreadable)"
    return " ".join(ln.lstrip("#").strip() for ln in lines if ln.startswith("#") and "@package" not in ln)


def _job_count(study: str, dirs, path: Optional[Path] = None) -> tuple:
    """(number of jobs, None) or ("?", why the study cannot run). Read from the study file itself (its
    sweeper params; the options its defaults list chooses must exist), which keeps `ics list` fast; a
    study whose defaults list takes in more than options is composed with Hydra."""
    from omegaconf import DictConfig, OmegaConf

    from ics.config import GROUPS
    from ics_cli import configdirs

    try:
        node = configdirs.load_yaml(path) if path is not None else None
        defaults = node.get("defaults") if isinstance(node, DictConfig) else None
        simple = isinstance(node, DictConfig) and all(
            d == "_self_" or (isinstance(d, DictConfig) and len(d) == 1 and str(next(iter(d))).startswith("override /"))
            for d in (defaults or []))
        if simple:
            for d in defaults or []:
                if d == "_self_":
                    continue
                group, value = str(next(iter(d)))[len("override /"):].strip(), next(iter(d.values()))
                option = {True: "on", False: "off"}[value] if isinstance(value, bool) else str(value)  # YAML 1.1
                if group in GROUPS and option not in configdirs.options(group, dirs):
                    raise UserError(f"{group}={option} is not an option; allowed: "
                                    f"{', '.join(configdirs.options(group, dirs))}")
            params = OmegaConf.select(node, "hydra.sweeper.params") or {}
            chosen = [str(next(iter(d.values()))) for d in defaults or []
                      if d != "_self_" and str(next(iter(d))).endswith("/hydra/sweeper")]
            if chosen and chosen[0] != "basic":  # an optimising sweeper runs as many trials as it is told
                from ics_cli.sweepers import by_option

                sweeper = by_option(chosen[0])
                trials = sweeper.trials(OmegaConf.select(node, "hydra.sweeper")) if sweeper else None
                return (str(trials), None) if trials else ("?", None)
        else:
            from ics_cli.preflight import compose, use

            use(dirs)
            params = compose([f"experiment={study}"], hydra_cfg=True).hydra.sweeper.get("params") or {}
        values = {k: str(v) for k, v in params.items()}
        item = r"[\w.+-]+|\[[\w.+,-]*\]"  # a value or a [list] of them
        if all(re.fullmatch(rf"(?:{item})(?:,(?:{item}))*", v) for v in values.values()):  # plain choices: no
            return str(math.prod(len(re.findall(item, v)) for v in values.values())), None  # Hydra parser (0.5 s)
        from ics_cli import hydra_compat as compat

        return str(len(compat.expand_sweep([], values))), None
    except UserError as e:
        return "?", str(e)


def _list_keys(section: str, console, dirs) -> None:
    from rich.table import Table

    from ics.config import GROUPS, Config, ConfigError, field_docs, from_dict
    from ics_cli import configdirs
    from ics_cli.preflight import compose, use

    group, _, option = section.partition("=")
    base = Config()
    if group not in {f for f in vars(base)}:
        _fail(f"{section} is not a config section; allowed: {', '.join(vars(base))}")
    if group not in GROUPS:
        _fail(f"{section} is a single key, not a section; see `ics config`")
    opts = configdirs.options(group, dirs)
    if option and option not in opts:
        _fail(f"{section} is not an option; allowed: {', '.join(opts)}")
    try:
        use(dirs)
        cfg = compose([f"{group}={option}"] if option else [], hydra_cfg=True)
        chosen = option or str(cfg.hydra.runtime.choices.get(group))
        node = getattr(from_dict(cfg), group)
    except (UserError, ConfigError) as e:
        _fail(str(e))
    source = configdirs.option_file(group, chosen, dirs)
    from rich.markup import escape

    table = Table(title=escape(f"{group}={chosen} ({source}): keys, values and what is allowed"))
    table.add_column("key", no_wrap=True)  # copyable whole
    for col in ("value", "meaning", "allowed"):
        table.add_column(col, overflow="fold")
    for key, value, doc, allowed in field_docs(node, f"{group}."):
        table.add_row(key, escape(str(value)), escape(doc), escape(allowed))
    console.print(table)
    others = [n for n in opts if n != chosen]
    if others:
        console.print(f"other {group} options: {', '.join(others)} (`ics list {group}=<option>`)")


@app.command()
def bench(steps: int = typer.Option(3000, min=100, help="Training steps per timed loop."),
          data_root: Optional[str] = typer.Option(None, help="Data root (default: $ICS_DATA_ROOT)."),
          synthetic: bool = typer.Option(False, help="Use random MNIST-shaped tensors instead of MNIST."),
          repeats: int = typer.Option(3, min=1, help="Timed repeats per loop (the best is kept)."),
          cnn_steps: int = typer.Option(20, min=0, help="Steps per timed CNN loop (0: skip the CNN rows)."),
          instruments: bool = typer.Option(False, help="Only the cost of each instrument at its default cadence, "
                                                       "for the Fig. 1 MLP and the default CNN."),
          threads: bool = typer.Option(False, "--threads", help="Only trainer.threads=1, all cores and auto on the "
                                                                 "Fig. 1 MLP, idle and with a busy process competing."),
          preflight_jobs: int = typer.Option(0, "--preflight", min=0,
                                             help="Only the up-front check of an N-job seed sweep "
                                                  "(trainer.seed=range(0,N)): seconds and peak memory.")) -> None:
    """Throughput of the ics loop vs a hand-written loop and the tutorial DataLoader pipeline.

    Example: [bold]ICS_DATA_ROOT=/data ics bench --steps 3000[/bold]
    """
    from ics.bench import run_bench
    from ics.config import ConfigError

    if preflight_jobs:
        _bench_preflight(preflight_jobs)
        return
    if threads:
        from rich.console import Console

        from ics.bench import threads_under_load

        threads_under_load(steps, Console(), None if synthetic else (data_root or os.environ.get("ICS_DATA_ROOT")))
        return
    try:
        if instruments:
            from rich.console import Console

            from ics.bench import instrument_costs

            root = None if synthetic else (data_root or os.environ.get("ICS_DATA_ROOT"))
            instrument_costs("mlp", steps, Console(), root)
            if cnn_steps:
                instrument_costs("cnn", max(cnn_steps, 50), Console())
            return
        run_bench(steps=steps, data_root=data_root, synthetic=synthetic, repeats=repeats, cnn_steps=cnn_steps)
    except ConfigError as e:
        _fail(str(e))


def _bench_preflight(n: int) -> None:
    """The pre-run check of an n-job sweep in a fresh interpreter: what `ics run -m` spends before the
    first job starts (Hydra's sweep expansion, composition, every job's config checked; no data read)."""
    import subprocess
    import sys

    code = ("import resource, time, sys\n"
            "t0 = time.perf_counter()\n"
            "from ics_cli.preflight import preflight\n"
            "import torch  # check_runnable builds each distinct model on the meta device\n"
            "t1 = time.perf_counter()\n"
            "rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024\n"
            f"plan = preflight(['-m', 'trainer.seed=range(0,{n})'], data=False)\n"
            "t2 = time.perf_counter()\n"
            "print(len(plan.jobs), t1 - t0, t2 - t1, rss0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if p.returncode != 0:
        _fail(f"the preflight benchmark failed: {(p.stderr.strip().splitlines() or ['?'])[-1]}", code=1)
    jobs, imports, check, rss0, rss = (float(v) for v in p.stdout.split())
    typer.echo(f"pre-run check of a {int(jobs):,}-job sweep: {check:.2f} s ({check / jobs * 1e3:.2f} ms a job), after "
               f"{imports:.2f} s of imports; peak memory {rss:.0f} MB, of which {rss0:.0f} MB after the imports alone "
               "(mostly torch, whose share depends on its wheel)")


@app.command()
def report(paths: List[Path] = typer.Argument(..., help="Run or sweep directories; several are pooled (replicas "
                                                        "of one config and seed count once)."),
           out: Optional[Path] = typer.Option(None, help="Where to write report.md, report.html, runs.csv and "
                                                          "figures (default: <path>/report; required for several "
                                                          "paths).")) -> None:
    """Tables, LR tolerance and figures for a run or sweep directory, or several compared.

    Example: [bold]ics report multiruns/2026-11-26/12-00-00[/bold]
    Several: [bold]ics report sweepA sweepB --out compare-AB[/bold]
    """
    from ics.analysis import make_report
    from ics.config import ConfigError

    for path in paths:
        if not path.is_dir():
            _fail(f"{path} is not a directory; give a run or sweep directory (one with summary.json files)")
    seen = {}
    for path in paths:
        if path.resolve() in seen:
            _fail(f"{path} is given twice (as {seen[path.resolve()]} too); give each run or sweep directory once")
        seen[path.resolve()] = path
    try:
        make_report(paths if len(paths) > 1 else paths[0], out)
    except ConfigError as e:
        _fail(str(e))


if __name__ == "__main__":  # pragma: no cover
    app(prog_name="ics")
