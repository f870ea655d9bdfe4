"""`ics`: Typer owns the commands; Hydra owns everything after the command name of run and sweep.

Each command parses its options and calls what does the work: cli/launch.py (run, sweep and resume
around Hydra's runtime), cli/listing.py (list, config), cli/resume.py, cli/preflight.py (the checks
before a launch), cli/status.py, cli/tensorboard.py and the library (ics.*). Those are imported inside
the commands: `ics --help` and a Tab import none of Hydra, torch or the library.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import List, Optional, Sequence

if os.environ.get("_ICS_COMPLETE"):  # a Tab: an override is answered before Typer is even imported
    from ics_cli.completion import fast_answer

    if (_answer := fast_answer(os.environ)) is not None:
        print(_answer)
        sys.exit(0)

import typer  # noqa: E402
from ics_cli import configdirs
from ics_cli.completion import complete_override, complete_section, complete_study, use_own_scripts
from ics_cli.errors import UserError

app = typer.Typer(
    name="ics",
    no_args_is_help=True,
    rich_markup_mode="rich",
    add_completion=True,
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
def main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    pass


def _hydra(argv: List[str]) -> None:
    from ics_cli import hydra_entry  # Hydra and torch: only once a run or sweep starts

    hydra_entry.run(argv)


class _StopBeforeRun:
    """ics.train.stopping.StopBeforeRun for `ics run` and `ics resume` of a sweep: a stop signal before
    the task's own handling ends the command at once, removes a run folder that holds only Hydra's
    bookkeeping, says so in one true line and exits 128 + signal."""

    def __init__(self):
        from ics.train.stopping import StopBeforeRun

        self.scope = StopBeforeRun()

    @property
    def target(self) -> Optional[Path]:
        return self.scope.target

    @target.setter
    def target(self, path: Optional[Path]) -> None:
        self.scope.target = path

    def __enter__(self) -> "_StopBeforeRun":
        self.scope.__enter__()
        return self

    def __exit__(self, kind, value, tb) -> bool:
        from ics.train.stopping import LaunchStopped, signal_name

        self.scope.__exit__(kind, value, tb)
        if not isinstance(value, LaunchStopped):
            return False
        from ics_cli.rundirs import remove_untrained  # light: a signal may have cut an import short

        kept = ""
        if self.target is not None:
            remove_untrained(self.target, Path.cwd())
            if self.target.exists() and any(self.target.iterdir()):
                kept = f" ({self.target} left as it was)"
        typer.echo(
            f"run interrupted by {signal_name(value.signum)} before training started; nothing was kept{kept}", err=True
        )
        raise typer.Exit(128 + value.signum)


def _launch(
    args: List[str],
    force_multirun: bool = False,
    study: Optional[str] = None,
    extra_dirs: Sequence[Path] = (),
    stage: Optional[Path] = None,
) -> None:
    early = _StopBeforeRun()
    with early, ExitStack() as held:  # held: the sweep's lock, released as the command ends
        _launch_run(early, held, args, force_multirun, study, extra_dirs, stage)


def _launch_run(
    early: "_StopBeforeRun",
    held: ExitStack,
    args: List[str],
    force_multirun: bool,
    study: Optional[str],
    extra_dirs: Sequence[Path],
    stage: Optional[Path],
) -> None:
    """Validate every job, claim a fresh directory, then hand over to Hydra's runtime. `stage`: a
    temporary config folder holding a study given by path, moved into the sweep directory."""
    shows = any(
        a.split("=", 1)[0]
        in ("--cfg", "-c", "--help", "-h", "--hydra-help", "--info", "-i", "--version", "-sc", "--shell-completion")
        for a in args
    )
    if not shows:  # the first word within a second of Enter: what follows imports torch (a log: stamped)
        stamp = "" if sys.stdout.isatty() else time.strftime("%H:%M:%S ")
        typer.echo(
            stamp
            + "ics: checking the config"
            + (" of every job" if force_multirun or "-m" in args or "--multirun" in args else "")
            + " ..."
        )
    # imported here, not at the top: they import Hydra and torch, which `ics --help` and a Tab must not
    from ics_cli import launch
    from ics_cli.preflight import preflight
    from ics_cli.rundirs import remove_if_empty
    from ics_cli.sweeps import STOP_FILE, LiveSweep, stop_signal_of

    try:
        plan = preflight(args, force_multirun=force_multirun, extra_dirs=extra_dirs)
    except UserError as e:
        _fail(str(e))
    argv = (
        plan.argv
        if not force_multirun or "--multirun" in plan.argv or "-m" in plan.argv
        else ["--multirun", *plan.argv]
    )
    if plan.mode == "show":  # --cfg, --info, --help: Hydra prints and exits (a study's --cfg needs no -m)
        _hydra(plan.argv)
        return
    multirun = plan.mode == "multirun"
    try:
        target, argv, finished = launch.target_of(plan, multirun, study, argv)
        if multirun and finished is None:  # one process runs a sweep: no `ics resume` of it meanwhile
            held.callback(launch.hold_sweep(target, "running").release)
    except UserError as e:
        _fail(str(e), e.code)
    if finished is not None:  # a run in a folder of the user's that has finished: left as it is
        typer.echo(finished)
        raise typer.Exit(0)
    if not multirun:
        early.target = target
    varying: dict = {}
    if multirun:
        argv, varying = launch.name_jobs(plan, argv, target)
        if stage is not None:  # the study given by path: its copy lives in the sweep from now on
            argv = launch.keep_study(stage, target, plan, argv)
        launch.start_sweep(target, plan, varying, study)
    stop = _forward_stop(target) if multirun else None
    try:
        if multirun:
            parallel = plan.launcher.parallelism(plan.hydra.launcher)
            if plan.sweeper is not None and plan.sweeper.option == "optuna":
                launch.quiet_optuna()
            with (
                stop,
                LiveSweep(
                    target, plan.total or 0, parallel, swept=list(varying), every_sec=launch.progress_every(plan.jobs)
                ),
            ):
                _hydra(argv)
        else:
            from ics.train import stopping

            stopping.reached("launch")  # (a named phase: tests stop the command here)
            _hydra(argv)
    except (SystemExit, Exception):
        if stop is None or stop.signum is None:
            raise
    finally:
        remove_if_empty(target)
    if multirun:
        signum = stop.signum or stop_signal_of(target)
        (target / STOP_FILE).unlink(missing_ok=True)
        try:
            launch.after_sweep(target, signum)  # the closing table; the exit code
        except UserError as e:
            _fail(str(e), e.code)


def _forward_stop(sweep_dir: Path):
    """A sweep's SIGINT/SIGTERM passed on to its jobs (ics.train.stopping.ForwardStop); the first one
    also writes the sweep's stop file, so that jobs not yet started do not start."""
    from ics_cli.sweeps import write_stop_file

    from ics.train.stopping import ForwardStop

    return ForwardStop(sweep_dir, on_first=lambda signum: write_stop_file(sweep_dir, signum))


@app.command(context_settings=PASS_THROUGH)
def run(
    overrides: Optional[List[str]] = typer.Argument(
        None,
        help="Hydra overrides and flags: key=value, group=option, -m/--multirun, --cfg job, ...",
        autocompletion=complete_override,
    ),
) -> None:
    """Train one run (or a Hydra multirun with -m) and log it to TensorBoard.

    Examples:

      [bold]ics run[/bold]  (BN paper Fig. 1: MNIST, 3x100 sigmoid MLP with BN, batch 60, 50k steps)

      [bold]ics run model.norm=none trainer.steps=5000[/bold]

      [bold]ics run model=cnn data=cifar10 data.image_folder=/data/cifar10-jpeg model.norm=none optim.lr=0.05[/bold]

      [bold]ics run -m model.norm=none,batch optim.lr=0.01,0.1,1[/bold]
    """
    _launch(list(overrides or []))


@app.command(context_settings=PASS_THROUGH)
def sweep(
    experiment: str = typer.Argument(
        ...,
        help="A study: its name (in your config folders' experiment/, then "
        "experiments/; see `ics list`) or a study file's path.",
        autocompletion=complete_study,
    ),
    overrides: Optional[List[str]] = typer.Argument(
        None, help="Extra Hydra overrides, --config-dir DIR.", autocompletion=complete_override
    ),
) -> None:
    """Run a study as a Hydra multirun, into multiruns/<date>/<time>_<study>.

    Examples: [bold]ics sweep fig1 trainer.steps=5000[/bold]   [bold]ics sweep my_study --config-dir conf[/bold]
    [bold]ics sweep conf/experiment/my_study.yaml[/bold]
    """
    args = list(overrides or [])
    try:
        found = configdirs.split(args)
        if configdirs.is_study_path(experiment) or Path(experiment).is_file():
            name, root, stage = configdirs.stage_study_file(experiment)
            try:
                _launch(
                    [f"experiment={name}", *args],
                    force_multirun=True,
                    study=name,
                    extra_dirs=[stage, root],
                    stage=stage,
                )
            finally:  # a refused launch leaves no staging folder behind (a launched one has moved it)
                shutil.rmtree(stage, ignore_errors=True)
            return
        known = configdirs.studies(found.dirs)
    except UserError as e:
        _fail(str(e))
    if experiment not in known:
        where = " and your config folders" if found.dirs else ""
        _fail(
            f"unknown study {experiment!r}; allowed (experiments/{where}): {', '.join(known)}; "
            "or give a study file's path"
        )
    _launch([f"experiment={experiment}", *args], force_multirun=True, study=experiment)


@app.command(context_settings=PASS_THROUGH)
def resume(
    path: Path = typer.Argument(..., help="A run directory, or a sweep directory (one with multirun.yaml)."),
    overrides: Optional[List[str]] = typer.Argument(
        None, help="Sweeps only: launcher settings, e.g. hydra/launcher=joblib hydra.launcher.n_jobs=2."
    ),
) -> None:
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
    # torch: imported only when the command runs, never for `ics --help` or a Tab
    from ics_cli.console import print_run_summary

    from ics.config import ConfigError
    from ics.record import RunBusy
    from ics.train import AlreadyFinished, RunInterrupted
    from ics.train import resume as resume_run
    from ics.train.stopping import GracefulStop, RunDiskFull, SignalStop, signal_name

    typer.echo(f"resuming {path} ...")
    with GracefulStop() as scope:  # the run's one signal scope, from here to the process's end
        try:
            summary = resume_run(path, say=lambda text: typer.echo(f"run: {text}"))
        except AlreadyFinished as e:
            typer.echo(f"{e}")
            scope.linger(0)
            return
        except RunDiskFull as e:
            scope.linger(1)
            _fail(str(e), code=1)
        except (ConfigError, RunBusy) as e:
            scope.linger(2)
            _fail(str(e))
        except (RunInterrupted, SignalStop) as e:
            started = isinstance(e, RunInterrupted) and e.started
            if not started:
                typer.echo(
                    f"resume interrupted by {signal_name(e.signum)} before training restarted; the run is as "
                    f"it was. Resume with: ics resume {path}",
                    err=True,
                )
            else:
                typer.echo(
                    f"run interrupted by {e}: checkpoint and record written. Resume with: ics resume {path}", err=True
                )
            scope.linger(128 + e.signum)
            raise typer.Exit(128 + e.signum) from None
        scope.linger(0)
    print_run_summary(summary, path)


def _resume_sweep(path: Path, extra: List[str]) -> None:
    """Finish a sweep in its own folder, every job rebuilt from data (cli/resume.py): finished jobs are
    left alone, the others continue from their checkpoints or run from step 0, and what cannot be
    resumed is named with its reason (exit 1)."""
    from ics_cli import resume as plan  # imports the library, which `ics --help` and a Tab must not
    from ics_cli.launch import hold_sweep

    try:
        plan.check(path, extra)
        # one process resumes a sweep: a second one is refused here, before it writes anything
        lock = hold_sweep(path.resolve(), "resuming")
    except UserError as e:
        _fail(str(e))
    try:
        _resume_held(path, extra, plan)
    finally:
        lock.release()


def _resume_held(path: Path, extra: List[str], plan) -> None:
    """_resume_sweep, once this process holds the sweep's lock: what is planned is what runs."""
    try:
        what = plan.prepare(path, extra)
    except UserError as e:
        _fail(str(e))
    if what.launcher_note:
        typer.echo(f"resume: {what.launcher_note}", err=True)
    for line in plan.describe(what):
        typer.echo(line)
    for name, why in what.refused:
        typer.echo(f"resume: cannot resume {path / name}: {why}", err=True)
    if what.todo:
        _relaunch(
            path.resolve(),
            plan.resume_argv(path.resolve(), what, extra),
            len(what.todo) + len(what.finished),
            plan.parallelism(extra),
            [name for name, _ in what.refused],
            [t.name for t in what.todo],
        )
    elif not what.refused:
        typer.echo(f"resume: nothing to do: every job of {path} has finished")
    if what.refused:
        from ics.words import count

        _fail(
            f"{count(len(what.refused), 'job')} cannot be resumed (said above, with why); the others "
            f"{'ran' if what.todo else 'are finished'}",
            code=1,
        )


def _relaunch(
    target: Path, argv: List[str], total: int, parallel: int, refused: Sequence[str] = (), todo: Sequence[str] = ()
) -> None:
    """The resume's Hydra sweep, with the live view, signal forwarding and closing table of a sweep.
    Hydra rewrites multirun.yaml at the sweep's root: the sweep's own copy is put back after (and a
    search's folder, which had none, gets none). A job of `todo` that ended without a record is named."""
    # imported here, not at the top: they import Hydra and the library, which `ics --help` and a Tab must not
    from ics_cli import launch
    from ics_cli.sweeps import STOP_FILE, LiveSweep, stop_signal_of

    try:
        kept = launch.read_sweep_record(target)
    except UserError as e:
        _fail(str(e))
    (target / STOP_FILE).unlink(missing_ok=True)
    stop = _forward_stop(target)
    early = _StopBeforeRun()
    try:
        with early, stop, LiveSweep(target, total, parallel, swept=[], every_sec=launch.progress_every([])):
            _hydra(argv)
    except (SystemExit, Exception):
        if stop.signum is None:
            raise
    finally:
        launch.put_back_sweep_record(target, kept)
    signum = stop.signum or stop_signal_of(target)
    (target / STOP_FILE).unlink(missing_ok=True)
    if signum is None:
        refused = [*refused, *launch.unrecorded(target, todo)]
    try:
        launch.after_sweep(target, signum, refused)  # the closing table; the exit code
    except UserError as e:
        _fail(str(e), e.code)


@app.command()
def tensorboard(
    path: Optional[Path] = typer.Argument(None, help="A run or sweep directory (default: runs/ and multiruns/ here)."),
    port: Optional[int] = typer.Option(None, min=1, max=65535, help="Port (default: a free one)."),
    host: str = typer.Option(
        "127.0.0.1",
        help="Address to listen on. 127.0.0.1: this machine only "
        "(reach it from elsewhere with ssh -L). 0.0.0.0: every "
        "network interface, so anyone who can reach this machine "
        "can read all the runs shown, without a password.",
    ),
    open_browser: bool = typer.Option(True, "--open/--no-open", help="Open the URL in a browser where one can open."),
) -> None:
    """Start TensorBoard and print its URL (with smoothing 0: evaluations are few and log-spaced).

    SIGINT, SIGTERM and SIGHUP stop TensorBoard too.

    Example: [bold]ics tensorboard multiruns/2026-11-28/12-00-00_fig1[/bold]
    """
    from ics_cli.tensorboard import serve  # TensorBoard's own modules: only when the command runs

    if path is not None and not path.is_dir():
        _fail(f"{path} is not a directory; give a run or sweep directory")
    where = [path] if path is not None else [Path(d) for d in ("runs", "multiruns") if Path(d).is_dir()]
    if not any(next(d.rglob("events.out.tfevents.*"), None) for d in where):
        _fail(
            f"no TensorBoard events under {', '.join(map(str, where)) or 'runs/ or multiruns/ here'}; "
            "give a run or sweep directory (`ics tensorboard <dir>`)"
        )
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
    from ics_cli.status import lines  # the record's readers (numpy): only when the command runs

    root = path or Path(".")
    if not root.is_dir():
        _fail(f"{root} is not a directory; give a folder that holds runs or sweeps")
    found = lines(root, terminal=True)
    for line in found:
        typer.echo(line)
    if not found:
        typer.echo(f"no runs or sweeps under {root}")


@app.command()
def recalibrate(
    path: Path = typer.Argument(..., help="A run directory with a checkpoint."),
    batches: int = typer.Option(200, min=1, help="Training batches averaged for the population statistics."),
    batch_size: Optional[int] = typer.Option(None, min=2, help="Their size (default: the run's)."),
    seed: int = typer.Option(0, min=0, help="Seed of the batch draw."),
) -> None:
    """Precise BN (BN paper Alg. 2): a finished BN run's test accuracy with population statistics.

    Recomputes the BN statistics on training batches and writes the test accuracy with EMA and
    with population statistics into the run's summary.json.

    Example: [bold]ics recalibrate runs/2026-11-28/12-00-00[/bold]
    """
    # torch: imported only when the command runs, never for `ics --help` or a Tab
    from ics.config import ConfigError
    from ics.data.vision import TorchvisionMismatch
    from ics.record import RecordError
    from ics.train.recalibrate import recalibrate as run_recalibrate

    if not path.is_dir():
        _fail(f"{path} is not a directory; give a run directory (one with checkpoint.pt)")
    try:
        r = run_recalibrate(path, batches, batch_size, seed)
    except (ConfigError, RecordError, TorchvisionMismatch) as e:
        _fail(str(e))
    typer.echo(
        f"step {r['step']}: test accuracy with the EMA running statistics {r['ema_acc']:.4f}, with population "
        f"statistics over {r['batches']} batches of {r['batch_size']} {r['precise_acc']:.4f} "
        f"(written to {path / 'summary.json'})"
    )


@app.command(name="config", context_settings=PASS_THROUGH)
def show_config(
    overrides: Optional[List[str]] = typer.Argument(
        None, help="Hydra overrides; --config-dir DIR, --config-name NAME.", autocompletion=complete_override
    ),
) -> None:
    """Print the composed config, every key of every section (no training).

    Example: [bold]ics config model=cnn optim=adam[/bold]   [bold]ics config --config-dir conf model=my_mlp[/bold]
    """
    from ics_cli import listing  # imports Hydra, which `ics --help` and a Tab must not

    try:
        text = listing.composed_yaml(list(overrides or []))
    except UserError as e:
        _fail(str(e))
    typer.echo(text, nl=False)


@app.command(name="list")
def list_options(
    section: Optional[str] = typer.Argument(
        None,
        help="A config section or group (model, trainer, probe, grad_ics, ...; model=cnn for an option): "
        "list its keys with defaults, units and allowed values.",
        autocompletion=complete_section,
    ),
    config_dir: Optional[List[Path]] = typer.Option(
        None, "--config-dir", "-cd", help="A config folder of yours (repeatable); ICS_CONFIG_PATH adds more."
    ),
) -> None:
    """List every config group with its options and where each comes from, and every study; or the keys
    of one section or option.

    Examples: [bold]ics list[/bold]   [bold]ics list trainer[/bold]   [bold]ics list model=cnn_relu_bn[/bold]
    """
    from ics_cli import listing  # imports Hydra, which `ics --help` and a Tab must not
    from rich.console import Console  # rich's console: only when the command runs

    console = Console()
    try:
        where = configdirs.split([a for d in (config_dir or []) for a in ("--config-dir", str(d))])
        if section is not None:
            listing.print_keys(section, console, where.dirs)
        else:
            listing.print_groups(console, where.dirs)
    except UserError as e:
        _fail(str(e))


@app.command()
def bench(
    steps: int = typer.Option(3000, min=100, help="Training steps per timed loop."),
    data_root: Optional[str] = typer.Option(None, help="Data root (default: $ICS_DATA_ROOT)."),
    synthetic: bool = typer.Option(False, help="Use random MNIST-shaped tensors instead of MNIST."),
    repeats: int = typer.Option(3, min=1, help="Timed repeats per loop (the best is kept)."),
    cnn_steps: int = typer.Option(20, min=0, help="Steps per timed CNN loop (0: skip the CNN rows)."),
    instruments: bool = typer.Option(
        False, help="Only the cost of each instrument at its default cadence, for the Fig. 1 MLP and the default CNN."
    ),
    threads: bool = typer.Option(
        False,
        "--threads",
        help="Only trainer.threads=1, all cores and auto on the Fig. 1 MLP, idle and with a busy process competing.",
    ),
    preflight_jobs: int = typer.Option(
        0,
        "--preflight",
        min=0,
        help="Only the up-front check of an N-job seed sweep (trainer.seed=range(0,N)): seconds and peak memory.",
    ),
    ensemble: Optional[str] = typer.Option(
        None,
        "--ensemble",
        help="Only seeds trained as one vectorised model vs one after the other, for these member counts (e.g. 5,16).",
    ),
    device: str = typer.Option("cpu", help="--ensemble only: the device (cpu: one thread; cuda)."),
    launchers: int = typer.Option(
        0,
        "--launchers",
        min=0,
        help="Only `ics run -m trainer.seed=0..N-1 [OVERRIDES]` timed whole through the basic and the "
        "ensemble launcher (--steps per job).",
    ),
    overrides: Optional[List[str]] = typer.Argument(None, help="--launchers only: overrides of the timed sweep."),
) -> None:
    """Throughput of the ics loop vs a hand-written loop and the tutorial DataLoader pipeline.

    Example: [bold]ICS_DATA_ROOT=/data ics bench --steps 3000[/bold]
    """
    if overrides and not launchers:
        _fail(f"{overrides[0]!r} is not an option of ics bench; overrides are taken with --launchers only")
    if preflight_jobs:
        from ics_cli.preflight import measure  # Hydra: not for `ics --help` or a Tab

        try:
            typer.echo(measure(preflight_jobs))
        except UserError as e:
            _fail(str(e), e.code)
        return
    from rich.console import Console

    # torch: imported only when the command runs, never for `ics --help` or a Tab
    from ics.bench import (
        ensemble_bench,
        ensemble_sizes,
        instrument_costs,
        launcher_bench,
        run_bench,
        threads_under_load,
    )
    from ics.config import ConfigError
    from ics.data.vision import TorchvisionMismatch

    root = None if synthetic else (data_root or os.environ.get("ICS_DATA_ROOT"))
    try:
        if launchers:
            launcher_bench(launchers, steps, repeats, Console(), root, overrides or [])
        elif ensemble is not None:
            ensemble_bench(ensemble_sizes(ensemble), steps, repeats, Console(), root, device)
        elif threads:
            threads_under_load(steps, Console(), root)
        elif instruments:
            instrument_costs("mlp", steps, Console(), root)
            if cnn_steps:
                instrument_costs("cnn", max(cnn_steps, 50), Console())
        else:
            run_bench(steps=steps, data_root=data_root, synthetic=synthetic, repeats=repeats, cnn_steps=cnn_steps)
    except (ConfigError, TorchvisionMismatch) as e:
        _fail(str(e))


@app.command()
def report(
    paths: List[Path] = typer.Argument(
        ..., help="Run or sweep directories; several are pooled (replicas of one config and seed count once)."
    ),
    out: Optional[Path] = typer.Option(
        None,
        help="Where to write report.md, report.html, runs.csv and "
        "figures (default: <path>/report; required for several "
        "paths).",
    ),
) -> None:
    """Tables, LR tolerance and figures for a run or sweep directory, or several compared.

    Example: [bold]ics report multiruns/2026-11-26/12-00-00[/bold]
    Several: [bold]ics report sweepA sweepB --out compare-AB[/bold]
    """
    # the report's modules (torch, matplotlib): imported only when the command runs, never for a Tab
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
